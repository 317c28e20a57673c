// The TUN device: /dev/net/tun, TUNSETIFF, virtio_net_hdr and offloads, with the best mode the kernel accepts.
//
// Modes, best first (the first one the kernel accepts wins; `maxMode` caps where the search starts):
//   "vnet+tso+uso"  IFF_VNET_HDR, TUNSETOFFLOAD(CSUM|TSO4|TSO6|USO4|USO6): TCP and UDP super-packets both ways
//   "vnet+tso"      IFF_VNET_HDR, TUNSETOFFLOAD(CSUM|TSO4|TSO6): kernels before USO (< 6.2)
//   "vnet"          IFF_VNET_HDR, no offloads: every packet is one MTU-sized packet, still led by a 10-byte header
//   "plain"         no header at all: raw IP packets
// In every vnet mode each read and write starts with a 10-byte struct virtio_net_hdr.
import { type Address, EAGAIN, EBUSY, EINTR, EINVAL, O_RDWR, SysError, addressOf, closeFd, intBytes, lastErrno, libc, openPath,
  setNonBlocking } from "./libc.js";

// <linux/if_tun.h>: _IOW('T', 202, int) and friends.
export const TUNSETIFF = 0x400454ca;
export const TUNSETPERSIST = 0x400454cb;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;

export const IFF_TUN = 0x0001;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;

export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

/** sizeof(struct virtio_net_hdr): what every read/write carries first in a vnet mode. */
export const VIRTIO_NET_HDR_LEN = 10;
const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;
const IFREQ_FLAGS = 16;

export type TunMode = "vnet+tso+uso" | "vnet+tso" | "vnet" | "plain";
export const TUN_MODES: readonly TunMode[] = ["vnet+tso+uso", "vnet+tso", "vnet", "plain"];

const OFFLOAD_BITS: Record<TunMode, number> = {
  "vnet+tso+uso": TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
  "vnet+tso": TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
  vnet: 0,
  plain: 0,
};

export interface TunOffloads {
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
  uso4: boolean;
  uso6: boolean;
}

export interface TunOptions {
  /** Interface name (≤ 15 bytes); a pattern such as "weft%d" lets the kernel number it. */
  name: string;
  /** Ask for a virtio_net_hdr and offloads; false opens "plain". */
  vnetHdr: boolean;
  /** IFF_MULTI_QUEUE: opening the same name again (same options) attaches one more queue, one fd per worker. */
  multiQueue?: boolean;
  /** Queues to attach now (implies multiQueue when given): `queueFds` holds one fd each, `fd` is the first. */
  queues?: number;
  /** The best mode to try (default "vnet+tso+uso"); the search falls back below it. */
  maxMode?: TunMode;
  nonBlocking?: boolean;
  /**
   * IFF_PERSIST: the device (with its addresses and routes) outlives this process. Opening the same name again with the
   * same options re-attaches to it; only deleting the link removes it (docs/restarts.md).
   */
  persist?: boolean;
}

export interface TunDevice {
  readonly fd: number;
  /** One fd per attached queue (just `fd` on a single-queue device). */
  readonly queueFds: readonly number[];
  /** The name the kernel gave the device. */
  readonly name: string;
  readonly vnetHdr: boolean;
  readonly offloads: TunOffloads;
  /** The mode the kernel accepted: log it, show it in `weft status`. */
  readonly mode: TunMode;
  /** Reads one packet (a super-packet in offload modes) to native `address`; bytes read, or −1 when none is waiting. */
  read(address: Address, capacity: number): number;
  /** Writes one packet from native `address`; bytes written, or −1 when the device would block. */
  write(address: Address, length: number): number;
  /** read() into a view's bytes (tests, tools). */
  readInto(view: Uint8Array): number;
  /** write() of a view's bytes (tests, tools). */
  writeFrom(view: Uint8Array): number;
  setNonBlocking(on: boolean): void;
  close(): void;
}

function offloadsOf(bits: number): TunOffloads {
  return {
    csum: (bits & TUN_F_CSUM) !== 0,
    tso4: (bits & TUN_F_TSO4) !== 0,
    tso6: (bits & TUN_F_TSO6) !== 0,
    uso4: (bits & TUN_F_USO4) !== 0,
    uso6: (bits & TUN_F_USO6) !== 0,
  };
}

/** Opens /dev/net/tun and attaches it to interface `name` with `flags`; returns the fd and the kernel's name. */
function attach(name: string, flags: number): { fd: number; name: string } {
  const nameBytes = Buffer.from(name, "utf8");
  if (nameBytes.length >= IFNAMSIZ) throw new Error(`TUN name too long (max ${IFNAMSIZ - 1} bytes): ${JSON.stringify(name)}`);
  const ifr = new Uint8Array(IFREQ_SIZE);
  ifr.set(nameBytes, 0);
  new DataView(ifr.buffer).setUint16(IFREQ_FLAGS, flags, true);
  const fd = openPath("/dev/net/tun", O_RDWR);
  if (libc.ioctl(fd, TUNSETIFF, ifr) < 0) {
    const errno = lastErrno();
    libc.close(fd);
    throw new SysError("ioctl", errno, `TUNSETIFF ${name} flags 0x${flags.toString(16)}${attachHint(errno)}`);
  }
  const end = ifr.indexOf(0);
  return { fd, name: Buffer.from(ifr.subarray(0, end < 0 ? IFNAMSIZ : end)).toString("utf8") };
}

/** Why re-attaching to an existing device fails, in words: the kernel only says EBUSY or EINVAL. */
function attachHint(errno: number): string {
  if (errno === EBUSY) return " (the device exists and another process holds it: is another agent running?)";
  if (errno === EINVAL) return " (a device of that name exists but is not a TUN device with these flags, e.g. a TAP or a multi-queue TUN)";
  return "";
}

/** Sets up the virtio_net_hdr; returns the best mode from `candidates` whose offloads the kernel accepts, or null. */
function negotiateVnet(fd: number, candidates: readonly TunMode[]): TunMode | null {
  if (libc.ioctl(fd, TUNSETVNETHDRSZ, intBytes(VIRTIO_NET_HDR_LEN)) < 0) return null;
  for (const mode of candidates) {
    if (mode === "plain") return null;
    if (libc.ioctlValue(fd, TUNSETOFFLOAD, OFFLOAD_BITS[mode]) === 0) return mode;
  }
  return null;
}

/**
 * Opens (creating if needed) TUN device `name`, IFF_TUN|IFF_NO_PI, in the calling thread's network namespace, with the
 * best offload mode the kernel accepts. Without `persist` the device lives as long as one of its fds is open; with it, the
 * device stays until its link is deleted, and an existing one is attached to (the kernel takes the new flags and offloads).
 */
export function openTun(opts: TunOptions): TunDevice {
  const queues = opts.queues ?? 1;
  if (!Number.isInteger(queues) || queues < 1 || queues > 256) throw new Error(`TUN queues out of range (1-256): ${queues}`);
  const base = IFF_TUN | IFF_NO_PI | (opts.multiQueue || opts.queues !== undefined ? IFF_MULTI_QUEUE : 0);
  const first = opts.vnetHdr ? TUN_MODES.indexOf(opts.maxMode ?? "vnet+tso+uso") : TUN_MODES.indexOf("plain");
  if (first < 0) throw new Error(`unknown TUN mode: ${JSON.stringify(opts.maxMode)}`);
  let opened: { fd: number; name: string } | null = null;
  let mode: TunMode = "plain";
  if (first < TUN_MODES.indexOf("plain")) {
    opened = attach(opts.name, base | IFF_VNET_HDR);
    const accepted = negotiateVnet(opened.fd, TUN_MODES.slice(first));
    if (accepted) {
      mode = accepted;
    } else {
      libc.close(opened.fd);
      opened = null;
    }
  }
  opened ??= attach(opts.name, base);
  const fds = [opened.fd];
  try {
    if (opts.persist && libc.ioctlValue(opened.fd, TUNSETPERSIST, 1) < 0) throw new SysError("ioctl", lastErrno(), `TUNSETPERSIST ${opened.name}`);
    // The header size and offloads belong to the device: later queues only attach with the same flags.
    for (let q = 1; q < queues; q++) fds.push(attach(opened.name, base | (mode === "plain" ? 0 : IFF_VNET_HDR)).fd);
  } catch (err) {
    for (const fd of fds) libc.close(fd);
    throw err;
  }
  const device = new Tun(fds, opened.name, mode);
  if (opts.nonBlocking) device.setNonBlocking(true);
  return device;
}

class Tun implements TunDevice {
  readonly fd: number;
  readonly queueFds: readonly number[];
  readonly name: string;
  readonly vnetHdr: boolean;
  readonly offloads: TunOffloads;
  readonly mode: TunMode;
  private closed = false;

  constructor(fds: number[], name: string, mode: TunMode) {
    this.fd = fds[0];
    this.queueFds = fds;
    this.name = name;
    this.mode = mode;
    this.vnetHdr = mode !== "plain";
    this.offloads = offloadsOf(OFFLOAD_BITS[mode]);
  }

  read(address: Address, capacity: number): number {
    for (;;) {
      const n = libc.read(this.fd, address, capacity);
      if (n >= 0) return n;
      const errno = lastErrno();
      if (errno === EAGAIN) return -1;
      if (errno !== EINTR) throw new SysError("read", errno, `TUN ${this.name}`);
    }
  }

  write(address: Address, length: number): number {
    for (;;) {
      const n = libc.write(this.fd, address, length);
      if (n >= 0) return n;
      const errno = lastErrno();
      if (errno === EAGAIN) return -1;
      if (errno !== EINTR) throw new SysError("write", errno, `TUN ${this.name} (${length} bytes)`);
    }
  }

  readInto(view: Uint8Array): number {
    return this.read(addressOf(view), view.length);
  }

  writeFrom(view: Uint8Array): number {
    return this.write(addressOf(view), view.length);
  }

  setNonBlocking(on: boolean): void {
    for (const fd of this.queueFds) setNonBlocking(fd, on);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.queueFds) closeFd(fd);
  }
}
