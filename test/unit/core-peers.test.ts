// The core's batched peer updates (Core.applyPeers): many peers in one call, a change in place that keeps counters, a new
// node at a reused index that starts from zero, and a clash that is dropped instead of thrown.
import { describe, expect, it } from "vitest";
import { Core } from "../../src/core/index.js";
import { makeCore, NODE1, NODE2, POD1, POD2 } from "../helpers/nodes.js";
import { buildUDP } from "../helpers/packets.js";

const udp = () => buildUDP({ srcPort: 1000, dstPort: 2000, payload: new Uint8Array(32) }, POD1, POD2);

/** Sends one packet from Pod 1 to Pod 2; the underlay address and inner destination MAC of the datagram. */
function sendOne(core: Core): { peer: number; mac: string } | null {
  if (core.encapPackets([udp()]) !== 1) return null;
  const g = core.txGroup(0);
  const dg = core.txDatagrams(g)[0];
  return { peer: g.peer, mac: [...dg.subarray(8, 14)].map((b) => b.toString(16).padStart(2, "0")).join(":") };
}

describe("Core.applyPeers", () => {
  it("changes a peer's address and MAC in place: counters kept, the new MAC on the wire, the old address no longer accepted", () => {
    const core = makeCore(NODE1, NODE2);
    expect(sendOne(core)).toEqual({ peer: 0, mac: NODE2.vtepMAC });
    expect(core.peerCounters(0).txPackets).toBe(1);
    expect(core.applyPeers([{ op: "set", index: 0, peer: { address: "192.168.77.22", vtepMAC: "02:5e:00:00:00:22" }, resetCounters: false }])).toBe(0);
    expect(sendOne(core)).toEqual({ peer: 0, mac: "02:5e:00:00:00:22" });
    expect(core.peerCounters(0).txPackets).toBe(2);
  });

  it("zeroes the counters of a new node at a reused index, and of a removed one", () => {
    const core = makeCore(NODE1, NODE2);
    sendOne(core);
    core.applyPeers([{ op: "set", index: 0, peer: { address: "192.168.77.3", vtepMAC: "02:5e:00:00:00:03" }, resetCounters: true }]);
    expect(core.peerCounters(0).txPackets).toBe(0);
    sendOne(core);
    core.applyPeers([{ op: "remove", index: 0 }]);
    expect(core.peerCounters(0).txPackets).toBe(0);
    expect(sendOne(core)).toBeNull();
    expect(core.counters().tx_drop_no_peer).toBe(1);
  });

  it("sets thousands of peers in one call and keys each by its address", () => {
    const core = Core.load({ txSlots: 1, rxSlots: 1, maxPeers: 8192 });
    const ops = Array.from({ length: 5000 }, (_, i) => ({
      op: "set" as const, index: i, resetCounters: true,
      peer: { address: `198.18.${i >> 8}.${i & 255}`, vtepMAC: `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}` },
    }));
    expect(core.applyPeers(ops)).toBe(0);
    expect(core.exports.peerCount()).toBe(5000);
    // Swapping two peers' addresses in one update is no clash: the table is checked after the whole update.
    expect(core.applyPeers([
      { op: "set", index: 1, peer: { address: "198.18.0.2", vtepMAC: "02:00:00:00:00:01" }, resetCounters: false },
      { op: "set", index: 2, peer: { address: "198.18.0.1", vtepMAC: "02:00:00:00:00:02" }, resetCounters: false },
    ])).toBe(0);
    expect(core.exports.peerCount()).toBe(5000);
  });

  it("does not throw for a peer whose address a lower index has: that one keeps receiving until the clash is gone", () => {
    const core = makeCore(NODE1, NODE2);
    expect(core.applyPeers([{ op: "set", index: 3, peer: { address: NODE2.underlay, vtepMAC: "02:5e:00:00:00:09" }, resetCounters: true }])).toBe(1);
    expect(sendOne(core)).toEqual({ peer: 0, mac: NODE2.vtepMAC });
    // A (truncated) datagram from node 2's address still comes from a known peer.
    core.decapMessages([{ data: new Uint8Array(8), source: NODE2.underlay }]);
    expect(core.counters()).toMatchObject({ rx_drop_unknown_peer: 0, rx_drop_truncated: 1 });
    expect(core.applyPeers([{ op: "set", index: 3, peer: { address: "192.168.77.9", vtepMAC: "02:5e:00:00:00:09" }, resetCounters: false }])).toBe(0);
  });

  it("refuses a bad index or address before changing anything", () => {
    const core = makeCore(NODE1, NODE2);
    expect(() => core.applyPeers([{ op: "remove", index: 0 }, { op: "remove", index: 16 }])).toThrow(/out of range/);
    expect(() => core.applyPeers([{ op: "remove", index: 0 }, { op: "set", index: 1, peer: { address: "nope", vtepMAC: "02:00:00:00:00:01" }, resetCounters: true }])).toThrow();
    expect(sendOne(core)).toEqual({ peer: 0, mac: NODE2.vtepMAC });
  });
});
