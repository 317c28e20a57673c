// A parsed view of one packet (smoltcp's "Repr"), for tests and diagnostics; the packet path never calls this.
// Fills a record of u32 fields at `out`; returns the number of fields filled, or 0 when the packet does not parse.
import { be16 } from "../wire/bytes";
import { IPv4 } from "../wire/ipv4";
import { IPv6 } from "../wire/ipv6";
import { Tcp, Udp } from "../wire/l4";
import { VnetHdr } from "../wire/vnet";

export namespace Inspect {
  export const VERSION: i32 = 0;
  export const L3_LEN: i32 = 1; // IPv4 header with options; IPv6 fixed header + extension headers
  export const TOTAL_LEN: i32 = 2;
  export const L4_PROTO: i32 = 3;
  export const FRAGMENT: i32 = 4; // 0 none, 1 first fragment, 2 later fragment
  export const SRC_PORT: i32 = 5;
  export const DST_PORT: i32 = 6;
  export const TCP_SEQ: i32 = 7;
  export const TCP_ACK: i32 = 8;
  export const TCP_FLAGS: i32 = 9;
  export const TCP_HDR_LEN: i32 = 10;
  export const UDP_LEN: i32 = 11;
  export const IP_CSUM_OK: i32 = 12;
  export const VNET_FLAGS: i32 = 13;
  export const VNET_GSO_TYPE: i32 = 14;
  export const VNET_GSO_SIZE: i32 = 15;
  export const VNET_CSUM_START: i32 = 16;
  export const VNET_CSUM_OFFSET: i32 = 17;
  export const FIELDS: i32 = 18;
}

@inline function put(out: usize, field: i32, v: u32): void {
  store<u32>(out + (<usize>field << 2), v);
}

export function inspectPacket(p: usize, len: u32, withVnet: bool, out: usize): i32 {
  memory.fill(out, 0, <usize>Inspect.FIELDS << 2);
  if (withVnet) {
    if (len < VnetHdr.LEN) return 0;
    put(out, Inspect.VNET_FLAGS, VnetHdr.flags(p));
    put(out, Inspect.VNET_GSO_TYPE, VnetHdr.gsoType(p));
    put(out, Inspect.VNET_GSO_SIZE, VnetHdr.gsoSize(p));
    put(out, Inspect.VNET_CSUM_START, VnetHdr.csumStart(p));
    put(out, Inspect.VNET_CSUM_OFFSET, VnetHdr.csumOffset(p));
    p += VnetHdr.LEN;
    len -= VnetHdr.LEN;
  }
  if (len == 0) return 0;
  let total: u32 = 0;
  let l4: u32 = 0;
  let proto: u32 = 0;
  let fragment: u32 = 0;
  const version = <u32>load<u8>(p) >> 4;
  if (version == 4) {
    total = IPv4.check(p, len);
    if (total == 0) return 0;
    l4 = IPv4.headerLen(p);
    proto = IPv4.protocol(p);
    fragment = IPv4.isLaterFragment(p) ? 2 : IPv4.isFragment(p) ? 1 : 0;
    put(out, Inspect.IP_CSUM_OK, IPv4.headerChecksumOk(p) ? 1 : 0);
  } else if (version == 6) {
    total = IPv6.check(p, len);
    if (total == 0 || !IPv6.walk(p, total)) return 0;
    l4 = IPv6.l4Offset;
    proto = IPv6.l4Proto;
    fragment = IPv6.laterFragment ? 2 : IPv6.isFragment ? 1 : 0;
    put(out, Inspect.IP_CSUM_OK, 1);
  } else {
    return 0;
  }
  put(out, Inspect.VERSION, version);
  put(out, Inspect.L3_LEN, l4);
  put(out, Inspect.TOTAL_LEN, total);
  put(out, Inspect.L4_PROTO, proto);
  put(out, Inspect.FRAGMENT, fragment);
  if (fragment == 2) return Inspect.FIELDS;
  const t = p + l4;
  if ((proto == IPv4.PROTO_TCP || proto == IPv4.PROTO_UDP) && l4 + 4 <= total) {
    put(out, Inspect.SRC_PORT, be16(t));
    put(out, Inspect.DST_PORT, be16(t + 2));
  }
  if (proto == IPv4.PROTO_TCP && l4 + Tcp.MIN_HEADER_LEN <= total) {
    put(out, Inspect.TCP_SEQ, Tcp.seq(t));
    put(out, Inspect.TCP_ACK, Tcp.ack(t));
    put(out, Inspect.TCP_FLAGS, Tcp.flags(t));
    put(out, Inspect.TCP_HDR_LEN, Tcp.headerLen(t));
  }
  if (proto == IPv4.PROTO_UDP && l4 + Udp.HEADER_LEN <= total) put(out, Inspect.UDP_LEN, Udp.length(t));
  return Inspect.FIELDS;
}
