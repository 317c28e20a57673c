// The IPv4 table's control plane: every inserted prefix (masked address, length) with its value, in one open-addressing
// hash table (linear probing, backward-shift deletion, so no tombstones). The lookup structure is leaf-pushed and cannot
// say which prefixes exist, so deletes ask this set (is it present? which shorter prefix covers it?).
// Slot: u32 address, u32 meta = (len + 1) << 16 | value; meta 0 = empty. 8 bytes a slot, load factor <= 3/4.
// The table doubles when full; under the stub runtime the outgrown table is not returned to the heap, so a table built
// without `reserve4` leaves behind at most its own final size in dead copies.

const SLOT_BYTES: usize = 8;
const MIN_CAPACITY: u32 = 1024;
export const MAX_PREFIXES4: u32 = 1 << 23;

let table: usize = 0;
let capacity: u32 = 0;
let count: u32 = 0;

// @ts-ignore: decorator
@inline function hashOf(addr: u32, len: i32): u32 {
  let x = addr ^ (<u32>(len + 1) * 0x9e3779b9);
  x ^= x >>> 16;
  x *= 0x7feb352d;
  x ^= x >>> 15;
  x *= 0x846ca68b;
  x ^= x >>> 16;
  return x;
}

/** Slot holding (addr, len), or the empty slot where it would go. */
function slotFor(addr: u32, len: i32): usize {
  const mask = capacity - 1;
  const tag = <u32>(len + 1);
  let i = hashOf(addr, len) & mask;
  while (true) {
    const slot = table + <usize>i * SLOT_BYTES;
    const meta = load<u32>(slot, 4);
    if (meta == 0 || (load<u32>(slot) == addr && meta >>> 16 == tag)) return slot;
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
    const meta = load<u32>(slot, 4);
    if (meta == 0) continue;
    const addr = load<u32>(slot);
    const dst = slotFor(addr, <i32>(meta >>> 16) - 1);
    store<u32>(dst, addr);
    store<u32>(dst, meta, 4);
  }
}

function capacityFor(prefixes: u32): u32 {
  let cap = MIN_CAPACITY;
  while (<u64>prefixes * 4 > <u64>cap * 3) cap <<= 1;
  return cap;
}

/** Empties the set, keeping its table for reuse. */
export function clear4(): void {
  if (table == 0) rehash(MIN_CAPACITY);
  memory.fill(table, 0, <usize>capacity * SLOT_BYTES);
  count = 0;
}

/** Grows the table now so that `prefixes` entries fit without further growth. */
export function reserve4(prefixes: u32): void {
  if (prefixes > MAX_PREFIXES4) prefixes = MAX_PREFIXES4;
  const cap = capacityFor(prefixes);
  if (cap > capacity) rehash(cap);
}

/** Value of (addr, len), or -1. `addr` must already be masked to `len`. */
export function get4(addr: u32, len: i32): i32 {
  const meta = load<u32>(slotFor(addr, len), 4);
  return meta == 0 ? -1 : <i32>(meta & 0xffff);
}

/** True when (addr, len) is new; false when it replaced a value. Callers check `hasRoom4` first. */
export function put4(addr: u32, len: i32, value: u32): bool {
  let slot = slotFor(addr, len);
  const isNew = load<u32>(slot, 4) == 0;
  if (isNew && (<u64>count + 1) * 4 > <u64>capacity * 3) {
    rehash(capacity << 1);
    slot = slotFor(addr, len);
  }
  store<u32>(slot, addr);
  store<u32>(slot, (<u32>(len + 1) << 16) | value, 4);
  if (isNew) count++;
  return isNew;
}

/** True when one more prefix may be added. */
export function hasRoom4(): bool {
  return count < MAX_PREFIXES4;
}

/** Removes (addr, len); false when it was not present. */
export function remove4(addr: u32, len: i32): bool {
  let slot = slotFor(addr, len);
  if (load<u32>(slot, 4) == 0) return false;
  const mask = capacity - 1;
  let hole = <u32>((slot - table) / SLOT_BYTES);
  let j = hole;
  while (true) {
    j = (j + 1) & mask;
    const next = table + <usize>j * SLOT_BYTES;
    const meta = load<u32>(next, 4);
    if (meta == 0) break;
    const home = hashOf(load<u32>(next), <i32>(meta >>> 16) - 1) & mask;
    // The entry at j may move back into the hole only if its home slot is not cyclically inside (hole, j].
    const homeInside = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (homeInside) continue;
    store<u64>(table + <usize>hole * SLOT_BYTES, load<u64>(next));
    hole = j;
  }
  store<u64>(table + <usize>hole * SLOT_BYTES, 0);
  count--;
  return true;
}

export function count4(): u32 {
  return count;
}

export function setBytes4(): usize {
  return <usize>capacity * SLOT_BYTES;
}
