// murmur3's 64-bit finaliser: every input bit reaches the low bits that hash tables and port ranges are indexed by.
@inline export function mix64(h: u64): u32 {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccd;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53;
  h ^= h >> 33;
  return <u32>h;
}
