// The underlay UDP socket: big buffers, UDP_GRO on receive, UDP_SEGMENT probed for send. Batches go through MsgBatch.
import { AF_INET, AF_INET6, IPPROTO_IPV6, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_DGRAM, SOL_SOCKET, SOL_UDP, SO_RCVBUF,
  SO_RCVBUFFORCE, SO_REUSEPORT, SO_SNDBUF, SO_SNDBUFFORCE, SysError, UDP_GRO, UDP_SEGMENT, addressOf, check, closeFd,
  getIntOption, intBytes, lastErrno, libc, setIntOption, setNonBlocking } from "./libc.js";
import { MsgBatch } from "./msgbatch.js";
import { type Family, SOCKADDR_SLOT, decodeSockaddr, sockaddr } from "./sockaddr.js";

export { MsgBatch, type MsgBatchOptions } from "./msgbatch.js";
export { type Family, sockaddr } from "./sockaddr.js";

export const DEFAULT_SOCKET_BUFFER_BYTES = 7 * 1024 * 1024;
const EPERM = 1;

export interface UdpOptions {
  /** 6 opens a dual-stack AF_INET6 socket (IPv4 peers as ::ffff:a.b.c.d) unless v6Only. */
  family: Family;
  /** Local address to bind ("0.0.0.0" / "::" for any). */
  address: string;
  /** Local port; 0 lets the kernel pick (read it back from `port`). */
  port: number;
  /** SO_SNDBUF/SO_RCVBUF wanted (default 7 MiB); forced past rmem_max/wmem_max when running as root. */
  bufferBytes?: number;
  /** Ask for UDP_GRO: many datagrams per receive, with their segment size in a cmsg. */
  gro: boolean;
  /** SO_REUSEPORT: several sockets (one per RX worker) on one port. */
  reusePort?: boolean;
  v6Only?: boolean;
  nonBlocking?: boolean;
}

export interface ReceivedDatagram {
  length: number;
  /** UDP_GRO segment size (0: one datagram). */
  segmentSize: number;
  address: string;
  port: number;
}

export interface UdpSocket {
  readonly fd: number;
  readonly family: Family;
  /** The bound port (the kernel's pick when 0 was asked for). */
  readonly port: number;
  /** UDP_GRO was accepted. */
  readonly gro: boolean;
  /** UDP_SEGMENT is supported: send batches with segment sizes; otherwise build MsgBatch with expandSegments. */
  readonly gso: boolean;
  /** Buffer sizes the kernel reports (it doubles what it was asked for). */
  readonly sendBufferBytes: number;
  readonly recvBufferBytes: number;
  /** A sockaddr for this socket's family (for MsgBatch.add). */
  destination(address: string, port: number): Uint8Array;
  /** A MsgBatch for this socket: with UDP_SEGMENT as cmsgs when the kernel has it, else expandSegments. */
  createBatch(capacity: number, region?: Uint8Array): MsgBatch;
  /** One datagram (or, with segmentSize, a UDP_SEGMENT train) via sendmsg; bytes sent, −1 on EAGAIN. Cold path. */
  sendTo(data: Uint8Array, address: string, port: number, segmentSize?: number): number;
  /** One receive via recvmsg into `into`; null on EAGAIN. Cold path. */
  recvFrom(into: Uint8Array, flags?: number): ReceivedDatagram | null;
  setNonBlocking(on: boolean): void;
  close(): void;
}

/** SO_*BUFFORCE passes rmem_max/wmem_max but needs CAP_NET_ADMIN; without it, the capped SO_*BUF. */
function setBufferSize(fd: number, force: number, plain: number, bytes: number, what: string): void {
  if (libc.setsockopt(fd, SOL_SOCKET, force, intBytes(bytes), 4) === 0) return;
  const errno = lastErrno();
  if (errno !== EPERM) throw new SysError("setsockopt", errno, `${what}FORCE ${bytes}`);
  setIntOption(fd, SOL_SOCKET, plain, bytes, `${what} ${bytes}`);
}

/** UDP_SEGMENT support: the kernel answers getsockopt for it only when it implements it. */
function probeGso(fd: number): boolean {
  try {
    getIntOption(fd, SOL_UDP, UDP_SEGMENT, "UDP_SEGMENT");
    return true;
  } catch (err) {
    if (err instanceof SysError) return false;
    throw err;
  }
}

function tryGro(fd: number): boolean {
  return libc.setsockopt(fd, SOL_UDP, UDP_GRO, intBytes(1), 4) === 0;
}

function boundPort(fd: number): number {
  const name = new Uint8Array(SOCKADDR_SLOT);
  const len = new Uint32Array([SOCKADDR_SLOT]);
  check("getsockname", libc.getsockname(fd, name, len));
  return decodeSockaddr(name.subarray(0, len[0])).port;
}

/** Opens and binds a UDP socket in the calling thread's network namespace. */
export function openUdp(opts: UdpOptions): UdpSocket {
  const fd = check("socket", libc.socket(opts.family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0),
    `UDP IPv${opts.family}`);
  try {
    const bytes = opts.bufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    setBufferSize(fd, SO_SNDBUFFORCE, SO_SNDBUF, bytes, "SO_SNDBUF");
    setBufferSize(fd, SO_RCVBUFFORCE, SO_RCVBUF, bytes, "SO_RCVBUF");
    if (opts.family === 6) setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, opts.v6Only ? 1 : 0, "IPV6_V6ONLY");
    if (opts.reusePort) setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    const gro = opts.gro && tryGro(fd);
    const gso = probeGso(fd);
    const local = sockaddr(opts.family, opts.address, opts.port);
    check("bind", libc.bind(fd, local, local.length), `${opts.address}:${opts.port}`);
    if (opts.nonBlocking) setNonBlocking(fd, true);
    return new Udp(fd, opts.family, boundPort(fd), gro, gso,
      getIntOption(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"), getIntOption(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"));
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

class Udp implements UdpSocket {
  private closed = false;
  private one: MsgBatch | null = null;

  constructor(
    readonly fd: number,
    readonly family: Family,
    readonly port: number,
    readonly gro: boolean,
    readonly gso: boolean,
    readonly sendBufferBytes: number,
    readonly recvBufferBytes: number,
  ) {}

  destination(address: string, port: number): Uint8Array {
    return sockaddr(this.family, address, port);
  }

  createBatch(capacity: number, region?: Uint8Array): MsgBatch {
    return new MsgBatch({ capacity, region, expandSegments: !this.gso });
  }

  private single(): MsgBatch {
    this.one ??= new MsgBatch({ capacity: 1 });
    this.one.clear();
    return this.one;
  }

  sendTo(data: Uint8Array, address: string, port: number, segmentSize = 0): number {
    const batch = this.single();
    batch.add(this.destination(address, port), addressOf(data), data.length, segmentSize);
    return batch.sendOne(this.fd);
  }

  recvFrom(into: Uint8Array, flags = 0): ReceivedDatagram | null {
    const batch = this.single();
    batch.setBuffer(0, addressOf(into), into.length);
    const n = batch.recvOne(this.fd, 0, flags);
    if (n < 0) return null;
    return { length: n, segmentSize: batch.segmentSize(0), address: batch.source(0), port: batch.sourcePort(0) };
  }

  setNonBlocking(on: boolean): void {
    setNonBlocking(this.fd, on);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}
