// Upper-layer headers: UDP (RFC 768), TCP (RFC 793), ICMPv4 (RFC 792), ICMPv6 (RFC 4443).
import { be16, be32, setBe16, setBe32 } from "./bytes";

export namespace Udp {
  export const SRC_PORT: usize = 0;
  export const DST_PORT: usize = 2;
  export const LENGTH: usize = 4;
  export const CHECKSUM: usize = 6;
  export const HEADER_LEN: u32 = 8;

  @inline export function srcPort(p: usize): u32 { return be16(p + SRC_PORT); }
  @inline export function dstPort(p: usize): u32 { return be16(p + DST_PORT); }
  @inline export function length(p: usize): u32 { return be16(p + LENGTH); }
  @inline export function setLength(p: usize, v: u32): void { setBe16(p + LENGTH, v); }
}

export namespace Tcp {
  export const SRC_PORT: usize = 0;
  export const DST_PORT: usize = 2;
  export const SEQ: usize = 4;
  export const ACK: usize = 8;
  export const DATA_OFF: usize = 12;
  export const FLAGS: usize = 13;
  export const WINDOW: usize = 14;
  export const CHECKSUM: usize = 16;
  export const URGENT: usize = 18;
  export const MIN_HEADER_LEN: u32 = 20;

  export const FIN: u32 = 0x01;
  export const SYN: u32 = 0x02;
  export const RST: u32 = 0x04;
  export const PSH: u32 = 0x08;
  export const ACK_FLAG: u32 = 0x10;
  export const URG: u32 = 0x20;
  export const ECE: u32 = 0x40;
  export const CWR: u32 = 0x80;

  @inline export function headerLen(p: usize): u32 { return (<u32>load<u8>(p + DATA_OFF) >> 4) << 2; }
  @inline export function flags(p: usize): u32 { return load<u8>(p + FLAGS); }
  @inline export function setFlags(p: usize, v: u32): void { store<u8>(p + FLAGS, <u8>v); }
  @inline export function seq(p: usize): u32 { return be32(p + SEQ); }
  @inline export function setSeq(p: usize, v: u32): void { setBe32(p + SEQ, v); }
  @inline export function ack(p: usize): u32 { return be32(p + ACK); }
  @inline export function window(p: usize): u32 { return be16(p + WINDOW); }
}

export namespace Icmp {
  export const TYPE: usize = 0;
  export const CODE: usize = 1;
  export const CHECKSUM: usize = 2;
  /** Bytes 4..8: rest-of-header (echo id/seq, unused + next-hop MTU for "fragmentation needed", MTU for "packet too big"). */
  export const REST: usize = 4;
  export const HEADER_LEN: u32 = 8;

  export const V4_DEST_UNREACHABLE: u32 = 3;
  export const V4_CODE_FRAG_NEEDED: u32 = 4;
  export const V6_PACKET_TOO_BIG: u32 = 2;

  @inline export function type(p: usize): u32 { return load<u8>(p + TYPE); }
  @inline export function code(p: usize): u32 { return load<u8>(p + CODE); }
  /** Type 3 code 4 carries the next-hop MTU in the low 16 bits of the rest-of-header (RFC 1191). */
  @inline export function setNextHopMtu(p: usize, mtu: u32): void { setBe16(p + REST, 0); setBe16(p + REST + 2, mtu); }
  /** ICMPv6 Packet Too Big carries a 32-bit MTU (RFC 4443 §3.2). */
  @inline export function setMtu32(p: usize, mtu: u32): void { setBe32(p + REST, mtu); }
}
