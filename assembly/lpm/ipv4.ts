// IPv4 longest-prefix match: DIR-16-8-8 with Poptrie-style compressed chunks, leaf-pushed, with depth-tagged leaves.
//
// Shape: level 1 is a direct table of 65,536 u32 entries for the top 16 address bits (256 KiB, stays in L2 cache).
// An entry is a leaf (see common.ts) or a pointer to a chunk for the next 8 bits, whose entries may point to a chunk
// for the last 8 bits. Prefixes are pushed down to every entry they cover, so the entry reached is the answer: a lookup
// is at most three steps and no search.
//
// Why compressed chunks: a plain 256 x u32 chunk is 1 KiB, and a 1M-prefix table needs ~100k of them (~110 MiB).
// Random lookups then miss the caches and the TLB on every key (measured here: ~40 M lookups/s). Leaf pushing makes a
// chunk a few runs of equal entries, so a chunk is stored as (after Poptrie, Asai & Ohara, SIGCOMM 2015):
//   u64 starts[4]  bit s: a run of equal entries starts at slot s (slot 0 always does)
//   u8  before[4]  runs that start before slot 64 * q
//   u32 runs[]     each run's entry (a leaf, or a pointer to a level-3 chunk)
// entry(s) = runs[before[s >> 6] + popcnt(starts[s >> 6] & bits 0..s) - 1]. Chunks are 16-byte aligned, and a pointer
// is POINTER | (address >> 4), decoded by `entry << 4`. The 1M table's chunks take ~11 MiB instead of ~110 MiB, and
// lookups run ~2x faster for it (numbers in bench/results/lpm.json). Memory size matters more than lines touched: the
// measured rate falls as the chunks outgrow the TLB's reach, so `compact4` packs them after bulk loads.
//
// Updates: a chunk is expanded into a 256-entry view, changed, and compressed again (in place when its size is
// unchanged). Each leaf carries its prefix's length, which makes insert and delete exact and local: an insert
// overwrites only shorter-or-equal leaves in its range; a delete restores the covering prefix (found in the prefix set,
// prefixset4.ts) only where its own leaves are. A chunk that becomes one leaf no longer than its parent level is folded
// back into its parent and freed.
//
// Bounded: at most `maxChunks` chunks of 48..1072 bytes, plus level 1 (256 KiB), plus the prefix set (8 bytes a slot,
// load <= 3/4). Chunk memory comes from a BlockPool (pool.ts) and is reused after deletes, `compact4` and `init4`.
//
// Measured (bench/lpm.ts, 2-core AMD EPYC KVM, Node 20):
//   5,000 /24s in 10/8:  0.6 MiB in all (256 chunks using ~50 KiB); batch lookups ~500 M/s.
//   1M prefixes, BGP-like mix, distinct values: 36.0 MiB in all = 256 KiB level 1 + 16 MiB prefix set (2^21 slots)
//   + 19.8 MiB of chunk slabs, of which 98,051 chunks use 11.1 MiB after `compact4` (the rest is free for reuse).
//   Batch lookups on it: 68..117 M/s best-of-9 across runs (median 44..108); with 1 KiB plain chunks the same table
//   took 113 MiB and ran at ~40 M/s. With under ~9 MiB of chunks (750k such prefixes) they ran at ~120 M/s.

import {
  LPM_ABSENT, LPM_ERR_FULL, LPM_ERR_LEN, LPM_ERR_VALUE, LPM_OK, MAX_VALUE, POINTER,
  allocAligned, applyOp, depthTag, fill256, leafValue, makeLeaf, setDeleteOp, setInsertOp, uniform256,
} from "./common";
import { BlockPool } from "./pool";
import { clear4, count4, get4, hasRoom4, put4, remove4, reserve4, setBytes4 } from "./prefixset4";

const LEVEL1_ENTRIES: usize = 65536;
const BEFORE: usize = 32;
const RUNS: usize = 36;
const UNIT_SHIFT: u32 = 4;
const MAX_UNITS: u32 = (<u32>RUNS + 256 * 4 + 15) >>> UNIT_SHIFT;

const level1: usize = allocAligned(LEVEL1_ENTRIES << 2, 64);
const chunks = new BlockPool(UNIT_SHIFT, MAX_UNITS, 256 << 10);
/** Scratch for `compact4`: one u64 (old address << 32 | referrer slot) per chunk. Grows with the table. */
let compactList: usize = 0;
let compactCapacity: u32 = 0;
/** Expanded views (256 entries): a level-2 chunk's at `views`, a level-3 chunk's at `views + 1 KiB`. */
const views: usize = allocAligned(2 << 10, 64);
const runScratch: usize = allocAligned(1 << 10, 64);

let maxChunks: u32 = 0;
let chunksInUse: u32 = 0;
let unitsInUse: u32 = 0;

// @ts-ignore: decorator
@inline function chunkAddress(entry: u32): usize {
  return <usize>(entry << UNIT_SHIFT);
}

// @ts-ignore: decorator
@inline function isPointer(entry: u32): bool {
  return (entry & POINTER) != 0;
}

// @ts-ignore: decorator
@inline function prefixMask(len: i32): u32 {
  return <u32>(0xffffffff00000000 >>> <u64>len);
}

/** Entry `slot` (0..255) of the compressed chunk at `chunk`. */
// @ts-ignore: decorator
@inline function chunkEntry(chunk: usize, slot: u32): u32 {
  const quarter = <usize>(slot >>> 6);
  const bit = <u64>1 << (slot & 63);
  const starts = load<u64>(chunk + (quarter << 3));
  const run = <usize>load<u8>(chunk + BEFORE + quarter) + <usize>popcnt<u64>(starts & (bit | (bit - 1))) - 1;
  return load<u32>(chunk + RUNS + (run << 2));
}

/** Longest-prefix match of `addr` (host order): the route's value, or -1. */
// @ts-ignore: decorator
@inline export function lookup4(addr: u32): i32 {
  let entry = load<u32>(level1 + (<usize>(addr >>> 16) << 2));
  if (isPointer(entry)) {
    entry = chunkEntry(chunkAddress(entry), (addr >>> 8) & 0xff);
    if (isPointer(entry)) entry = chunkEntry(chunkAddress(entry), addr & 0xff);
  }
  return leafValue(entry);
}

/**
 * Looks up `n` host-order addresses at `keys` into `out` (i32 each), four per iteration. The four lookups are
 * independent, so the CPU overlaps their cache misses.
 */
export function lookupBatch4(keys: usize, out: usize, n: u32): void {
  let i: u32 = 0;
  for (; i + 4 <= n; i += 4) {
    const k = keys + (<usize>i << 2);
    const o = out + (<usize>i << 2);
    const r0 = lookup4(load<u32>(k));
    const r1 = lookup4(load<u32>(k, 4));
    const r2 = lookup4(load<u32>(k, 8));
    const r3 = lookup4(load<u32>(k, 12));
    store<i32>(o, r0);
    store<i32>(o, r1, 4);
    store<i32>(o, r2, 8);
    store<i32>(o, r3, 12);
  }
  for (; i < n; i++) store<i32>(out + (<usize>i << 2), lookup4(load<u32>(keys + (<usize>i << 2))));
}

// @ts-ignore: decorator
@inline function unitsFor(runCount: u32): u32 {
  return (<u32>RUNS + (runCount << 2) + (1 << UNIT_SHIFT) - 1) >>> UNIT_SHIFT;
}

function runCountOf(chunk: usize): u32 {
  return <u32>(popcnt<u64>(load<u64>(chunk)) + popcnt<u64>(load<u64>(chunk, 8)) +
    popcnt<u64>(load<u64>(chunk, 16)) + popcnt<u64>(load<u64>(chunk, 24)));
}

/** Writes the 256 entries of the chunk at `chunk` into `view`. */
function expand(chunk: usize, view: usize): void {
  let run: isize = -1;
  for (let quarter: usize = 0; quarter < 4; quarter++) {
    const starts = load<u64>(chunk + (quarter << 3));
    for (let s: usize = 0; s < 64; s++) {
      if ((starts >>> <u64>s) & 1) run++;
      store<u32>(view + ((quarter << 8) + (s << 2)), load<u32>(chunk + RUNS + (<usize>run << 2)));
    }
  }
}

/**
 * Stores `view` (the entries of a chunk under a level that ends at address bit `parentBits`) and returns the entry
 * that should point at it: the view's single leaf when it can fold into the parent, else a pointer to the compressed
 * chunk (the old one, rewritten in place when `old` points to a chunk of the same size). Frees what is no longer used.
 */
function storeChunk(old: u32, view: usize, parentBits: u32): u32 {
  const uniform = uniform256(view);
  if (!isPointer(uniform) && depthTag(uniform) <= parentBits + 1) {
    if (isPointer(old)) releaseChunk(chunkAddress(old));
    return uniform;
  }
  let count: u32 = 0;
  let previous: u32 = 0;
  let s0: u64 = 0, s1: u64 = 0, s2: u64 = 0, s3: u64 = 0;
  let b1: u32 = 0, b2: u32 = 0, b3: u32 = 0;
  for (let s: u32 = 0; s < 256; s++) {
    if (s == 64) b1 = count;
    else if (s == 128) b2 = count;
    else if (s == 192) b3 = count;
    const entry = load<u32>(view + (<usize>s << 2));
    if (s != 0 && entry == previous) continue;
    store<u32>(runScratch + (<usize>count << 2), entry);
    count++;
    previous = entry;
    const bit = <u64>1 << (s & 63);
    if (s < 64) s0 |= bit;
    else if (s < 128) s1 |= bit;
    else if (s < 192) s2 |= bit;
    else s3 |= bit;
  }
  const units = unitsFor(count);
  let chunk: usize;
  if (isPointer(old)) {
    chunk = chunkAddress(old);
    const oldUnits = unitsFor(runCountOf(chunk));
    if (oldUnits != units) {
      chunks.free(chunk, oldUnits);
      chunk = chunks.alloc(units);
      unitsInUse += units - oldUnits;
    }
  } else {
    chunk = chunks.alloc(units);
    chunksInUse++;
    unitsInUse += units;
  }
  store<u64>(chunk, s0);
  store<u64>(chunk, s1, 8);
  store<u64>(chunk, s2, 16);
  store<u64>(chunk, s3, 24);
  store<u32>(chunk + BEFORE, (b1 << 8) | (b2 << 16) | (b3 << 24));
  memory.copy(chunk + RUNS, runScratch, <usize>count << 2);
  return POINTER | <u32>(chunk >>> UNIT_SHIFT);
}

function releaseChunk(chunk: usize): void {
  const units = unitsFor(runCountOf(chunk));
  chunks.free(chunk, units);
  unitsInUse -= units;
  chunksInUse--;
}

/** Applies the current op to `count` entries from `first` of `view`, whose children are chunks at `childBits`. */
function applyView(view: usize, first: u32, count: u32, childBits: u32): void {
  for (let s = first; s < first + count; s++) {
    const slot = view + (<usize>s << 2);
    const entry = load<u32>(slot);
    store<u32>(slot, isPointer(entry) ? applyChunk(entry, 0, 256, childBits) : applyOp(entry));
  }
}

/**
 * Applies the current op to `count` entries from `first` of the chunk behind `entry`, whose level ends at bit `bits`
 * (24 or 32). Returns the entry that replaces `entry` in the parent.
 */
function applyChunk(entry: u32, first: u32, count: u32, bits: u32): u32 {
  const view = bits == 24 ? views : views + (1 << 10);
  if (isPointer(entry)) expand(chunkAddress(entry), view);
  else fill256(view, entry);
  applyView(view, first, count, bits + 8);
  return storeChunk(entry, view, bits - 8);
}

function siftDown(list: usize, root: u32, end: u32): void {
  while (true) {
    let child = root * 2 + 1;
    if (child >= end) return;
    let value = load<u64>(list + (<usize>child << 3));
    if (child + 1 < end) {
      const right = load<u64>(list + (<usize>(child + 1) << 3));
      if (right > value) {
        child++;
        value = right;
      }
    }
    const top = load<u64>(list + (<usize>root << 3));
    if (top >= value) return;
    store<u64>(list + (<usize>root << 3), value);
    store<u64>(list + (<usize>child << 3), top);
    root = child;
  }
}

function heapSort(list: usize, n: u32): void {
  for (let i = n >>> 1; i > 0; i--) siftDown(list, i - 1, n);
  for (let end = n - 1; end > 0; end--) {
    const top = load<u64>(list);
    store<u64>(list, load<u64>(list + (<usize>end << 3)));
    store<u64>(list + (<usize>end << 3), top);
    siftDown(list, 0, end);
  }
}

/**
 * Slides every chunk down to the start of the pool, in address order, leaving no holes: after a bulk load or heavy
 * churn, lookups then touch only the bytes in use (fewer pages, fewer TLB misses). Exact and in place: each chunk has
 * one referrer (a level-1 slot or a level-2 run), which is rewritten before the chunks move; a chunk never moves up,
 * so moving in address order never overwrites one not yet moved. May allocate its sort list (8 bytes a chunk) once.
 */
export function compact4(): void {
  if (chunksInUse > compactCapacity) {
    compactCapacity = chunksInUse + (chunksInUse >>> 2);
    compactList = heap.alloc(<usize>compactCapacity << 3);
  }
  let n: u32 = 0;
  for (let i: usize = 0; i < LEVEL1_ENTRIES; i++) {
    const slot1 = level1 + (i << 2);
    const entry = load<u32>(slot1);
    if (!isPointer(entry)) continue;
    const chunk = chunkAddress(entry);
    store<u64>(compactList + (<usize>n << 3), (<u64>chunk << 32) | <u64>slot1);
    n++;
    const runs = runCountOf(chunk);
    for (let r: u32 = 0; r < runs; r++) {
      const slot2 = chunk + RUNS + (<usize>r << 2);
      const child = load<u32>(slot2);
      if (!isPointer(child)) continue;
      store<u64>(compactList + (<usize>n << 3), (<u64>chunkAddress(child) << 32) | <u64>slot2);
      n++;
    }
  }
  heapSort(compactList, n);
  chunks.reset();
  for (let k: u32 = 0; k < n; k++) {
    const item = compactList + (<usize>k << 3);
    const old = <usize>(load<u64>(item) >>> 32);
    const moved = chunks.alloc(unitsFor(runCountOf(old)));
    store<u32>(<usize>(load<u64>(item) & 0xffffffff), POINTER | <u32>(moved >>> UNIT_SHIFT));
    store<u64>(item, (<u64>old << 32) | <u64>moved);
  }
  for (let k: u32 = 0; k < n; k++) {
    const item = load<u64>(compactList + (<usize>k << 3));
    const old = <usize>(item >>> 32);
    const moved = <usize>(item & 0xffffffff);
    if (moved != old) memory.copy(moved, old, <usize>unitsFor(runCountOf(old)) << UNIT_SHIFT);
  }
}

/** Clears the table and bounds it to `maxChunkCount` compressed chunks. */
export function init4(maxChunkCount: u32): void {
  memory.fill(level1, 0, LEVEL1_ENTRIES << 2);
  chunks.reset();
  maxChunks = maxChunkCount;
  chunksInUse = 0;
  unitsInUse = 0;
  clear4();
}

/** Pre-sizes the prefix set for `prefixes` routes, so building a big table does not regrow it. */
export function reserve4Prefixes(prefixes: u32): void {
  reserve4(prefixes);
}

/** Chunks an insert of addr/len would add (0, 1 or 2). */
function chunksNeeded(addr: u32, len: i32): u32 {
  if (len <= 16) return 0;
  const entry = load<u32>(level1 + (<usize>(addr >>> 16) << 2));
  if (!isPointer(entry)) return len <= 24 ? 1 : 2;
  if (len <= 24) return 0;
  return isPointer(chunkEntry(chunkAddress(entry), (addr >>> 8) & 0xff)) ? 0 : 1;
}

/** Applies the current op to the prefix addr/len (which needs no more chunks than the pool holds). */
function applyPrefix(addr: u32, len: i32): void {
  const slot1 = level1 + (<usize>(addr >>> 16) << 2);
  if (len <= 16) {
    for (let i: u32 = 0; i < (1 << (16 - len)); i++) {
      const slot = slot1 + (<usize>i << 2);
      const entry = load<u32>(slot);
      store<u32>(slot, isPointer(entry) ? applyChunk(entry, 0, 256, 24) : applyOp(entry));
    }
    return;
  }
  const entry1 = load<u32>(slot1);
  if (len <= 24) {
    store<u32>(slot1, applyChunk(entry1, (addr >>> 8) & 0xff, 1 << (24 - len), 24));
    return;
  }
  // Only one level-2 entry changes, and only if the level-3 chunk moves, folds or is new.
  const slot2 = (addr >>> 8) & 0xff;
  const entry2 = isPointer(entry1) ? chunkEntry(chunkAddress(entry1), slot2) : entry1;
  const replaced = applyChunk(entry2, addr & 0xff, 1 << (32 - len), 32);
  if (replaced == entry2) return;
  const view2 = views;
  if (isPointer(entry1)) expand(chunkAddress(entry1), view2);
  else fill256(view2, entry1);
  store<u32>(view2 + (<usize>slot2 << 2), replaced);
  store<u32>(slot1, storeChunk(entry1, view2, 16));
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
  applyPrefix(addr, len);
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
  applyPrefix(addr, len);
  return LPM_OK;
}

export function routeCount4(): u32 {
  return count4();
}

export function chunkCount4(): u32 {
  return chunksInUse;
}

/** Bytes of chunks in use (the part of `memoryBytes4` that lookups touch, besides level 1). */
export function chunkBytes4(): u32 {
  return unitsInUse << UNIT_SHIFT;
}

/** Bytes this table holds: level 1, the chunk slabs, and the prefix set. */
export function memoryBytes4(): u32 {
  return <u32>((LEVEL1_ENTRIES << 2) + chunks.reservedBytes() + setBytes4());
}
