// N struct mmsghdr, laid out in memory the caller gives, for one sendmmsg/recvmmsg per batch.
//
// Region layout (x86_64), `capacity` entries of each, contiguous:
//   [mmsghdr × N: 64 B][iovec × N: 16 B][sockaddr slot × N: 32 B][control slot × N: 64 B]
// Each mmsghdr points at its own iovec, sockaddr slot and control slot; those pointers are written once (and again by
// rebind()). The iovec bases point wherever the caller says: WASM memory slots, so payloads are never copied. The
// headers themselves may live in WASM memory or in a plain ArrayBuffer (MsgBatch allocates one when given no region).
//
// Sending: clear(); add(dest, address, length, segmentSize) or addIov(dest, iovecs, segmentSize) per message;
// sendBatch(fd). add() sends one contiguous buffer (the entry's own iovec); addIov() points the entry at a struct iovec
// list the caller wrote (the core's send groups: headers and payloads in different places), which the kernel gathers.
// A message longer than its segmentSize carries a UDP_SEGMENT cmsg: the kernel cuts it into segmentSize datagrams. When
// the socket refused UDP_SEGMENT (UdpSocket.gso false) construct the batch with `expandSegments: true`: the same bytes are
// then laid out as one entry per datagram (for addIov, each pointing at the iovecs of its datagram), and sendBatch sends
// them all in the same single sendmmsg.
// Receiving: setBuffer(i, address, capacity) once per slot; recvBatch(fd, n, flags); then length(i), segmentSize(i)
// (from UDP_GRO; 0 = a single datagram), copySource(i, out, at) and sourcePort(i), all without allocation.
import { type Address, EAGAIN, EINTR, MSG_TRUNC, POLLOUT, SOL_UDP, SysError, UDP_GRO, UDP_SEGMENT, addressOf, getPointer,
  lastErrno, libc, pollFd, setPointer } from "./libc.js";
import { SOCKADDR_SLOT, formatAddress16, readSockaddr } from "./sockaddr.js";

// struct msghdr / mmsghdr / iovec / cmsghdr offsets.
const MMSGHDR_SIZE = 64;
const MSG_NAME = 0;
const MSG_NAMELEN = 8;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const MSG_CONTROL = 32;
const MSG_CONTROLLEN = 40;
const MSG_FLAGS = 48;
const MSG_LEN = 56;
const IOVEC_SIZE = 16;
const IOV_BASE = 0;
const IOV_LEN = 8;
const CMSG_LEN = 0;
const CMSG_LEVEL = 8;
const CMSG_TYPE = 12;
const CMSG_DATA = 16;
/** CMSG_LEN(sizeof(u16)) and CMSG_SPACE(sizeof(u16)): the UDP_SEGMENT cmsg. */
const CMSG_LEN_U16 = 18;
const CMSG_SPACE_U16 = 24;
/** Room for UDP_GRO's CMSG_SPACE(sizeof(int)) = 24 and then some. */
const CONTROL_SLOT = 64;

const ENTRY_BYTES = MMSGHDR_SIZE + IOVEC_SIZE + SOCKADDR_SLOT + CONTROL_SLOT;

// Errors that mean the call itself is wrong (not one message's destination or size): thrown, never skipped.
const EBADF = 9;
const EFAULT = 14;
const ENOTSOCK = 88;
const EDESTADDRREQ = 89;
const FATAL_SEND_ERRORS = new Set([EBADF, EFAULT, ENOTSOCK, EDESTADDRREQ]);

/** A list of struct iovec in memory: its native address, and a view of the same bytes to read the lengths from. */
export interface IovecList {
  address: Address;
  view: DataView;
  /** Offset of the first iovec in `view`. */
  at: number;
  count: number;
}

export interface MsgBatchOptions {
  /** Capacity in mmsghdr entries. */
  capacity: number;
  /** Where the headers live (8-aligned, at least MsgBatch.bytesFor(capacity) bytes); allocated when absent. */
  region?: Uint8Array;
  /** Lay out one entry per datagram instead of a UDP_SEGMENT cmsg (for sockets without UDP_SEGMENT). */
  expandSegments?: boolean;
}

export class MsgBatch {
  readonly capacity: number;
  readonly expandSegments: boolean;
  /** Entries added since clear(). */
  count = 0;
  /** Entries the last sendBatch skipped because the kernel refused them (bad destination, size, route). */
  failed = 0;
  /** errno of the last refused entry (0: none). */
  lastErrno = 0;
  private u8!: Uint8Array;
  private dv!: DataView;
  private base = 0;
  private readonly iovAt: number;
  private readonly nameAt: number;
  private readonly controlAt: number;

  /** Bytes a region must have for `capacity` entries. */
  static bytesFor(capacity: number): number {
    return capacity * ENTRY_BYTES;
  }

  constructor(opts: MsgBatchOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity < 1 || opts.capacity > 1024) {
      throw new Error(`MsgBatch capacity must be 1..1024 (UIO_MAXIOV), got ${opts.capacity}`);
    }
    this.capacity = opts.capacity;
    this.expandSegments = opts.expandSegments ?? false;
    this.iovAt = this.capacity * MMSGHDR_SIZE;
    this.nameAt = this.iovAt + this.capacity * IOVEC_SIZE;
    this.controlAt = this.nameAt + this.capacity * SOCKADDR_SLOT;
    this.rebind(opts.region ?? new Uint8Array(MsgBatch.bytesFor(this.capacity)));
  }

  /** Points the batch at `region` (the same bytes seen through a new buffer after WASM memory grew) and rewrites its pointers. */
  rebind(region: Uint8Array): void {
    if (region.byteLength < MsgBatch.bytesFor(this.capacity)) {
      throw new Error(`MsgBatch region of ${region.byteLength} bytes is smaller than ${MsgBatch.bytesFor(this.capacity)}`);
    }
    const base = addressOf(region);
    if (base % 8 !== 0) throw new Error("MsgBatch region must be 8-byte aligned");
    this.u8 = region;
    this.dv = new DataView(region.buffer, region.byteOffset, region.byteLength);
    this.base = base;
    for (let i = 0; i < this.capacity; i++) {
      const h = i * MMSGHDR_SIZE;
      setPointer(this.dv, h + MSG_NAME, base + this.nameAt + i * SOCKADDR_SLOT);
      setPointer(this.dv, h + MSG_IOV, base + this.iovAt + i * IOVEC_SIZE);
      setPointer(this.dv, h + MSG_IOVLEN, 1);
      setPointer(this.dv, h + MSG_CONTROL, base + this.controlAt + i * CONTROL_SLOT);
      setPointer(this.dv, h + MSG_CONTROLLEN, 0);
    }
  }

  /** Native address of entry i's struct mmsghdr (its first 56 bytes are a struct msghdr). */
  headerAddress(i: number): Address {
    return this.base + i * MMSGHDR_SIZE;
  }

  // ---- send ------------------------------------------------------------------------------------------------------------

  clear(): void {
    this.count = 0;
  }

  /**
   * Adds a message: `length` bytes at native `address` to `dest` (bytes from sockaddr(); copied). With 0 < segmentSize <
   * length the kernel sends ceil(length / segmentSize) datagrams of segmentSize bytes (the last may be shorter).
   * Returns false, adding nothing, when the batch lacks room.
   */
  add(dest: Uint8Array, address: Address, length: number, segmentSize = 0): boolean {
    const segmented = segmentSize > 0 && length > segmentSize;
    if (segmented && this.expandSegments) {
      const parts = Math.ceil(length / segmentSize);
      if (this.count + parts > this.capacity) return false;
      for (let off = 0; off < length; off += segmentSize) {
        this.fill(this.count++, dest, address + off, Math.min(segmentSize, length - off), 0);
      }
      return true;
    }
    if (this.count >= this.capacity) return false;
    this.fill(this.count++, dest, address, length, segmented ? segmentSize : 0);
    return true;
  }

  /**
   * Adds a message gathered from `iovs` (not copied: it must stay as it is until sent). With segmentSize > 0 the kernel
   * cuts the bytes into datagrams of segmentSize (the last may be shorter); with expandSegments, every datagram must
   * end on an iovec's end. Returns false, adding nothing, when the batch lacks room.
   */
  addIov(dest: Uint8Array, iovs: IovecList, segmentSize = 0): boolean {
    if (!this.expandSegments || segmentSize === 0) {
      if (this.count >= this.capacity) return false;
      this.fillIov(this.count++, dest, iovs.address, iovs.count, segmentSize);
      return true;
    }
    const start = this.count;
    let first = 0;
    let bytes = 0;
    for (let k = 0; k < iovs.count; k++) {
      bytes += getPointer(iovs.view, iovs.at + k * IOVEC_SIZE + IOV_LEN);
      if (bytes < segmentSize && k + 1 < iovs.count) continue;
      if (bytes > segmentSize) throw new Error(`a datagram of ${segmentSize} bytes ends inside iovec ${k}`);
      if (this.count >= this.capacity) {
        this.count = start;
        return false;
      }
      this.fillIov(this.count++, dest, iovs.address + first * IOVEC_SIZE, k + 1 - first, 0);
      first = k + 1;
      bytes = 0;
    }
    return true;
  }

  private fillIov(i: number, dest: Uint8Array, iov: Address, iovCount: number, segmentSize: number): void {
    this.setHeader(i, dest, segmentSize);
    const h = i * MMSGHDR_SIZE;
    setPointer(this.dv, h + MSG_IOV, iov);
    setPointer(this.dv, h + MSG_IOVLEN, iovCount);
  }

  private fill(i: number, dest: Uint8Array, address: Address, length: number, segmentSize: number): void {
    const dv = this.dv;
    const h = i * MMSGHDR_SIZE;
    const iov = this.iovAt + i * IOVEC_SIZE;
    setPointer(dv, h + MSG_IOV, this.base + iov);
    setPointer(dv, h + MSG_IOVLEN, 1);
    setPointer(dv, iov + IOV_BASE, address);
    setPointer(dv, iov + IOV_LEN, length);
    this.setHeader(i, dest, segmentSize);
  }

  /** Entry i's destination and, for segmentSize > 0, its UDP_SEGMENT cmsg. */
  private setHeader(i: number, dest: Uint8Array, segmentSize: number): void {
    const dv = this.dv;
    const h = i * MMSGHDR_SIZE;
    this.u8.set(dest, this.nameAt + i * SOCKADDR_SLOT);
    dv.setUint32(h + MSG_NAMELEN, dest.length, true);
    if (segmentSize === 0) {
      setPointer(dv, h + MSG_CONTROLLEN, 0);
      return;
    }
    const c = this.controlAt + i * CONTROL_SLOT;
    setPointer(dv, c + CMSG_LEN, CMSG_LEN_U16);
    dv.setInt32(c + CMSG_LEVEL, SOL_UDP, true);
    dv.setInt32(c + CMSG_TYPE, UDP_SEGMENT, true);
    dv.setUint16(c + CMSG_DATA, segmentSize, true);
    setPointer(dv, h + MSG_CONTROLLEN, CMSG_SPACE_U16);
  }

  /**
   * Sends entries [from, n) with sendmmsg: one call when the kernel takes them all. When it takes fewer, sending
   * continues from where it stopped; an entry the kernel refuses (EMSGSIZE, EINVAL, ENETUNREACH, …) is skipped and
   * counted in `failed`/`lastErrno`; on EAGAIN it waits up to `waitMs` for room (poll POLLOUT) and goes on.
   * Returns the index it reached: n when every entry was sent or skipped, less when the socket stayed full for waitMs
   * (call again with that index as `from`). Throws SysError only for errors of the call itself (EBADF, EFAULT, …).
   */
  sendBatch(fd: number, n = this.count, from = 0, waitMs = 1000): number {
    this.failed = 0;
    this.lastErrno = 0;
    let at = from;
    while (at < n) {
      const sent = libc.sendmmsg(fd, this.base + at * MMSGHDR_SIZE, n - at, 0);
      if (sent > 0) {
        at += sent;
        continue;
      }
      if (sent === 0) return at;
      const errno = lastErrno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) {
        if (pollFd(fd, POLLOUT, waitMs) === 0) return at;
        continue;
      }
      if (FATAL_SEND_ERRORS.has(errno)) throw new SysError("sendmmsg", errno, `fd ${fd}`);
      this.failed++;
      this.lastErrno = errno;
      at++;
    }
    return at;
  }

  /** Sends entry i alone with sendmsg; bytes sent, −1 on EAGAIN. Throws SysError on other errors. */
  sendOne(fd: number, i = 0): number {
    for (;;) {
      const r = libc.sendmsg(fd, this.headerAddress(i), 0);
      if (r >= 0) return r;
      const errno = lastErrno();
      if (errno === EAGAIN) return -1;
      if (errno !== EINTR) throw new SysError("sendmsg", errno, `fd ${fd}`);
    }
  }

  // ---- receive ---------------------------------------------------------------------------------------------------------

  /** Sets where entry i receives: `capacity` bytes at native `address` (a WASM RX slot). Stays set across batches. */
  setBuffer(i: number, address: Address, capacity: number): void {
    const iov = this.iovAt + i * IOVEC_SIZE;
    setPointer(this.dv, i * MMSGHDR_SIZE + MSG_IOV, this.base + iov);
    setPointer(this.dv, i * MMSGHDR_SIZE + MSG_IOVLEN, 1);
    setPointer(this.dv, iov + IOV_BASE, address);
    setPointer(this.dv, iov + IOV_LEN, capacity);
  }

  private armReceive(i: number): void {
    const h = i * MMSGHDR_SIZE;
    this.dv.setUint32(h + MSG_NAMELEN, SOCKADDR_SLOT, true);
    setPointer(this.dv, h + MSG_CONTROLLEN, CONTROL_SLOT);
    this.dv.setUint32(h + MSG_LEN, 0, true);
  }

  /**
   * Receives up to n messages into entries 0..n-1 with one recvmmsg. `flags`: MSG_DONTWAIT, MSG_WAITFORONE (block for
   * the first, take what else is waiting). Returns how many arrived; 0 when none was waiting (EAGAIN).
   */
  recvBatch(fd: number, n: number, flags = 0): number {
    if (n > this.capacity) throw new Error(`recvBatch of ${n} exceeds capacity ${this.capacity}`);
    for (let i = 0; i < n; i++) this.armReceive(i);
    for (;;) {
      const r = libc.recvmmsg(fd, this.base, n, flags, 0);
      if (r >= 0) return r;
      const errno = lastErrno();
      if (errno === EAGAIN) return 0;
      if (errno !== EINTR) throw new SysError("recvmmsg", errno, `fd ${fd}`);
    }
  }

  /** Receives one message into entry i with recvmsg; its length, or −1 on EAGAIN. */
  recvOne(fd: number, i = 0, flags = 0): number {
    this.armReceive(i);
    for (;;) {
      const r = libc.recvmsg(fd, this.headerAddress(i), flags);
      if (r >= 0) {
        this.dv.setUint32(i * MMSGHDR_SIZE + MSG_LEN, r, true);
        return r;
      }
      const errno = lastErrno();
      if (errno === EAGAIN) return -1;
      if (errno !== EINTR) throw new SysError("recvmsg", errno, `fd ${fd}`);
    }
  }

  /** Bytes received in entry i (msg_len): one datagram, or with UDP_GRO several of segmentSize(i) bytes back to back. */
  length(i: number): number {
    return this.dv.getUint32(i * MMSGHDR_SIZE + MSG_LEN, true);
  }

  /** The message was longer than its buffer (MSG_TRUNC). */
  truncated(i: number): boolean {
    return (this.dv.getInt32(i * MMSGHDR_SIZE + MSG_FLAGS, true) & MSG_TRUNC) !== 0;
  }

  /** The UDP_GRO segment size of entry i, 0 when it holds a single datagram. */
  segmentSize(i: number): number {
    const dv = this.dv;
    const start = this.controlAt + i * CONTROL_SLOT;
    const end = start + Math.min(getPointer(dv, i * MMSGHDR_SIZE + MSG_CONTROLLEN), CONTROL_SLOT);
    for (let c = start; c + CMSG_DATA <= end; ) {
      const len = dv.getUint32(c + CMSG_LEN, true);
      if (len < CMSG_DATA) break;
      if (dv.getInt32(c + CMSG_LEVEL, true) === SOL_UDP && dv.getInt32(c + CMSG_TYPE, true) === UDP_GRO) {
        return c + CMSG_DATA + 4 <= end ? dv.getInt32(c + CMSG_DATA, true) : 0;
      }
      c += (len + 7) & ~7;
    }
    return 0;
  }

  /** Writes entry i's source address as 16 bytes (IPv4 as ::ffff:a.b.c.d) to out[at..]; returns the source port. */
  copySource(i: number, out: Uint8Array, at = 0): number {
    return readSockaddr(this.u8, this.dv, this.nameAt + i * SOCKADDR_SLOT, out, at);
  }

  sourcePort(i: number): number {
    return this.dv.getUint16(this.nameAt + i * SOCKADDR_SLOT + 2);
  }

  /** Entry i's source as text (allocates: logs, tests). */
  source(i: number): string {
    const addr16 = new Uint8Array(16);
    this.copySource(i, addr16, 0);
    return formatAddress16(addr16);
  }
}
