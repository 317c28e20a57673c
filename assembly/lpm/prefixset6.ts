// The IPv6 table's control plane: every inserted prefix (masked address as two host-order u64 halves, length) with its
// value, in one open-addressing hash table (linear probing, backward-shift deletion). Deletes use it to know whether a
// prefix exists and which shorter prefix covers it; lookups never touch it.
// Slot: u64 high half, u64 low half, u32 meta = (len + 1) << 16 | value (0 = empty), u32 padding: 24 bytes, load <= 3/4.
// As in prefixset4.ts, outgrown tables stay behind under the stub runtime; `reserve6` avoids that for a known size.

const SLOT_BYTES: usize = 24;
const MIN_CAPACITY: u32 = 1024;
export const MAX_PREFIXES6: u32 = 1 << 22;

let table: usize = 0;
let capacity: u32 = 0;
let count: u32 = 0;

// @ts-ignore: decorator
@inline function hashOf(hi: u64, lo: u64, len: i32): u32 {
  let x = hi ^ rotl<u64>(lo, 29) ^ (<u64>(len + 1) * 0x9e3779b97f4a7c15);
  x ^= x >>> 33;
  x *= 0xff51afd7ed558ccd;
  x ^= x >>> 33;
  x *= 0xc4ceb9fe1a85ec53;
  x ^= x >>> 33;
  return <u32>x;
}

function slotFor(hi: u64, lo: u64, len: i32): usize {
  const mask = capacity - 1;
  const tag = <u32>(len + 1);
  let i = hashOf(hi, lo, len) & mask;
  while (true) {
    const slot = table + <usize>i * SLOT_BYTES;
    const meta = load<u32>(slot, 16);
    if (meta == 0 || (meta >>> 16 == tag && load<u64>(slot) == hi && load<u64>(slot, 8) == lo)) return slot;
    i = (i + 1) & mask;
  }
}

function rehash(newCapacity: u32): void {
  const oldTable = table;
  const oldCapacity = capacity;
  table = heap.alloc(<usize>newCapacity * SLOT_BYTES);
  memory.fill(table, 0, <usize>newCapacity * SLOT_BYTES);
  capacity = newCapacity;
  for (let i: u32 = 0; i < oldCapacity; i++) {
    const slot = oldTable + <usize>i * SLOT_BYTES;
    const meta = load<u32>(slot, 16);
    if (meta == 0) continue;
    const dst = slotFor(load<u64>(slot), load<u64>(slot, 8), <i32>(meta >>> 16) - 1);
    memory.copy(dst, slot, SLOT_BYTES);
  }
}

export function clear6(): void {
  if (table == 0) rehash(MIN_CAPACITY);
  memory.fill(table, 0, <usize>capacity * SLOT_BYTES);
  count = 0;
}

export function reserve6(prefixes: u32): void {
  if (prefixes > MAX_PREFIXES6) prefixes = MAX_PREFIXES6;
  let cap = MIN_CAPACITY;
  while (<u64>prefixes * 4 > <u64>cap * 3) cap <<= 1;
  if (cap > capacity) rehash(cap);
}

/** Value of (hi, lo, len), or -1. The address must already be masked to `len`. */
export function get6(hi: u64, lo: u64, len: i32): i32 {
  const meta = load<u32>(slotFor(hi, lo, len), 16);
  return meta == 0 ? -1 : <i32>(meta & 0xffff);
}

export function hasRoom6(): bool {
  return count < MAX_PREFIXES6;
}

/** True when the prefix is new; false when it replaced a value. Callers check `hasRoom6` first. */
export function put6(hi: u64, lo: u64, len: i32, value: u32): bool {
  let slot = slotFor(hi, lo, len);
  const isNew = load<u32>(slot, 16) == 0;
  if (isNew && (<u64>count + 1) * 4 > <u64>capacity * 3) {
    rehash(capacity << 1);
    slot = slotFor(hi, lo, len);
  }
  store<u64>(slot, hi);
  store<u64>(slot, lo, 8);
  store<u32>(slot, (<u32>(len + 1) << 16) | value, 16);
  if (isNew) count++;
  return isNew;
}

/** Removes the prefix; false when it was not present. */
export function remove6(hi: u64, lo: u64, len: i32): bool {
  const slot = slotFor(hi, lo, len);
  if (load<u32>(slot, 16) == 0) return false;
  const mask = capacity - 1;
  let hole = <u32>((slot - table) / SLOT_BYTES);
  let j = hole;
  while (true) {
    j = (j + 1) & mask;
    const next = table + <usize>j * SLOT_BYTES;
    const meta = load<u32>(next, 16);
    if (meta == 0) break;
    const home = hashOf(load<u64>(next), load<u64>(next, 8), <i32>(meta >>> 16) - 1) & mask;
    const homeInside = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (homeInside) continue;
    memory.copy(table + <usize>hole * SLOT_BYTES, next, SLOT_BYTES);
    hole = j;
  }
  memory.fill(table + <usize>hole * SLOT_BYTES, 0, SLOT_BYTES);
  count--;
  return true;
}

export function count6(): u32 {
  return count;
}

export function setBytes6(): usize {
  return <usize>capacity * SLOT_BYTES;
}
