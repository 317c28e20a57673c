// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// Sums are kept in "wire order as loaded little-endian": every 16-bit word is read with a plain little-endian load, so the folded
// result is the byte-swapped one's-complement sum. Storing it back with a little-endian store puts the bytes on the wire in the
// right order, so no swapping happens anywhere except for values that come from registers (protocol numbers, lengths), which
// enter through `wordSum`.

// Lanes of the 32-bit vector accumulators gain at most 8 * 0xffff per 64 bytes; widening to 64 bits every 256 KiB keeps them
// far from overflow whatever the length.
const WIDEN_EVERY: usize = 256 * 1024;

@inline function widen(v: v128): u64 {
  const w = i64x2.add(i64x2.extend_low_i32x4_u(v), i64x2.extend_high_i32x4_u(v));
  return <u64>i64x2.extract_lane(w, 0) + <u64>i64x2.extract_lane(w, 1);
}

/** Adds bytes [p, p+len) to `acc` (a 64-bit running sum, not folded). Vectorised: 64 bytes per iteration. */
export function sumBytes(p: usize, len: usize, acc: u64): u64 {
  let i: usize = 0;
  while (i + 64 <= len) {
    const stop = min(len, i + WIDEN_EVERY);
    let s = i32x4.splat(0);
    while (i + 64 <= stop) {
      s = i32x4.add(s, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i)));
      s = i32x4.add(s, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 16)));
      s = i32x4.add(s, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 32)));
      s = i32x4.add(s, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 48)));
      i += 64;
    }
    acc += widen(s);
  }
  while (i + 4 <= len) {
    acc += <u64>load<u32>(p + i);
    i += 4;
  }
  if (i + 2 <= len) {
    acc += <u64>load<u16>(p + i);
    i += 2;
  }
  if (i < len) acc += <u64>load<u8>(p + i);
  return acc;
}

/** A 16-bit value from a register (host order) as it contributes to a wire-order-as-loaded sum. */
@inline export function wordSum(v: u32): u64 {
  return <u64>bswap<u16>(<u16>v);
}

/** Folds a running sum to 16 bits (not complemented). */
@inline export function fold(acc: u64): u32 {
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffffffff) + (acc >> 32);
  let s = <u32>acc;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return s;
}

/** The final checksum field value (store with store<u16>). */
@inline export function finish(acc: u64): u16 {
  return <u16>~fold(acc);
}

/** Pseudo-header sum for IPv4 (RFC 793/768): addresses are read straight from the packet. */
@inline export function pseudo4(srcAddrPtr: usize, proto: u32, l4len: u32): u64 {
  return <u64>load<u32>(srcAddrPtr) + <u64>load<u32>(srcAddrPtr + 4) + wordSum(proto) + wordSum(l4len);
}

/** Pseudo-header sum for IPv6 (RFC 8200 §8.1): src and dst are the 32 bytes at srcAddrPtr. */
@inline export function pseudo6(srcAddrPtr: usize, nextHeader: u32, l4len: u32): u64 {
  return <u64>load<u32>(srcAddrPtr) + <u64>load<u32>(srcAddrPtr, 4) + <u64>load<u32>(srcAddrPtr, 8) +
    <u64>load<u32>(srcAddrPtr, 12) + <u64>load<u32>(srcAddrPtr, 16) + <u64>load<u32>(srcAddrPtr, 20) +
    <u64>load<u32>(srcAddrPtr, 24) + <u64>load<u32>(srcAddrPtr, 28) + wordSum(l4len >> 16) + wordSum(l4len & 0xffff) +
    wordSum(nextHeader);
}

/** RFC 1624 eqn. 3: the checksum field at p after a 16-bit field changed from oldWord to newWord (both as loaded). */
@inline export function updateField16(p: usize, oldWord: u16, newWord: u16): void {
  const hc = <u64>(~load<u16>(p) & 0xffff);
  store<u16>(p, <u16>~fold(hc + <u64>(~oldWord & 0xffff) + <u64>newWord));
}
