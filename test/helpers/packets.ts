// Independent packet helpers for tests. Written from the RFCs (1071 checksum, 791 IPv4, 768 UDP, 793 TCP,
// 792/4443 ICMP, 8200 IPv6, 7348 VXLAN) in plain TypeScript; deliberately shares nothing with assembly/**,
// so tests can compare the WASM core against it.

export type IPAddr = string | Uint8Array;
export type MacAddr = string | Uint8Array;

export const PROTO = { HOPOPTS: 0, ICMP: 1, TCP: 6, UDP: 17, ROUTING: 43, FRAGMENT: 44, ICMPV6: 58, DSTOPTS: 60 } as const;
export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;
export const VIRTIO_NET = { F_NEEDS_CSUM: 1, GSO_NONE: 0, GSO_TCPV4: 1, GSO_UDP: 3, GSO_TCPV6: 4, GSO_UDP_L4: 5, GSO_ECN: 0x80 } as const;

// ---------- byte helpers ----------
const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
function put16(b: Uint8Array, o: number, v: number): void { b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff; }
function put32(b: Uint8Array, o: number, v: number): void { put16(b, o, v >>> 16); put16(b, o + 2, v & 0xffff); }

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
export const hexToBytes = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
export const bytesToHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

// ---------- addresses ----------
export function ipToBytes(ip: IPAddr): Uint8Array {
  if (typeof ip !== 'string') return Uint8Array.from(ip);
  if (!ip.includes(':')) {
    const parts = ip.split('.').map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`bad IPv4 ${ip}`);
    return Uint8Array.from(parts);
  }
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(ip); // embedded IPv4 (::ffff:1.2.3.4) → two hex groups
  if (v4) {
    const b = ipToBytes(v4[1]);
    text = ip.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 ${ip}`);
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 ${ip}`);
    return parseInt(g, 16);
  }));
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  const fill = 8 - head.length - rest.length;
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)) throw new Error(`bad IPv6 ${ip}`);
  const groups = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...rest];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => put16(out, 2 * i, g));
  return out;
}

/** IPv4 dotted quad, or IPv6 in RFC 5952 form (lower case, longest zero run of >= 2 groups as "::"). */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new Error(`address of ${b.length} bytes`);
  const g = Array.from({ length: 8 }, (_, i) => be16(b, 2 * i));
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function macToBytes(mac: MacAddr): Uint8Array {
  if (typeof mac !== 'string') return Uint8Array.from(mac);
  const b = mac.split(':').map((h) => parseInt(h, 16));
  if (b.length !== 6 || b.some((x) => !(x >= 0 && x <= 255))) throw new Error(`bad MAC ${mac}`);
  return Uint8Array.from(b);
}
export const bytesToMac = (b: Uint8Array): string => Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
const isV6 = (ip: IPAddr): boolean => (typeof ip === 'string' ? ip.includes(':') : ip.length === 16);

// ---------- RFC 1071 ----------
/** 16-bit ones' complement sum of `bytes` (odd trailing byte padded with zero) added to `initial`, folded, NOT complemented. */
export function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) sum += bytes[bytes.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}
/** Internet checksum: ones' complement of the ones' complement sum. Over data that contains a correct checksum it is 0. */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}

// ---------- parsers ----------
export interface IPv4Packet {
  version: 4; headerLength: number; tos: number; totalLength: number; id: number; df: boolean; mf: boolean;
  fragmentOffset: number; ttl: number; protocol: number; headerChecksum: number; src: string; dst: string;
  options: Uint8Array; payload: Uint8Array;
}
export function parseIPv4(pkt: Uint8Array): IPv4Packet {
  if (pkt.length < 20 || pkt[0] >> 4 !== 4) throw new Error('not an IPv4 packet');
  const ihl = (pkt[0] & 0x0f) * 4;
  const totalLength = be16(pkt, 2);
  if (ihl < 20 || totalLength < ihl || totalLength > pkt.length) throw new Error('bad IPv4 lengths');
  const frag = be16(pkt, 6);
  return {
    version: 4, headerLength: ihl, tos: pkt[1], totalLength, id: be16(pkt, 4), df: (frag & 0x4000) !== 0,
    mf: (frag & 0x2000) !== 0, fragmentOffset: (frag & 0x1fff) * 8, ttl: pkt[8], protocol: pkt[9],
    headerChecksum: be16(pkt, 10), src: bytesToIp(pkt.subarray(12, 16)), dst: bytesToIp(pkt.subarray(16, 20)),
    options: pkt.subarray(20, ihl), payload: pkt.subarray(ihl, totalLength),
  };
}

export interface IPv6ExtHeader { type: number; offset: number; length: number }
export interface IPv6Packet {
  version: 6; trafficClass: number; flowLabel: number; payloadLength: number; nextHeader: number; hopLimit: number;
  src: string; dst: string; extHeaders: IPv6ExtHeader[]; fragment?: { offset: number; more: boolean; id: number };
  /** destination the upper layer pseudo-header uses (RFC 8200 8.1: final routing-header address if segments remain) */
  finalDst: string; upperProtocol: number; upperOffset: number; payload: Uint8Array;
}
export function parseIPv6(pkt: Uint8Array): IPv6Packet {
  if (pkt.length < 40 || pkt[0] >> 4 !== 6) throw new Error('not an IPv6 packet');
  const payloadLength = be16(pkt, 4);
  const end = 40 + payloadLength;
  if (end > pkt.length) throw new Error('bad IPv6 payload length');
  const r: IPv6Packet = {
    version: 6, trafficClass: (be16(pkt, 0) >> 4) & 0xff, flowLabel: be32(pkt, 0) & 0xfffff, payloadLength,
    nextHeader: pkt[6], hopLimit: pkt[7], src: bytesToIp(pkt.subarray(8, 24)), dst: bytesToIp(pkt.subarray(24, 40)),
    extHeaders: [], finalDst: '', upperProtocol: 0, upperOffset: 0, payload: pkt.subarray(0, 0),
  };
  r.finalDst = r.dst;
  let next = pkt[6];
  let o = 40;
  while (next === PROTO.HOPOPTS || next === PROTO.ROUTING || next === PROTO.DSTOPTS || next === PROTO.FRAGMENT) {
    if (o + 8 > end) throw new Error('truncated IPv6 extension header');
    const length = next === PROTO.FRAGMENT ? 8 : (pkt[o + 1] + 1) * 8;
    if (next === PROTO.FRAGMENT) {
      r.fragment = { offset: be16(pkt, o + 2) & 0xfff8, more: (pkt[o + 3] & 1) !== 0, id: be32(pkt, o + 4) };
    } else if (next === PROTO.ROUTING && pkt[o + 3] > 0) { // segments left
      const type = pkt[o + 2];
      const addrs = (length - 8) / 16;
      if ((type === 0 || type === 2) && addrs >= 1) r.finalDst = bytesToIp(pkt.subarray(o + length - 16, o + length));
      if (type === 4 && addrs >= 1) r.finalDst = bytesToIp(pkt.subarray(o + 8, o + 24)); // SRH: Segment List[0]
    }
    r.extHeaders.push({ type: next, offset: o, length });
    next = pkt[o];
    o += length;
  }
  if (o > end) throw new Error('IPv6 extension headers overrun the payload');
  r.upperProtocol = next;
  r.upperOffset = o;
  r.payload = pkt.subarray(o, end);
  return r;
}

export interface TCPSegment {
  srcPort: number; dstPort: number; seq: number; ack: number; dataOffset: number; flags: number; window: number;
  checksum: number; urgent: number; options: Uint8Array; payload: Uint8Array;
}
/** Parses a bare TCP segment (header + data). */
export function parseTCPSegment(seg: Uint8Array): TCPSegment {
  const dataOffset = (seg[12] >> 4) * 4;
  if (seg.length < 20 || dataOffset < 20 || dataOffset > seg.length) throw new Error('bad TCP header');
  return {
    srcPort: be16(seg, 0), dstPort: be16(seg, 2), seq: be32(seg, 4), ack: be32(seg, 8), dataOffset, flags: seg[13],
    window: be16(seg, 14), checksum: be16(seg, 16), urgent: be16(seg, 18), options: seg.subarray(20, dataOffset),
    payload: seg.subarray(dataOffset),
  };
}
export interface UDPDatagram { srcPort: number; dstPort: number; length: number; checksum: number; payload: Uint8Array }
/** Parses a bare UDP datagram (8-byte header + data). */
export function parseUDPDatagram(d: Uint8Array): UDPDatagram {
  const length = be16(d, 4);
  if (d.length < 8 || length < 8 || length > d.length) throw new Error('bad UDP length');
  return { srcPort: be16(d, 0), dstPort: be16(d, 2), length, checksum: be16(d, 6), payload: d.subarray(8, length) };
}
function ipPayloadOf(ipPacket: Uint8Array, proto: number): { ip: IPv4Packet | IPv6Packet; l4: Uint8Array } {
  const ip = ipPacket[0] >> 4 === 6 ? parseIPv6(ipPacket) : parseIPv4(ipPacket);
  const p = ip.version === 4 ? ip.protocol : ip.upperProtocol;
  const frag = ip.version === 4 ? ip.mf || ip.fragmentOffset !== 0 : !!ip.fragment && (ip.fragment.more || ip.fragment.offset !== 0);
  if (p !== proto || frag) throw new Error(`not an unfragmented protocol ${proto} packet`);
  return { ip, l4: ip.payload };
}
/** Parses the TCP segment of a whole IPv4/IPv6 packet (the inverse of buildTCP); `ip` is the parsed IP header. */
export function parseTCP(ipPacket: Uint8Array): TCPSegment & { ip: IPv4Packet | IPv6Packet } {
  const { ip, l4 } = ipPayloadOf(ipPacket, PROTO.TCP);
  return { ...parseTCPSegment(l4), ip };
}
/** Parses the UDP datagram of a whole IPv4/IPv6 packet (the inverse of buildUDP). */
export function parseUDP(ipPacket: Uint8Array): UDPDatagram & { ip: IPv4Packet | IPv6Packet } {
  const { ip, l4 } = ipPayloadOf(ipPacket, PROTO.UDP);
  return { ...parseUDPDatagram(l4), ip };
}

/** Unfragmented IP packet (v4/v6) → its upper-layer protocol, bytes and pseudo-header sum (0 for ICMPv4). */
function upperLayer(ipPacket: Uint8Array): { proto: number; l4: Uint8Array; pseudo: number; v6: boolean } {
  if (ipPacket[0] >> 4 === 4) {
    const ip = parseIPv4(ipPacket);
    if (ip.mf || ip.fragmentOffset) throw new Error('IPv4 fragment: no complete upper-layer packet');
    const ph = new Uint8Array(12);
    ph.set(ipPacket.subarray(12, 20), 0);
    ph[9] = ip.protocol;
    put16(ph, 10, ip.payload.length);
    return { proto: ip.protocol, l4: ip.payload, pseudo: ip.protocol === PROTO.ICMP ? 0 : onesComplementSum(ph), v6: false };
  }
  const ip = parseIPv6(ipPacket);
  if (ip.fragment && (ip.fragment.more || ip.fragment.offset)) throw new Error('IPv6 fragment: no complete upper-layer packet');
  const ph = new Uint8Array(40); // RFC 8200 8.1: src, final dst, upper-layer length (32), 3 zero bytes, next header
  ph.set(ipPacket.subarray(8, 24), 0);
  ph.set(ipToBytes(ip.finalDst), 16);
  put32(ph, 32, ip.payload.length);
  ph[39] = ip.upperProtocol;
  return { proto: ip.upperProtocol, l4: ip.payload, pseudo: onesComplementSum(ph), v6: true };
}
const CSUM_OFFSET: Record<number, number> = { [PROTO.TCP]: 16, [PROTO.UDP]: 6, [PROTO.ICMP]: 2, [PROTO.ICMPV6]: 2 };

export function ipv4HeaderChecksumOk(pkt: Uint8Array): boolean {
  const ihl = (pkt[0] & 0x0f) * 4;
  return pkt[0] >> 4 === 4 && ihl >= 20 && pkt.length >= ihl && internetChecksum(pkt.subarray(0, ihl)) === 0;
}

/** TCP/UDP/ICMP/ICMPv6 checksum of an unfragmented IPv4 or IPv6 packet. UDP over IPv4 with checksum 0 = not used = ok. */
export function l4ChecksumOk(ipPacket: Uint8Array): boolean {
  const { proto, l4, pseudo, v6 } = upperLayer(ipPacket);
  const at = CSUM_OFFSET[proto];
  if (at === undefined) throw new Error(`no checksum rule for protocol ${proto}`);
  if (l4.length < at + 2) return false;
  if (proto === PROTO.UDP) {
    if (be16(l4, 4) !== l4.length) return false;
    if (be16(l4, 6) === 0) return !v6; // RFC 768 allows "no checksum" on IPv4; RFC 8200 8.1 forbids it on IPv6
  }
  return internetChecksum(l4, pseudo) === 0;
}

/** Computes and stores the upper-layer checksum of a complete IP packet in place; returns the packet. */
export function fillL4Checksum(ipPacket: Uint8Array): Uint8Array {
  const { proto, l4, pseudo } = upperLayer(ipPacket);
  const at = CSUM_OFFSET[proto];
  put16(l4, at, 0);
  let c = internetChecksum(l4, pseudo);
  if (proto === PROTO.UDP && c === 0) c = 0xffff; // RFC 768: a computed 0 is sent as all ones
  put16(l4, at, c);
  return ipPacket;
}

// ---------- builders ----------
export interface IPv4Options { src: IPAddr; dst: IPAddr; proto: number; id?: number; ttl?: number; df?: boolean; mf?: boolean; fragmentOffset?: number; tos?: number; payload: Uint8Array; options?: Uint8Array }
export function buildIPv4(o: IPv4Options): Uint8Array {
  const opt = o.options ?? new Uint8Array(0);
  const optLen = (opt.length + 3) & ~3; // pad with End-of-Option-List (0) to a 32-bit boundary
  const hl = 20 + optLen;
  if (hl > 60) throw new Error('IPv4 options too long');
  const pkt = new Uint8Array(hl + o.payload.length);
  pkt[0] = 0x40 | (hl / 4);
  pkt[1] = o.tos ?? 0;
  put16(pkt, 2, pkt.length);
  put16(pkt, 4, o.id ?? 0);
  put16(pkt, 6, (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | ((o.fragmentOffset ?? 0) / 8));
  pkt[8] = o.ttl ?? 64;
  pkt[9] = o.proto;
  pkt.set(ipToBytes(o.src), 12);
  pkt.set(ipToBytes(o.dst), 16);
  pkt.set(opt, 20);
  put16(pkt, 10, internetChecksum(pkt.subarray(0, hl)));
  pkt.set(o.payload, hl);
  return pkt;
}

/** Hop-by-hop (0), routing (43), destination options (60): `data` = bytes after next-header/length, zero-padded to 8n+6. */
export type IPv6ExtHeaderSpec =
  | { type: 0 | 43 | 60; data?: Uint8Array }
  | { type: 44; offset?: number; more?: boolean; id?: number };
export interface IPv6Options { src: IPAddr; dst: IPAddr; nextHeader: number; hopLimit?: number; trafficClass?: number; flowLabel?: number; payload: Uint8Array; extHeaders?: IPv6ExtHeaderSpec[] }
export function buildIPv6(o: IPv6Options): Uint8Array {
  const exts = o.extHeaders ?? [];
  const encoded = exts.map((e, i) => {
    const next = i + 1 < exts.length ? exts[i + 1].type : o.nextHeader;
    if (e.type === 44) {
      const h = new Uint8Array(8);
      h[0] = next;
      put16(h, 2, ((e.offset ?? 0) & 0xfff8) | (e.more ? 1 : 0));
      put32(h, 4, e.id ?? 0);
      return h;
    }
    const body = e.data ?? new Uint8Array(0);
    const len = Math.max(8, Math.ceil((body.length + 2) / 8) * 8); // zero padding = Pad1 options
    const h = new Uint8Array(len);
    h[0] = next;
    h[1] = len / 8 - 1;
    h.set(body, 2);
    return h;
  });
  const rest = concat(...encoded, o.payload);
  const pkt = new Uint8Array(40 + rest.length);
  put32(pkt, 0, ((6 << 28) | ((o.trafficClass ?? 0) << 20) | ((o.flowLabel ?? 0) & 0xfffff)) >>> 0);
  put16(pkt, 4, rest.length);
  pkt[6] = exts.length ? exts[0].type : o.nextHeader;
  pkt[7] = o.hopLimit ?? 64;
  pkt.set(ipToBytes(o.src), 8);
  pkt.set(ipToBytes(o.dst), 24);
  pkt.set(rest, 40);
  return pkt;
}

/** IP fields for the L4 builders; v4 fields are ignored for IPv6 and vice versa. */
export interface IPFields { id?: number; ttl?: number; df?: boolean; tos?: number; hopLimit?: number; trafficClass?: number; flowLabel?: number; extHeaders?: IPv6ExtHeaderSpec[] }
function wrapIP(proto: number, l4: Uint8Array, src: IPAddr, dst: IPAddr, ip: IPFields): Uint8Array {
  if (isV6(src) !== isV6(dst)) throw new Error('mixed address families');
  const pkt = isV6(src)
    ? buildIPv6({ src, dst, nextHeader: proto, hopLimit: ip.hopLimit ?? ip.ttl, trafficClass: ip.trafficClass ?? ip.tos, flowLabel: ip.flowLabel, payload: l4, extHeaders: ip.extHeaders })
    : buildIPv4({ src, dst, proto, id: ip.id, ttl: ip.ttl, df: ip.df, tos: ip.tos, payload: l4 });
  return fillL4Checksum(pkt);
}

export interface TCPOptions { srcPort: number; dstPort: number; seq: number; ack: number; flags: number; window?: number; urgent?: number; options?: Uint8Array; payload?: Uint8Array }
/** Full IPv4/IPv6 packet (family from the address form) carrying a TCP segment with correct checksums. */
export function buildTCP(t: TCPOptions, srcIP: IPAddr, dstIP: IPAddr, ip: IPFields = {}): Uint8Array {
  const opt = t.options ?? new Uint8Array(0);
  const hl = 20 + ((opt.length + 3) & ~3);
  const payload = t.payload ?? new Uint8Array(0);
  const seg = new Uint8Array(hl + payload.length);
  put16(seg, 0, t.srcPort);
  put16(seg, 2, t.dstPort);
  put32(seg, 4, t.seq >>> 0);
  put32(seg, 8, t.ack >>> 0);
  seg[12] = (hl / 4) << 4;
  seg[13] = t.flags;
  put16(seg, 14, t.window ?? 65535);
  put16(seg, 18, t.urgent ?? 0);
  seg.set(opt, 20);
  seg.set(payload, hl);
  return wrapIP(PROTO.TCP, seg, srcIP, dstIP, ip);
}

export interface UDPOptions { srcPort: number; dstPort: number; payload?: Uint8Array; noChecksum?: boolean }
export function buildUDP(u: UDPOptions, srcIP: IPAddr, dstIP: IPAddr, ip: IPFields = {}): Uint8Array {
  const payload = u.payload ?? new Uint8Array(0);
  const d = new Uint8Array(8 + payload.length);
  put16(d, 0, u.srcPort);
  put16(d, 2, u.dstPort);
  put16(d, 4, d.length);
  d.set(payload, 8);
  const pkt = wrapIP(PROTO.UDP, d, srcIP, dstIP, ip);
  if (u.noChecksum) {
    if (isV6(srcIP)) throw new Error('IPv6 UDP needs a checksum');
    put16(pkt, (pkt[0] & 0x0f) * 4 + 6, 0);
  }
  return pkt;
}

export interface ICMPEchoOptions { id: number; seq: number; reply?: boolean; payload?: Uint8Array }
/** ICMP echo (v4: type 8/0) or ICMPv6 echo (type 128/129, checksum over the pseudo-header). */
export function buildICMPEcho(e: ICMPEchoOptions, srcIP: IPAddr, dstIP: IPAddr, ip: IPFields = {}): Uint8Array {
  const v6 = isV6(srcIP);
  const payload = e.payload ?? new Uint8Array(0);
  const m = new Uint8Array(8 + payload.length);
  m[0] = v6 ? (e.reply ? 129 : 128) : e.reply ? 0 : 8;
  put16(m, 4, e.id);
  put16(m, 6, e.seq);
  m.set(payload, 8);
  return wrapIP(v6 ? PROTO.ICMPV6 : PROTO.ICMP, m, srcIP, dstIP, ip);
}

export function buildEthernet(dst: MacAddr, src: MacAddr, ethertype: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(macToBytes(dst), 0);
  f.set(macToBytes(src), 6);
  put16(f, 12, ethertype);
  f.set(payload, 14);
  return f;
}

export interface VXLANOptions { vni: number; innerDstMac: MacAddr; innerSrcMac: MacAddr; ethertype?: number; inner: Uint8Array }
/** UDP payload of a VXLAN packet: 8-byte header (flags 0x08, 24-bit VNI) + inner Ethernet header + inner packet. */
export function buildVXLAN(v: VXLANOptions): Uint8Array {
  const hdr = new Uint8Array(8);
  hdr[0] = 0x08;
  put32(hdr, 4, (v.vni & 0xffffff) * 256);
  const ethertype = v.ethertype ?? (v.inner[0] >> 4 === 6 ? 0x86dd : 0x0800);
  return concat(hdr, buildEthernet(v.innerDstMac, v.innerSrcMac, ethertype, v.inner));
}

export interface VirtioNetHdrOptions { flags?: number; gsoType?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number }
/** struct virtio_net_hdr (10 bytes): u8 flags, u8 gso_type, then u16 hdr_len, gso_size, csum_start, csum_offset little-endian. */
export function virtioNetHdr(h: VirtioNetHdrOptions = {}): Uint8Array {
  const b = new Uint8Array(10);
  const dv = new DataView(b.buffer);
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  dv.setUint16(2, h.hdrLen ?? 0, true);
  dv.setUint16(4, h.gsoSize ?? 0, true);
  dv.setUint16(6, h.csumStart ?? 0, true);
  dv.setUint16(8, h.csumOffset ?? 0, true);
  return b;
}

// ---------- deterministic randomness ----------
/** mulberry32: small seeded PRNG returning floats in [0, 1) (the benchmarks' generator, one copy for all). */
export { prng as mulberry32 } from "../../bench/lib/lpm-data.js";
export function randomBytes(rng: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));
}
