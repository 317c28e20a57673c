// Peers follow the file registry without a restart (docs/agent.md): a node's record taken out of the shared file stops traffic
// to its Pods and drops it from status; put back, traffic flows again. A record that changes is applied in place (same
// index, counters kept, no gap for the routes it keeps), and a bad record from another node is refused, logged once and
// counted, while the agent goes on serving every other peer. Node 2's agent upserts its own record only when it starts,
// so the tests write the records they need themselves.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, type LabNode } from "../../src/lab/topology.js";
import { isRoot, ping, pollStatus, status, udpTransfer, waitPing } from "./lib/traffic.js";

interface Rec { nodeName: string; publicIP: string; subnet: string; vtepMAC: string; vni: number }

/** Replaces the registry file the way the agents do (write beside it, rename over it), so no watcher sees half a file. */
function writeRegistry(path: string, records: unknown[], indent = 2): void {
  writeFileSync(`${path}.test-tmp`, JSON.stringify(records, null, indent));
  renameSync(`${path}.test-tmp`, path);
}

/** The agent's Prometheus text, fetched from inside its namespace at the address its "ready" log line names. */
function metricsOf(lab: Lab, n: LabNode): string {
  const ready = readFileSync(n.logFile!, "utf8").split("\n").find((l) => l.includes("weft agent ready"));
  const { host, port } = (JSON.parse(ready!) as { metrics: { host: string; port: number } }).metrics;
  return lab.exec(n.ns, "python3", ["-c", `import urllib.request; print(urllib.request.urlopen("http://${host}:${port}/metrics").read().decode())`]);
}

const logLines = (n: LabNode, text: string) => readFileSync(n.logFile!, "utf8").split("\n").filter((l) => l.includes(text));

describe.skipIf(!isRoot)("dataplane: peers follow the file registry", () => {
  let lab: Lab;
  let records: Rec[];

  beforeAll(async () => {
    lab = new Lab({ mode: "weft" });
    await lab.up();
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
    records = JSON.parse(readFileSync(lab.registryFile, "utf8")) as Rec[];
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("removing node 2's record stops Pod 1 → Pod 2; adding it back restores it", async () => {
    const [n1] = lab.nodes;
    const [pod1, pod2] = [lab.pod(1), lab.pod(2)];
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

  it("a changed record (new publicIP, wider subnet) is applied in place while traffic flows: same index, counters kept, no loss", async () => {
    const [n1, n2] = lab.nodes;
    const [pod1, pod2] = [lab.pod(1), lab.pod(2)];
    // Node 2 answers on a second underlay address too, so the move is one the underlay can carry without loss.
    const moved = "192.168.200.12";
    lab.exec(n2.ns, "ip", ["addr", "add", `${moved}/24`, "dev", `${lab.prefix}u2`]);
    lab.exec(n2.ns, "iptables", ["-t", "nat", "-A", "PREROUTING", "-d", moved, "-p", "udp", "--dport", String(lab.port), "-j", "DNAT", "--to-destination", n2.underlayIP]);
    const before = await status(n1.socket!);
    const peerBefore = before.peers.find((p) => p.nodeName === "node2")!;

    const count = 3000;
    const flow = udpTransfer(pod1.ns, pod2.ns, pod2.ip, 7401, { count, size: 200, rate: 500 });
    await pollStatus(n1.socket!, (s) => s.peers[0].txPackets >= peerBefore.txPackets + 500, "the stream to be under way");
    writeRegistry(lab.registryFile, records.map((r) => (r.nodeName === "node2" ? { ...r, publicIP: moved, subnet: "10.244.2.0/23" } : r)));
    const changed = await pollStatus(n1.socket!, (s) => s.peers.some((p) => p.address === moved && p.live), "node1 to apply node2's change");
    const { sent, report } = await flow;

    const peerAfter = changed.peers.find((p) => p.nodeName === "node2")!;
    expect(peerAfter).toMatchObject({ index: peerBefore.index, address: moved, subnet: "10.244.2.0/23" });
    expect(sent).toBe(count);
    expect(report.corrupt).toBe(0);
    expect(count - report.intact, "datagrams lost across the change").toBeLessThanOrEqual(10);
    const settled = await pollStatus(n1.socket!, (s) => s.peers[0].txPackets >= peerBefore.txPackets + report.intact, "node1's counters to take in the stream");
    expect(settled.peers[0].index).toBe(peerBefore.index);
    expect(logLines(n1, '"peer changed"').length).toBeGreaterThan(0);
    expect(logLines(n1, '"peer removed"')).toHaveLength(1); // the first test's, not this change's

    writeRegistry(lab.registryFile, records);
    await pollStatus(n1.socket!, (s) => s.peers.some((p) => p.address === n2.underlayIP && p.live), "node1 to move node2 back");
    lab.exec(n2.ns, "iptables", ["-t", "nat", "-F", "PREROUTING"]);
    lab.exec(n2.ns, "ip", ["addr", "del", `${moved}/24`, "dev", `${lab.prefix}u2`]);
    await waitPing(pod1.ns, pod2.ip, 5000);
  }, 60_000);

  it("a record claiming node 2's underlay address is refused, logged once and counted; every agent keeps serving", async () => {
    const [n1, n2] = lab.nodes;
    const [pod1, pod2] = [lab.pod(1), lab.pod(2)];
    const rogue: Rec = { nodeName: "node9", publicIP: n2.underlayIP, subnet: "10.244.9.0/24", vtepMAC: "02:5e:00:00:00:09", vni: 1 };
    writeRegistry(lab.registryFile, [...records, rogue]);
    const s1 = await pollStatus(n1.socket!, (s) => s.refused.length > 0, "node1 to refuse node9");
    expect(s1.refused).toEqual([expect.objectContaining({ nodeName: "node9", reason: "underlay_address" })]);
    const s2 = await pollStatus(n2.socket!, (s) => s.refused.length > 0, "node2 to refuse node9");
    expect(s2.refused).toEqual([expect.objectContaining({ nodeName: "node9", reason: "own_underlay_address" })]);

    // The same content written again (other formatting, so the file is re-read): no second warning, no second count.
    writeRegistry(lab.registryFile, [...records, rogue], 0);
    writeRegistry(lab.registryFile, [rogue, ...records], 1);
    expect(ping(pod1.ns, pod2.ip, 3)).toBe(3);
    expect(ping(pod2.ns, pod1.ip, 3)).toBe(3);
    for (const n of [n1, n2]) expect(n.agent!.exitCode, `agent on node${n.index} still running`).toBeNull();
    expect((await status(n1.socket!)).peers.map((p) => [p.nodeName, p.live])).toEqual([["node2", true]]);
    expect(logLines(n1, "refusing node record").filter((l) => l.includes("node9"))).toHaveLength(1);
    expect(metricsOf(lab, n1)).toMatch(/^weft_peer_records_refused_total\{reason="underlay_address"\} 1$/m);
    expect(metricsOf(lab, n1)).toMatch(/^weft_peer_records_refused_current\{reason="underlay_address"\} 1$/m);

    // Node 2 leaves; node9's claim no longer clashes and node 1 takes it as a peer. Then node9 goes and node 2 comes back.
    writeRegistry(lab.registryFile, [records.find((r) => r.nodeName === "node1")!, rogue]);
    const taken = await pollStatus(n1.socket!, (s) => s.peers.some((p) => p.nodeName === "node9" && p.live), "node1 to admit node9");
    expect(taken.refused).toEqual([]);
    writeRegistry(lab.registryFile, records);
    await pollStatus(n1.socket!, (s) => s.peers.length === 1 && s.peers[0].nodeName === "node2" && s.peers[0].live, "node1 to have node2 back");
    await waitPing(pod1.ns, pod2.ip, 5000);
    expect(ping(pod2.ns, pod1.ip, 3)).toBe(3);
  }, 60_000);
});
