// TX: inner IP packets read from the TUN device → VXLAN datagrams (VXLAN + inner Ethernet + inner packet) described by
// iovecs for UDP_SEGMENT sends: groups of equal-stride datagrams (the last may be shorter), one peer and one source port
// per group. Only headers are written; payloads stay where the TUN read put them.
import { finish, pseudo4, pseudo6, sumBytes } from "../wire/checksum";
import { Ethernet } from "../wire/ethernet";
import { IPv4 } from "../wire/ipv4";
import { IPv6 } from "../wire/ipv6";
import { Tcp, Udp } from "../wire/l4";
import { VnetHdr } from "../wire/vnet";
import { Vxlan } from "../wire/vxlan";
import { lookup4 } from "../lpm/ipv4";
import { lookup6 } from "../lpm/ipv6";
import { Config, inSubnet4, inSubnet6 } from "./config";
import { C, add, bump, bumpPeer } from "./counters";
import { flowHash4, flowHash6, sourcePort } from "./flow";
import { fragmentationNeeded, packetTooBig, resetReplies } from "./icmp";
import { Layout, SLOT_SIZE, TX_HEADROOM, TxGroup } from "./layout";
import { peerMac, peerValid } from "./peers";

// ---- the emitter: where the next datagram goes -------------------------------------------------------------------------
// A datagram is a list of iovecs: a whole packet is encapsulated in place (its VXLAN and Ethernet headers go into the
// headroom in front of it, over its virtio_net_hdr) and is one iovec; a segment of a super-packet is its headers, written
// into txHdr, and its payload, left in the slot. Groups are consecutive datagrams, so a group's iovecs are consecutive too.

let iovCount: u32 = 0;
let hdrPos: u32 = 0;
let groupCount: u32 = 0;
let group: usize = 0; // descriptor of the open group, 0 when none
let groupPeer: i32 = -1;
let groupSport: u32 = 0;
let groupStride: u32 = 0;
let groupSegs: u32 = 0;
let groupBytes: u32 = 0;
let groupClosed: bool = false; // a shorter datagram ended it

function resetEmitter(): void {
  iovCount = 0;
  hdrPos = 0;
  groupCount = 0;
  group = 0;
}

/** True when `segments` more datagrams of `iovs` iovecs each, with `hdrBytes` of headers in txHdr, are sure to fit. */
@inline function hasRoom(segments: u32, iovs: u32, hdrBytes: u32): bool {
  return groupCount + segments <= Layout.txGroupsCap && iovCount + segments * iovs <= Layout.txIovCap &&
    hdrPos + hdrBytes <= Layout.txHdrCap;
}

/** Counts the next datagram of `len` bytes to `peer` into a group (the open one when it fits); the caller checked hasRoom. */
function openDatagram(peer: i32, sport: u32, len: u32): void {
  const fits = group != 0 && groupPeer == peer && groupSport == sport && !groupClosed && len <= groupStride &&
    groupSegs < TxGroup.MAX_SEGMENTS && groupBytes + len <= TxGroup.MAX_BYTES;
  if (!fits) {
    group = Layout.txGroups + <usize>groupCount * TxGroup.STRIDE;
    groupCount++;
    groupPeer = peer;
    groupSport = sport;
    groupStride = len;
    groupSegs = 0;
    groupBytes = 0;
    groupClosed = false;
    store<u32>(group + TxGroup.IOV, iovCount);
    store<u32>(group + TxGroup.IOV_COUNT, 0);
    store<u16>(group + TxGroup.SEG_SIZE, <u16>len);
    store<u16>(group + TxGroup.PEER, <u16>peer);
    store<u16>(group + TxGroup.SPORT, <u16>sport);
  }
  if (len < groupStride) groupClosed = true;
  groupSegs++;
  groupBytes += len;
  store<u32>(group + TxGroup.LENGTH, groupBytes);
  store<u16>(group + TxGroup.SEG_COUNT, <u16>groupSegs);
  bump(C.TX_DATAGRAMS_OUT);
  add(C.TX_BYTES_OUT, len);
  bumpPeer(peer, C.PEER_TX_PACKETS, len);
}

/** Appends `len` bytes at p to the open group's iovecs. */
@inline function pushIov(p: usize, len: u32): void {
  Layout.setIov(Layout.txIov, iovCount, p, len);
  iovCount++;
  store<u32>(group + TxGroup.IOV_COUNT, load<u32>(group + TxGroup.IOV_COUNT) + 1);
}

/** Writes VXLAN + inner Ethernet at o; returns where the inner packet goes. */
function writeOuter(o: usize, peer: i32, ethertype: u32): usize {
  Vxlan.write(o, Config.vni);
  const eth = o + Vxlan.HEADER_LEN;
  Ethernet.storeMac(eth + Ethernet.DST, peerMac(peer));
  Ethernet.storeMac(eth + Ethernet.SRC, Config.vtepMac);
  Ethernet.setEthertype(eth, ethertype);
  return o + Vxlan.OVERHEAD;
}

/** Room in txHdr for one segment's headers (8-aligned); the caller checked hasRoom. */
@inline function takeHeader(len: u32): usize {
  const p = Layout.txHdr + hdrPos;
  hdrPos += (len + 7) & ~7;
  return p;
}

// ---- one inner packet, parsed -------------------------------------------------------------------------------------------

let isV6: bool = false;
let l4Off: u32 = 0;
let l4Proto: u32 = 0;
let isFragment: bool = false;

/** Parses the inner packet and finds its peer. Returns the peer index, or a negative counter id (a drop reason). */
function classify(ip: usize, avail: u32): i32 {
  if (avail == 0) return -C.TX_DROP_MALFORMED;
  const v = load<u8>(ip) >> 4;
  if (v == 4) {
    if (IPv4.check(ip, avail) == 0) return -C.TX_DROP_MALFORMED;
    isV6 = false;
    l4Off = IPv4.headerLen(ip);
    l4Proto = IPv4.protocol(ip);
    isFragment = IPv4.isFragment(ip);
    if (!inSubnet4(IPv4.src(ip))) return -C.TX_DROP_SPOOFED_SOURCE;
    const peer = lookup4(IPv4.dst(ip));
    if (peer < 0) return -C.TX_DROP_NO_ROUTE;
    if (!peerValid(peer)) return -C.TX_DROP_NO_PEER;
    return peer;
  }
  if (v == 6) {
    const total = IPv6.check(ip, avail);
    if (total == 0 || !IPv6.walk(ip, total)) return -C.TX_DROP_MALFORMED;
    isV6 = true;
    l4Off = IPv6.l4Offset;
    l4Proto = IPv6.l4Proto;
    isFragment = IPv6.isFragment;
    if (!inSubnet6(ip + IPv6.SRC)) return -C.TX_DROP_SPOOFED_SOURCE;
    const peer = lookup6(ip + IPv6.DST);
    if (peer < 0) return -C.TX_DROP_NO_ROUTE;
    if (!peerValid(peer)) return -C.TX_DROP_NO_PEER;
    return peer;
  }
  return -C.TX_DROP_MALFORMED;
}

@inline function totalLen(ip: usize): u32 {
  return isV6 ? IPv6.HEADER_LEN + IPv6.payloadLen(ip) : IPv4.totalLen(ip);
}

function flowSourcePort(ip: usize, total: u32): u32 {
  const hasPorts = (l4Proto == IPv4.PROTO_TCP || l4Proto == IPv4.PROTO_UDP) && !isFragment && l4Off + 4 <= total;
  return sourcePort(isV6 ? flowHash6(ip, l4Proto, ip + l4Off, hasPorts) : flowHash4(ip, ip + l4Off, hasPorts));
}

@inline function ethertype(): u32 {
  return isV6 ? Ethernet.TYPE_IPV6 : Ethernet.TYPE_IPV4;
}

/** A packet that cannot cross the underlay: answer DF (and all IPv6) with an ICMP error, then drop. */
function tooBig(ip: usize, total: u32): i32 {
  if (isV6) packetTooBig(ip, total, l4Proto, l4Off);
  else if (IPv4.dontFragment(ip)) fragmentationNeeded(ip, total);
  return -C.TX_DROP_TOO_BIG;
}

/**
 * One datagram for a whole packet, encapsulated in place; `csumStart` ≥ 0 asks to complete a partial checksum (NEEDS_CSUM).
 * The packet needs TX_HEADROOM bytes in front of it that may be overwritten (the slot's headroom and virtio_net_hdr).
 */
function emitWhole(ip: usize, total: u32, peer: i32, sport: u32, csumStart: i32, csumOffset: u32): i32 {
  if (total > Config.mtu) return tooBig(ip, total);
  const len = <u32>Vxlan.OVERHEAD + total;
  if (!hasRoom(1, 1, 0)) return -C.TX_DROP_NO_SPACE;
  if (csumStart >= 0) {
    const cs = <u32>csumStart;
    store<u16>(ip + cs + csumOffset, finish(sumBytes(ip + cs, total - cs, 0)));
  }
  openDatagram(peer, sport, len);
  const o = ip - Vxlan.OVERHEAD;
  writeOuter(o, peer, ethertype());
  pushIov(o, len);
  return 0;
}

/** Fixes the IP header of a segment copied from a super-packet: its length, and for IPv4 its id and header checksum. */
@inline function fixSegmentIpHeader(o: usize, segLen: u32, ident: u32): void {
  if (isV6) {
    IPv6.setPayloadLen(o, segLen - IPv6.HEADER_LEN);
  } else {
    IPv4.setTotalLen(o, segLen);
    IPv4.setIdent(o, ident & 0xffff);
    IPv4.fillHeaderChecksum(o);
  }
}

@inline function pseudoSum(o: usize, l4len: u32): u64 {
  return isV6 ? pseudo6(o + IPv6.SRC, l4Proto, l4len) : pseudo4(o + IPv4.SRC, l4Proto, l4len);
}

/** TSO: cut a TCP super-packet into segments of at most mss payload bytes (docs/architecture.md). */
function splitTcp(ip: usize, total: u32, peer: i32, sport: u32, gsoSize: u32): i32 {
  if (l4Proto != IPv4.PROTO_TCP || isFragment || l4Off + Tcp.MIN_HEADER_LEN > total) return -C.TX_DROP_BAD_VNET_HDR;
  const tcp = ip + l4Off;
  const th = Tcp.headerLen(tcp);
  const hdrLen = l4Off + th;
  if (th < Tcp.MIN_HEADER_LEN || hdrLen > total) return -C.TX_DROP_BAD_VNET_HDR;
  if (gsoSize == 0) return -C.TX_DROP_BAD_VNET_HDR;
  // Splitting finer than asked is always legal for TCP, so a segment size the underlay cannot carry is just lowered.
  if (Config.mtu <= hdrLen) return tooBig(ip, total);
  const mss = min(gsoSize, Config.mtu - hdrLen);
  const payload = total - hdrLen;
  // The checksum is computed from scratch for every segment (even a lone one): the field may hold a partial sum.
  const segments = max<u32>(1, (payload + mss - 1) / mss);
  if (!hasRoom(segments, 2, segments * ((<u32>Vxlan.OVERHEAD + hdrLen + 7) & ~7))) return -C.TX_DROP_NO_SPACE;
  const seq0 = Tcp.seq(tcp);
  const flags0 = Tcp.flags(tcp);
  const ident0 = isV6 ? 0 : IPv4.ident(ip);
  const et = ethertype();
  let off: u32 = 0;
  for (let i: u32 = 0; i < segments; i++) {
    const chunk = min(mss, payload - off);
    const segLen = hdrLen + chunk;
    const pay = ip + hdrLen + off;
    openDatagram(peer, sport, <u32>Vxlan.OVERHEAD + segLen);
    const h = takeHeader(<u32>Vxlan.OVERHEAD + hdrLen);
    const o = writeOuter(h, peer, et);
    memory.copy(o, ip, hdrLen);
    fixSegmentIpHeader(o, segLen, ident0 + i);
    const t = o + l4Off;
    Tcp.setSeq(t, seq0 + i * mss);
    let flags = flags0;
    if (i + 1 < segments) flags &= ~(Tcp.FIN | Tcp.PSH);
    if (i > 0) flags &= ~Tcp.CWR;
    Tcp.setFlags(t, flags);
    store<u16>(t + Tcp.CHECKSUM, 0);
    let sum = sumBytes(pay, chunk, pseudoSum(o, th + chunk));
    sum = sumBytes(t, th, sum);
    store<u16>(t + Tcp.CHECKSUM, finish(sum));
    pushIov(h, <u32>Vxlan.OVERHEAD + hdrLen);
    pushIov(pay, chunk);
    off += chunk;
  }
  if (segments > 1) bump(C.TX_GSO_SPLIT);
  return 0;
}

/** USO: cut a UDP super-packet into datagrams of gso_size payload bytes, each with its own UDP header and checksum. */
function splitUdp(ip: usize, total: u32, peer: i32, sport: u32, gsoSize: u32): i32 {
  if (l4Proto != IPv4.PROTO_UDP || isFragment || l4Off + Udp.HEADER_LEN > total || gsoSize == 0) {
    return -C.TX_DROP_BAD_VNET_HDR;
  }
  const hdrLen = l4Off + Udp.HEADER_LEN;
  const payload = total - hdrLen;
  // Datagram boundaries belong to the application: a segment too big for the underlay cannot be re-cut.
  if (hdrLen + min(gsoSize, payload) > Config.mtu) return tooBig(ip, total);
  const segments = max<u32>(1, (payload + gsoSize - 1) / gsoSize);
  if (!hasRoom(segments, 2, segments * ((<u32>Vxlan.OVERHEAD + hdrLen + 7) & ~7))) return -C.TX_DROP_NO_SPACE;
  const ident0 = isV6 ? 0 : IPv4.ident(ip);
  const et = ethertype();
  let off: u32 = 0;
  for (let i: u32 = 0; i < segments; i++) {
    const chunk = min(gsoSize, payload - off);
    const segLen = hdrLen + chunk;
    const pay = ip + hdrLen + off;
    openDatagram(peer, sport, <u32>Vxlan.OVERHEAD + segLen);
    const h = takeHeader(<u32>Vxlan.OVERHEAD + hdrLen);
    const o = writeOuter(h, peer, et);
    memory.copy(o, ip, hdrLen);
    fixSegmentIpHeader(o, segLen, ident0 + i);
    const u = o + l4Off;
    Udp.setLength(u, Udp.HEADER_LEN + chunk);
    store<u16>(u + Udp.CHECKSUM, 0);
    let sum = sumBytes(pay, chunk, pseudoSum(o, Udp.HEADER_LEN + chunk));
    sum = sumBytes(u, Udp.HEADER_LEN, sum);
    const c = finish(sum);
    store<u16>(u + Udp.CHECKSUM, c == 0 ? 0xffff : c); // RFC 768: a computed zero is sent as all ones
    pushIov(h, <u32>Vxlan.OVERHEAD + hdrLen);
    pushIov(pay, chunk);
    off += chunk;
  }
  if (segments > 1) bump(C.TX_GSO_SPLIT);
  return 0;
}

/** Honours a virtio_net_hdr: GSO split, checksum completion, or a plain copy. */
function emitWithVnet(vh: usize, ip: usize, total: u32, peer: i32, sport: u32): i32 {
  const gso = VnetHdr.gsoType(vh) & ~VnetHdr.GSO_ECN;
  if (gso == VnetHdr.GSO_NONE) {
    if ((VnetHdr.flags(vh) & VnetHdr.F_NEEDS_CSUM) == 0) return emitWhole(ip, total, peer, sport, -1, 0);
    const cs = VnetHdr.csumStart(vh);
    const co = VnetHdr.csumOffset(vh);
    if (cs < 20 || cs + co + 2 > total) return -C.TX_DROP_BAD_VNET_HDR;
    return emitWhole(ip, total, peer, sport, <i32>cs, co);
  }
  if (gso == VnetHdr.GSO_TCPV4 || gso == VnetHdr.GSO_TCPV6) {
    if ((gso == VnetHdr.GSO_TCPV6) != isV6) return -C.TX_DROP_BAD_VNET_HDR;
    return splitTcp(ip, total, peer, sport, VnetHdr.gsoSize(vh));
  }
  if (gso == VnetHdr.GSO_UDP_L4) return splitUdp(ip, total, peer, sport, VnetHdr.gsoSize(vh));
  return -C.TX_DROP_UNSUPPORTED_GSO;
}

function encapOne(slot: usize, len: u32): i32 {
  let vh: usize = 0;
  let ip = slot;
  let avail = len;
  if (Config.vnetHdr) {
    if (len < VnetHdr.LEN) return -C.TX_DROP_BAD_VNET_HDR;
    vh = slot;
    ip = slot + VnetHdr.LEN;
    avail = len - VnetHdr.LEN;
  }
  const peer = classify(ip, avail);
  if (peer < 0) return peer;
  const total = totalLen(ip);
  const sport = flowSourcePort(ip, total);
  return vh != 0 ? emitWithVnet(vh, ip, total, peer, sport) : emitWhole(ip, total, peer, sport, -1, 0);
}

/**
 * Encapsulates `count` packets from the TX slots (each read at TX_HEADROOM, lengths in txInLen). Returns the number of send
 * groups written to txGroups, their iovecs in txIov; ICMP errors for the TUN device are in the reply list. Whole packets
 * are encapsulated where they lie: their slots' headroom and virtio_net_hdr are overwritten.
 */
export function encap(count: u32): u32 {
  resetEmitter();
  resetReplies();
  const n = min(count, Layout.txSlots);
  for (let i: u32 = 0; i < n; i++) {
    bump(C.TX_PACKETS_IN);
    const len = min(load<u32>(Layout.txInLen + (<usize>i << 2)), <u32>(SLOT_SIZE - TX_HEADROOM));
    const r = encapOne(Layout.txIn + <usize>i * SLOT_SIZE + TX_HEADROOM, len);
    bump(r < 0 ? -r : C.TX_PASSED);
  }
  return groupCount;
}
