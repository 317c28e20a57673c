// ICMP errors the core answers with itself: IPv4 "fragmentation needed" (RFC 792/1191) and ICMPv6 "packet too big"
// (RFC 4443 §3.2), for DF packets that cannot cross the underlay. They go back into the TUN device, towards the sender.
import { finish, pseudo6, sumBytes } from "../wire/checksum";
import { IPv4 } from "../wire/ipv4";
import { IPv6 } from "../wire/ipv6";
import { Icmp } from "../wire/l4";
import { VnetHdr } from "../wire/vnet";
import { Config } from "./config";
import { Layout, OutPkt } from "./layout";
import { C, bump } from "./counters";

/** RFC 1812 §4.3.2.3: an IPv4 error quotes as much as fits in 576 bytes. */
const QUOTE4_MAX: u32 = 576 - 20 - 8;
/** RFC 4443 §2.4(c): an ICMPv6 error fits in the minimum IPv6 MTU. */
const QUOTE6_MAX: u32 = 1280 - 40 - 8;

export let replyCount: u32 = 0;
let replyPos: u32 = 0;

export function resetReplies(): void {
  replyCount = 0;
  replyPos = 0;
}

/** Room for one reply of `len` bytes (virtio_net_hdr included), recorded in the reply list (one iovec); 0 when full. */
function reserveReply(len: u32): usize {
  if (replyCount >= Layout.txReplyCap || replyPos + len > Layout.txRepliesCap) return 0;
  const p = Layout.txReplies + replyPos;
  Layout.setIov(Layout.txReplyIov, replyCount, p, len);
  store<u32>(Layout.txReplyCounts + <usize>replyCount * OutPkt.STRIDE + OutPkt.IOV_COUNT, 1);
  replyPos += (len + 7) & ~7;
  replyCount++;
  return p;
}

/** ICMP errors never answer ICMP errors (RFC 1122 §3.2.2, RFC 4443 §2.4(e)). */
function isIcmpError4(ip: usize, total: u32): bool {
  if (IPv4.protocol(ip) != IPv4.PROTO_ICMP) return false;
  const hl = IPv4.headerLen(ip);
  if (hl + 1 > total) return true;
  const t = Icmp.type(ip + hl);
  return t != 0 && t != 8 && t != 13 && t != 14;
}

export function fragmentationNeeded(ip: usize, total: u32): void {
  if (Config.icmpSource4 == 0 || IPv4.isLaterFragment(ip) || isIcmpError4(ip, total)) return;
  const quote = min(total, QUOTE4_MAX);
  const len = 20 + 8 + quote;
  const vnet: u32 = Config.vnetHdr ? VnetHdr.LEN : 0;
  let p = reserveReply(vnet + len);
  if (p == 0) return;
  if (vnet) VnetHdr.writeNone(p, 0);
  p += vnet;
  IPv4.write(p, len, IPv4.PROTO_ICMP, 64, Config.icmpSource4, load<u32>(ip + IPv4.SRC));
  const icmp = p + 20;
  store<u8>(icmp + Icmp.TYPE, <u8>Icmp.V4_DEST_UNREACHABLE);
  store<u8>(icmp + Icmp.CODE, <u8>Icmp.V4_CODE_FRAG_NEEDED);
  store<u16>(icmp + Icmp.CHECKSUM, 0);
  Icmp.setNextHopMtu(icmp, Config.mtu);
  memory.copy(icmp + 8, ip, quote);
  store<u16>(icmp + Icmp.CHECKSUM, finish(sumBytes(icmp, 8 + quote, 0)));
  bump(C.TX_ICMP_GENERATED);
}

export function packetTooBig(ip: usize, total: u32, l4Proto: u32, l4Off: u32): void {
  if (load<u64>(Config.icmpSource6Ptr) == 0 && load<u64>(Config.icmpSource6Ptr + 8) == 0) return;
  if (l4Proto == IPv6.NH_ICMPV6 && (l4Off >= total || load<u8>(ip + l4Off) < 128)) return;
  const quote = min(total, QUOTE6_MAX);
  const len = 40 + 8 + quote;
  const vnet: u32 = Config.vnetHdr ? VnetHdr.LEN : 0;
  let p = reserveReply(vnet + len);
  if (p == 0) return;
  if (vnet) VnetHdr.writeNone(p, 0);
  p += vnet;
  IPv6.write(p, 8 + quote, IPv6.NH_ICMPV6, 64);
  memory.copy(p + IPv6.SRC, Config.icmpSource6Ptr, 16);
  memory.copy(p + IPv6.DST, ip + IPv6.SRC, 16);
  const icmp = p + 40;
  store<u8>(icmp + Icmp.TYPE, <u8>Icmp.V6_PACKET_TOO_BIG);
  store<u8>(icmp + Icmp.CODE, 0);
  store<u16>(icmp + Icmp.CHECKSUM, 0);
  Icmp.setMtu32(icmp, Config.mtu);
  memory.copy(icmp + 8, ip, quote);
  store<u16>(icmp + Icmp.CHECKSUM, finish(sumBytes(icmp, 8 + quote, pseudo6(p + IPv6.SRC, IPv6.NH_ICMPV6, 8 + quote))));
  bump(C.TX_ICMP_GENERATED);
}
