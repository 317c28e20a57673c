// Interop at the byte level with the Linux kernel's own VXLAN driver (configured as flannel configures it): every packet
// the kernel sent decapsulates to its inner packet, and encapsulating that inner packet gives the kernel's bytes back.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { NODE1, NODE2, datagramsOf, makeCore } from "../helpers/nodes.js";
import { concat, fillL4Checksum, internetChecksum, l4ChecksumOk, onesComplementSum, parseTCP } from "../helpers/packets.js";

interface Fixture {
  name: string;
  capture: string;
  direction: "A->B" | "B->A";
  hex: string;
  outer: { family: string; src: string; dst: string; srcPort: number; dstPort: number };
  udpPayloadOffset: number;
  innerIpOffset: number;
  innerProto: string;
}

const fixtures: Fixture[] = JSON.parse(readFileSync(new URL("../fixtures/kernel-vxlan.json", import.meta.url), "utf8")).packets;
const frame = (f: Fixture) => Buffer.from(f.hex, "hex");
const vxlanPayload = (f: Fixture) => frame(f).subarray(f.udpPayloadOffset);
const innerPacket = (f: Fixture) => frame(f).subarray(f.innerIpOffset);

/**
 * What a kernel VXLAN sender over a veth underlay hands across unsegmented: the kernel's own VXLAN, Ethernet, IPv4 and TCP
 * headers of the first of its consecutive segments, carrying all their payloads in one over-MTU packet, the TCP checksum
 * field holding the pseudo-header sum (CHECKSUM_PARTIAL, never finished by a NIC).
 */
function kernelSuperPacket(segs: Fixture[]): { datagram: Uint8Array; inner: Uint8Array; payload: Uint8Array } {
  const tcp = segs.map((f) => parseTCP(innerPacket(f)));
  for (let i = 1; i < tcp.length; i++) expect(tcp[i].seq).toBe(tcp[i - 1].seq + tcp[i - 1].payload.length);
  const first = innerPacket(segs[0]);
  const headers = first.length - tcp[0].payload.length;
  const payload = concat(...tcp.map((t) => t.payload));
  const inner = concat(first.subarray(0, headers), payload);
  inner[2] = inner.length >> 8;
  inner[3] = inner.length & 0xff;
  inner[10] = inner[11] = 0;
  const ipSum = internetChecksum(inner.subarray(0, 20));
  inner[10] = ipSum >> 8;
  inner[11] = ipSum & 0xff;
  const tcpLen = inner.length - 20;
  const partial = onesComplementSum(concat(inner.subarray(12, 20), Uint8Array.of(0, 6, tcpLen >> 8, tcpLen & 0xff)));
  inner[20 + 16] = partial >> 8;
  inner[20 + 17] = partial & 0xff;
  const outerHeaders = vxlanPayload(segs[0]).subarray(0, segs[0].innerIpOffset - segs[0].udpPayloadOffset);
  return { datagram: concat(outerHeaders, inner), inner, payload };
}

/** Cores for the receiving and sending node of a fixture, with the peer at the fixture's underlay address. */
function coresFor(f: Fixture, vnetHdr: boolean) {
  const [self, peer] = f.direction === "A->B" ? [NODE2, NODE1] : [NODE1, NODE2];
  const mtu = f.outer.family === "ipv6" ? 1430 : 1450;
  const rx = makeCore(self, peer, { vnetHdr, mtu });
  const tx = makeCore(peer, self, { vnetHdr, mtu });
  rx.setPeer(0, { address: f.outer.src, vtepMAC: peer.vtepMAC });
  tx.setPeer(0, { address: f.outer.dst, vtepMAC: self.vtepMAC });
  return { rx, tx };
}

describe("kernel VXLAN fixtures", () => {
  it("cover both directions, both inner families, both underlay families and both ports", () => {
    expect(fixtures.length).toBeGreaterThan(40);
    expect(new Set(fixtures.map((f) => f.direction)).size).toBe(2);
    expect(new Set(fixtures.map((f) => f.outer.family))).toEqual(new Set(["ipv4", "ipv6"]));
    expect(new Set(fixtures.map((f) => f.outer.dstPort))).toEqual(new Set([8472, 4789]));
  });

  for (const f of fixtures) {
    it(`${f.name}: decap gives the inner packet, encap gives the kernel's bytes`, () => {
      const { rx, tx } = coresFor(f, false);
      expect(rx.decapMessages([{ data: vxlanPayload(f), source: f.outer.src }])).toBe(1);
      expect(Buffer.compare(rx.rxPacket(0), innerPacket(f))).toBe(0);
      expect(rx.peerCounters(0).rxPackets).toBe(1);

      const groups = tx.encapPackets([innerPacket(f)]);
      const [d] = datagramsOf(tx, groups);
      expect(Buffer.from(d.data).toString("hex")).toBe(vxlanPayload(f).toString("hex"));
    });
  }

  it("marks kernel-sent TCP segments as checksum-verified when delivering with a virtio_net_hdr", () => {
    const f = fixtures.find((x) => x.name === "tcp-v4-data-a2b-1")!;
    const { rx } = coresFor(f, true);
    expect(rx.decapMessages([{ data: vxlanPayload(f), source: f.outer.src }])).toBe(1);
    const out = rx.rxPacket(0);
    expect(Array.from(out.subarray(0, 10))).toEqual([2, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // DATA_VALID, GSO_NONE
    expect(Buffer.compare(out.subarray(10), innerPacket(f))).toBe(0);
  });

  it("passes the kernel's unsegmented over-MTU TCP on as GSO only when its checksum is partial or verifies", () => {
    const segs = fixtures.filter((x) => /^tcp-v4-data-a2b-\d$/.test(x.name));
    expect(segs.length).toBeGreaterThanOrEqual(2);
    const { datagram, inner, payload } = kernelSuperPacket(segs);
    expect(inner.length).toBeGreaterThan(1450);
    const verified = concat(datagram.subarray(0, 22), fillL4Checksum(inner.slice()));
    const damaged = verified.slice();
    damaged[22 + 1000] ^= 0x20; // a flipped bit in the payload under a full checksum
    const { rx } = coresFor(segs[0], true);
    const n = rx.decapMessages([datagram, verified, damaged].map((data) => ({ data, source: segs[0].outer.src })));
    expect(n).toBe(3);
    for (const k of [0, 1]) {
      const out = rx.rxPacket(k);
      expect([out[0], out[1]]).toEqual([1, 1]); // NEEDS_CSUM, GSO_TCPV4: the kernel cuts it at the MTU and sums each segment
      expect(out.length).toBe(10 + inner.length);
      expect(Buffer.compare(parseTCP(out.subarray(10)).payload, payload)).toBe(0);
    }
    const bad = rx.rxPacket(2);
    expect(Array.from(bad.subarray(0, 10))).toEqual(Array(10).fill(0)); // left for the kernel to verify, and drop
    expect(Buffer.compare(bad.subarray(10), damaged.subarray(22))).toBe(0);
    expect(l4ChecksumOk(bad.subarray(10))).toBe(false);
    const c = rx.counters();
    expect([c.rx_tcp_super_in, c.rx_l4_checksum_bad, c.rx_passed]).toEqual([2, 1, 3]);
  });

  it("cuts a super-packet of the kernel's own segments back into the kernel's datagrams, each a header and a payload slice", () => {
    const segs = fixtures.filter((x) => /^tcp-v4-data-b2a-\d$/.test(x.name));
    const { inner, payload } = kernelSuperPacket(segs);
    const mss = payload.length / segs.length;
    const { tx } = coresFor(segs[0], true);
    const l4 = 20;
    const hdrLen = inner.length - payload.length;
    const read = concat(Uint8Array.from([1, 1, hdrLen, 0, mss & 0xff, mss >> 8, l4, 0, 16, 0]), inner);
    const groups = tx.encapPackets([read]);
    expect(groups).toBe(1);
    const grp = tx.txGroup(0);
    const slices = tx.txSlices(grp);
    expect(slices.map((s) => s.length)).toEqual(segs.flatMap(() => [22 + hdrLen, mss]));
    const datagrams = datagramsOf(tx, groups).map((d) => d.data);
    segs.forEach((f, i) => {
      expect(Buffer.compare(tx.join(slices.slice(2 * i, 2 * i + 2)), datagrams[i])).toBe(0);
      const kernel = new Uint8Array(vxlanPayload(f));
      const ours = datagrams[i];
      // The kernel left its TCP checksum to offload (the pseudo-header sum); ours is complete. Everything else is equal.
      const csum = 22 + l4 + 16;
      expect(l4ChecksumOk(ours.subarray(22))).toBe(true);
      kernel.set(ours.subarray(csum, csum + 2), csum);
      expect(Buffer.compare(ours, kernel)).toBe(0);
    });
  });

  it("coalesces the kernel's consecutive TCP segments of one flow into one super-packet (GRO)", () => {
    const segs = fixtures.filter((x) => /^tcp-v4-data-b2a-\d$/.test(x.name));
    expect(segs.length).toBeGreaterThanOrEqual(3);
    const { rx } = coresFor(segs[0], true);
    const n = rx.decapMessages(segs.map((f) => ({ data: vxlanPayload(f), source: f.outer.src })));
    const payloads = segs.map((f) => parseTCP(innerPacket(f)));
    // Segments coalesce while they are full-sized and consecutive; count what the kernel's GRO rules allow.
    let expected = 1;
    for (let i = 1; i < payloads.length; i++) {
      const prev = payloads[i - 1];
      const contiguous = prev.seq + prev.payload.length === payloads[i].seq && (prev.flags & 0x08) === 0;
      if (!contiguous || prev.payload.length !== payloads[0].payload.length) expected++;
    }
    expect(n).toBe(expected);
    expect(n).toBeLessThan(segs.length);
    const first = rx.rxPacket(0);
    expect(first[1]).toBe(1); // GSO_TCPV4
    expect(first[0]).toBe(1); // NEEDS_CSUM
    const merged = parseTCP(first.subarray(10));
    expect(merged.seq).toBe(payloads[0].seq);
    let k = 0;
    for (let len = 0; len < merged.payload.length; k++) len += payloads[k].payload.length;
    expect(k).toBeGreaterThan(1);
    expect(Buffer.compare(merged.payload, Buffer.concat(payloads.slice(0, k).map((p) => p.payload)))).toBe(0);
  });
});
