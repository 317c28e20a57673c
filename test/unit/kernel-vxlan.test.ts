// Interop at the byte level with the Linux kernel's own VXLAN driver (configured as flannel configures it): every packet
// the kernel sent decapsulates to its inner packet, and encapsulating that inner packet gives the kernel's bytes back.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { NODE1, NODE2, datagramsOf, makeCore } from "../helpers/nodes.js";
import { parseTCP } from "../helpers/packets.js";

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
