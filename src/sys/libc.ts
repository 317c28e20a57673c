// Every libc function weft calls, declared once through koffi, and the error type they throw.
//
// Hot path (called once per batch): read, write, writev, sendmsg, recvmsg, sendmmsg, recvmmsg, poll take RAW NATIVE
// ADDRESSES (JS numbers) for their pointer arguments, so batches live in WASM linear memory (or any ArrayBuffer) and koffi
// neither copies nor marshals anything. Get an address with `nativeBase(buffer) + offset` or `addressOf(view)`.
// Cold path (setup): open, ioctl, setsockopt, getsockopt, bind, getsockname, socket, setns, fcntl take Uint8Arrays for
// their pointer arguments; koffi passes a pointer to the array's bytes and writes through them.
import koffi from "koffi";

const lib = koffi.load("libc.so.6");

type Int = number;
/** A native address: `nativeBase(buffer) + offset`. x86_64 user addresses fit in 47 bits, so a JS number holds them. */
export type Address = number;

interface Libc {
  read(fd: Int, buf: Address, count: Int): Int;
  write(fd: Int, buf: Address, count: Int): Int;
  writev(fd: Int, iov: Address, iovcnt: Int): Int;
  sendmsg(fd: Int, msg: Address, flags: Int): Int;
  recvmsg(fd: Int, msg: Address, flags: Int): Int;
  sendmmsg(fd: Int, msgvec: Address, vlen: Int, flags: Int): Int;
  recvmmsg(fd: Int, msgvec: Address, vlen: Int, flags: Int, timeout: Address): Int;
  poll(fds: Address, nfds: Int, timeoutMs: Int): Int;
  open(path: string, flags: Int, mode: Int): Int;
  close(fd: Int): Int;
  ioctl(fd: Int, request: Int, arg: Uint8Array | null): Int;
  ioctlValue(fd: Int, request: Int, arg: Int): Int;
  socket(domain: Int, type: Int, protocol: Int): Int;
  setsockopt(fd: Int, level: Int, name: Int, value: Uint8Array, len: Int): Int;
  getsockopt(fd: Int, level: Int, name: Int, value: Uint8Array, len: Uint32Array): Int;
  bind(fd: Int, addr: Uint8Array, len: Int): Int;
  getsockname(fd: Int, addr: Uint8Array, len: Uint32Array): Int;
  setns(fd: Int, nstype: Int): Int;
  fcntl(fd: Int, cmd: Int, arg: Int): Int;
  strerror(errnum: Int): string;
}

// ioctl, open and fcntl are variadic in C. On x86_64 SysV a variadic callee reads integer/pointer arguments from the same
// registers as a fixed-arity one, so fixed prototypes are safe for them; ioctl gets two, for pointer and by-value requests.
export const libc: Libc = {
  read: lib.func("intptr_t read(int fd, uintptr_t buf, size_t count)"),
  write: lib.func("intptr_t write(int fd, uintptr_t buf, size_t count)"),
  writev: lib.func("intptr_t writev(int fd, uintptr_t iov, int iovcnt)"),
  sendmsg: lib.func("intptr_t sendmsg(int fd, uintptr_t msg, int flags)"),
  recvmsg: lib.func("intptr_t recvmsg(int fd, uintptr_t msg, int flags)"),
  sendmmsg: lib.func("int sendmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags)"),
  recvmmsg: lib.func("int recvmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags, uintptr_t timeout)"),
  poll: lib.func("int poll(uintptr_t fds, unsigned long nfds, int timeout)"),
  open: lib.func("int open(const char *path, int flags, unsigned int mode)"),
  close: lib.func("int close(int fd)"),
  ioctl: lib.func("int ioctl(int fd, unsigned long request, void *arg)"),
  ioctlValue: lib.func("int ioctl(int fd, unsigned long request, unsigned long arg)"),
  socket: lib.func("int socket(int domain, int type, int protocol)"),
  setsockopt: lib.func("int setsockopt(int fd, int level, int name, void *value, uint32_t len)"),
  getsockopt: lib.func("int getsockopt(int fd, int level, int name, void *value, uint32_t *len)"),
  bind: lib.func("int bind(int fd, void *addr, uint32_t len)"),
  getsockname: lib.func("int getsockname(int fd, void *addr, uint32_t *len)"),
  setns: lib.func("int setns(int fd, int nstype)"),
  fcntl: lib.func("int fcntl(int fd, int cmd, int arg)"),
  strerror: lib.func("const char *strerror(int errnum)"),
};

// ---- constants (x86_64 Linux; see <sys/socket.h>, <netinet/in.h>, <linux/udp.h>, <fcntl.h>, <poll.h>, <sched.h>) --------

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_REUSEPORT = 15;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;

export const IPPROTO_IP = 0;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;
export const UDP_GRO = 104;

export const MSG_CTRUNC = 0x8;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_WAITFORONE = 0x10000;

export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_GETFL = 3;
export const F_SETFL = 4;

export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;

export const CLONE_NEWNET = 0x40000000;

export const EINTR = 4;
export const EAGAIN = 11;
export const EBUSY = 16;
export const EINVAL = 22;

// ---- errors -------------------------------------------------------------------------------------------------------------

const PREFERRED_NAMES = new Set(["EAGAIN", "EOPNOTSUPP", "EDEADLK"]);
const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(koffi.os.errno)) {
  if (!ERRNO_NAMES.has(value) || PREFERRED_NAMES.has(name)) ERRNO_NAMES.set(value, name);
}

/** The symbolic name of an errno value: 11 → "EAGAIN". */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E#${errno}`;
}

/** A failed system call: which call, the errno (number and name), what it was doing, and libc's text for it. */
export class SysError extends Error {
  readonly call: string;
  readonly errno: number;
  readonly code: string;

  constructor(call: string, errno: number, context?: string) {
    const code = errnoName(errno);
    super(`${call}${context ? ` ${context}` : ""}: ${code} (${libc.strerror(errno)})`);
    this.name = "SysError";
    this.call = call;
    this.errno = errno;
    this.code = code;
  }
}

/** The errno of the last libc call made through koffi on this thread. Read it before making another call. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Returns `result`, or throws a SysError carrying errno when it is negative. Call right after the libc call. */
export function check(call: string, result: number, context?: string): number {
  if (result < 0) throw new SysError(call, koffi.errno(), context);
  return result;
}

// ---- native addresses ---------------------------------------------------------------------------------------------------

/**
 * The native address of byte 0 of `buffer` (a WebAssembly.Memory's buffer included). Growing WASM memory detaches the old
 * buffer (and may move the bytes): re-read it after growth.
 */
export function nativeBase(buffer: ArrayBufferLike): number {
  const address = buffer instanceof ArrayBuffer ? koffi.address(buffer) : koffi.address(new Uint8Array(buffer));
  return Number(address);
}

/** The native address of a view's first byte. */
export function addressOf(view: ArrayBufferView): number {
  return Number(koffi.address(view));
}

/** Writes a native pointer (little-endian u64) without a BigInt. */
export function setPointer(dv: DataView, at: number, address: number): void {
  dv.setUint32(at, address >>> 0, true);
  dv.setUint32(at + 4, Math.floor(address / 0x1_0000_0000), true);
}

export function getPointer(dv: DataView, at: number): number {
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 0x1_0000_0000;
}

// ---- small fd helpers ---------------------------------------------------------------------------------------------------

export function closeFd(fd: number): void {
  check("close", libc.close(fd), `fd ${fd}`);
}

export function setNonBlocking(fd: number, on: boolean): void {
  const flags = check("fcntl", libc.fcntl(fd, F_GETFL, 0), `F_GETFL fd ${fd}`);
  const next = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (next !== flags) check("fcntl", libc.fcntl(fd, F_SETFL, next), `F_SETFL fd ${fd}`);
}

export function openPath(path: string, flags: number): number {
  return check("open", libc.open(path, flags | O_CLOEXEC, 0), path);
}

// One struct pollfd { int fd; short events; short revents; } per thread (JS runs on one thread per isolate).
const pollBuffer = new ArrayBuffer(8);
const pollView = new DataView(pollBuffer);
const pollAddress = nativeBase(pollBuffer);

/**
 * Waits until `fd` has one of `events` (POLLIN, POLLOUT) or `timeoutMs` passes (−1: forever). Returns the revents
 * (0 on timeout or when a signal interrupted the wait). No allocation.
 */
export function pollFd(fd: number, events: number, timeoutMs: number): number {
  pollView.setInt32(0, fd, true);
  pollView.setInt16(4, events, true);
  pollView.setInt16(6, 0, true);
  const r = libc.poll(pollAddress, 1, timeoutMs);
  if (r < 0) {
    const errno = koffi.errno();
    if (errno === EINTR) return 0;
    throw new SysError("poll", errno, `fd ${fd}`);
  }
  return r === 0 ? 0 : pollView.getUint16(6, true);
}

/**
 * A fixed set of descriptors to wait on together (a queue worker waits on its TUN queue and its UDP socket): one array of
 * struct pollfd made once, so a wait allocates nothing.
 */
export class PollSet {
  private readonly view: DataView;
  private readonly address: number;

  constructor(private readonly fds: readonly number[], events: number) {
    const buffer = new ArrayBuffer(8 * fds.length);
    this.view = new DataView(buffer);
    this.address = nativeBase(buffer);
    fds.forEach((fd, i) => {
      this.view.setInt32(8 * i, fd, true);
      this.view.setInt16(8 * i + 4, events, true);
    });
  }

  /** Waits up to `timeoutMs` (−1: forever); returns how many descriptors are ready (0 on timeout or a signal). */
  wait(timeoutMs: number): number {
    for (let i = 0; i < this.fds.length; i++) this.view.setInt16(8 * i + 6, 0, true);
    const r = libc.poll(this.address, this.fds.length, timeoutMs);
    if (r >= 0) return r;
    const errno = koffi.errno();
    if (errno === EINTR) return 0;
    throw new SysError("poll", errno, `fds ${this.fds.join(",")}`);
  }

  /** What the last wait found on descriptor i (POLLIN, POLLERR…), 0 if nothing. */
  revents(i: number): number {
    return this.view.getUint16(8 * i + 6, true);
  }
}

/** An int option value as the bytes setsockopt/ioctl want. */
export function intBytes(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, value, true);
  return b;
}

export function setIntOption(fd: number, level: number, name: number, value: number, what: string): void {
  check("setsockopt", libc.setsockopt(fd, level, name, intBytes(value), 4), what);
}

/** getsockopt for an int option; throws SysError when the option is refused. */
export function getIntOption(fd: number, level: number, name: number, what: string): number {
  const value = new Uint8Array(4);
  const len = new Uint32Array([4]);
  check("getsockopt", libc.getsockopt(fd, level, name, value, len), what);
  return new DataView(value.buffer).getInt32(0, true);
}
