// Registry records → dataplane peers: stable indexes, and the records that must never become peers.
import { describe, expect, it } from "vitest";
import pino from "pino";
import { PeerIndex } from "../../src/agent/peers.js";
import type { NodeRecord } from "../../src/control/registry/index.js";

const self: NodeRecord = { nodeName: "n1", publicIP: "192.168.1.1", subnet: "10.244.1.0/24", vtepMAC: "02:00:00:00:00:01", vni: 1 };
const rec = (n: number, extra: Partial<NodeRecord> = {}): NodeRecord => ({
  nodeName: `n${n}`, publicIP: `192.168.1.${n}`, subnet: `10.244.${n}.0/24`, vtepMAC: `02:00:00:00:00:0${n}`, vni: 1, ...extra,
});
const quiet = pino({ level: "silent" });

describe("PeerIndex", () => {
  it("gives each node a stable index, keeps it across changes, and reuses freed ones", () => {
    const peers = new PeerIndex(self, 4, 16, quiet);
    expect(peers.admit(rec(2))?.index).toBe(0);
    expect(peers.admit(rec(3))?.index).toBe(1);
    expect(peers.admit(rec(2, { publicIP: "192.168.1.22" }))).toMatchObject({ index: 0, address: "192.168.1.22" });
    expect(peers.release("n2")?.index).toBe(0);
    expect(peers.release("n2")).toBeNull();
    expect(peers.admit(rec(4))?.index).toBe(0);
    expect(peers.entries().map((p) => p.nodeName).sort()).toEqual(["n3", "n4"]);
  });

  it("refuses our own record, another VNI, an overlapping subnet, an unreachable family, and a full table", () => {
    const peers = new PeerIndex(self, 4, 2, quiet);
    expect(peers.admit(self)).toBeNull();
    expect(peers.admit(rec(2, { vni: 2 }))).toBeNull();
    expect(peers.admit(rec(2, { subnet: "10.244.1.0/25" }))).toBeNull();
    expect(peers.admit(rec(2, { publicIP: "fd00::2" }))).toBeNull();
    expect(peers.admit(rec(2))).not.toBeNull();
    expect(peers.admit(rec(3, { subnet: "10.244.2.128/25" }))).toBeNull(); // overlaps n2
    expect(peers.admit(rec(3))).not.toBeNull();
    expect(peers.admit(rec(4))).toBeNull(); // maxPeers 2
  });

  it("carries an IPv6 Pod subnet when the record has one", () => {
    const peers = new PeerIndex(self, 6, 4, quiet);
    expect(peers.admit(rec(2, { publicIP: "fd00::2", subnetV6: "fd00:244:2::/64" }))).toMatchObject({ address: "fd00::2", subnetV6: "fd00:244:2::/64" });
  });
});
