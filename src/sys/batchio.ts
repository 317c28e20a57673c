// Batched reads and writes on a TUN device through the small C library src/sys/batchio/weftio.c (build/sys/libweftio.so):
// a TUN fd has no recvmmsg/sendmmsg, and one koffi call per packet would cost more than the packet work itself. Every
// pointer is a raw native address (`nativeBase(buffer) + offset`), as in libc.ts.
import koffi from "koffi";
import { existsSync } from "node:fs";
import { WEFTIO_LIB } from "../paths.js";
import { type Address, EAGAIN, SysError, nativeBase } from "./libc.js";

if (!existsSync(WEFTIO_LIB)) throw new Error(`weft: ${WEFTIO_LIB} is missing — run \`npm run build\` in the weft checkout first`);
const lib = koffi.load(WEFTIO_LIB);

const readBatch: (fd: number, base: Address, stride: number, headroom: number, lens: Address, n: number) => number = lib.func(
  "int weftio_read_batch(int fd, uintptr_t base, uint32_t stride, uint32_t headroom, uintptr_t lens, int n)",
);
const writeBatch: (fd: number, iov: Address, counts: Address, n: number, failed: Address, lastErrno: Address) => number = lib.func(
  "int weftio_write_batch(int fd, uintptr_t iov, uintptr_t counts, int n, uintptr_t failed, uintptr_t last_errno)",
);

// The write's two out-parameters, per thread (JS runs one thread per isolate).
const out = new ArrayBuffer(8);
const outView = new DataView(out);
const outAddress = nativeBase(out);

/**
 * Reads up to n packets from a non-blocking fd, until it has none left: packet i at `base + i * stride + headroom` (at most
 * stride − headroom bytes), its length as a u32 at `lens + 4i`. Returns how many were read (0 when none was waiting).
 * Throws SysError (naming `what`) when the first read fails for another reason than EAGAIN.
 */
export function readPackets(fd: number, base: Address, stride: number, headroom: number, lens: Address, n: number, what?: string): number {
  const r = readBatch(fd, base, stride, headroom, lens, n);
  if (r < 0 && -r !== EAGAIN) throw new SysError("read", -r, what ?? `fd ${fd}`);
  return Math.max(r, 0);
}

/** What the last writePackets could not write: how many packets, and the errno of the last failure (0 for a short write). */
export const writeFailures = { count: 0, errno: 0 };

/**
 * Writes n packets with one writev each: packet k is the next u32 at `counts + 4k` iovecs of the struct iovec array at
 * `iov`. Returns how many were written whole; the rest are in writeFailures.
 */
export function writePackets(fd: number, iov: Address, counts: Address, n: number): number {
  if (n === 0) {
    writeFailures.count = 0;
    writeFailures.errno = 0;
    return 0;
  }
  const ok = writeBatch(fd, iov, counts, n, outAddress, outAddress + 4);
  writeFailures.count = outView.getUint32(0, true);
  writeFailures.errno = outView.getInt32(4, true);
  return ok;
}
