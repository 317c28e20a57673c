// RX: received UDP payloads (one datagram, or many glued by UDP_GRO) → validated, stripped inner IP packets for the TUN
// device, consecutive TCP segments of one flow (and, when the device takes them, equal-size datagrams of one UDP flow)
// coalesced into super-packets with a virtio_net_hdr (docs/architecture.md, GRO rules).
import { bytesEqual } from "../wire/bytes";
import { finish, fold, pseudo4, pseudo6, sumBytes, updateField16 } from "../wire/checksum";
import { Ethernet } from "../wire/ethernet";
import { IPv4 } from "../wire/ipv4";
import { IPv6 } from "../wire/ipv6";
import { Tcp, Udp } from "../wire/l4";
import { VnetHdr } from "../wire/vnet";
import { Vxlan } from "../wire/vxlan";
import { Config, inSubnet4, inSubnet6 } from "./config";
import { C, add, bump, bumpPeer } from "./counters";
import { Layout, OutPkt, RxMsg, SLOT_SIZE } from "./layout";
import { peerByAddress } from "./peers";

/** Smallest datagram worth a look: VXLAN + inner Ethernet + a minimal IPv4 header. */
const MIN_DATAGRAM: u32 = <u32>Vxlan.OVERHEAD + IPv4.MIN_HEADER_LEN;
/** The largest super-packet: IPv4 total length and IPv6 payload length are 16-bit. */
const MAX_SUPER: u32 = 65535;

// ---- output list ---------------------------------------------------------------------------------------------------------
// Every packet for the TUN device is a list of iovecs (rxIov, counts in rxOutCounts), and nothing is copied but headers.
// A packet delivered on its own stays where it arrived: the 22 bytes of VXLAN + Ethernet before the inner packet have been
// read by then, so the virtio_net_hdr is written over their tail and its one iovec points into the RX slot. A super-packet
// is its headers, copied into rxHdr, followed by every segment's payload where it arrived.

let outCount: u32 = 0;
let iovPos: u32 = 0;
let hdrPos: u32 = 0; // bytes of rxHdr in use

/** Appends a packet of one iovec, `len` bytes at p; false when the list is full. */
function describe(p: usize, len: u32): bool {
  if (outCount >= Layout.rxOutCap || iovPos >= Layout.rxIovCap) return false;
  store<u32>(Layout.rxOutCounts + <usize>outCount * OutPkt.STRIDE + OutPkt.IOV_COUNT, 1);
  Layout.setIov(Layout.rxIov, iovPos, p, len);
  outCount++;
  iovPos++;
  add(C.RX_BYTES_OUT, len);
  bump(C.RX_PACKETS_OUT);
  return true;
}

// ---- the open super-packet (GRO) -----------------------------------------------------------------------------------------
// A GRO candidate opens in place. When a second segment continues it, its headers move to rxHdr and its iovecs become
// [headers, payload 1, payload 2, …]; it is always the last packet of the list, so its iovecs stay consecutive.

/** Segments per super-packet, as the kernel's own GRO: a bound on the iovecs of one writev. */
const GRO_MAX_SEGMENTS: u32 = 64;

let gro: usize = 0; // the open candidate's virtio_net_hdr, 0 when none
let groPacket: u32 = 0; // its index in the output list
let groIov: u32 = 0; // its first iovec
let groCopied: bool = false; // headers moved to rxHdr
let groV6: bool = false;
let groUdp: bool = false; // a UDP super-packet (GSO_UDP_L4): no sequence numbers, equal-size datagrams
let groLen: u32 = 0; // IP bytes so far
let groFirstLen: u32 = 0; // IP bytes of the first segment, counted when it was described
let groHdrLen: u32 = 0; // IP + TCP header bytes
let groMss: u32 = 0; // payload of the first segment
let groNextSeq: u32 = 0;
let groSegments: u32 = 0;
let groClosed: bool = false; // PSH seen, or a short segment: nothing may follow

/** The pseudo-header sum of a TCP segment of `tcpLen` bytes (header included) in the packet at ip. */
function tcpPseudo(ip: usize, v6: bool, tcpLen: u32): u64 {
  return v6 ? pseudo6(ip + IPv6.SRC, IPv6.NH_TCP, tcpLen) : pseudo4(ip + IPv4.SRC, IPv4.PROTO_TCP, tcpLen);
}

function flushGro(): void {
  if (gro == 0) return;
  const vh = gro;
  const ip = gro + VnetHdr.LEN;
  gro = 0;
  if (groSegments == 1) {
    VnetHdr.writeNone(vh, VnetHdr.F_DATA_VALID);
    return;
  }
  const l4 = groV6 ? IPv6.HEADER_LEN : IPv4.headerLen(ip);
  const l4Len = groLen - l4;
  if (groV6) {
    IPv6.setPayloadLen(ip, groLen - IPv6.HEADER_LEN);
  } else {
    // Only the total length changed: RFC 1624 incremental update instead of re-summing the header.
    const oldWord = load<u16>(ip + IPv4.TOTAL_LEN);
    IPv4.setTotalLen(ip, groLen);
    updateField16(ip + IPv4.CHECKSUM, oldWord, load<u16>(ip + IPv4.TOTAL_LEN));
  }
  // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum; the kernel adds the rest from csum_start.
  if (groUdp) {
    Udp.setLength(ip + l4, l4Len);
    const ps = groV6 ? pseudo6(ip + IPv6.SRC, IPv6.NH_UDP, l4Len) : pseudo4(ip + IPv4.SRC, IPv4.PROTO_UDP, l4Len);
    store<u16>(ip + l4 + Udp.CHECKSUM, <u16>fold(ps));
    VnetHdr.write(vh, VnetHdr.F_NEEDS_CSUM, VnetHdr.GSO_UDP_L4, groHdrLen, groMss, l4, <u32>Udp.CHECKSUM);
  } else {
    store<u16>(ip + l4 + Tcp.CHECKSUM, <u16>fold(tcpPseudo(ip, groV6, l4Len)));
    VnetHdr.write(vh, VnetHdr.F_NEEDS_CSUM, groV6 ? VnetHdr.GSO_TCPV6 : VnetHdr.GSO_TCPV4, groHdrLen, groMss, l4, <u32>Tcp.CHECKSUM);
  }
  add(C.RX_BYTES_OUT, groLen - groFirstLen);
}

/** Appends one more iovec to the open super-packet. */
@inline function groAppend(p: usize, len: u32): void {
  Layout.setIov(Layout.rxIov, iovPos, p, len);
  iovPos++;
  const c = Layout.rxOutCounts + <usize>groPacket * OutPkt.STRIDE + OutPkt.IOV_COUNT;
  store<u32>(c, load<u32>(c) + 1);
}

/**
 * Moves the open candidate's headers into rxHdr, leaving its payload in place, so more payloads can follow it; false when
 * rxHdr or the iovec list has no room for a full super-packet.
 */
function copyGroOut(): bool {
  const hdr = VnetHdr.LEN + groHdrLen;
  if (hdrPos + hdr > Layout.rxHdrCap || iovPos + GRO_MAX_SEGMENTS > Layout.rxIovCap) return false;
  const dst = Layout.rxHdr + hdrPos;
  hdrPos += (hdr + 7) & ~7;
  memory.copy(dst, gro, hdr);
  Layout.setIov(Layout.rxIov, groIov, dst, hdr);
  groAppend(gro + hdr, groLen - groHdrLen);
  gro = dst;
  groCopied = true;
  return true;
}
/**
 * What every segment of a super-packet shares, TCP or UDP: an open candidate with room, the same header length, no more
 * payload than the first segment's, the same TOS/TTL/DF (IPv4) or first word and hop limit (IPv6), the same addresses and
 * the same ports.
 */
function continuesFlow(ip: usize, v6: bool, hdrLen: u32, payload: u32): bool {
  if (gro == 0 || groClosed || groV6 != v6 || groSegments >= GRO_MAX_SEGMENTS) return false;
  const open = gro + VnetHdr.LEN;
  if (groHdrLen != hdrLen || payload > groMss || groLen + payload > MAX_SUPER) return false;
  if (v6) {
    if (IPv6.firstWord(ip) != IPv6.firstWord(open) || IPv6.hopLimit(ip) != IPv6.hopLimit(open)) return false;
    if (!bytesEqual(ip + IPv6.SRC, open + IPv6.SRC, 32)) return false;
  } else {
    if (load<u8>(ip + IPv4.TOS) != load<u8>(open + IPv4.TOS) || load<u8>(ip + IPv4.TTL) != load<u8>(open + IPv4.TTL)) return false;
    if (IPv4.dontFragment(ip) != IPv4.dontFragment(open)) return false;
    if (load<u64>(ip + IPv4.SRC) != load<u64>(open + IPv4.SRC)) return false;
  }
  const l4 = v6 ? IPv6.HEADER_LEN : IPv4.MIN_HEADER_LEN;
  return load<u32>(ip + l4) == load<u32>(open + l4); // ports
}

/**
 * Whether the TCP segment at ip may extend the open super-packet: same addresses, ports, ACK, window and flags word
 * (but PSH), same options, same TOS/TTL/DF (IPv4) or first word and hop limit (IPv6), the next sequence number, and room.
 */
function continuesGro(ip: usize, v6: bool, l4: u32, th: u32, payload: u32): bool {
  if (groUdp || !continuesFlow(ip, v6, l4 + th, payload)) return false;
  const t = ip + l4;
  const ot = gro + VnetHdr.LEN + l4;
  if (Tcp.seq(t) != groNextSeq || load<u32>(t + Tcp.ACK) != load<u32>(ot + Tcp.ACK)) return false;
  if ((load<u32>(t + Tcp.DATA_OFF) | (Tcp.PSH << 8)) != (load<u32>(ot + Tcp.DATA_OFF) | (Tcp.PSH << 8))) return false;
  return bytesEqual(t + Tcp.MIN_HEADER_LEN, ot + Tcp.MIN_HEADER_LEN, th - Tcp.MIN_HEADER_LEN);
}

/**
 * Checks an inner TCP or UDP checksum, and finishes it when the sender left it unfinished: a kernel that hands checksums to
 * the NIC (CHECKSUM_PARTIAL) writes only the pseudo-header sum into the field, and over a veth underlay (kind, docker) no
 * NIC ever completes it — a kernel receiver knows, we only see bytes. Returns true when the checksum is (now) right.
 */
function checkL4(ip: usize, v6: bool, total: u32): bool {
  let l4: u32;
  let proto: u32;
  if (v6) {
    proto = IPv6.nextHeader(ip);
    l4 = IPv6.HEADER_LEN;
  } else {
    if (IPv4.isFragment(ip)) return false;
    proto = IPv4.protocol(ip);
    l4 = IPv4.headerLen(ip);
  }
  let field: u32;
  if (proto == IPv4.PROTO_TCP) field = <u32>Tcp.CHECKSUM;
  else if (proto == IPv4.PROTO_UDP) field = <u32>Udp.CHECKSUM;
  else return false;
  if (l4 + field + 2 > total) return false;
  const p = ip + l4;
  const len = total - l4;
  const stored = load<u16>(p + field);
  if (proto == IPv4.PROTO_UDP && stored == 0 && !v6) return false; // IPv4 UDP without a checksum
  const ps = v6 ? pseudo6(ip + IPv6.SRC, proto, len) : pseudo4(ip + IPv4.SRC, proto, len);
  const bytes = sumBytes(p, len, 0);
  if (finish(bytes + ps) == 0) return true;
  if (<u32>stored != fold(ps)) {
    bump(C.RX_L4_CHECKSUM_BAD);
    return false;
  }
  // The field held the pseudo-header sum P, so the bytes summed to data + P: the right value is ~(data + P) = ~bytes.
  const c = finish(bytes);
  store<u16>(p + field, proto == IPv4.PROTO_UDP && c == 0 ? 0xffff : c);
  bump(C.RX_L4_CHECKSUM_COMPLETED);
  return true;
}

/**
 * Where the L4 header of the packet at ip starts when it carries `proto` (IPv4's number, which IPv6 shares for TCP and
 * UDP) right after a plain IP header — no IPv4 options, no IPv6 extension headers, as GRO wants; 0 otherwise.
 */
function plainL4(ip: usize, v6: bool, proto: u32): u32 {
  if (v6) return IPv6.nextHeader(ip) == proto ? IPv6.HEADER_LEN : 0;
  return IPv4.protocol(ip) == proto && IPv4.headerLen(ip) == IPv4.MIN_HEADER_LEN ? IPv4.MIN_HEADER_LEN : 0;
}

/** A TCP segment that may take part in GRO: verified checksum, ACK or ACK|PSH, payload, no IP options or extensions. */
function groCandidate(ip: usize, v6: bool, total: u32, verified: bool): bool {
  const l4 = verified ? plainL4(ip, v6, IPv4.PROTO_TCP) : 0;
  if (l4 == 0 || l4 + Tcp.MIN_HEADER_LEN > total) return false;
  const t = ip + l4;
  const th = Tcp.headerLen(t);
  if (th < Tcp.MIN_HEADER_LEN || l4 + th >= total) return false;
  const f = Tcp.flags(t);
  return f == Tcp.ACK_FLAG || f == (Tcp.ACK_FLAG | Tcp.PSH);
}

/** A UDP datagram that may take part in GRO: verified checksum, a payload, no IP options or extensions. */
function udpGroCandidate(ip: usize, v6: bool, total: u32, verified: bool): bool {
  const l4 = verified && Config.udpGro ? plainL4(ip, v6, IPv4.PROTO_UDP) : 0;
  return l4 != 0 && l4 + Udp.HEADER_LEN < total;
}

/**
 * Delivers a UDP datagram as the next segment of the open UDP super-packet or as the first of a new one. Segments are equal
 * in size but the last, which may be shorter (as UDP_SEGMENT cuts them; gso_size is the first one's payload).
 */
function deliverUdp(ip: usize, v6: bool, total: u32): bool {
  const hdrLen: u32 = (v6 ? IPv6.HEADER_LEN : IPv4.MIN_HEADER_LEN) + Udp.HEADER_LEN;
  const payload = total - hdrLen;
  if (groUdp && continuesFlow(ip, v6, hdrLen, payload) && (groCopied || copyGroOut())) {
    groAppend(ip + hdrLen, payload);
    groLen += payload;
    groSegments++;
    if (payload < groMss) groClosed = true;
    bump(C.RX_COALESCED);
    return true;
  }
  flushGro();
  if (!describe(ip - VnetHdr.LEN, VnetHdr.LEN + total)) return false;
  open(ip, v6, total, hdrLen, payload, true);
  return true;
}

/** Makes the packet just described (the last of the list) the open candidate. */
function open(ip: usize, v6: bool, total: u32, hdrLen: u32, payload: u32, udp: bool): void {
  gro = ip - VnetHdr.LEN;
  groPacket = outCount - 1;
  groIov = iovPos - 1;
  groCopied = false;
  groV6 = v6;
  groUdp = udp;
  groLen = total;
  groFirstLen = total;
  groHdrLen = hdrLen;
  groMss = payload;
  groSegments = 1;
  groClosed = false;
}

/** Delivers one validated inner packet: appended to the open super-packet, opening a new one, or on its own. */
function deliver(ip: usize, v6: bool, total: u32, verified: bool): bool {
  if (!Config.vnetHdr) return describe(ip, total);
  if (udpGroCandidate(ip, v6, total, verified)) return deliverUdp(ip, v6, total);
  if (!groCandidate(ip, v6, total, verified)) {
    flushGro();
    VnetHdr.writeNone(ip - VnetHdr.LEN, verified ? VnetHdr.F_DATA_VALID : 0);
    return describe(ip - VnetHdr.LEN, VnetHdr.LEN + total);
  }
  const l4: u32 = v6 ? IPv6.HEADER_LEN : IPv4.MIN_HEADER_LEN;
  const t = ip + l4;
  const th = Tcp.headerLen(t);
  const payload = total - l4 - th;
  const flags = Tcp.flags(t);
  if (continuesGro(ip, v6, l4, th, payload) && (groCopied || copyGroOut())) {
    groAppend(t + th, payload);
    groLen += payload;
    groNextSeq += payload;
    groSegments++;
    if (payload < groMss || (flags & Tcp.PSH) != 0) groClosed = true;
    if ((flags & Tcp.PSH) != 0) {
      const open = gro + VnetHdr.LEN + l4;
      Tcp.setFlags(open, Tcp.flags(open) | Tcp.PSH);
    }
    bump(C.RX_COALESCED);
    return true;
  }
  flushGro();
  if (!describe(ip - VnetHdr.LEN, VnetHdr.LEN + total)) return false;
  open(ip, v6, total, l4 + th, payload, false);
  groNextSeq = Tcp.seq(t) + payload;
  groClosed = (flags & Tcp.PSH) != 0;
  return true;
}

/**
 * A TCP packet larger than the MTU is a TSO super-packet that reached us unsegmented: a sender's kernel VXLAN over a veth
 * underlay hands the whole GSO skb across, and a UDP socket receives it as one datagram (no UDP_GRO cmsg: it is not a
 * UDP_L4 GSO skb). Returns its IP + TCP header length when it is one the kernel can segment at our MTU, else 0.
 */
function tcpSuperHeaderLen(ip: usize, v6: bool, total: u32): u32 {
  let l4: u32;
  if (v6) {
    if (IPv6.nextHeader(ip) != IPv6.NH_TCP) return 0;
    l4 = IPv6.HEADER_LEN;
  } else {
    if (IPv4.protocol(ip) != IPv4.PROTO_TCP || IPv4.isFragment(ip)) return 0;
    l4 = IPv4.headerLen(ip);
  }
  if (l4 + Tcp.MIN_HEADER_LEN > total) return 0;
  const th = Tcp.headerLen(ip + l4);
  const hdrLen = l4 + th;
  if (th < Tcp.MIN_HEADER_LEN || hdrLen >= total || hdrLen + 1 > Config.mtu) return 0;
  return hdrLen;
}

/** Whether a TCP checksum field holds exactly the pseudo-header sum: a sender that left the checksum to offload. */
function tcpChecksumPartial(ip: usize, v6: bool, total: u32): bool {
  const l4: u32 = v6 ? IPv6.HEADER_LEN : IPv4.headerLen(ip);
  return <u32>load<u16>(ip + l4 + Tcp.CHECKSUM) == fold(tcpPseudo(ip, v6, total - l4));
}

/**
 * Passes a super-packet on as what it is — a GSO packet the kernel segments at the MTU — rather than as one oversized
 * packet a veth would drop. NEEDS_CSUM has the kernel compute every segment's checksum afresh, so the caller sends only
 * packets whose checksum was partial or verified: anything else would leave the kernel vouching for damaged bytes.
 */
function deliverTcpSuper(ip: usize, v6: bool, total: u32, hdrLen: u32): bool {
  flushGro();
  const l4: u32 = v6 ? IPv6.HEADER_LEN : IPv4.headerLen(ip);
  store<u16>(ip + l4 + Tcp.CHECKSUM, <u16>fold(tcpPseudo(ip, v6, total - l4)));
  const vh = ip - VnetHdr.LEN;
  VnetHdr.write(vh, VnetHdr.F_NEEDS_CSUM, v6 ? VnetHdr.GSO_TCPV6 : VnetHdr.GSO_TCPV4, hdrLen, Config.mtu - hdrLen, l4, <u32>Tcp.CHECKSUM);
  if (!describe(vh, VnetHdr.LEN + total)) return false;
  bump(C.RX_TCP_SUPER_IN);
  return true;
}

/**
 * Delivers a validated inner packet. A super-packet takes the GSO path only when its checksum is partial or verifies;
 * one that fails goes out like any packet with a bad checksum (counted by checkL4, no NEEDS_CSUM, no DATA_VALID), so
 * the kernel checks it and drops it. The inner checksum may be the only check these bytes had: kernel VXLAN with
 * noudpcsum sends IPv4 with a zero outer UDP checksum.
 */
function deliverInner(ip: usize, v6: bool, total: u32): bool {
  const superHdr = Config.vnetHdr && total > Config.mtu ? tcpSuperHeaderLen(ip, v6, total) : 0;
  if (superHdr == 0) return deliver(ip, v6, total, checkL4(ip, v6, total));
  if (tcpChecksumPartial(ip, v6, total) || checkL4(ip, v6, total)) return deliverTcpSuper(ip, v6, total, superHdr);
  return deliver(ip, v6, total, false);
}

/** Validates one datagram (docs/wire.md, ingress filter) and delivers its inner packet. Returns 0 or a drop counter id. */
function decapOne(d: usize, len: u32, peer: i32): i32 {
  if (peer < 0) return C.RX_DROP_UNKNOWN_PEER;
  if (len < MIN_DATAGRAM) return C.RX_DROP_TRUNCATED;
  if (Vxlan.flagsWord(d) != Vxlan.FLAG_VNI_VALID << 24 || load<u8>(d + 7) != 0) return C.RX_DROP_BAD_VXLAN;
  if (Vxlan.vni(d) != Config.vni) return C.RX_DROP_WRONG_VNI;
  const eth = d + Vxlan.HEADER_LEN;
  if (Ethernet.loadMac(eth + Ethernet.DST) != Config.vtepMac) return C.RX_DROP_BAD_INNER_MAC;
  const ip = d + Vxlan.OVERHEAD;
  const avail = len - <u32>Vxlan.OVERHEAD;
  const et = Ethernet.ethertype(eth);
  let total: u32;
  let v6: bool;
  if (et == Ethernet.TYPE_IPV4) {
    total = IPv4.check(ip, avail);
    if (total == 0) return C.RX_DROP_MALFORMED_INNER;
    if (!IPv4.headerChecksumOk(ip)) return C.RX_DROP_BAD_IP_CHECKSUM;
    if (!inSubnet4(IPv4.dst(ip))) return C.RX_DROP_NOT_LOCAL;
    v6 = false;
  } else if (et == Ethernet.TYPE_IPV6) {
    total = IPv6.check(ip, avail);
    if (total == 0) return C.RX_DROP_MALFORMED_INNER;
    if (!inSubnet6(ip + IPv6.DST)) return C.RX_DROP_NOT_LOCAL;
    v6 = true;
  } else {
    return C.RX_DROP_BAD_ETHERTYPE;
  }
  if (!deliverInner(ip, v6, total)) return C.RX_DROP_NO_SPACE;
  bumpPeer(peer, C.PEER_RX_PACKETS, len);
  return 0;
}

/**
 * Decapsulates `count` received messages from the RX slots (descriptors in rxInDesc). Returns the number of packets for the
 * TUN device: their iovec counts in rxOutCounts, their iovecs one after another in rxIov.
 */
export function decap(count: u32): u32 {
  outCount = 0;
  iovPos = 0;
  hdrPos = 0;
  gro = 0;
  const n = min(count, Layout.rxSlots);
  for (let m: u32 = 0; m < n; m++) {
    const desc = Layout.rxInDesc + <usize>m * RxMsg.STRIDE;
    const base = Layout.rxIn + <usize>m * SLOT_SIZE;
    const len = min(load<u32>(desc + RxMsg.LENGTH), <u32>SLOT_SIZE);
    if (len == 0) {
      // An empty datagram is a datagram received like any other: counted, so that received = passed + dropped.
      bump(C.RX_DATAGRAMS_IN);
      bump(C.RX_DROP_EMPTY);
      continue;
    }
    let seg = load<u32>(desc + RxMsg.SEG_SIZE);
    if (seg == 0 || seg > len) seg = len;
    const peer = peerByAddress(desc + RxMsg.SRC_ADDR);
    for (let off: u32 = 0; off < len; off += seg) {
      bump(C.RX_DATAGRAMS_IN);
      const r = decapOne(base + off, min(seg, len - off), peer);
      bump(r != 0 ? r : C.RX_PASSED);
    }
  }
  flushGro();
  return outCount;
}
