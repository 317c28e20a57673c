// Peers follow the file registry without a restart (docs/agent.md): a node's record taken out of the shared file stops traffic
// to its Pods and drops it from status; put back, traffic flows again. Node 2's agent upserts its own record only when it
// starts, so the test puts the record back itself.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { isRoot, ping, pollStatus, waitPing } from "./lib/traffic.js";

/** Replaces the registry file the way the agents do (write beside it, rename over it), so no watcher sees half a file. */
function writeRegistry(path: string, records: unknown[]): void {
  writeFileSync(`${path}.test-tmp`, JSON.stringify(records, null, 2));
  renameSync(`${path}.test-tmp`, path);
}

describe.skipIf(!isRoot)("dataplane: peers follow the file registry", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab({ mode: "weft" });
    await lab.up();
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("removing node 2's record stops Pod 1 → Pod 2; adding it back restores it", async () => {
    const [n1] = lab.nodes;
    const [pod1, pod2] = [lab.pod(1), lab.pod(2)];
    const records = JSON.parse(readFileSync(lab.registryFile, "utf8")) as { nodeName: string }[];
    expect(records.map((r) => r.nodeName).sort()).toEqual(["node1", "node2"]);

    writeRegistry(lab.registryFile, records.filter((r) => r.nodeName !== "node2"));
    const gone = await pollStatus(n1.socket!, (s) => !s.peers.some((p) => p.nodeName === "node2"), "node1 to forget node2");
    expect(gone.peers).toEqual([]);
    expect(ping(pod1.ns, pod2.ip, 3)).toBe(0);
    // Node 1 now has no route for 10.244.2.0/24: its TX worker counts the packets it could not send.
    await pollStatus(n1.socket!, (s) => s.counters.tx_drop_no_route + s.counters.tx_drop_no_peer > 0, "node1 to count unroutable packets");

    writeRegistry(lab.registryFile, records);
    const back = await pollStatus(n1.socket!, (s) => s.peers.some((p) => p.nodeName === "node2" && p.live), "node1 to know node2 again");
    expect(back.peers.map((p) => [p.nodeName, p.address, p.subnet])).toEqual([["node2", lab.nodes[1].underlayIP, lab.nodes[1].subnet]]);
    await waitPing(pod1.ns, pod2.ip, 5000);
    expect(ping(pod1.ns, pod2.ip, 3)).toBe(3);
    expect(ping(pod2.ns, pod1.ip, 3)).toBe(3);
  });
});
