// TX path of the core: inner packets → VXLAN datagrams grouped for UDP_SEGMENT, TSO/USO split, filters, ICMP too-big.
import { describe, expect, it } from "vitest";
import { buildIPv4, buildTCP, buildUDP, l4ChecksumOk, ipv4HeaderChecksumOk, parseTCP, virtioNetHdr } from "../helpers/packets.js";
import { be16, datagramsOf, makeCore, NODE1, NODE2, POD1, POD1_6, POD2, POD2_6, sumCounters } from "../helpers/nodes.js";


const concat = (parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)));
const be32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

function udp(src: string, dst: string, payloadLen: number, srcPort = 5000, dstPort = 5001): Uint8Array {
  return buildUDP({ srcPort, dstPort, payload: new Uint8Array(payloadLen).map((_, i) => i) }, src, dst);
}

/** TX accounting must always close: every packet read is passed or dropped for exactly one reason. */
function expectTxAccounted(c: Record<string, number>): void {
  expect(c.tx_packets_in).toBe(c.tx_passed + sumCounters(c, /^tx_drop_/));
}

describe("encap: datagram layout", () => {
  it("wraps an IPv4 packet in VXLAN (flags 0x08, VNI) and inner Ethernet (peer MAC, own MAC, 0x0800)", () => {
    const core = makeCore(NODE1, NODE2);
    const pkt = udp(POD1, POD2, 100);
    const groups = core.encapPackets([pkt]);
    expect(groups).toBe(1);
    const [d] = datagramsOf(core, groups);
    expect(Buffer.from(d.data.subarray(0, 8)).toString("hex")).toBe("0800000000000100");
    expect(Buffer.from(d.data.subarray(8, 14)).toString("hex")).toBe("025e00000002");
    expect(Buffer.from(d.data.subarray(14, 20)).toString("hex")).toBe("025e00000001");
    expect(be16(d.data, 20)).toBe(0x0800);
    expect(Buffer.compare(d.data.subarray(22), pkt)).toBe(0);
    expect(d.peer).toBe(0);
    expect(d.sourcePort).toBeGreaterThanOrEqual(49152);
    expect(d.sourcePort).toBeLessThanOrEqual(65535);
    expect(core.peerCounters(0)).toMatchObject({ txPackets: 1, txBytes: pkt.length + 22 });
  });

  it("uses ethertype 0x86DD and the configured VNI for IPv6", () => {
    const core = makeCore(NODE1, NODE2, { vni: 0x123456 });
    const pkt = udp(POD1_6, POD2_6, 40);
    const [d] = datagramsOf(core, core.encapPackets([pkt]));
    expect(Buffer.from(d.data.subarray(0, 8)).toString("hex")).toBe("0800000012345600");
    expect(be16(d.data, 20)).toBe(0x86dd);
    expect(Buffer.compare(d.data.subarray(22), pkt)).toBe(0);
  });

  it("keeps one flow on one source port and spreads flows over the range", () => {
    const core = makeCore(NODE1, NODE2);
    const ports = new Set<number>();
    for (let p = 0; p < 64; p++) {
      const a = datagramsOf(core, core.encapPackets([udp(POD1, POD2, 10, 1000 + p)]))[0].sourcePort;
      const b = datagramsOf(core, core.encapPackets([udp(POD1, POD2, 99, 1000 + p)]))[0].sourcePort;
      expect(a).toBe(b);
      ports.add(a);
    }
    expect(ports.size).toBeGreaterThan(48);
  });

  it("groups equal-size datagrams of one flow, closes a group after a shorter one, and splits by peer", () => {
    const core = makeCore(NODE1, NODE2);
    core.setPeer(1, { address: "192.168.77.3", vtepMAC: "02:5e:00:00:00:03" });
    core.routes4.insert("10.244.3.0/24", 1);
    const big = udp(POD1, POD2, 1000);
    const small = udp(POD1, POD2, 10);
    const other = udp(POD1, "10.244.3.5", 1000);
    const groups = core.encapPackets([big, big, big, small, big, other, other]);
    const gs = Array.from({ length: groups }, (_, g) => core.txGroup(g));
    expect(gs.map((g) => [g.segCount, g.segSize, g.peer])).toEqual([
      [4, big.length + 22, 0],
      [1, big.length + 22, 0],
      [2, other.length + 22, 1],
    ]);
    expect(gs[0].length).toBe(3 * (big.length + 22) + small.length + 22);
    expect(gs[1].iov).toBe(gs[0].iov + gs[0].iovCount);
    expect(gs.map((g) => g.iovCount)).toEqual([4, 1, 2]);
  });

  it("never puts more than 64 datagrams or 65507 bytes in one group", () => {
    const core = makeCore(NODE1, NODE2);
    const tiny = udp(POD1, POD2, 1);
    let groups = core.encapPackets(Array(64).fill(tiny));
    expect(groups).toBe(1);
    expect(core.txGroup(0).segCount).toBe(64);
    const big = udp(POD1, POD2, 1400);
    groups = core.encapPackets(Array(64).fill(big));
    const gs = Array.from({ length: groups }, (_, g) => core.txGroup(g));
    for (const g of gs) expect(g.length).toBeLessThanOrEqual(65507);
    expect(gs.reduce((s, g) => s + g.segCount, 0)).toBe(64);
    expect(gs[0].segCount).toBe(Math.floor(65507 / (big.length + 22)));
  });
});

describe("encap: filters and drops", () => {
  it("drops and counts spoofed sources, unrouted and unpeered destinations, and malformed packets", () => {
    const core = makeCore(NODE1, NODE2);
    core.routes4.insert("10.244.9.0/24", 7); // a route to a peer that was never set
    const truncated = udp(POD1, POD2, 50).subarray(0, 30);
    const badVersion = udp(POD1, POD2, 50).slice();
    badVersion[0] = 0x55;
    const groups = core.encapPackets([
      udp("10.9.9.9", POD2, 10),
      udp(POD1, "10.250.0.1", 10),
      udp(POD1, "10.244.9.1", 10),
      truncated,
      badVersion,
      new Uint8Array(0),
      udp(POD1_6, "fd00:99::1", 10),
      udp("fd00:1::1", POD2_6, 10),
      udp(POD1, POD2, 10),
    ]);
    expect(groups).toBe(1);
    const c = core.counters();
    expect(c.tx_drop_spoofed_source).toBe(2);
    expect(c.tx_drop_no_route).toBe(2);
    expect(c.tx_drop_no_peer).toBe(1);
    expect(c.tx_drop_malformed).toBe(3);
    expect(c.tx_passed).toBe(1);
    expectTxAccounted(c);
  });

  it("stops forwarding to a removed peer and resumes when it is set again", () => {
    const core = makeCore(NODE1, NODE2);
    expect(core.removePeer(0)).toBe(true);
    expect(core.encapPackets([udp(POD1, POD2, 10)])).toBe(0);
    expect(core.counters().tx_drop_no_peer).toBe(1);
    core.setPeer(0, { address: NODE2.underlay, vtepMAC: NODE2.vtepMAC });
    expect(core.encapPackets([udp(POD1, POD2, 10)])).toBe(1);
  });
});

describe("encap: MTU", () => {
  it("answers a DF IPv4 packet over the MTU with ICMP fragmentation-needed carrying the MTU, and drops it", () => {
    const core = makeCore(NODE1, NODE2, { mtu: 1400 });
    const pkt = buildIPv4({ src: POD1, dst: POD2, proto: 17, df: true, payload: new Uint8Array(1480 - 20) });
    expect(core.encapPackets([pkt])).toBe(0);
    const [reply] = core.txReplies();
    expect(reply).toBeDefined();
    expect(ipv4HeaderChecksumOk(reply)).toBe(true);
    expect(reply[9]).toBe(1); // ICMP
    expect(Array.from(reply.subarray(12, 16)).join(".")).toBe(NODE1.gateway4);
    expect(Array.from(reply.subarray(16, 20)).join(".")).toBe(POD1);
    expect([reply[20], reply[21]]).toEqual([3, 4]);
    expect(be16(reply, 26)).toBe(1400);
    expect(l4ChecksumOk(reply)).toBe(true);
    expect(Buffer.compare(reply.subarray(28, 48), pkt.subarray(0, 20))).toBe(0);
    expect(reply.length).toBeLessThanOrEqual(576);
    const c = core.counters();
    expect(c.tx_drop_too_big).toBe(1);
    expect(c.tx_icmp_generated).toBe(1);
  });

  it("answers an oversized IPv6 packet with ICMPv6 packet-too-big (32-bit MTU, ≤ 1280 bytes)", () => {
    const core = makeCore(NODE1, NODE2, { mtu: 1400 });
    const pkt = udp(POD1_6, POD2_6, 1500);
    expect(core.encapPackets([pkt])).toBe(0);
    const [reply] = core.txReplies();
    expect(reply[6]).toBe(58);
    expect([reply[40], reply[41]]).toEqual([2, 0]);
    expect(be32(reply, 44)).toBe(1400);
    expect(reply.length).toBe(1280);
    expect(l4ChecksumOk(reply)).toBe(true);
  });

  it("drops a non-DF IPv4 packet over the MTU without an ICMP error", () => {
    const core = makeCore(NODE1, NODE2, { mtu: 1400 });
    expect(core.encapPackets([buildIPv4({ src: POD1, dst: POD2, proto: 17, df: false, payload: new Uint8Array(1500) })])).toBe(0);
    expect(core.txReplies()).toHaveLength(0);
    expect(core.counters().tx_drop_too_big).toBe(1);
  });

  it("never answers an ICMP error with an ICMP error", () => {
    const core = makeCore(NODE1, NODE2, { mtu: 1400 });
    const icmpError = new Uint8Array(1500 - 20);
    icmpError[0] = 3; // destination unreachable
    expect(core.encapPackets([buildIPv4({ src: POD1, dst: POD2, proto: 1, df: true, payload: icmpError })])).toBe(0);
    expect(core.txReplies()).toHaveLength(0);
  });
});

describe("encap with virtio_net_hdr", () => {
  const vnet = { vnetHdr: true };

  it("completes a partial (NEEDS_CSUM) TCP checksum", () => {
    const core = makeCore(NODE1, NODE2, vnet);
    const full = buildTCP({ srcPort: 1234, dstPort: 80, seq: 1, ack: 2, flags: 0x18, payload: new Uint8Array(333).fill(7) }, POD1, POD2);
    const partial = full.slice();
    partial[36] = 0x12; // garbage where the kernel leaves the pseudo-header sum — replaced below
    partial[37] = 0x34;
    const pseudo = pseudoHeaderSum4(full);
    partial[36] = pseudo >> 8;
    partial[37] = pseudo & 0xff;
    const hdr = virtioNetHdr({ flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 20, csumOffset: 16 });
    const [d] = datagramsOf(core, core.encapPackets([concat([hdr, partial])]));
    expect(Buffer.compare(d.data.subarray(22), full)).toBe(0);
  });

  for (const family of [4, 6] as const) {
    it(`splits a 64 KiB TCP/IPv${family} super-packet into MSS segments with correct headers and checksums`, () => {
      const core = makeCore(NODE1, NODE2, vnet);
      const src = family === 4 ? POD1 : POD1_6;
      const dst = family === 4 ? POD2 : POD2_6;
      const l3 = family === 4 ? 20 : 40;
      const options = new Uint8Array([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
      const payload = new Uint8Array(65535 - l3 - 32 - (family === 6 ? 40 : 0)).map((_, i) => (i * 7) & 0xff);
      const sup = buildTCP({ srcPort: 40000, dstPort: 5201, seq: 0xfffff000, ack: 99, flags: 0x19, options, payload }, src, dst, { id: 0xfff0 });
      const mss = 1450 - l3 - 32;
      const hdr = virtioNetHdr({ flags: 1, gsoType: family === 4 ? 1 : 4, hdrLen: l3 + 32, gsoSize: mss, csumStart: l3, csumOffset: 16 });
      const ds = datagramsOf(core, core.encapPackets([concat([hdr, sup])]));
      const segs = ds.map((d) => d.data.subarray(22));
      expect(segs).toHaveLength(Math.ceil(payload.length / mss));
      const got: Uint8Array[] = [];
      segs.forEach((seg, i) => {
        expect(l4ChecksumOk(seg)).toBe(true);
        if (family === 4) {
          expect(ipv4HeaderChecksumOk(seg)).toBe(true);
          expect(be16(seg, 2)).toBe(seg.length);
          expect(be16(seg, 4)).toBe((0xfff0 + i) & 0xffff);
        } else {
          expect(be16(seg, 4)).toBe(seg.length - 40);
        }
        const t = parseTCP(seg);
        expect(t.seq).toBe((0xfffff000 + i * mss) >>> 0);
        const last = i === segs.length - 1;
        expect(t.flags).toBe(last ? 0x19 : 0x10); // FIN and PSH only on the last
        expect(Buffer.compare(Buffer.from(t.options), Buffer.from(options))).toBe(0);
        if (!last) expect(t.payload.length).toBe(mss);
        got.push(t.payload);
        expect(seg.length + 22).toBeLessThanOrEqual(1450 + 22);
      });
      expect(Buffer.compare(concat(got), payload)).toBe(0);
      expect(core.counters().tx_gso_split).toBe(1);
    });
  }

  it("cuts finer than gso_size when the segments would not fit the MTU", () => {
    const core = makeCore(NODE1, NODE2, { vnetHdr: true, mtu: 1000 });
    const sup = buildTCP({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0x10, payload: new Uint8Array(10000) }, POD1, POD2);
    const hdr = virtioNetHdr({ flags: 1, gsoType: 1, hdrLen: 40, gsoSize: 1400, csumStart: 20, csumOffset: 16 });
    const segs = datagramsOf(core, core.encapPackets([concat([hdr, sup])])).map((d) => d.data.subarray(22));
    expect(segs).toHaveLength(Math.ceil(10000 / 960));
    for (const s of segs) {
      expect(s.length).toBeLessThanOrEqual(1000);
      expect(l4ChecksumOk(s)).toBe(true);
    }
  });

  it("splits a UDP GSO (USO) super-packet into datagrams with their own length and checksum", () => {
    const core = makeCore(NODE1, NODE2, vnet);
    const payload = new Uint8Array(5000).map((_, i) => i & 0xff);
    const sup = buildUDP({ srcPort: 4000, dstPort: 4001, payload }, POD1, POD2);
    const hdr = virtioNetHdr({ flags: 1, gsoType: 5, hdrLen: 28, gsoSize: 1200, csumStart: 20, csumOffset: 6 });
    const segs = datagramsOf(core, core.encapPackets([concat([hdr, sup])])).map((d) => d.data.subarray(22));
    expect(segs.map((s) => s.length)).toEqual([1228, 1228, 1228, 1228, 228]);
    const got = segs.map((s) => {
      expect(l4ChecksumOk(s)).toBe(true);
      expect(be16(s, 24)).toBe(s.length - 20);
      return s.subarray(28);
    });
    expect(Buffer.compare(concat(got), payload)).toBe(0);
  });

  it("rejects virtio_net_hdr it cannot honour, counting each reason", () => {
    const core = makeCore(NODE1, NODE2, vnet);
    const tcp = buildTCP({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0x10, payload: new Uint8Array(3000) }, POD1, POD2);
    const u = udp(POD1, POD2, 3000);
    core.encapPackets([
      new Uint8Array(5), // shorter than the header
      concat([virtioNetHdr({ flags: 1, gsoType: 1, hdrLen: 40, gsoSize: 0, csumStart: 20, csumOffset: 16 }), tcp]), // gso_size 0
      concat([virtioNetHdr({ flags: 1, gsoType: 4, hdrLen: 40, gsoSize: 1000, csumStart: 20, csumOffset: 16 }), tcp]), // TCPV6 on v4
      concat([virtioNetHdr({ flags: 1, gsoType: 1, hdrLen: 40, gsoSize: 1000, csumStart: 20, csumOffset: 16 }), u]), // TSO on UDP
      concat([virtioNetHdr({ flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 20, csumOffset: 9999 }), tcp]), // csum off the end
      concat([virtioNetHdr({ flags: 1, gsoType: 3, hdrLen: 0, gsoSize: 1000, csumStart: 20, csumOffset: 6 }), u]), // UFO
    ]);
    const c = core.counters();
    expect(c.tx_drop_bad_vnet_hdr).toBe(5);
    expect(c.tx_drop_unsupported_gso).toBe(1);
    expectTxAccounted(c);
  });
});

function pseudoHeaderSum4(ip: Uint8Array): number {
  let sum = 0;
  for (let o = 12; o < 20; o += 2) sum += be16(ip, o);
  sum += 6 + (ip.length - 20);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
