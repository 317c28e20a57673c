// IPv6 longest-prefix match: a 16-bit direct table over a Poptrie-style compressed multibit trie (6-bit strides,
// 64-bit bitmaps counted with popcnt), leaf-pushed, with depth-tagged leaves.
//
// Why: 128-bit addresses with ~200k prefixes spread over /29../64 make an uncompressed 8-bit-stride trie (DIR-16-8-...)
// cost hundreds of MB, because almost every prefix needs its own chain of 1 KiB chunks. Poptrie (Asai & Ohara,
// SIGCOMM 2015) keeps the speed of a leaf-pushed multibit trie while storing each 64-way node in 24 bytes:
//   u64 vec      bit s set: slot s has a child node
//   u64 leafvec  bit s set: slot s is a leaf slot whose leaf differs from the previous leaf slot's (a run starts)
//   u32 children address of the node's children, stored contiguously in slot order
//   u32 leaves   address of the node's distinct leaf runs, in slot order
// A step is: slot = next 6 bits; child = children + 24 * popcnt(vec & below(slot)), or
// leaf = leaves[popcnt(leafvec & upto(slot)) - 1]. Level 0 is a direct table of 65,536 u32 entries for the top 16
// bits (leaf or POINTER | node address >> 3); nodes cover bits 16..21, 22..27, ... and the 19th level covers 124..127
// (two padding bits). /32 ends in level 2, /48 in level 5.
// Updates work on a node's expanded view (64 leaves), exactly like ipv4.ts: insert overwrites shorter-or-equal leaves in
// its range, delete restores the covering prefix (from prefixset6.ts) where its own leaves are, then the node is
// re-compressed; a node that became a single leaf of a prefix no longer than the node's start is folded into its parent.
// Children and leaf blocks move when their counts change; they come from a BlockPool (pool.ts: per-size free lists
// over 256 KiB slabs), so memory is reused under churn. Bounded: `maxNodes` nodes (24 bytes each), each with at most
// 64 leaves (4 bytes each), plus the 256 KiB direct table, plus the prefix set (24 bytes a slot, load <= 3/4).
// Measured (bench/lpm.ts, 200k prefixes /29../64 shaped like the global table, distinct values): 27.0 MiB in all =
// 256 KiB direct table + 12 MiB prefix set (2^19 slots) + 14.8 MiB of node/leaf slabs (430,615 nodes = 9.9 MiB, the
// rest leaves). Batch lookups ~11..17 M/s on the 2-core KVM (no target was set for IPv6);
// by the node count, an uncompressed 8-bit-stride trie would need a few hundred MiB for the same table.

import {
  LPM_ABSENT, LPM_ERR_FULL, LPM_ERR_LEN, LPM_ERR_VALUE, LPM_OK, MAX_VALUE, NOT_A_LEAF, POINTER,
  allocAligned, applyOp, depthTag, leafValue, makeLeaf, setDeleteOp, setInsertOp,
} from "./common";
import { BlockPool } from "./pool";
import { clear6, count6, get6, hasRoom6, put6, remove6, reserve6, setBytes6 } from "./prefixset6";

const TOP_ENTRIES: usize = 65536;
const NODE_BYTES: usize = 24;
const LEVELS: usize = 19;

const top: usize = allocAligned(TOP_ENTRIES << 2, 64);
/** Node blocks (24 bytes a node) and leaf blocks (4 bytes a leaf, padded to 8), in 8-byte units. */
const blocks = new BlockPool(3, 64 * 3, 256 << 10);
/** One 64-leaf expanded view per trie level (updates recurse at most LEVELS deep). */
const expanded: usize = allocAligned(LEVELS << 8, 16);
const runs: usize = allocAligned(64 << 2, 16);
const pathNodes: usize = allocAligned(LEVELS << 2, 16);
const pathSlots: usize = allocAligned(LEVELS << 2, 16);

let maxNodes: u32 = 0;
let nodesInUse: u32 = 0;

// @ts-ignore: decorator
@inline function isPointer(entry: u32): bool {
  return (entry & POINTER) != 0;
}

// @ts-ignore: decorator
@inline function nodeOf(entry: u32): usize {
  return <usize>(entry << 3);
}

// @ts-ignore: decorator
@inline function leafBytes(count: u32): usize {
  return (<usize>count * 4 + 7) & ~7;
}

// @ts-ignore: decorator
@inline function highBits(n: i32): u64 {
  if (n >= 64) return <u64>-1;
  return n <= 0 ? 0 : <u64>-1 << <u64>(64 - n);
}

/** The 6-bit slot that a node starting at address bit `p` (16, 22, ..., 124) takes from the address. */
// @ts-ignore: decorator
@inline function slotAt(hi: u64, lo: u64, p: i32): u32 {
  if (p <= 58) return <u32>(hi >>> <u64>(58 - p)) & 63;
  if (p <= 122) return <u32>(lo >>> <u64>(122 - p)) & 63;
  return <u32>(lo << 2) & 63;
}

/** Longest-prefix match of the 16 bytes (network order) at `ptr`: the route's value, or -1. */
export function lookup6(ptr: usize): i32 {
  const hi = bswap<u64>(load<u64>(ptr));
  let entry = load<u32>(top + (<usize>(hi >>> 48) << 2));
  if (!isPointer(entry)) return leafValue(entry);
  let node = nodeOf(entry);
  let window = hi << 16;
  let level = 0;
  while (true) {
    const bit = <u64>1 << (window >>> 58);
    const vec = load<u64>(node);
    if ((vec & bit) == 0) {
      const run = <usize>popcnt<u64>(load<u64>(node, 8) & (bit | (bit - 1))) - 1;
      return leafValue(load<u32>(<usize>load<u32>(node, 20) + (run << 2)));
    }
    node = <usize>load<u32>(node, 16) + <usize>popcnt<u64>(vec & (bit - 1)) * NODE_BYTES;
    window <<= 6;
    if (++level == 8) window = bswap<u64>(load<u64>(ptr, 8));
  }
}

/**
 * Looks up `n` 16-byte network-order addresses at `keys` into `out` (i32 each). One key at a time: a lookup is a loop
 * of data-dependent length, and unrolling four keys measured no faster (the CPU already overlaps consecutive keys).
 */
export function lookupBatch6(keys: usize, out: usize, n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    store<i32>(out + (<usize>i << 2), lookup6(keys + (<usize>i << 4)));
  }
}

function allocBlock(bytes: usize): usize {
  return blocks.alloc(<u32>(bytes >>> 3));
}

function freeBlock(block: usize, bytes: usize): void {
  blocks.free(block, <u32>(bytes >>> 3));
}

/** Makes `node` a childless node whose 64 slots all hold `leaf`. */
function initNode(node: usize, leaf: u32): void {
  const leaves = allocBlock(leafBytes(1));
  store<u32>(leaves, leaf);
  store<u64>(node, 0);
  store<u64>(node, 1, 8);
  store<u32>(node, 0, 16);
  store<u32>(node, <u32>leaves, 20);
  nodesInUse++;
}

// @ts-ignore: decorator
@inline function childAt(node: usize, vec: u64, slot: u32): usize {
  const below = (<u64>1 << slot) - 1;
  return <usize>load<u32>(node, 16) + <usize>popcnt<u64>(vec & below) * NODE_BYTES;
}

/** Writes the leaf of every leaf slot of `node` into `view` (64 u32). Child slots are left as they were. */
function expand(node: usize, view: usize): void {
  const vec = load<u64>(node);
  const leafvec = load<u64>(node, 8);
  const leaves = <usize>load<u32>(node, 20);
  let run: isize = -1;
  for (let s: u32 = 0; s < 64; s++) {
    const bit = <u64>1 << s;
    if (leafvec & bit) run++;
    if ((vec & bit) == 0) store<u32>(view + (<usize>s << 2), load<u32>(leaves + (<usize>run << 2)));
  }
}

/** Re-compresses the leaf slots of `view` (given child bitmap `vec`) into `node`'s leafvec and leaf block. */
function compress(node: usize, vec: u64, view: usize): void {
  let leafvec: u64 = 0;
  let count: u32 = 0;
  let previous: u32 = 0;
  for (let s: u32 = 0; s < 64; s++) {
    const bit = <u64>1 << s;
    if (vec & bit) continue;
    const leaf = load<u32>(view + (<usize>s << 2));
    if (count == 0 || leaf != previous) {
      leafvec |= bit;
      store<u32>(runs + (<usize>count << 2), leaf);
      count++;
      previous = leaf;
    }
  }
  const oldCount = <u32>popcnt<u64>(load<u64>(node, 8));
  let leaves = <usize>load<u32>(node, 20);
  if (count != oldCount || leaves == 0) {
    if (oldCount != 0) freeBlock(leaves, leafBytes(oldCount));
    leaves = count != 0 ? allocBlock(leafBytes(count)) : 0;
    store<u32>(node, <u32>leaves, 20);
  }
  memory.copy(leaves, runs, <usize>count << 2);
  store<u64>(node, leafvec, 8);
}

/** Gives `node` (expanded in `view`) a new child at `slot`, holding the slot's leaf everywhere. Returns the child. */
function addChild(node: usize, slot: u32, view: usize): usize {
  expand(node, view);
  const vec = load<u64>(node);
  const bit = <u64>1 << slot;
  const before = <usize>popcnt<u64>(vec & (bit - 1));
  const oldCount = <usize>popcnt<u64>(vec);
  const oldBlock = <usize>load<u32>(node, 16);
  const block = allocBlock((oldCount + 1) * NODE_BYTES);
  memory.copy(block, oldBlock, before * NODE_BYTES);
  memory.copy(block + (before + 1) * NODE_BYTES, oldBlock + before * NODE_BYTES, (oldCount - before) * NODE_BYTES);
  if (oldCount != 0) freeBlock(oldBlock, oldCount * NODE_BYTES);
  const child = block + before * NODE_BYTES;
  initNode(child, load<u32>(view + (<usize>slot << 2)));
  store<u64>(node, vec | bit);
  store<u32>(node, <u32>block, 16);
  compress(node, vec | bit, view);
  return child;
}

/** Drops the children of `node` that are in `vec` but not in `kept` (they are childless: only leaves to free). */
function dropChildren(node: usize, vec: u64, kept: u64): void {
  const oldBlock = <usize>load<u32>(node, 16);
  const keptCount = <usize>popcnt<u64>(kept);
  const block = keptCount != 0 ? allocBlock(keptCount * NODE_BYTES) : 0;
  let from = oldBlock;
  let to = block;
  for (let s: u32 = 0; s < 64; s++) {
    const bit = <u64>1 << s;
    if ((vec & bit) == 0) continue;
    if (kept & bit) {
      memory.copy(to, from, NODE_BYTES);
      to += NODE_BYTES;
    } else {
      const leafCount = <u32>popcnt<u64>(load<u64>(from, 8));
      if (leafCount != 0) freeBlock(<usize>load<u32>(from, 20), leafBytes(leafCount));
      nodesInUse--;
    }
    from += NODE_BYTES;
  }
  freeBlock(oldBlock, <usize>popcnt<u64>(vec) * NODE_BYTES);
  store<u64>(node, kept);
  store<u32>(node, <u32>block, 16);
}

/** The single leaf `node` now holds, if it has no children and that leaf's prefix is no longer than `start` bits. */
function foldableLeaf(node: usize, start: i32): u32 {
  if (load<u64>(node) != 0 || load<u64>(node, 8) != 1) return NOT_A_LEAF;
  const leaf = load<u32>(<usize>load<u32>(node, 20));
  return depthTag(leaf) <= <u32>(start + 1) ? leaf : NOT_A_LEAF;
}

/** Applies the current op to `count` slots from `first` of `node`, which starts at address bit `start`. */
function applyRange(node: usize, start: i32, first: u32, count: u32, level: usize): void {
  const view = expanded + (level << 8);
  expand(node, view);
  const vec = load<u64>(node);
  let kept = vec;
  for (let s = first; s < first + count; s++) {
    const bit = <u64>1 << s;
    const slot = view + (<usize>s << 2);
    if (vec & bit) {
      const child = childAt(node, vec, s);
      applyRange(child, start + 6, 0, 64, level + 1);
      const leaf = foldableLeaf(child, start + 6);
      if (leaf != NOT_A_LEAF) {
        store<u32>(slot, leaf);
        kept &= ~bit;
      }
    } else {
      store<u32>(slot, applyOp(load<u32>(slot)));
    }
  }
  if (kept != vec) dropChildren(node, vec, kept);
  compress(node, kept, view);
}

function freeTopNode(node: usize): void {
  const leafCount = <u32>popcnt<u64>(load<u64>(node, 8));
  if (leafCount != 0) freeBlock(<usize>load<u32>(node, 20), leafBytes(leafCount));
  freeBlock(node, NODE_BYTES);
  nodesInUse--;
}

/** Applies the current op to the whole of direct-table entry `index`. */
function applyTop(index: u32): void {
  const slot = top + (<usize>index << 2);
  const entry = load<u32>(slot);
  if (!isPointer(entry)) {
    store<u32>(slot, applyOp(entry));
    return;
  }
  const node = nodeOf(entry);
  applyRange(node, 16, 0, 64, 0);
  const leaf = foldableLeaf(node, 16);
  if (leaf != NOT_A_LEAF) {
    store<u32>(slot, leaf);
    freeTopNode(node);
  }
}

/** Clears the table and bounds it to `nodes` trie nodes. */
export function init6(nodes: u32): void {
  memory.fill(top, 0, TOP_ENTRIES << 2);
  blocks.reset();
  maxNodes = nodes;
  nodesInUse = 0;
  clear6();
}

export function reserve6Prefixes(prefixes: u32): void {
  reserve6(prefixes);
}

/** Nodes an insert of the prefix would add: one per level from the first missing node down to where it ends. */
function nodesNeeded(hi: u64, lo: u64, len: i32): u32 {
  if (len <= 16) return 0;
  const levels = <u32>(len - 16 + 5) / 6;
  const entry = load<u32>(top + (<usize>(hi >>> 48) << 2));
  if (!isPointer(entry)) return levels;
  let node = nodeOf(entry);
  let start = 16;
  let present: u32 = 1;
  while (len - start > 6) {
    const s = slotAt(hi, lo, start);
    const vec = load<u64>(node);
    if ((vec & (<u64>1 << s)) == 0) break;
    node = childAt(node, vec, s);
    start += 6;
    present++;
  }
  return levels - present;
}

/** Adds or replaces the prefix (host-order halves) → value. Host bits are ignored. 0, or a negative LPM_ERR_*. */
export function insert6(hi: u64, lo: u64, len: i32, value: i32): i32 {
  if (<u32>len > 128) return LPM_ERR_LEN;
  if (<u32>value > MAX_VALUE) return LPM_ERR_VALUE;
  hi &= highBits(len);
  lo &= highBits(len - 64);
  if (nodesInUse + nodesNeeded(hi, lo, len) > maxNodes) return LPM_ERR_FULL;
  if (get6(hi, lo, len) < 0 && !hasRoom6()) return LPM_ERR_FULL;
  put6(hi, lo, len, <u32>value);
  setInsertOp(len, makeLeaf(len, <u32>value));
  const index = <u32>(hi >>> 48);
  if (len <= 16) {
    for (let i = index; i < index + (1 << (16 - len)); i++) applyTop(i);
    return LPM_OK;
  }
  const slot = top + (<usize>index << 2);
  let entry = load<u32>(slot);
  if (!isPointer(entry)) {
    const fresh = allocBlock(NODE_BYTES);
    initNode(fresh, entry);
    entry = POINTER | <u32>(fresh >>> 3);
    store<u32>(slot, entry);
  }
  let node = nodeOf(entry);
  let start = 16;
  let level: usize = 0;
  while (true) {
    const s = slotAt(hi, lo, start);
    const rest = len - start;
    if (rest <= 6) {
      applyRange(node, start, s, 1 << <u32>(6 - rest), level);
      return LPM_OK;
    }
    const vec = load<u64>(node);
    node = (vec & (<u64>1 << s)) != 0 ? childAt(node, vec, s) : addChild(node, s, expanded + (level << 8));
    start += 6;
    level++;
  }
}

/** Removes the prefix. 0 removed, 1 not present, or a negative LPM_ERR_*. */
export function delete6(hi: u64, lo: u64, len: i32): i32 {
  if (<u32>len > 128) return LPM_ERR_LEN;
  hi &= highBits(len);
  lo &= highBits(len - 64);
  if (!remove6(hi, lo, len)) return LPM_ABSENT;
  let covering: u32 = 0;
  for (let shorter = len - 1; shorter >= 0; shorter--) {
    const value = get6(hi & highBits(shorter), lo & highBits(shorter - 64), shorter);
    if (value >= 0) {
      covering = makeLeaf(shorter, <u32>value);
      break;
    }
  }
  setDeleteOp(len, covering);
  const index = <u32>(hi >>> 48);
  if (len <= 16) {
    for (let i = index; i < index + (1 << (16 - len)); i++) applyTop(i);
    return LPM_OK;
  }
  const slot = top + (<usize>index << 2);
  const entry = load<u32>(slot);
  if (!isPointer(entry)) return LPM_OK;
  let node = nodeOf(entry);
  let start = 16;
  let level: usize = 0;
  while (true) {
    const s = slotAt(hi, lo, start);
    const rest = len - start;
    if (rest <= 6) {
      applyRange(node, start, s, 1 << <u32>(6 - rest), level);
      break;
    }
    const vec = load<u64>(node);
    if ((vec & (<u64>1 << s)) == 0) break;
    store<u32>(pathNodes + (level << 2), <u32>node);
    store<u32>(pathSlots + (level << 2), s);
    node = childAt(node, vec, s);
    start += 6;
    level++;
  }
  // Fold the nodes this delete emptied, from the deepest up; stop at the first one that still branches.
  while (level > 0) {
    const leaf = foldableLeaf(node, start);
    if (leaf == NOT_A_LEAF) return LPM_OK;
    level--;
    start -= 6;
    const parent = <usize>load<u32>(pathNodes + (level << 2));
    const s = load<u32>(pathSlots + (level << 2));
    const view = expanded + (level << 8);
    expand(parent, view);
    store<u32>(view + (<usize>s << 2), leaf);
    const vec = load<u64>(parent);
    const kept = vec & ~(<u64>1 << s);
    dropChildren(parent, vec, kept);
    compress(parent, kept, view);
    node = parent;
  }
  const leaf = foldableLeaf(node, 16);
  if (leaf != NOT_A_LEAF) {
    store<u32>(slot, leaf);
    freeTopNode(node);
  }
  return LPM_OK;
}

export function routeCount6(): u32 {
  return count6();
}

export function nodeCount6(): u32 {
  return nodesInUse;
}

/** Bytes this table holds: the direct table, every slab taken for nodes and leaves, and the prefix set. */
export function memoryBytes6(): u32 {
  return <u32>((TOP_ENTRIES << 2) + blocks.reservedBytes() + setBytes6());
}
