// Ethernet II header (IEEE 802.3): the inner frame of every VXLAN packet.
import { be16, setBe16 } from "./bytes";

export namespace Ethernet {
  export const DST: usize = 0;
  export const SRC: usize = 6;
  export const ETHERTYPE: usize = 12;
  export const HEADER_LEN: usize = 14;

  export const TYPE_IPV4: u32 = 0x0800;
  export const TYPE_IPV6: u32 = 0x86dd;
  export const TYPE_ARP: u32 = 0x0806;

  @inline export function ethertype(p: usize): u32 { return be16(p + ETHERTYPE); }
  @inline export function setEthertype(p: usize, v: u32): void { setBe16(p + ETHERTYPE, v); }

  /** A MAC address kept in the low 48 bits of a u64 exactly as its 6 bytes sit in memory (little-endian load). */
  @inline export function loadMac(p: usize): u64 {
    return <u64>load<u32>(p) | (<u64>load<u16>(p + 4) << 32);
  }
  @inline export function storeMac(p: usize, mac: u64): void {
    store<u32>(p, <u32>mac);
    store<u16>(p + 4, <u16>(mac >> 32));
  }
}
