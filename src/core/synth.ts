// Synthetic traffic for the demo and the benchmarks. Checksums come from the core itself (core.checksum), so nothing here
// re-implements the wire logic; tests use their own independent builders in test/helpers.
import { parseIPv4 } from "../net/addr.js";
import type { Core } from "./index.js";

const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;

function ipv4Header(core: Core, bytes: Uint8Array, total: number, proto: number, src: string, dst: string, id = 0): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  bytes[0] = 0x45;
  v.setUint16(2, total);
  v.setUint16(4, id);
  v.setUint16(6, 0x4000); // DF
  bytes[8] = 64;
  bytes[9] = proto;
  v.setUint32(12, parseIPv4(src));
  v.setUint32(16, parseIPv4(dst));
  v.setUint16(10, core.checksum(bytes.subarray(0, 20)));
}

function pseudoHeader4(src: string, dst: string, proto: number, l4len: number): Uint8Array {
  const p = new Uint8Array(12);
  const v = new DataView(p.buffer);
  v.setUint32(0, parseIPv4(src));
  v.setUint32(4, parseIPv4(dst));
  p[9] = proto;
  v.setUint16(10, l4len);
  return p;
}

function fillPayload(bytes: Uint8Array, seed: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + seed) & 0xff;
}

/** An IPv4 UDP packet of `size` bytes in total (UDP checksum 0, which IPv4 allows). */
export function udp4(core: Core, o: { src: string; dst: string; srcPort: number; dstPort: number; size: number }): Uint8Array {
  const pkt = new Uint8Array(o.size);
  const v = new DataView(pkt.buffer);
  ipv4Header(core, pkt, o.size, PROTO_UDP, o.src, o.dst);
  v.setUint16(20, o.srcPort);
  v.setUint16(22, o.dstPort);
  v.setUint16(24, o.size - 20);
  fillPayload(pkt.subarray(28), o.srcPort);
  return pkt;
}

/** An ICMP echo request with `dataLen` bytes of data. */
export function icmpEcho4(core: Core, o: { src: string; dst: string; id: number; seq: number; dataLen: number }): Uint8Array {
  const total = 28 + o.dataLen;
  const pkt = new Uint8Array(total);
  const v = new DataView(pkt.buffer);
  ipv4Header(core, pkt, total, PROTO_ICMP, o.src, o.dst);
  pkt[20] = 8;
  v.setUint16(24, o.id);
  v.setUint16(26, o.seq);
  fillPayload(pkt.subarray(28), o.seq);
  v.setUint16(22, core.checksum(pkt.subarray(20)));
  return pkt;
}

/**
 * A TCP super-packet as a TUN device with TSO hands it over: virtio_net_hdr (GSO TCPV4, NEEDS_CSUM) + IPv4 + TCP (20 bytes)
 * + `payloadLen` bytes, the TCP checksum field holding the pseudo-header sum.
 */
export function tcpSuper4(core: Core, o: { src: string; dst: string; srcPort: number; dstPort: number; seq: number; ack: number;
  payloadLen: number; mss: number }): Uint8Array {
  const total = 40 + o.payloadLen;
  const buf = new Uint8Array(10 + total);
  const vh = new DataView(buf.buffer);
  buf[0] = 1; // NEEDS_CSUM
  buf[1] = 1; // GSO_TCPV4
  vh.setUint16(2, 40, true);
  vh.setUint16(4, o.mss, true);
  vh.setUint16(6, 20, true);
  vh.setUint16(8, 16, true);
  const pkt = buf.subarray(10);
  const v = new DataView(pkt.buffer, pkt.byteOffset);
  ipv4Header(core, pkt, total, PROTO_TCP, o.src, o.dst, 1);
  v.setUint16(20, o.srcPort);
  v.setUint16(22, o.dstPort);
  v.setUint32(24, o.seq);
  v.setUint32(28, o.ack);
  pkt[32] = 5 << 4;
  pkt[33] = 0x18; // ACK|PSH
  v.setUint16(34, 65535);
  fillPayload(pkt.subarray(40), o.seq);
  const partial = ~core.checksum(pseudoHeader4(o.src, o.dst, PROTO_TCP, total - 20)) & 0xffff;
  v.setUint16(36, partial);
  return buf;
}
