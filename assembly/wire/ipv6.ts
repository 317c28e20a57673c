// IPv6 header (RFC 8200) and the walk over extension headers that finds the upper-layer header.
import { be16, be32, setBe16, setBe32 } from "./bytes";

export namespace IPv6 {
  export const VER_TC_FLOW: usize = 0;
  export const PAYLOAD_LEN: usize = 4;
  export const NEXT_HEADER: usize = 6;
  export const HOP_LIMIT: usize = 7;
  export const SRC: usize = 8;
  export const DST: usize = 24;
  export const HEADER_LEN: u32 = 40;

  export const NH_HOP_BY_HOP: u32 = 0;
  export const NH_TCP: u32 = 6;
  export const NH_UDP: u32 = 17;
  export const NH_ROUTING: u32 = 43;
  export const NH_FRAGMENT: u32 = 44;
  export const NH_ESP: u32 = 50;
  export const NH_AH: u32 = 51;
  export const NH_ICMPV6: u32 = 58;
  export const NH_NONE: u32 = 59;
  export const NH_DEST_OPTS: u32 = 60;

  /** Extension headers followed before giving up; real traffic carries one or two. */
  const MAX_EXT_HEADERS: i32 = 8;

  @inline export function version(p: usize): u32 { return load<u8>(p) >> 4; }
  @inline export function payloadLen(p: usize): u32 { return be16(p + PAYLOAD_LEN); }
  @inline export function setPayloadLen(p: usize, v: u32): void { setBe16(p + PAYLOAD_LEN, v); }
  @inline export function nextHeader(p: usize): u32 { return load<u8>(p + NEXT_HEADER); }
  @inline export function hopLimit(p: usize): u32 { return load<u8>(p + HOP_LIMIT); }
  /** Version, traffic class and flow label: the first word, which must match for two segments to coalesce. */
  @inline export function firstWord(p: usize): u32 { return be32(p + VER_TC_FLOW); }

  /** Validates the fixed header with `avail` bytes available; returns the packet's total length or 0 when invalid. */
  export function check(p: usize, avail: u32): u32 {
    if (avail < HEADER_LEN || version(p) != 6) return 0;
    const total = HEADER_LEN + payloadLen(p);
    if (total > avail) return 0;
    return total;
  }

  // Result of the last `walk`: where the upper-layer header starts and which protocol it is.
  export let l4Offset: u32 = 0;
  export let l4Proto: u32 = 0;
  /** True when a Fragment header with a non-zero offset was seen: there is no upper-layer header in this packet. */
  export let laterFragment: bool = false;
  export let isFragment: bool = false;

  /**
   * Follows extension headers from the fixed header of a packet of `total` bytes. Returns false when a header runs past the
   * packet or the chain is too long; on success l4Offset/l4Proto name the first non-extension header.
   */
  export function walk(p: usize, total: u32): bool {
    let nh = nextHeader(p);
    let off: u32 = HEADER_LEN;
    laterFragment = false;
    isFragment = false;
    for (let i = 0; i < MAX_EXT_HEADERS; i++) {
      if (nh == NH_HOP_BY_HOP || nh == NH_ROUTING || nh == NH_DEST_OPTS) {
        if (off + 8 > total) return false;
        const len = (<u32>load<u8>(p + off + 1) + 1) << 3;
        nh = load<u8>(p + off);
        off += len;
      } else if (nh == NH_FRAGMENT) {
        if (off + 8 > total) return false;
        const fo = be16(p + off + 2);
        isFragment = true;
        if ((fo & 0xfff8) != 0) laterFragment = true;
        nh = load<u8>(p + off);
        off += 8;
      } else if (nh == NH_AH) {
        if (off + 8 > total) return false;
        const len = (<u32>load<u8>(p + off + 1) + 2) << 2;
        nh = load<u8>(p + off);
        off += len;
      } else {
        if (off > total) return false;
        l4Offset = off;
        l4Proto = nh;
        return true;
      }
    }
    return false;
  }

  /** Writes a fixed header with traffic class and flow label 0. */
  export function write(p: usize, payloadLen: u32, nextHeader: u32, hopLimit: u32): void {
    setBe32(p + VER_TC_FLOW, 0x60000000);
    setBe16(p + PAYLOAD_LEN, payloadLen);
    store<u8>(p + NEXT_HEADER, <u8>nextHeader);
    store<u8>(p + HOP_LIMIT, <u8>hopLimit);
  }
}
