// IPv4 longest-prefix match: DIR-16-8-8, leaf-pushed, with depth-tagged leaves.
//
// Why: a lookup is at most three dependent loads and no search. Level 1 is a direct table of 65,536 u32 entries indexed
// by the top 16 address bits (256 KiB: stays in L2). An entry is either a leaf (see common.ts) or a pointer to a
// 256-entry chunk (1 KiB) indexed by the next 8 bits, whose entries may point to a third-level chunk for the last 8 bits.
// Prefixes are pushed down to every entry they cover, so the entry reached is the answer. Each leaf carries its prefix's
// length, which makes insert and delete exact and local: an insert overwrites only shorter-or-equal leaves in its
// range, a delete restores the covering prefix (found in the prefix set, prefixset4.ts) only where its own leaves are.
// A chunk whose 256 entries become one leaf no longer than the chunk's parent level is folded back and its chunk freed.
//
// Memory is bounded by `maxChunks` (1 KiB each) plus the 256 KiB level 1 plus the prefix set (8 bytes a slot).
// Chunks come from 64-chunk slabs taken from the heap on demand, 1 KiB aligned, so a pointer entry is
// POINTER | (address >> 10) and decodes with a single shift (`entry << 10` drops the pointer bit). Freed chunks go to a
// free list; slabs are never returned to the heap (stub runtime) and are reused after `init4`.
// Measured (bench/lpm.ts, 1M prefixes with a BGP-like mix): see bench/results/lpm.json, and the report in the header
// of bench/lpm.ts.

import {
  LPM_ABSENT, LPM_ERR_FULL, LPM_ERR_LEN, LPM_ERR_VALUE, LPM_OK, MAX_VALUE, POINTER,
  allocAligned, applyOp, depthTag, fill256, leafValue, makeLeaf, setDeleteOp, setInsertOp, uniform256,
} from "./common";
import { clear4, count4, get4, hasRoom4, put4, remove4, reserve4, setBytes4 } from "./prefixset4";

const LEVEL1_ENTRIES: usize = 65536;
const CHUNK_BYTES: usize = 1024;
const SLAB_CHUNKS: usize = 64;
const SLAB_HEADER: usize = 16;
const SLAB_BYTES: usize = SLAB_CHUNKS * CHUNK_BYTES + CHUNK_BYTES + SLAB_HEADER;

/** Level 1: 65,536 entries for the top 16 bits. Allocated once, when the module starts. */
const level1: usize = allocAligned(LEVEL1_ENTRIES << 2, 64);

let maxChunks: u32 = 0;
let chunksInUse: u32 = 0;
let freeChunks: usize = 0;
let firstSlab: usize = 0;
let currentSlab: usize = 0;
let slabCursor: usize = 0;
let slabEnd: usize = 0;
let slabCount: u32 = 0;

// @ts-ignore: decorator
@inline function chunkAddress(entry: u32): usize {
  return <usize>(entry << 10);
}

// @ts-ignore: decorator
@inline function isPointer(entry: u32): bool {
  return (entry & POINTER) != 0;
}

// @ts-ignore: decorator
@inline function prefixMask(len: i32): u32 {
  return <u32>(0xffffffff00000000 >>> <u64>len);
}

/** Longest-prefix match of `addr` (host order): the route's value, or -1. */
// @ts-ignore: decorator
@inline export function lookup4(addr: u32): i32 {
  let entry = load<u32>(level1 + (<usize>(addr >>> 16) << 2));
  if (isPointer(entry)) {
    entry = load<u32>(chunkAddress(entry) + <usize>((addr >>> 6) & 0x3fc));
    if (isPointer(entry)) entry = load<u32>(chunkAddress(entry) + <usize>((addr & 0xff) << 2));
  }
  return leafValue(entry);
}

// @ts-ignore: decorator
@inline function step(entry: u32, offset: u32): u32 {
  // Branch-free descent: a leaf re-reads level 1 (hot in cache) and is kept; a pointer is followed.
  const pointer = isPointer(entry);
  const next = load<u32>(select<usize>(chunkAddress(entry) + <usize>offset, level1, pointer));
  return select<u32>(next, entry, pointer);
}

/**
 * Looks up `n` host-order addresses at `keys` into `out` (i32 each). Eight keys advance level by level together,
 * without branches, so their cache misses overlap instead of queueing behind each other.
 */
export function lookupBatch4(keys: usize, out: usize, n: u32): void {
  let i: u32 = 0;
  for (; i + 8 <= n; i += 8) {
    const k = keys + (<usize>i << 2);
    const a0 = load<u32>(k), a1 = load<u32>(k, 4), a2 = load<u32>(k, 8), a3 = load<u32>(k, 12);
    const a4 = load<u32>(k, 16), a5 = load<u32>(k, 20), a6 = load<u32>(k, 24), a7 = load<u32>(k, 28);
    let e0 = load<u32>(level1 + (<usize>(a0 >>> 16) << 2));
    let e1 = load<u32>(level1 + (<usize>(a1 >>> 16) << 2));
    let e2 = load<u32>(level1 + (<usize>(a2 >>> 16) << 2));
    let e3 = load<u32>(level1 + (<usize>(a3 >>> 16) << 2));
    let e4 = load<u32>(level1 + (<usize>(a4 >>> 16) << 2));
    let e5 = load<u32>(level1 + (<usize>(a5 >>> 16) << 2));
    let e6 = load<u32>(level1 + (<usize>(a6 >>> 16) << 2));
    let e7 = load<u32>(level1 + (<usize>(a7 >>> 16) << 2));
    e0 = step(e0, (a0 >>> 6) & 0x3fc); e1 = step(e1, (a1 >>> 6) & 0x3fc);
    e2 = step(e2, (a2 >>> 6) & 0x3fc); e3 = step(e3, (a3 >>> 6) & 0x3fc);
    e4 = step(e4, (a4 >>> 6) & 0x3fc); e5 = step(e5, (a5 >>> 6) & 0x3fc);
    e6 = step(e6, (a6 >>> 6) & 0x3fc); e7 = step(e7, (a7 >>> 6) & 0x3fc);
    e0 = step(e0, (a0 & 0xff) << 2); e1 = step(e1, (a1 & 0xff) << 2);
    e2 = step(e2, (a2 & 0xff) << 2); e3 = step(e3, (a3 & 0xff) << 2);
    e4 = step(e4, (a4 & 0xff) << 2); e5 = step(e5, (a5 & 0xff) << 2);
    e6 = step(e6, (a6 & 0xff) << 2); e7 = step(e7, (a7 & 0xff) << 2);
    const o = out + (<usize>i << 2);
    store<i32>(o, leafValue(e0)); store<i32>(o, leafValue(e1), 4);
    store<i32>(o, leafValue(e2), 8); store<i32>(o, leafValue(e3), 12);
    store<i32>(o, leafValue(e4), 16); store<i32>(o, leafValue(e5), 20);
    store<i32>(o, leafValue(e6), 24); store<i32>(o, leafValue(e7), 28);
  }
  for (; i < n; i++) {
    store<i32>(out + (<usize>i << 2), lookup4(load<u32>(keys + (<usize>i << 2))));
  }
}

function carveChunk(): usize {
  if (slabCursor == slabEnd) {
    let next = currentSlab != 0 ? load<usize>(currentSlab) : firstSlab;
    if (next == 0) {
      next = heap.alloc(SLAB_BYTES);
      store<usize>(next, 0);
      if (currentSlab != 0) store<usize>(currentSlab, next);
      else firstSlab = next;
      slabCount++;
    }
    currentSlab = next;
    slabCursor = (next + SLAB_HEADER + CHUNK_BYTES - 1) & ~(CHUNK_BYTES - 1);
    slabEnd = slabCursor + SLAB_CHUNKS * CHUNK_BYTES;
  }
  const chunk = slabCursor;
  slabCursor += CHUNK_BYTES;
  return chunk;
}

/** A pointer entry to a new chunk whose 256 entries are all `leaf` (the prefix pushed down from its parent). */
function newChunk(leaf: u32): u32 {
  let chunk: usize;
  if (freeChunks != 0) {
    chunk = freeChunks;
    freeChunks = load<usize>(chunk);
  } else {
    chunk = carveChunk();
  }
  chunksInUse++;
  fill256(chunk, leaf);
  return POINTER | <u32>(chunk >>> 10);
}

function freeChunk(entry: u32): void {
  const chunk = chunkAddress(entry);
  store<usize>(chunk, freeChunks);
  freeChunks = chunk;
  chunksInUse--;
}

/**
 * If the chunk that `slot` points to has become one leaf of a prefix no longer than `parentBits` (16 or 24), puts
 * that leaf in `slot` and frees the chunk. A chunk holding only longer prefixes stays, so later deletes can find them.
 */
function foldIfUniform(slot: usize, parentBits: u32): void {
  const entry = load<u32>(slot);
  if (!isPointer(entry)) return;
  const leaf = uniform256(chunkAddress(entry));
  if (isPointer(leaf) || depthTag(leaf) > parentBits + 1) return;
  store<u32>(slot, leaf);
  freeChunk(entry);
}

/**
 * Applies the current op to `count` entries from `first` of the table at `base`, whose index ends at address bit
 * `bits` (16 for level 1, 24 for level 2, 32 for level 3).
 */
function applyRange(base: usize, first: u32, count: u32, bits: u32): void {
  for (let i = first; i < first + count; i++) {
    const slot = base + (<usize>i << 2);
    const entry = load<u32>(slot);
    if (isPointer(entry)) {
      applyRange(chunkAddress(entry), 0, 256, bits + 8);
      foldIfUniform(slot, bits);
    } else {
      store<u32>(slot, applyOp(entry));
    }
  }
}

/** Clears the table and bounds it to `chunks` second/third-level chunks of 1 KiB. */
export function init4(chunks: u32): void {
  memory.fill(level1, 0, LEVEL1_ENTRIES << 2);
  maxChunks = chunks;
  chunksInUse = 0;
  freeChunks = 0;
  currentSlab = 0;
  slabCursor = 0;
  slabEnd = 0;
  clear4();
}

/** Pre-sizes the prefix set for `prefixes` routes, so building a big table does not regrow it. */
export function reserve4Prefixes(prefixes: u32): void {
  reserve4(prefixes);
}

/** Chunks an insert of addr/len would take from the pool (0, 1 or 2). */
function chunksNeeded(addr: u32, len: i32): u32 {
  if (len <= 16) return 0;
  const entry = load<u32>(level1 + (<usize>(addr >>> 16) << 2));
  if (!isPointer(entry)) return len <= 24 ? 1 : 2;
  if (len <= 24) return 0;
  return isPointer(load<u32>(chunkAddress(entry) + <usize>((addr >>> 6) & 0x3fc))) ? 0 : 1;
}

/** Slot of the entry for `addr` in the chunk below `slot`, making that chunk if `slot` holds a leaf. */
function descend(slot: usize, offset: u32): usize {
  let entry = load<u32>(slot);
  if (!isPointer(entry)) {
    entry = newChunk(entry);
    store<u32>(slot, entry);
  }
  return chunkAddress(entry) + <usize>offset;
}

/** Adds or replaces addr/len → value. Host bits of `addr` are ignored. 0, or a negative LPM_ERR_*. */
export function insert4(addr: u32, len: i32, value: i32): i32 {
  if (<u32>len > 32) return LPM_ERR_LEN;
  if (<u32>value > MAX_VALUE) return LPM_ERR_VALUE;
  addr &= prefixMask(len);
  if (chunksInUse + chunksNeeded(addr, len) > maxChunks) return LPM_ERR_FULL;
  if (get4(addr, len) < 0 && !hasRoom4()) return LPM_ERR_FULL;
  put4(addr, len, <u32>value);
  setInsertOp(len, makeLeaf(len, <u32>value));
  const slot1 = level1 + (<usize>(addr >>> 16) << 2);
  if (len <= 16) {
    applyRange(level1, addr >>> 16, 1 << (16 - len), 16);
  } else if (len <= 24) {
    applyRange(descend(slot1, 0), (addr >>> 8) & 0xff, 1 << (24 - len), 24);
  } else {
    const slot2 = descend(slot1, (addr >>> 6) & 0x3fc);
    applyRange(descend(slot2, 0), addr & 0xff, 1 << (32 - len), 32);
  }
  return LPM_OK;
}

/** Removes addr/len. 0 removed, 1 not present, or a negative LPM_ERR_*. */
export function delete4(addr: u32, len: i32): i32 {
  if (<u32>len > 32) return LPM_ERR_LEN;
  addr &= prefixMask(len);
  if (!remove4(addr, len)) return LPM_ABSENT;
  let covering: u32 = 0;
  for (let shorter = len - 1; shorter >= 0; shorter--) {
    const value = get4(addr & prefixMask(shorter), shorter);
    if (value >= 0) {
      covering = makeLeaf(shorter, <u32>value);
      break;
    }
  }
  setDeleteOp(len, covering);
  if (len <= 16) {
    applyRange(level1, addr >>> 16, 1 << (16 - len), 16);
    return LPM_OK;
  }
  const slot1 = level1 + (<usize>(addr >>> 16) << 2);
  const entry1 = load<u32>(slot1);
  if (!isPointer(entry1)) return LPM_OK;
  if (len <= 24) {
    applyRange(chunkAddress(entry1), (addr >>> 8) & 0xff, 1 << (24 - len), 24);
  } else {
    const slot2 = chunkAddress(entry1) + <usize>((addr >>> 6) & 0x3fc);
    const entry2 = load<u32>(slot2);
    if (isPointer(entry2)) {
      applyRange(chunkAddress(entry2), addr & 0xff, 1 << (32 - len), 32);
      foldIfUniform(slot2, 24);
    }
  }
  foldIfUniform(slot1, 16);
  return LPM_OK;
}

export function routeCount4(): u32 {
  return count4();
}

export function chunkCount4(): u32 {
  return chunksInUse;
}

/** Bytes this table holds: level 1, every slab taken for chunks, and the prefix set. */
export function memoryBytes4(): u32 {
  return <u32>((LEVEL1_ENTRIES << 2) + <usize>slabCount * SLAB_BYTES + setBytes4());
}
