// weft agents on the etcd registry (docs/registry-etcd.md), in a lab of three nodes whose underlay is a bridge in the control
// namespace, which runs a real 3-member etcd: agents started at once lease distinct subnets and every Pod reaches every Pod;
// an agent killed with SIGKILL is dropped by its peers once its short lease expires and takes its subnet back when it
// returns; with an etcd member killed leases and watches go on; with all of etcd stopped traffic keeps flowing, and when
// etcd is back the leases are the same, one per node; an agent whose key another node takes stops.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTROL_ADDRESS, Lab, type LabNode } from "../../src/lab/topology.js";
import { EtcdCluster, etcdBinaries } from "../../src/lab/etcd.js";
import { isRoot, ping, pollStatus, sleep, waitPing } from "./lib/traffic.js";

const PREFIX = "/coreos.com/network";
const LEASE_TTL = 6;

describe.skipIf(!isRoot || !etcdBinaries())("agents on the etcd registry", () => {
  let lab: Lab;
  let etcd: EtcdCluster | undefined;

  const leases = () => [...etcd!.getPrefix(`${PREFIX}/subnets/`)].map(([k, v]) => [k.slice(PREFIX.length + 9), JSON.parse(v).NodeName]).sort();
  const everyPodReachesEveryPod = async () => {
    for (const from of lab.pods) for (const to of lab.pods) if (from !== to) await waitPing(from.ns, to.ip, 15_000);
  };
  const peerNames = async (n: LabNode) => (await pollStatus(n.socket!, () => true, "status")).peers.map((p) => p.nodeName).sort();

  beforeAll(async () => {
    lab = new Lab({
      mode: "weft", nodes: ["weft", "weft", "weft"], leased: true, port: 8472,
      agentConfig: {
        registry: { type: "etcd", endpoints: [0, 1, 2].map((i) => `http://${CONTROL_ADDRESS}:${2379 + 10 * i}`), prefix: PREFIX, leaseTTL: LEASE_TTL },
      },
      beforeAgents: async (l) => {
        etcd = await new EtcdCluster({ members: 3, netns: l.control, host: CONTROL_ADDRESS }).start();
      },
    });
    await lab.up();
  });
  afterAll(async () => {
    await lab?.down();
    await etcd?.stop();
  });

  it("three agents started at once lease three distinct subnets, and every Pod reaches every Pod", async () => {
    const subnets = lab.nodes.map((n) => n.subnet);
    expect(new Set(subnets).size).toBe(3);
    expect(subnets).not.toContain("10.244.0.0/24");
    expect(leases()).toEqual(lab.nodes.map((n) => [n.subnet.replace("/", "-"), `node${n.index}`]).sort());
    expect(await peerNames(lab.nodes[0])).toEqual([lab.nodes[1].subnet, lab.nodes[2].subnet].map((s) => s.replace("/", "-")).sort());
    await everyPodReachesEveryPod();
  });

  it("with an etcd member killed, a node killed with SIGKILL is dropped after its lease expires and comes back on its subnet", async () => {
    const [n1, n2, n3] = lab.nodes;
    const key3 = n3.subnet.replace("/", "-");
    await etcd!.stopMember(0);
    await lab.stopAgent(n3, "SIGKILL");
    for (const n of [n1, n2]) {
      await pollStatus(n.socket!, (s) => !s.peers.some((p) => p.nodeName === key3), `${n.ns} to drop node3`, 4 * LEASE_TTL * 1000);
    }
    expect(leases().map(([k]) => k)).not.toContain(key3);
    expect(ping(lab.pod(1).ns, lab.pod(2).ip, 2)).toBe(2);

    lab.startAgent(n3);
    await lab.waitReady(n3, 30_000);
    expect((await pollStatus(n3.socket!, () => true, "status")).subnet).toBe(n3.subnet);
    for (const n of [n1, n2]) await pollStatus(n.socket!, (s) => s.peers.some((p) => p.nodeName === key3 && p.live), `${n.ns} to see node3 again`, 20_000);
    await everyPodReachesEveryPod();
    etcd!.startMember(0);
    await etcd!.waitHealthy();
  });

  it("with all of etcd stopped traffic keeps flowing; etcd back, the leases are the same, one per node", async () => {
    const before = leases();
    await etcd!.stopAll();
    await sleep(2 * LEASE_TTL * 1000);
    for (const n of lab.nodes) expect((await peerNames(n)).length).toBe(2);
    await everyPodReachesEveryPod();
    for (let i = 0; i < 3; i++) etcd!.startMember(i);
    await etcd!.waitHealthy();
    await sleep(2 * LEASE_TTL * 1000);
    expect(leases()).toEqual(before);
    for (const n of lab.nodes) expect((await peerNames(n)).length).toBe(2);
    await everyPodReachesEveryPod();
  });

  it("an agent whose subnet key another node takes stops with exit code 1 instead of sharing the subnet", async () => {
    const n3 = lab.nodes[2];
    const key = `${PREFIX}/subnets/${n3.subnet.replace("/", "-")}`;
    const exited = new Promise<number | null>((resolve) => n3.agent!.once("exit", (code) => resolve(code)));
    etcd!.ctl("put", key, JSON.stringify({ PublicIP: "192.168.200.99", PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "9a:1b:2c:3d:4e:5f" } }));
    expect(await exited).toBe(1);
    expect(readFileSync(n3.logFile!, "utf8")).toMatch(/our subnet lease .* is lost: another node \(publicIP 192\.168\.200\.99\)/);
  });
});
