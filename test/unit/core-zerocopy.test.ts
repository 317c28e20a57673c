// Zero copy in the core: whole packets are encapsulated where the TUN read put them, super-packets go out as header slices
// and payload slices of the slot, and super-packets built by GRO are their headers plus payload slices of the RX slots.
// The bytes must be exactly what the copying core produced (test/fixtures/copy-path.json, for test/helpers/copy-path.ts).
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { SLOT_SIZE, TX_HEADROOM, type Core, type Slice } from "../../src/core/index.js";
import { COPY_PATH_INPUTS, digest, type CopyPathResult } from "../helpers/copy-path.js";
import { NODE1, NODE2, makeCore } from "../helpers/nodes.js";
import { buildTCP, buildUDP, concat, virtioNetHdr } from "../helpers/packets.js";

const fixture: Record<string, CopyPathResult> = JSON.parse(readFileSync(new URL("../fixtures/copy-path.json", import.meta.url), "utf8")).results;
const VNET = 10;
const OVERHEAD = 22;

function pair(vnetHdr = true) {
  return { tx: makeCore(NODE1, NODE2, { vnetHdr }), rx: makeCore(NODE2, NODE1, { vnetHdr }) };
}

const inSlots = (core: Core, s: Slice, at: number, slots: number) => s.offset >= at && s.offset + s.length <= at + slots * SLOT_SIZE;

describe("zero copy: the same bytes as the copying core", () => {
  for (const name of Object.keys(COPY_PATH_INPUTS)) {
    it(`${name}: send groups, datagrams and delivered packets`, () => {
      const { tx, rx } = pair();
      const groups = tx.encapPackets(COPY_PATH_INPUTS[name]);
      const gs = Array.from({ length: groups }, (_, g) => tx.txGroup(g));
      expect(gs.map(({ segCount, segSize, length, peer, sourcePort }) => ({ segCount, segSize, length, peer, sourcePort }))).toEqual(fixture[name].groups);
      expect(gs.flatMap((g) => tx.txDatagrams(g)).map(digest)).toEqual(fixture[name].datagrams);
      const n = tx.forwardTo(rx, groups, NODE1.underlay);
      expect(rx.rxPackets(n).map(digest)).toEqual(fixture[name].delivered);
    });
  }
});

describe("zero copy: TX", () => {
  it("encapsulates a whole packet in place: one iovec, VXLAN + Ethernet over the headroom and the virtio_net_hdr", () => {
    for (const vnetHdr of [true, false]) {
      const { tx } = pair(vnetHdr);
      const pkt = buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(300).fill(9) }, "10.244.1.5", "10.244.2.7");
      const reads = [0, 1, 2].map(() => (vnetHdr ? concat(virtioNetHdr(), pkt) : pkt));
      expect(tx.encapPackets(reads)).toBe(1);
      const slices = tx.txSlices(tx.txGroup(0));
      const ipAt = (i: number) => tx.at.txIn + i * SLOT_SIZE + TX_HEADROOM + (vnetHdr ? VNET : 0);
      expect(slices).toEqual([0, 1, 2].map((i) => ({ offset: ipAt(i) - OVERHEAD, length: OVERHEAD + pkt.length })));
      // The IP packet itself was not touched: the datagram is the headers written in front of it and the packet.
      expect(Buffer.compare(tx.u8.subarray(ipAt(1), ipAt(1) + pkt.length), pkt)).toBe(0);
      expect(Array.from(tx.u8.subarray(ipAt(1) - OVERHEAD, ipAt(1) - OVERHEAD + 8))).toEqual([8, 0, 0, 0, 0, 0, 1, 0]);
    }
  });

  it("finishes a NEEDS_CSUM checksum in place", () => {
    const { tx } = pair();
    const read = COPY_PATH_INPUTS["tcp4-needs-csum"][0];
    tx.encapPackets([read]);
    const [slice] = tx.txSlices(tx.txGroup(0));
    expect(slice.offset).toBe(tx.at.txIn + TX_HEADROOM + VNET - OVERHEAD);
    const inner = tx.join([slice]).subarray(OVERHEAD);
    const good = buildTCP({ srcPort: 40002, dstPort: 80, seq: 5, ack: 6, flags: 0x18, payload: read.subarray(VNET + 40) }, "10.244.1.5", "10.244.2.7");
    expect(Buffer.compare(inner, good)).toBe(0);
  });

  it("sends a super-packet as [headers, payload] per datagram: headers in the header area, payloads left in the slot", () => {
    const { tx } = pair();
    const groups = tx.encapPackets(COPY_PATH_INPUTS["tcp4-tso-64k"]);
    const hdrLen = OVERHEAD + 20 + 20;
    const payloadAt = tx.at.txIn + TX_HEADROOM + VNET + 40;
    let k = 0;
    for (let g = 0; g < groups; g++) {
      const grp = tx.txGroup(g);
      const slices = tx.txSlices(grp);
      expect(slices.length).toBe(2 * grp.segCount);
      for (let d = 0; d < grp.segCount; d++, k++) {
        const [hdr, pay] = [slices[2 * d], slices[2 * d + 1]];
        expect(hdr.length).toBe(hdrLen);
        expect(inSlots(tx, hdr, tx.at.txIn, tx.txSlots)).toBe(false);
        expect(hdr.offset).toBeGreaterThanOrEqual(tx.at.txHdr);
        expect(pay).toEqual({ offset: payloadAt + k * 1400, length: Math.min(1400, 65000 - k * 1400) });
        // UDP_SEGMENT cuts at segSize: every datagram but a group's last is exactly that long.
        if (d + 1 < grp.segCount) expect(hdr.length + pay.length).toBe(grp.segSize);
      }
    }
    expect(k).toBe(Math.ceil(65000 / 1400));
  });
});

describe("zero copy: RX", () => {
  it("delivers a single packet in place, and a GRO super-packet as its headers followed by the payloads where they arrived", () => {
    const { tx, rx } = pair();
    const groups = tx.encapPackets(COPY_PATH_INPUTS["tcp4-tso-64k"]);
    expect(tx.forwardTo(rx, groups, NODE1.underlay)).toBe(1);
    const [slices] = rx.rxSlices(1);
    expect(slices[0]).toEqual({ offset: rx.at.rxHdr, length: VNET + 40 });
    const payloads = slices.slice(1);
    expect(payloads.length).toBe(47);
    let k = 0;
    for (let g = 0; g < groups; g++) {
      const grp = tx.txGroup(g);
      for (let d = 0; d < grp.segCount; d++, k++) {
        expect(payloads[k]).toEqual({ offset: rx.at.rxIn + g * SLOT_SIZE + d * grp.segSize + OVERHEAD + 40, length: Math.min(1400, 65000 - k * 1400) });
      }
    }

    const { tx: tx2, rx: rx2 } = pair();
    tx2.encapPackets(COPY_PATH_INPUTS["udp4-plain"]);
    expect(tx2.forwardTo(rx2, 1, NODE1.underlay)).toBe(1);
    expect(rx2.rxSlices(1)).toEqual([[{ offset: rx2.at.rxIn + OVERHEAD - VNET, length: VNET + COPY_PATH_INPUTS["udp4-plain"][0].length - VNET }]]);
  });

  it("ends a super-packet at 64 segments, so one writev never needs more than 65 iovecs", () => {
    const { tx, rx } = pair();
    const payload = new Uint8Array(100 * 70).map((_, i) => i & 0xff);
    const sup = buildTCP({ srcPort: 9, dstPort: 10, seq: 1, ack: 2, flags: 0x10, payload }, "10.244.1.5", "10.244.2.7");
    const read = concat(virtioNetHdr({ flags: 1, gsoType: 1, hdrLen: 40, gsoSize: 100, csumStart: 20, csumOffset: 16 }), sup);
    const groups = tx.encapPackets([read]);
    const n = tx.forwardTo(rx, groups, NODE1.underlay);
    expect(n).toBe(2);
    expect(rx.rxSlices(n).map((s) => s.length)).toEqual([65, 7]);
    expect(rx.counters().rx_coalesced).toBe(70 - 2);
    const joined = concat(...rx.rxPackets(n).map((p) => p.subarray(VNET + 40)));
    expect(Buffer.compare(joined, payload)).toBe(0);
  });
});
