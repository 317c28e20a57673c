// RX path of the core: UDP payloads (single or UDP_GRO-glued) → ingress filter → stripped inner packets, TCP coalesced (GRO).
import { describe, expect, it } from "vitest";
import { be16, le16, makeCore, NODE1, NODE2, POD1, POD1_6, POD2, POD2_6, sumCounters } from "../helpers/nodes.js";
import { buildICMPEcho, buildIPv4, buildTCP, buildUDP, buildVXLAN, concat, internetChecksum, l4ChecksumOk, parseTCP, virtioNetHdr } from "../helpers/packets.js";


/** Node 2 as the receiver (plain or with virtio_net_hdr) and node 1 as the sender. */
function pair(vnetHdr: boolean) {
  return { tx: makeCore(NODE1, NODE2, { vnetHdr }), rx: makeCore(NODE2, NODE1, { vnetHdr }) };
}

function vxlanTo2(inner: Uint8Array, o: { vni?: number; dstMac?: string; ethertype?: number } = {}): Uint8Array {
  return buildVXLAN({ vni: o.vni ?? 1, innerDstMac: o.dstMac ?? NODE2.vtepMAC, innerSrcMac: NODE1.vtepMAC, ethertype: o.ethertype, inner });
}

/** RX accounting must always close: every datagram is passed or dropped for exactly one reason. */
function expectRxAccounted(c: Record<string, number>): void {
  expect(c.rx_datagrams_in).toBe(c.rx_passed + sumCounters(c, /^rx_drop_/));
}

/** What the kernel does with a CHECKSUM_PARTIAL packet: sum from csum_start to the end and store the complement. */
function completeChecksum(vnetAndPacket: Uint8Array): Uint8Array {
  const pkt = vnetAndPacket.slice(10);
  const start = le16(vnetAndPacket, 6);
  const field = start + le16(vnetAndPacket, 8);
  const sum = internetChecksum(pkt.subarray(start)); // includes the pseudo-header sum left in the field
  pkt[field] = sum >> 8;
  pkt[field + 1] = sum & 0xff;
  return pkt;
}

/** A TCP super-packet as TUN hands it over with TSO, and its payload. */
function tsoPacket(src: string, dst: string, payloadLen: number, mss: number, flags = 0x18) {
  const payload = new Uint8Array(payloadLen).map((_, i) => (i * 11 + 3) & 0xff);
  const v6 = src.includes(":");
  const pkt = buildTCP({ srcPort: 33000, dstPort: 5201, seq: 1_000_000, ack: 777, flags, payload }, src, dst);
  const l3 = v6 ? 40 : 20;
  const hdr = virtioNetHdr({ flags: 1, gsoType: v6 ? 4 : 1, hdrLen: l3 + 20, gsoSize: mss, csumStart: l3, csumOffset: 16 });
  return { wire: concat(hdr, pkt), payload, original: pkt };
}

describe("decap: round trips", () => {
  it("gives back every kind of packet byte for byte after encap (no virtio_net_hdr)", () => {
    const { tx, rx } = pair(false);
    const packets = [
      buildICMPEcho({ id: 1, seq: 2, payload: new Uint8Array(56) }, POD1, POD2),
      buildUDP({ srcPort: 53, dstPort: 5353, payload: new Uint8Array(1000).fill(9) }, POD1, POD2),
      buildTCP({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0x02, payload: new Uint8Array(0) }, POD1, POD2),
      buildUDP({ srcPort: 53, dstPort: 5353, payload: new Uint8Array(77) }, POD1_6, POD2_6),
      buildIPv4({ src: POD1, dst: POD2, proto: 17, mf: true, payload: new Uint8Array(800) }),
    ];
    const n = tx.forwardTo(rx, tx.encapPackets(packets), NODE1.underlay);
    expect(n).toBe(packets.length);
    rx.rxPackets(n).forEach((p, i) => expect(Buffer.compare(p, packets[i])).toBe(0));
    const c = rx.counters();
    expect(c.rx_passed).toBe(packets.length);
    expect(rx.peerCounters(0).rxPackets).toBe(packets.length);
  });

  it("prefixes a virtio_net_hdr: DATA_VALID for TCP and UDP whose checksum the core verified, nothing otherwise", () => {
    const { tx, rx } = pair(true);
    const none = virtioNetHdr({});
    const udp = buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(10) }, POD1, POD2);
    const tcp = buildTCP({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0x10, payload: new Uint8Array(100) }, POD1, POD2);
    const icmp = buildICMPEcho({ id: 1, seq: 1, payload: new Uint8Array(8) }, POD1, POD2);
    const n = tx.forwardTo(rx, tx.encapPackets([concat(none, udp), concat(none, tcp), concat(none, icmp)]), NODE1.underlay);
    const out = rx.rxPackets(n);
    expect(out).toHaveLength(3);
    expect(Array.from(out[0].subarray(0, 10))).toEqual([2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Buffer.compare(out[0].subarray(10), udp)).toBe(0);
    expect(out[1][0]).toBe(2);
    expect(Buffer.compare(out[1].subarray(10), tcp)).toBe(0);
    expect(Array.from(out[2].subarray(0, 10))).toEqual(Array(10).fill(0));
  });
});

describe("decap: GRO", () => {
  for (const [src, dst] of [[POD1, POD2], [POD1_6, POD2_6]]) {
    it(`TSO split then GRO gives back one super-packet, payload byte for byte (IPv${src.includes(":") ? 6 : 4})`, () => {
      const { tx, rx } = pair(true);
      const v6 = src.includes(":");
      const l3 = v6 ? 40 : 20;
      const mss = 1450 - l3 - 20;
      const { wire, payload, original } = tsoPacket(src, dst, 65535 - 40 - 20 - (v6 ? 40 : 0), mss);
      const groups = tx.encapPackets([wire]);
      expect(groups).toBeGreaterThan(1); // 65507-byte UDP_SEGMENT sends: more than one group
      const n = tx.forwardTo(rx, groups, NODE1.underlay);
      expect(n).toBe(1);
      const out = rx.rxPacket(0);
      expect(out[0]).toBe(1); // NEEDS_CSUM
      expect(out[1]).toBe(v6 ? 4 : 1);
      expect(le16(out, 2)).toBe(l3 + 20); // hdr_len
      expect(le16(out, 4)).toBe(mss); // gso_size
      expect(le16(out, 6)).toBe(l3); // csum_start
      expect(le16(out, 8)).toBe(16); // csum_offset
      const pkt = completeChecksum(out);
      expect(pkt.length).toBe(original.length);
      expect(l4ChecksumOk(pkt)).toBe(true);
      if (!v6) expect(internetChecksum(pkt.subarray(0, 20))).toBe(0);
      const t = parseTCP(pkt);
      expect(t.seq).toBe(1_000_000);
      expect(t.flags).toBe(0x18);
      expect(Buffer.compare(t.payload, payload)).toBe(0);
      expect(rx.counters().rx_coalesced).toBe(Math.ceil(payload.length / mss) - 1);
    });
  }

  function segments(specs: { seq: number; len: number; flags?: number; ack?: number; srcPort?: number; corrupt?: boolean }[]) {
    return specs.map((s) => {
      const p = buildTCP({ srcPort: s.srcPort ?? 40000, dstPort: 80, seq: s.seq, ack: s.ack ?? 1, flags: s.flags ?? 0x10, payload: new Uint8Array(s.len).fill(s.seq & 0xff) }, POD1, POD2);
      if (s.corrupt) p[p.length - 1] ^= 0xff;
      return vxlanTo2(p);
    });
  }

  function coalesce(specs: Parameters<typeof segments>[0]) {
    const { rx } = pair(true);
    const n = rx.decapMessages(segments(specs).map((data) => ({ data, source: NODE1.underlay })));
    return { n, rx, out: rx.rxPackets(n) };
  }

  it("merges adjacent full-size segments, and a shorter last one", () => {
    const { n, out } = coalesce([{ seq: 0, len: 1000 }, { seq: 1000, len: 1000 }, { seq: 2000, len: 500 }]);
    expect(n).toBe(1);
    expect(parseTCP(completeChecksum(out[0])).payload.length).toBe(2500);
  });

  it("starts a new packet after a short segment, a PSH, a gap, another flow or another ACK", () => {
    expect(coalesce([{ seq: 0, len: 1000 }, { seq: 1000, len: 500 }, { seq: 1500, len: 1000 }]).n).toBe(2);
    expect(coalesce([{ seq: 0, len: 1000, flags: 0x18 }, { seq: 1000, len: 1000 }]).n).toBe(2);
    expect(coalesce([{ seq: 0, len: 1000 }, { seq: 5000, len: 1000 }]).n).toBe(2);
    expect(coalesce([{ seq: 0, len: 1000 }, { seq: 1000, len: 1000, srcPort: 40001 }]).n).toBe(2);
    expect(coalesce([{ seq: 0, len: 1000 }, { seq: 1000, len: 1000, ack: 2 }]).n).toBe(2);
    expect(coalesce([{ seq: 0, len: 1000 }, { seq: 1000, len: 1000, flags: 0x11 }]).n).toBe(2); // FIN
  });

  it("keeps flows in order when they interleave", () => {
    const { n, out } = coalesce([
      { seq: 0, len: 100 },
      { seq: 0, len: 100, srcPort: 40001 },
      { seq: 100, len: 100 },
    ]);
    expect(n).toBe(3);
    expect(out.map((p) => parseTCP(p.subarray(10)).srcPort)).toEqual([40000, 40001, 40000]);
  });

  it("never merges a segment whose checksum is wrong, and does not vouch for it", () => {
    const { n, rx, out } = coalesce([{ seq: 0, len: 1000 }, { seq: 1000, len: 1000, corrupt: true }]);
    expect(n).toBe(2);
    expect(out[1][0]).toBe(0); // neither NEEDS_CSUM nor DATA_VALID: the kernel will check and drop it
    expect(rx.counters().rx_l4_checksum_bad).toBe(1);
  });

  it("splits a UDP_GRO buffer by its segment size, the last datagram shorter", () => {
    const { tx, rx } = pair(false);
    const pkts = [300, 300, 300, 120].map((len) => buildUDP({ srcPort: 9, dstPort: 9, payload: new Uint8Array(len) }, POD1, POD2));
    const groups = tx.encapPackets(pkts);
    expect(groups).toBe(1);
    expect(tx.txGroup(0).segCount).toBe(4);
    expect(tx.forwardTo(rx, groups, NODE1.underlay)).toBe(4);
    rx.rxPackets(4).forEach((p, i) => expect(Buffer.compare(p, pkts[i])).toBe(0));
  });
});

describe("decap: unfinished checksums (CHECKSUM_PARTIAL senders over a veth underlay)", () => {
  /** What a kernel with checksum offload leaves in the field: the folded pseudo-header sum, not the checksum. */
  function unfinished(pkt: Uint8Array, field: number): Uint8Array {
    const p = pkt.slice();
    const v6 = p[0] >> 4 === 6;
    const l4 = v6 ? 40 : 20;
    const len = p.length - l4;
    const pseudo = v6
      ? concat(p.subarray(8, 40), Uint8Array.of(len >> 24, (len >> 16) & 255, (len >> 8) & 255, len & 255, 0, 0, 0, p[6]))
      : concat(p.subarray(12, 20), Uint8Array.of(0, p[9], len >> 8, len & 255));
    const folded = ~internetChecksum(pseudo) & 0xffff;
    p[l4 + field] = folded >> 8;
    p[l4 + field + 1] = folded & 0xff;
    return p;
  }

  it("finishes TCP (SYN, data) and UDP checksums left as the pseudo-header sum, and counts them", () => {
    const { rx } = pair(false);
    const syn = buildTCP({ srcPort: 5, dstPort: 7000, seq: 1, ack: 0, flags: 0x02, payload: new Uint8Array(0) }, POD1, POD2);
    const data = buildTCP({ srcPort: 5, dstPort: 7000, seq: 1, ack: 1, flags: 0x18, payload: new Uint8Array(999).fill(3) }, POD1_6, POD2_6);
    const dgram = buildUDP({ srcPort: 5, dstPort: 53, payload: new Uint8Array(33).fill(1) }, POD1, POD2);
    const sent = [unfinished(syn, 16), unfinished(data, 16), unfinished(dgram, 6)];
    for (const p of sent) expect(l4ChecksumOk(p)).toBe(false);
    const n = rx.decapMessages(sent.map((p) => ({ data: vxlanTo2(p), source: NODE1.underlay })));
    expect(n).toBe(3);
    const out = rx.rxPackets(n);
    [syn, data, dgram].forEach((original, i) => expect(Buffer.compare(out[i], original)).toBe(0));
    expect(rx.counters().rx_l4_checksum_completed).toBe(3);
    expect(rx.counters().rx_l4_checksum_bad).toBe(0);
  });

  it("hands an unsegmented TSO packet (a GSO skb that crossed a veth underlay) to the kernel as GSO at the MTU", () => {
    const { rx } = pair(true);
    const payload = new Uint8Array(5000).map((_, i) => i & 0xff);
    const sup = unfinished(buildTCP({ srcPort: 5, dstPort: 7000, seq: 9, ack: 1, flags: 0x10, payload }, POD1, POD2), 16);
    expect(rx.decapMessages([{ data: vxlanTo2(sup), source: NODE1.underlay }])).toBe(1);
    const out = rx.rxPacket(0);
    expect([out[0], out[1]]).toEqual([1, 1]); // NEEDS_CSUM, GSO_TCPV4
    expect(le16(out, 2)).toBe(40);
    expect(le16(out, 4)).toBe(1450 - 40);
    expect([le16(out, 6), le16(out, 8)]).toEqual([20, 16]);
    const pkt = completeChecksum(out);
    expect(l4ChecksumOk(pkt)).toBe(true);
    expect(Buffer.compare(parseTCP(pkt).payload, payload)).toBe(0);
    expect(rx.counters().rx_tcp_super_in).toBe(1);
  });

  // Kernel VXLAN over IPv4 sends an outer UDP checksum of zero: the inner TCP checksum is all that guards these bytes, and
  // a GSO packet with NEEDS_CSUM would have the kernel write a fresh, valid checksum over whatever arrived.
  for (const [src, dst] of [[POD1, POD2], [POD1_6, POD2_6]]) {
    const family = src.includes(":") ? 6 : 4;
    const l3 = family === 6 ? 40 : 20;
    const superPacket = () =>
      buildTCP({ srcPort: 5, dstPort: 7000, seq: 9, ack: 1, flags: 0x10, payload: new Uint8Array(5000).map((_, i) => i & 0xff) }, src, dst);

    it(`takes the GSO path for an unsegmented TSO packet whose full checksum verifies (IPv${family})`, () => {
      const { rx } = pair(true);
      const sup = superPacket();
      expect(l4ChecksumOk(sup)).toBe(true);
      expect(rx.decapMessages([{ data: vxlanTo2(sup), source: NODE1.underlay }])).toBe(1);
      const out = rx.rxPacket(0);
      expect([out[0], out[1]]).toEqual([1, family === 6 ? 4 : 1]); // NEEDS_CSUM, GSO_TCPV4/6
      expect(le16(out, 4)).toBe(1450 - l3 - 20);
      expect(Buffer.compare(completeChecksum(out), sup)).toBe(0);
      expect(rx.counters().rx_tcp_super_in).toBe(1);
    });

    it(`passes an unsegmented TSO packet whose checksum is wrong without NEEDS_CSUM, unchanged, and counts it (IPv${family})`, () => {
      const { rx } = pair(true);
      // Bytes damaged under a full checksum, and a field that is neither the checksum nor the pseudo-header sum. (Damage
      // under a partial checksum cannot be seen by anyone: the sender never summed the bytes.)
      const damagedBytes = superPacket();
      damagedBytes[3000] ^= 0x04;
      const damagedField = unfinished(superPacket(), 16);
      damagedField[l3 + 16] ^= 0x01;
      const sent = [damagedBytes, damagedField];
      expect(rx.decapMessages(sent.map((p) => ({ data: vxlanTo2(p), source: NODE1.underlay })))).toBe(2);
      sent.forEach((packet, i) => {
        const out = rx.rxPacket(i);
        expect(Array.from(out.subarray(0, 10))).toEqual(Array(10).fill(0)); // no NEEDS_CSUM, no DATA_VALID, no GSO
        expect(Buffer.compare(out.subarray(10), packet)).toBe(0); // the bad checksum stays for the kernel to find
      });
      const c = rx.counters();
      expect(c.rx_l4_checksum_bad).toBe(2);
      expect(c.rx_tcp_super_in).toBe(0);
      expect(c.rx_passed).toBe(2);
      expectRxAccounted(c);
    });
  }

  it("leaves a checksum that is simply wrong alone, and counts it", () => {
    const { rx } = pair(false);
    const syn = buildTCP({ srcPort: 5, dstPort: 7000, seq: 1, ack: 0, flags: 0x02, payload: new Uint8Array(0) }, POD1, POD2);
    syn[36] ^= 0x40;
    expect(rx.decapMessages([{ data: vxlanTo2(syn), source: NODE1.underlay }])).toBe(1);
    expect(Buffer.compare(rx.rxPacket(0), syn)).toBe(0);
    expect(rx.counters().rx_l4_checksum_bad).toBe(1);
    expect(rx.counters().rx_l4_checksum_completed).toBe(0);
  });
});

describe("decap: ingress filter (docs/wire.md)", () => {
  it("drops and counts every bad datagram by reason, and keeps forwarding the good ones", () => {
    const { rx } = pair(false);
    const good = buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(20) }, POD1, POD2);
    const badFlags = vxlanTo2(good);
    badFlags[0] = 0x0c;
    const badReserved = vxlanTo2(good);
    badReserved[7] = 1;
    const badIpSum = vxlanTo2(good);
    badIpSum[22 + 10] ^= 0xff;
    const tooLong = vxlanTo2(good);
    tooLong[22 + 3] += 50; // IPv4 total length past the datagram
    const msgs = [
      { data: vxlanTo2(good), source: "192.168.77.99" }, // unknown peer
      { data: vxlanTo2(good, { vni: 2 }), source: NODE1.underlay },
      { data: badFlags, source: NODE1.underlay },
      { data: badReserved, source: NODE1.underlay },
      { data: vxlanTo2(good, { dstMac: "02:5e:00:00:00:09" }), source: NODE1.underlay },
      { data: vxlanTo2(new Uint8Array(28), { ethertype: 0x0806 }), source: NODE1.underlay }, // ARP
      { data: vxlanTo2(buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(20) }, POD1, "10.244.3.3")), source: NODE1.underlay },
      { data: badIpSum, source: NODE1.underlay },
      { data: tooLong, source: NODE1.underlay },
      { data: vxlanTo2(good).subarray(0, 30), source: NODE1.underlay },
      { data: vxlanTo2(good), source: NODE1.underlay },
    ];
    expect(rx.decapMessages(msgs)).toBe(1);
    const c = rx.counters();
    expect(c.rx_drop_unknown_peer).toBe(1);
    expect(c.rx_drop_wrong_vni).toBe(1);
    expect(c.rx_drop_bad_vxlan).toBe(2);
    expect(c.rx_drop_bad_inner_mac).toBe(1);
    expect(c.rx_drop_bad_ethertype).toBe(1);
    expect(c.rx_drop_not_local).toBe(1);
    expect(c.rx_drop_bad_ip_checksum).toBe(1);
    expect(c.rx_drop_malformed_inner).toBe(1);
    expect(c.rx_drop_truncated).toBe(1);
    expect(c.rx_passed).toBe(1);
    expectRxAccounted(c);
  });

  it("accepts a peer's traffic only while it is a peer, and after it moves only from its new address", () => {
    const { rx } = pair(false);
    const dg = vxlanTo2(buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(8) }, POD1, POD2));
    expect(rx.decapMessages([{ data: dg, source: NODE1.underlay }])).toBe(1);
    rx.removePeer(0);
    expect(rx.decapMessages([{ data: dg, source: NODE1.underlay }])).toBe(0);
    rx.setPeer(0, { address: "192.168.77.11", vtepMAC: NODE1.vtepMAC });
    expect(rx.decapMessages([{ data: dg, source: NODE1.underlay }])).toBe(0);
    expect(rx.decapMessages([{ data: dg, source: "192.168.77.11" }])).toBe(1);
    expect(rx.counters().rx_drop_unknown_peer).toBe(2);
  });

  it("refuses two peers with one underlay address", () => {
    const { rx } = pair(false);
    expect(() => rx.setPeer(3, { address: NODE1.underlay, vtepMAC: "02:00:00:00:00:03" })).toThrow(/already has underlay address/);
  });

  it("counts a zero-length datagram, alone or among others, as received and dropped", () => {
    const { rx } = pair(false);
    const good = vxlanTo2(buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(8) }, POD1, POD2));
    const empty = new Uint8Array(0);
    const n = rx.decapMessages([empty, good, empty, empty].map((data) => ({ data, source: NODE1.underlay })));
    expect(n).toBe(1);
    const c = rx.counters();
    expect(c.rx_datagrams_in).toBe(4);
    expect(c.rx_drop_empty).toBe(3);
    expect(c.rx_passed).toBe(1);
    expectRxAccounted(c);
  });

  it("tolerates link padding after the inner packet and strips it", () => {
    const { rx } = pair(false);
    const inner = buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(2) }, POD1, POD2);
    const padded = concat(vxlanTo2(inner), new Uint8Array(16));
    expect(rx.decapMessages([{ data: padded, source: NODE1.underlay }])).toBe(1);
    expect(Buffer.compare(rx.rxPacket(0), inner)).toBe(0);
    expect(be16(rx.rxPacket(0), 2)).toBe(inner.length);
  });
});
