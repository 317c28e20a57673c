// Shared by the IPv4 and IPv6 route tables: result codes, the leaf encoding and aligned allocation.
//
// A leaf is one u32 that both tables store in their lookup structures:
//   bits 0..15  the route's value (a peer index, 0..65535)
//   bits 16..23 the route's prefix length + 1 (its "depth tag"); 0 means "no route"
//   bit  31     clear (a set bit 31 marks a pointer to a deeper level instead)
// The depth tag is what makes leaf-pushed updates exact: an insert of P/len overwrites, inside P's range, only
// leaves whose tag is <= len + 1 (shorter or equal prefixes); a delete replaces only leaves whose tag is len + 1.

export const LPM_OK: i32 = 0;
export const LPM_ABSENT: i32 = 1;
export const LPM_ERR_LEN: i32 = -1;
export const LPM_ERR_VALUE: i32 = -2;
export const LPM_ERR_FULL: i32 = -3;
export const LPM_ERR_RANGE: i32 = -4;

export const NO_ROUTE: i32 = -1;
export const MAX_VALUE: u32 = 0xffff;
export const POINTER: u32 = 0x80000000;
export const NOT_A_LEAF: u32 = 0xffffffff;

// @ts-ignore: decorator
@inline export function makeLeaf(len: i32, value: u32): u32 {
  return (<u32>(len + 1) << 16) | value;
}

// @ts-ignore: decorator
@inline export function depthTag(leaf: u32): u32 {
  return leaf >>> 16;
}

// @ts-ignore: decorator
@inline export function leafValue(leaf: u32): i32 {
  return select<i32>(NO_ROUTE, <i32>(leaf & 0xffff), leaf == 0);
}

/** The leaf that replaces `leaf` under the current update (see `setInsertOp` / `setDeleteOp`). */
// @ts-ignore: decorator
@inline export function applyOp(leaf: u32): u32 {
  const tag = depthTag(leaf);
  if (opIsInsert) return tag <= opTag ? opLeaf : leaf;
  return tag == opTag ? opLeaf : leaf;
}

let opIsInsert = true;
let opTag: u32 = 0;
let opLeaf: u32 = 0;

/** Next `applyOp` calls insert a route of `len` with encoded leaf `leaf`. */
export function setInsertOp(len: i32, leaf: u32): void {
  opIsInsert = true;
  opTag = <u32>len + 1;
  opLeaf = leaf;
}

/** Next `applyOp` calls remove the route of `len`, exposing `covering` (a leaf, or 0) underneath. */
export function setDeleteOp(len: i32, covering: u32): void {
  opIsInsert = false;
  opTag = <u32>len + 1;
  opLeaf = covering;
}

/** `bytes` of fresh zeroed memory aligned to `align` (a power of two). Grows WASM memory as needed. */
export function allocAligned(bytes: usize, align: usize): usize {
  const raw = heap.alloc(bytes + align);
  const ptr = (raw + align - 1) & ~(align - 1);
  memory.fill(ptr, 0, bytes);
  return ptr;
}

/** True when [ptr, ptr + bytes) lies inside the current memory. */
export function inMemory(ptr: usize, bytes: u64): bool {
  return <u64>ptr + bytes <= (<u64>memory.size() << 16);
}

/** Fills 256 u32 entries at `chunk` (16-byte aligned) with `value`. */
export function fill256(chunk: usize, value: u32): void {
  const v = i32x4.splat(value);
  for (let off: usize = 0; off < 1024; off += 64) {
    v128.store(chunk + off, v);
    v128.store(chunk + off, v, 16);
    v128.store(chunk + off, v, 32);
    v128.store(chunk + off, v, 48);
  }
}

/** The common value of the 256 u32 entries at `chunk` (16-byte aligned), or NOT_A_LEAF if they differ. */
export function uniform256(chunk: usize): u32 {
  const first = load<u32>(chunk);
  const v = i32x4.splat(first);
  let diff = i32x4.splat(0);
  for (let off: usize = 0; off < 1024; off += 64) {
    diff = v128.or(diff, v128.xor(v128.load(chunk + off), v));
    diff = v128.or(diff, v128.xor(v128.load(chunk + off, 16), v));
    diff = v128.or(diff, v128.xor(v128.load(chunk + off, 32), v));
    diff = v128.or(diff, v128.xor(v128.load(chunk + off, 48), v));
  }
  return v128.any_true(diff) ? NOT_A_LEAF : first;
}
