// VXLAN header (RFC 7348 §5): 8 bytes, flags with the I bit (0x08), 24-bit VNI.
import { be32, setBe32 } from "./bytes";

export namespace Vxlan {
  export const FLAGS: usize = 0;
  export const VNI: usize = 4;
  export const HEADER_LEN: usize = 8;
  /** VXLAN + inner Ethernet: what encapsulation prepends to every inner IP packet. */
  export const OVERHEAD: usize = 8 + 14;

  export const FLAG_VNI_VALID: u32 = 0x08;

  @inline export function flags(p: usize): u32 { return load<u8>(p + FLAGS); }
  /** The word of flags and reserved bits; a valid header has exactly the I bit set here. */
  @inline export function flagsWord(p: usize): u32 { return be32(p + FLAGS); }
  @inline export function vni(p: usize): u32 { return be32(p + VNI) >> 8; }

  @inline export function write(p: usize, vni: u32): void {
    setBe32(p + FLAGS, FLAG_VNI_VALID << 24);
    setBe32(p + VNI, vni << 8);
  }
}
