// Big-endian (network order) loads and stores. WebAssembly is little-endian, so every multi-byte wire field goes through here.

@inline export function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

@inline export function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

@inline export function setBe16(p: usize, v: u32): void {
  store<u16>(p, bswap<u16>(<u16>v));
}

@inline export function setBe32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}

/** True when the `len` bytes at a and b are equal. Only for short fields (addresses, MACs, options). */
export function bytesEqual(a: usize, b: usize, len: usize): bool {
  let i: usize = 0;
  for (; i + 8 <= len; i += 8) {
    if (load<u64>(a + i) != load<u64>(b + i)) return false;
  }
  for (; i < len; i++) {
    if (load<u8>(a + i) != load<u8>(b + i)) return false;
  }
  return true;
}
