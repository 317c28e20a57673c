// struct virtio_net_hdr (include/uapi/linux/virtio_net.h), 10 bytes, little-endian: the metadata a TUN device with
// IFF_VNET_HDR puts before every packet (offload requests on read, offload promises on write).

export namespace VnetHdr {
  export const FLAGS: usize = 0;
  export const GSO_TYPE: usize = 1;
  export const HDR_LEN: usize = 2;
  export const GSO_SIZE: usize = 4;
  export const CSUM_START: usize = 6;
  export const CSUM_OFFSET: usize = 8;
  export const LEN: u32 = 10;

  export const F_NEEDS_CSUM: u32 = 1;
  export const F_DATA_VALID: u32 = 2;

  export const GSO_NONE: u32 = 0;
  export const GSO_TCPV4: u32 = 1;
  export const GSO_UDP: u32 = 3;
  export const GSO_TCPV6: u32 = 4;
  export const GSO_UDP_L4: u32 = 5;
  export const GSO_ECN: u32 = 0x80;

  @inline export function flags(p: usize): u32 { return load<u8>(p + FLAGS); }
  @inline export function gsoType(p: usize): u32 { return load<u8>(p + GSO_TYPE); }
  @inline export function gsoSize(p: usize): u32 { return load<u16>(p + GSO_SIZE); }
  @inline export function csumStart(p: usize): u32 { return load<u16>(p + CSUM_START); }
  @inline export function csumOffset(p: usize): u32 { return load<u16>(p + CSUM_OFFSET); }

  export function write(p: usize, flags: u32, gsoType: u32, hdrLen: u32, gsoSize: u32, csumStart: u32, csumOffset: u32): void {
    store<u8>(p + FLAGS, <u8>flags);
    store<u8>(p + GSO_TYPE, <u8>gsoType);
    store<u16>(p + HDR_LEN, <u16>hdrLen);
    store<u16>(p + GSO_SIZE, <u16>gsoSize);
    store<u16>(p + CSUM_START, <u16>csumStart);
    store<u16>(p + CSUM_OFFSET, <u16>csumOffset);
  }

  @inline export function writeNone(p: usize, flags: u32): void {
    store<u64>(p, <u64>flags);
    store<u16>(p + 8, 0);
  }
}
