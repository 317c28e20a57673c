// Registry records → dataplane peers: stable indexes, changes in place, and the records that must never become peers
// (refused once, counted, and admitted later when what they clashed with goes away).
import { describe, expect, it } from "vitest";
import pino from "pino";
import { PeerIndex, type PeerChanges, type Refusal } from "../../src/agent/peers.js";
import type { NodeRecord } from "../../src/control/registry/index.js";

const self: NodeRecord = { nodeName: "n1", publicIP: "192.168.1.1", subnet: "10.244.1.0/24", vtepMAC: "02:00:00:00:00:01", vni: 1 };
const rec = (n: number, extra: Partial<NodeRecord> = {}): NodeRecord => ({
  nodeName: `n${n}`, publicIP: `192.168.1.${n}`, subnet: `10.244.${n}.0/24`, vtepMAC: `02:00:00:00:01:${n.toString(16).padStart(2, "0")}`, vni: 1, ...extra,
});

/** A log that keeps its warnings, and an index over it. */
function index(opts: { maxPeers?: number; family?: 4 | 6; self?: NodeRecord } = {}) {
  const warnings: string[] = [];
  const refusals: Refusal[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => {
    const o = JSON.parse(line) as { level: number; node: string; reason: string };
    if (o.level === 40) warnings.push(`${o.node}: ${o.reason}`);
  } });
  const peers = new PeerIndex({
    self: opts.self ?? self, underlayFamily: opts.family ?? 4, maxPeers: opts.maxPeers ?? 16, log, onRefused: (r) => refusals.push(r),
  });
  const reasonOf = (name: string) => peers.refusals().find((r) => r.nodeName === name)?.reason;
  const names = () => peers.entries().map((p) => p.nodeName).sort();
  return { peers, warnings, refusals, reasonOf, names };
}

const take = (peers: PeerIndex): PeerChanges => peers.takeChanges() ?? { set: [], remove: [] };

describe("PeerIndex: indexes and changes", () => {
  it("gives each node a stable index, keeps it across changes, and reuses freed ones", () => {
    const { peers, names } = index();
    peers.upsert(rec(2));
    peers.upsert(rec(3));
    expect(take(peers).set.map((p) => [p.nodeName, p.index])).toEqual([["n2", 0], ["n3", 1]]);
    peers.upsert(rec(2, { publicIP: "192.168.1.22" }));
    expect(take(peers)).toEqual({ set: [expect.objectContaining({ index: 0, nodeName: "n2", address: "192.168.1.22" })], remove: [] });
    peers.remove("n2");
    peers.remove("n2");
    expect(take(peers)).toEqual({ set: [], remove: [0] });
    peers.upsert(rec(4));
    expect(take(peers).set.map((p) => [p.nodeName, p.index])).toEqual([["n4", 0]]);
    expect(names()).toEqual(["n3", "n4"]);
  });

  it("a record listed again unchanged changes nothing; one change per index survives a burst", () => {
    const { peers } = index();
    for (let n = 2; n < 12; n++) peers.upsert(rec(n));
    expect(take(peers).set).toHaveLength(10);
    for (let n = 2; n < 12; n++) peers.upsert(rec(n));
    expect(peers.takeChanges()).toBeNull();
    // Node 2 leaves and node 12 takes its index in the same burst: one set at index 0, no remove.
    peers.remove("n2");
    peers.upsert(rec(12));
    expect(take(peers)).toEqual({ set: [expect.objectContaining({ index: 0, nodeName: "n12" })], remove: [] });
  });

  it("a change that touches nothing the dataplane uses reaches no worker", () => {
    const { peers } = index();
    peers.upsert(rec(2));
    take(peers);
    peers.upsert(rec(2, { publicIPv6: "fd00::2" }));
    expect(peers.takeChanges()).toBeNull();
  });

  it("carries an IPv6 Pod subnet and canonical text", () => {
    const { peers } = index({ family: 6 });
    peers.upsert(rec(2, { publicIP: "FD00:0::2", subnetV6: "fd00:244:2::/64", vtepMAC: "02:AA:00:00:00:02" }));
    expect(take(peers).set).toEqual([expect.objectContaining({ address: "fd00::2", subnetV6: "fd00:244:2::/64", vtepMAC: "02:aa:00:00:00:02" })]);
  });
});

describe("PeerIndex: refusals", () => {
  const cases: [string, NodeRecord, Refusal["reason"]][] = [
    ["a malformed address", rec(2, { publicIP: "192.168.1" }), "malformed"],
    ["a malformed subnet", rec(2, { subnet: "10.244.2.0" }), "malformed"],
    ["an IPv6 subnet as the IPv4 one", rec(2, { subnet: "fd00::/64" }), "malformed"],
    ["a multicast VtepMAC", rec(2, { vtepMAC: "03:00:00:00:00:02" }), "malformed"],
    ["another VNI", rec(2, { vni: 2 }), "vni"],
    ["an IPv6 underlay address on an IPv4 socket", rec(2, { publicIP: "fd00::2" }), "underlay_family"],
    ["our underlay address", rec(2, { publicIP: "192.168.1.1" }), "own_underlay_address"],
    ["our VtepMAC", rec(2, { vtepMAC: "02:00:00:00:00:01" }), "own_vtep_mac"],
    ["a subnet inside ours", rec(2, { subnet: "10.244.1.0/25" }), "own_subnet"],
    ["a subnet around ours", rec(2, { subnet: "10.244.0.0/16" }), "own_subnet"],
  ];
  it.each(cases)("refuses %s", (_what, record, reason) => {
    const { peers, reasonOf, refusals } = index();
    peers.upsert(record);
    expect(peers.takeChanges()).toBeNull();
    expect(reasonOf(record.nodeName)).toBe(reason);
    expect(refusals.map((r) => r.reason)).toEqual([reason]);
  });

  it("refuses an IPv4 underlay address on an IPv6 socket, and an IPv6 subnet overlapping ours", () => {
    const { peers, reasonOf } = index({ family: 6, self: { ...self, publicIP: "fd00::1", subnetV6: "fd00:244:1::/64" } });
    peers.upsert(rec(2));
    expect(reasonOf("n2")).toBe("underlay_family");
    peers.upsert(rec(3, { publicIP: "fd00::3", subnetV6: "fd00:244::/32" }));
    expect(reasonOf("n3")).toBe("own_subnet");
  });

  it("ignores our own record", () => {
    const { peers } = index();
    peers.upsert(self);
    expect(peers.takeChanges()).toBeNull();
    expect(peers.refusals()).toEqual([]);
  });

  const clashes: [string, Partial<NodeRecord>, Refusal["reason"]][] = [
    ["the same underlay address", { publicIP: "192.168.1.2" }, "underlay_address"],
    ["the same VtepMAC", { vtepMAC: rec(2).vtepMAC }, "vtep_mac"],
    ["the same subnet", { subnet: "10.244.2.0/24" }, "subnet_overlap"],
    ["a subnet inside the peer's", { subnet: "10.244.2.128/25" }, "subnet_overlap"],
    ["a subnet around the peer's", { subnet: "10.244.4.0/23" }, "subnet_overlap"],
  ];
  it.each(clashes)("keeps the peer admitted first when another record claims %s", (_what, claim, reason) => {
    const { peers, reasonOf, names } = index();
    peers.upsert(rec(2));
    peers.upsert(rec(5));
    take(peers);
    peers.upsert(rec(3, claim));
    expect(peers.takeChanges()).toBeNull();
    expect(reasonOf("n3")).toBe(reason);
    expect(names()).toEqual(["n2", "n5"]);
  });

  it("finds overlaps among many peers, IPv6 ones too", () => {
    const { peers, reasonOf } = index({ maxPeers: 6000 });
    for (let n = 0; n < 5000; n++) {
      peers.upsert({ nodeName: `m${n}`, publicIP: `198.18.${n >> 8}.${n & 255}`, subnet: `10.${100 + (n >> 8)}.${n & 255}.0/24`,
        subnetV6: `fd00:${n.toString(16)}::/64`, vtepMAC: `02:01:00:00:${(n >> 8).toString(16).padStart(2, "0")}:${(n & 255).toString(16).padStart(2, "0")}`, vni: 1 });
    }
    expect(peers.refusals()).toEqual([]);
    expect(peers.entries()).toHaveLength(5000);
    peers.upsert(rec(2, { subnet: "10.110.7.64/26" }));
    expect(reasonOf("n2")).toBe("subnet_overlap");
    peers.upsert(rec(3, { subnet: "10.244.3.0/24", subnetV6: "fd00:7::/48" }));
    expect(reasonOf("n3")).toBe("subnet_overlap");
    peers.upsert(rec(4, { subnet: "10.244.4.0/24", subnetV6: "fd00:7:1::/64" }));
    expect(reasonOf("n4")).toBeUndefined();
  });

  it("logs and counts a refusal once, however often the record is listed again", () => {
    const { peers, warnings, refusals } = index();
    peers.upsert(rec(2));
    for (let i = 0; i < 5; i++) peers.upsert(rec(3, { publicIP: "192.168.1.2" }));
    expect(warnings).toEqual(["n3: underlay_address"]);
    expect(refusals).toHaveLength(1);
    // A different problem with the same record is news.
    peers.upsert(rec(3, { publicIP: "192.168.1.2", vni: 7 }));
    expect(warnings).toEqual(["n3: underlay_address", "n3: vni"]);
  });

  it("admits a refused record once the peer it clashed with leaves, or fixes its record", () => {
    const { peers, reasonOf, names } = index();
    peers.upsert(rec(2));
    peers.upsert(rec(3, { publicIP: "192.168.1.2" }));
    take(peers);
    expect(reasonOf("n3")).toBe("underlay_address");
    peers.remove("n2");
    expect(names()).toEqual(["n3"]);
    expect(reasonOf("n3")).toBeUndefined();
    // n2 comes back still claiming the address n3 now holds: n2 is the one refused.
    peers.upsert(rec(2));
    expect(reasonOf("n2")).toBe("underlay_address");
    // n3 is fixed (moves to its own address): n2 gets its address back.
    peers.upsert(rec(3));
    expect(names()).toEqual(["n2", "n3"]);
    expect(peers.refusals()).toEqual([]);
  });

  it("a refused record that leaves the registry is forgotten", () => {
    const { peers, names } = index();
    peers.upsert(rec(2));
    peers.upsert(rec(3, { publicIP: "192.168.1.2" }));
    peers.remove("n3");
    peers.remove("n2");
    expect(peers.refusals()).toEqual([]);
    expect(names()).toEqual([]);
  });

  it("a peer whose record changes into a clash stops being a peer, and its index is freed", () => {
    const { peers, reasonOf, names } = index();
    peers.upsert(rec(2));
    peers.upsert(rec(3));
    take(peers);
    peers.upsert(rec(3, { subnet: "10.244.2.0/24" }));
    expect(take(peers)).toEqual({ set: [], remove: [1] });
    expect(reasonOf("n3")).toBe("subnet_overlap");
    expect(names()).toEqual(["n2"]);
  });

  it("a peer may change to what it alone held (its own subnet, address and MAC are no clash)", () => {
    const { peers } = index();
    peers.upsert(rec(2));
    take(peers);
    peers.upsert(rec(2, { subnet: "10.244.2.0/23", vtepMAC: "02:00:00:00:02:99" }));
    expect(take(peers).set).toEqual([expect.objectContaining({ index: 0, subnet: "10.244.2.0/23" })]);
    expect(peers.refusals()).toEqual([]);
  });

  it("refuses past maxPeers and admits the waiting record when a slot frees", () => {
    const { peers, reasonOf, names } = index({ maxPeers: 2 });
    peers.upsert(rec(2));
    peers.upsert(rec(3));
    peers.upsert(rec(4));
    expect(reasonOf("n4")).toBe("table_full");
    take(peers);
    peers.remove("n2");
    expect(names()).toEqual(["n3", "n4"]);
    expect(take(peers)).toEqual({ set: [expect.objectContaining({ index: 0, nodeName: "n4" })], remove: [] });
  });
});
