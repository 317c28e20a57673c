// IPv4 header (RFC 791), options included.
import { be16, setBe16 } from "./bytes";
import { finish, sumBytes } from "./checksum";

export namespace IPv4 {
  export const VER_IHL: usize = 0;
  export const TOS: usize = 1;
  export const TOTAL_LEN: usize = 2;
  export const IDENT: usize = 4;
  export const FLAGS_FRAG: usize = 6;
  export const TTL: usize = 8;
  export const PROTOCOL: usize = 9;
  export const CHECKSUM: usize = 10;
  export const SRC: usize = 12;
  export const DST: usize = 16;
  export const MIN_HEADER_LEN: u32 = 20;

  export const FLAG_DF: u32 = 0x4000;
  export const FLAG_MF: u32 = 0x2000;
  export const FRAG_OFFSET_MASK: u32 = 0x1fff;

  export const PROTO_ICMP: u32 = 1;
  export const PROTO_TCP: u32 = 6;
  export const PROTO_UDP: u32 = 17;

  @inline export function version(p: usize): u32 { return load<u8>(p + VER_IHL) >> 4; }
  @inline export function headerLen(p: usize): u32 { return (<u32>load<u8>(p + VER_IHL) & 0xf) << 2; }
  @inline export function totalLen(p: usize): u32 { return be16(p + TOTAL_LEN); }
  @inline export function setTotalLen(p: usize, v: u32): void { setBe16(p + TOTAL_LEN, v); }
  @inline export function ident(p: usize): u32 { return be16(p + IDENT); }
  @inline export function setIdent(p: usize, v: u32): void { setBe16(p + IDENT, v); }
  @inline export function flagsFrag(p: usize): u32 { return be16(p + FLAGS_FRAG); }
  @inline export function dontFragment(p: usize): bool { return (flagsFrag(p) & FLAG_DF) != 0; }
  /** True for any fragment: more fragments follow, or this one is not the first. */
  @inline export function isFragment(p: usize): bool { return (flagsFrag(p) & (FLAG_MF | FRAG_OFFSET_MASK)) != 0; }
  @inline export function isLaterFragment(p: usize): bool { return (flagsFrag(p) & FRAG_OFFSET_MASK) != 0; }
  @inline export function protocol(p: usize): u32 { return load<u8>(p + PROTOCOL); }
  /** Source and destination in host order (a.b.c.d = a<<24 | ... | d). */
  @inline export function src(p: usize): u32 { return bswap<u32>(load<u32>(p + SRC)); }
  @inline export function dst(p: usize): u32 { return bswap<u32>(load<u32>(p + DST)); }

  @inline export function headerChecksumOk(p: usize): bool {
    return finish(sumBytes(p, headerLen(p), 0)) == 0;
  }
  @inline export function fillHeaderChecksum(p: usize): void {
    store<u16>(p + CHECKSUM, 0);
    store<u16>(p + CHECKSUM, finish(sumBytes(p, headerLen(p), 0)));
  }

  /**
   * Validates a header at p with `avail` bytes available: version, header length, total length within what arrived.
   * Returns the total length (the packet's real length: link padding after it is not part of it), or 0 when invalid.
   */
  export function check(p: usize, avail: u32): u32 {
    if (avail < MIN_HEADER_LEN) return 0;
    if (version(p) != 4) return 0;
    const hl = headerLen(p);
    const tl = totalLen(p);
    if (hl < MIN_HEADER_LEN || tl < hl || tl > avail) return 0;
    return tl;
  }

  /** Writes a 20-byte header with no options; the checksum is filled in. */
  export function write(p: usize, totalLen: u32, proto: u32, ttl: u32, srcNet: u32, dstNet: u32): void {
    store<u8>(p + VER_IHL, 0x45);
    store<u8>(p + TOS, 0);
    setBe16(p + TOTAL_LEN, totalLen);
    setBe16(p + IDENT, 0);
    setBe16(p + FLAGS_FRAG, 0);
    store<u8>(p + TTL, <u8>ttl);
    store<u8>(p + PROTOCOL, <u8>proto);
    store<u32>(p + SRC, srcNet);
    store<u32>(p + DST, dstNet);
    fillHeaderChecksum(p);
  }
}
