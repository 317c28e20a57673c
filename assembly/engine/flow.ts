// Flow hashing for the outer UDP source port (RFC 7348 §5: entropy from the inner headers, for ECMP in the underlay).
import { IPv4 } from "../wire/ipv4";
import { IPv6 } from "../wire/ipv6";
import { Config } from "./config";
import { mix64 } from "./mix";


/** Hash of addresses, protocol and (when present) the first 4 bytes of the L4 header: both ports for TCP and UDP. */
export function flowHash4(ip: usize, l4: usize, hasPorts: bool): u32 {
  let h = <u64>load<u32>(ip + IPv4.SRC) | (<u64>load<u32>(ip + IPv4.DST) << 32);
  h ^= <u64>IPv4.protocol(ip) << 17;
  if (hasPorts) h += <u64>load<u32>(l4) * 0x9e3779b97f4a7c15;
  return mix64(h);
}

export function flowHash6(ip: usize, proto: u32, l4: usize, hasPorts: bool): u32 {
  let h = load<u64>(ip + IPv6.SRC) ^ load<u64>(ip + IPv6.SRC + 8) * 0x9e3779b97f4a7c15;
  h ^= (load<u64>(ip + IPv6.DST) ^ load<u64>(ip + IPv6.DST + 8)) * 0xc2b2ae3d27d4eb4f;
  h ^= <u64>proto << 17;
  if (hasPorts) h += <u64>load<u32>(l4) * 0x9e3779b97f4a7c15;
  return mix64(h);
}

@inline export function sourcePort(hash: u32): u32 {
  return Config.sportBase + <u32>((<u64>hash * <u64>Config.sportCount) >> 32);
}
