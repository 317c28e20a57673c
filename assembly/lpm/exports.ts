// The route tables' WASM ABI (re-exported by assembly/index.ts). IPv4 addresses are u32 in host order
// (a.b.c.d = a<<24 | b<<16 | c<<8 | d); IPv6 addresses are pointers to 16 bytes in network order.
// Results: 0 ok, 1 not present (delete), negative errors: -1 bad length, -2 value outside 0..65535,
// -3 pool or prefix set full, -4 pointer outside memory. Lookups return the value, or -1 for no route.
// Only init, reserve, insert, delete (IPv6: leaf blocks may move) and lpmAlloc can grow memory; lookups never do.

import { LPM_ERR_RANGE, allocAligned, inMemory } from "./common";
import {
  chunkBytes4, chunkCount4, compact4, delete4, init4, insert4, lookup4, lookupBatch4, memoryBytes4, reserve4Prefixes, routeCount4,
} from "./ipv4";
import {
  delete6, init6, insert6, lookup6, lookupBatch6, memoryBytes6, nodeCount6, reserve6Prefixes, routeCount6,
} from "./ipv6";

const SCRATCH_BYTES: usize = 4096;
const MAX_ALLOC: u32 = 1 << 30;
const scratch: usize = allocAligned(SCRATCH_BYTES, 16);

export function route4Init(maxChunks: u32): void {
  init4(maxChunks);
}

/** Pre-sizes the IPv4 prefix set for `prefixes` routes (optional; avoids regrowth while building a big table). */
export function route4Reserve(prefixes: u32): void {
  reserve4Prefixes(prefixes);
}

export function route4Insert(addr: u32, len: i32, value: i32): i32 {
  return insert4(addr, len, value);
}

export function route4Delete(addr: u32, len: i32): i32 {
  return delete4(addr, len);
}

export function route4Lookup(addr: u32): i32 {
  return lookup4(addr);
}

export function route4LookupBatch(keys: usize, out: usize, n: u32): void {
  if (!inMemory(keys, <u64>n << 2) || !inMemory(out, <u64>n << 2)) return;
  lookupBatch4(keys, out, n);
}

export function route4Count(): u32 {
  return routeCount4();
}

export function route4Chunks(): u32 {
  return chunkCount4();
}

/** Packs the IPv4 chunks together (after bulk loads or heavy churn) so lookups touch fewer pages. */
export function route4Compact(): void {
  compact4();
}

/** Bytes of chunks in use: with level 1, what lookups can touch. */
export function route4ChunkBytes(): u32 {
  return chunkBytes4();
}

export function route4MemoryBytes(): u32 {
  return memoryBytes4();
}

export function route6Init(maxNodes: u32): void {
  init6(maxNodes);
}

export function route6Reserve(prefixes: u32): void {
  reserve6Prefixes(prefixes);
}

export function route6Insert(addr: usize, len: i32, value: i32): i32 {
  if (!inMemory(addr, 16)) return LPM_ERR_RANGE;
  return insert6(bswap<u64>(load<u64>(addr)), bswap<u64>(load<u64>(addr, 8)), len, value);
}

export function route6Delete(addr: usize, len: i32): i32 {
  if (!inMemory(addr, 16)) return LPM_ERR_RANGE;
  return delete6(bswap<u64>(load<u64>(addr)), bswap<u64>(load<u64>(addr, 8)), len);
}

export function route6Lookup(addr: usize): i32 {
  if (!inMemory(addr, 16)) return -1;
  return lookup6(addr);
}

export function route6LookupBatch(keys: usize, out: usize, n: u32): void {
  if (!inMemory(keys, <u64>n << 4) || !inMemory(out, <u64>n << 2)) return;
  lookupBatch6(keys, out, n);
}

export function route6Count(): u32 {
  return routeCount6();
}

export function route6Nodes(): u32 {
  return nodeCount6();
}

export function route6MemoryBytes(): u32 {
  return memoryBytes6();
}

/** A 4 KiB scratch area (16-byte aligned) the host may use to pass IPv6 addresses. */
export function lpmScratch(): usize {
  return scratch;
}

/** `bytes` of zeroed, 16-byte aligned memory for batch buffers; 0 when `bytes` exceeds 1 GiB. Never freed. */
export function lpmAlloc(bytes: u32): usize {
  if (bytes > MAX_ALLOC) return 0;
  return allocAligned(bytes, 16);
}
