// The etcd registry against a real etcd on loopback (docs/registry-etcd.md): flannel's layout and formats, allocation
// without collision when many agents start at once, the same subnet after a restart, a refused config, watches that miss
// nothing (compaction included), expired leases as nodes that left, a 3-member cluster losing a member, all of etcd down
// and back, TLS. No root needed: only etcd and the registry run.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AgentConfig, ConfigError, type EtcdRegistryConfig, loadAgentConfig } from "../../src/control/config.js";
import { acquireLease } from "../../src/control/lease.js";
import { EtcdRegistry } from "../../src/control/registry/etcd.js";
import type { NodeRecord } from "../../src/control/registry/record.js";
import { captureLog, type CapturedLog, tempDir, waitFor } from "../unit/fixtures-control/helpers.js";
import { EtcdCluster, etcdBinaries, TcpRelay } from "../../src/lab/etcd.js";

const PREFIX = "/coreos.com/network";
const hasEtcd = etcdBinaries() !== undefined;

interface Node {
  config: AgentConfig;
  registry: EtcdRegistry;
  captured: CapturedLog;
  events: string[];
}

let tmp: ReturnType<typeof tempDir>;
let stateDirs = 0;
const open: EtcdRegistry[] = [];

function agentConfig(cluster: EtcdCluster, n: number, registry: Partial<EtcdRegistryConfig> = {}, extra: Partial<AgentConfig> = {}): AgentConfig {
  const publicIP = `192.0.2.${n}`;
  const base = loadAgentConfig(undefined, {
    nodeName: `node${n}`, clusterCIDR: "10.244.0.0/16", publicIP, port: "8472", stateDir: join(tmp.dir, `state${n}-${++stateDirs}`),
  });
  const etcdConfig: EtcdRegistryConfig = { type: "etcd", endpoints: cluster.endpoints, prefix: PREFIX, leaseTTL: 3600, ...cluster.tls, ...registry };
  return { ...base, registry: etcdConfig, ...extra };
}

function node(config: AgentConfig, options: { startTimeoutMs?: number } = {}): Node {
  const captured = captureLog();
  const registry = new EtcdRegistry({
    config: config.registry as EtcdRegistryConfig,
    nodeName: config.nodeName,
    publicIP: config.publicIP,
    network: { clusterCIDR: config.clusterCIDR, subnetLen: config.subnetLen, vni: config.vni, port: config.port },
    log: captured.log,
    callTimeoutMs: 2000,
    ...options,
  });
  open.push(registry);
  const events: string[] = [];
  registry.on("added", (r) => events.push(`added ${r.nodeName}`));
  registry.on("removed", (r) => events.push(`removed ${r.nodeName}`));
  registry.on("changed", (r) => events.push(`changed ${r.nodeName}`));
  registry.on("lost", (e) => events.push(`lost ${e.message}`));
  return { config, registry, captured, events };
}

async function join_(config: AgentConfig): Promise<{ node: Node; record: NodeRecord }> {
  const n = node(config);
  await n.registry.start();
  return { node: n, record: await acquireLease(config, n.registry) };
}

/** The etcd lease ID a key is bound to, in etcdctl's hex (the JSON number is too large for a double). */
const leaseOf = (cluster: EtcdCluster, key: string) => BigInt(/"lease":(\d+)/.exec(cluster.ctl("get", key, "-w", "json"))![1]).toString(16);
const subnets = (cluster: EtcdCluster) => [...cluster.getPrefix(`${PREFIX}/subnets/`).keys()].map((k) => k.slice(`${PREFIX}/subnets/`.length)).sort();
const logged = (n: Node, text: string) => n.captured.lines.some((l) => String(l.msg).includes(text));

beforeAll(() => {
  tmp = tempDir("etcd-registry");
});
afterAll(() => tmp?.cleanup());
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close()));
});

describe.skipIf(!hasEtcd)("etcd registry: one member", () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await new EtcdCluster().start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  afterEach(() => {
    etcd.ctl("del", "--prefix", "/");
  });

  it("writes flannel's network config when there is none, and leases in flannel's format", async () => {
    const { record } = await join_(agentConfig(etcd, 1));
    expect(JSON.parse(etcd.getPrefix(`${PREFIX}/config`).get(`${PREFIX}/config`)!)).toEqual({
      Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan", VNI: 1, Port: 8472 },
    });
    expect(record.subnet).toBe("10.244.1.0/24");
    const value = etcd.getPrefix(`${PREFIX}/subnets/10.244.1.0-24`).get(`${PREFIX}/subnets/10.244.1.0-24`)!;
    expect(JSON.parse(value)).toEqual({
      PublicIP: "192.0.2.1", PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: record.vtepMAC }, NodeName: "node1",
    });
    expect(etcd.ctl("lease", "timetolive", leaseOf(etcd, `${PREFIX}/subnets/10.244.1.0-24`))).toMatch(/granted with TTL\(3600s\)/);
  });

  it("refuses a network config that disagrees, naming the agent key and the etcd key", async () => {
    etcd.ctl("put", `${PREFIX}/config`, JSON.stringify({ Network: "10.5.0.0/16", Backend: { Type: "vxlan" } }));
    const n = node(agentConfig(etcd, 1));
    const err = await n.registry.start().catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe("clusterCIDR");
    expect((err as Error).message).toContain(`Network "10.5.0.0/16" in etcd key ${PREFIX}/config`);

    etcd.ctl("put", `${PREFIX}/config`, JSON.stringify({ network: "10.244.0.0/16", backend: { type: "vxlan" } }));
    const port = await node(agentConfig(etcd, 1, {}, { port: 4789 })).registry.start().catch((e: ConfigError) => e);
    expect((port as ConfigError).key).toBe("port");
    expect((port as Error).message).toContain("Backend.Port 8472");
    expect(subnets(etcd)).toEqual([]);
  });

  it("many agents started at once take distinct subnets, never the first", async () => {
    const joined = await Promise.all(Array.from({ length: 12 }, (_, i) => join_(agentConfig(etcd, i + 1))));
    const taken = joined.map((j) => j.record.subnet);
    expect(new Set(taken).size).toBe(12);
    expect(taken).not.toContain("10.244.0.0/24");
    expect(subnets(etcd)).toEqual(taken.map((s) => s.replace("/", "-")).sort());
  });

  it("a restarted node takes the same subnet back, found by its publicIP, and keeps one key", async () => {
    const first = await join_(agentConfig(etcd, 1));
    await join_(agentConfig(etcd, 2));
    await first.node.registry.close();
    const again = agentConfig(etcd, 1);
    again.stateDir = join(tmp.dir, "fresh-state");
    const second = await join_(again);
    expect(second.record.subnet).toBe(first.record.subnet);
    expect(subnets(etcd)).toEqual(["10.244.1.0-24", "10.244.2.0-24"]);
  });

  it("peers: listed at start without events, then watched: a flannel lease added, changed, removed; a bad value skipped", async () => {
    const a = await join_(agentConfig(etcd, 1));
    const b = await join_(agentConfig(etcd, 2));
    await waitFor("node1 to see node2", () => a.node.events.includes("added 10.244.2.0-24"));
    expect(b.node.registry.list().map((r) => r.nodeName).sort()).toEqual(["10.244.1.0-24", "node2"]);
    expect(b.node.events.filter((e) => !e.includes("node2"))).toEqual([]);

    // A flannel node's lease, written as flanneld writes it.
    const flannel = { PublicIP: "192.0.2.77", PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "9a:1b:2c:3d:4e:5f" } };
    etcd.ctl("put", `${PREFIX}/subnets/10.244.9.0-24`, JSON.stringify(flannel));
    await waitFor("node2 to see the flannel node", () => b.node.events.includes("added 10.244.9.0-24"));
    expect(b.node.registry.list().find((r) => r.nodeName === "10.244.9.0-24")).toEqual({
      nodeName: "10.244.9.0-24", publicIP: "192.0.2.77", subnet: "10.244.9.0/24", vtepMAC: "9a:1b:2c:3d:4e:5f", vni: 1,
    });
    etcd.ctl("put", `${PREFIX}/subnets/10.244.9.0-24`, JSON.stringify({ ...flannel, PublicIP: "192.0.2.78" }));
    await waitFor("node2 to see the change", () => b.node.events.includes("changed 10.244.9.0-24"));
    etcd.ctl("put", `${PREFIX}/subnets/10.244.10.0-24`, "not json");
    etcd.ctl("del", `${PREFIX}/subnets/10.244.9.0-24`);
    await waitFor("node2 to see the removal", () => b.node.events.includes("removed 10.244.9.0-24"));
    expect(logged(b.node, "skipping a lease that cannot be a peer")).toBe(true);

  });

  it("a claim steps over a subnet whose key holds something that is no peer", async () => {
    etcd.ctl("put", `${PREFIX}/subnets/10.244.1.0-24`, JSON.stringify({ PublicIP: "192.0.2.50", BackendType: "udp" }));
    const { record } = await join_(agentConfig(etcd, 1));
    expect(record.subnet).toBe("10.244.2.0/24");
  });

  it("an expired lease is a node that left; our own deleted key is taken back, our key taken by another is lost", async () => {
    const a = await join_(agentConfig(etcd, 1, { leaseTTL: 2 }));
    const b = await join_(agentConfig(etcd, 2));
    expect(b.node.registry.list().map((r) => r.nodeName).sort()).toEqual(["10.244.1.0-24", "node2"]);
    await a.node.registry.close();
    await waitFor("node1's key to expire", () => b.node.events.includes("removed 10.244.1.0-24"), 20_000);
    expect(subnets(etcd)).toEqual(["10.244.2.0-24"]);

    etcd.ctl("lease", "revoke", leaseOf(etcd, `${PREFIX}/subnets/10.244.2.0-24`));
    await waitFor("node2 to take its key back", () => logged(b.node, "took our subnet lease back"), 20_000);
    expect(subnets(etcd)).toEqual(["10.244.2.0-24"]);
    expect(JSON.parse(etcd.getPrefix(`${PREFIX}/subnets/`).get(`${PREFIX}/subnets/10.244.2.0-24`)!).NodeName).toBe("node2");

    const thief = { PublicIP: "192.0.2.99", PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "9a:1b:2c:3d:4e:5f" } };
    etcd.ctl("put", `${PREFIX}/subnets/10.244.2.0-24`, JSON.stringify(thief));
    await waitFor("node2 to report its lease lost", () => b.node.events.some((e) => e.startsWith("lost")), 10_000);
    expect(b.node.events.find((e) => e.startsWith("lost"))).toContain("10.244.2.0/24");
  });
});

describe.skipIf(!hasEtcd)("etcd registry: three members", () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await new EtcdCluster({ members: 3 }).start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it("leases, keepalives and watches go on with a member killed", async () => {
    const ttl = 5;
    const a = await join_(agentConfig(etcd, 1, { leaseTTL: ttl }));
    await join_(agentConfig(etcd, 2, { leaseTTL: ttl }));
    await waitFor("node1 to see node2", () => a.node.events.includes("added 10.244.2.0-24"));
    await etcd.stopMember(0);
    try {
      const c = await join_(agentConfig(etcd, 3, { leaseTTL: ttl }));
      await waitFor("node1 to see node3", () => a.node.events.includes("added 10.244.3.0-24"), 20_000);
      // Two TTLs later, every key is still there: the keepalives reach the members that are left.
      await new Promise((r) => setTimeout(r, 2 * ttl * 1000));
      expect(subnets(etcd)).toEqual(["10.244.1.0-24", "10.244.2.0-24", "10.244.3.0-24"]);
      expect(a.node.events.filter((e) => e.startsWith("removed"))).toEqual([]);
      expect(c.record.subnet).toBe("10.244.3.0/24");
    } finally {
      etcd.startMember(0);
      await etcd.waitHealthy();
    }
  });

  it("a watch that resumes past a compaction lists again: what changed meanwhile arrives, nothing else; an idle re-list emits nothing", async () => {
    etcd.ctl("del", "--prefix", "/");
    const flannel = (ip: string) => JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "9a:1b:2c:3d:4e:5f" } });
    etcd.ctl("put", `${PREFIX}/subnets/10.244.7.0-24`, flannel("192.0.2.70"));
    etcd.ctl("put", `${PREFIX}/subnets/10.244.8.0-24`, flannel("192.0.2.80"));
    // Node 1 reaches etcd through a relay only: cutting it partitions node 1 while the cluster goes on.
    const relay = await new TcpRelay(etcd.clientAddress(0)).start();
    try {
      const a = await join_(agentConfig(etcd, 1, { endpoints: [relay.endpoint] }));
      expect(a.node.registry.list().map((r) => r.nodeName).sort()).toEqual(["10.244.7.0-24", "10.244.8.0-24", "node1"]);
      await relay.cut();
      await waitFor("node1 to notice", () => logged(a.node, "etcd watch broke"), 15_000);
      etcd.ctl("del", `${PREFIX}/subnets/10.244.7.0-24`);
      etcd.ctl("put", `${PREFIX}/subnets/10.244.9.0-24`, flannel("192.0.2.90"));
      etcd.ctl("compact", /"revision":(\d+)/.exec(etcd.ctl("get", "/", "-w", "json"))![1]);
      const before = a.node.events.length;
      await relay.start();
      await waitFor("node1 to list again", () => logged(a.node, "listed the leases again"), 30_000);
      expect(logged(a.node, "canceled the watch")).toBe(true);
      expect(a.node.events.slice(before)).toEqual(["removed 10.244.7.0-24", "added 10.244.9.0-24"]);
      expect(a.node.registry.list().map((r) => r.nodeName).sort()).toEqual(["10.244.8.0-24", "10.244.9.0-24", "node1"]);

      const relists = () => a.node.captured.lines.filter((l) => l.msg === "listed the leases again").length;
      const [listed, emitted] = [relists(), a.node.events.length];
      await relay.cut();
      await waitFor("node1 to notice again", () => a.node.captured.lines.filter((l) => l.msg?.toString().startsWith("etcd watch broke")).length >= 2, 15_000);
      // Writes outside the leases only, so that the compaction reaches past the revision the watch resumes from.
      etcd.ctl("put", "/unrelated", "1");
      etcd.ctl("put", "/unrelated", "2");
      etcd.ctl("compact", /"revision":(\d+)/.exec(etcd.ctl("get", "/", "-w", "json"))![1]);
      await relay.start();
      await waitFor("node1 to list again, idle", () => relists() > listed, 30_000);
      expect(a.node.events.length).toBe(emitted);
    } finally {
      await relay.cut();
    }
  });

  it("all of etcd stopped: peers kept, keepalive failures logged; etcd back: same keys, no duplicate", async () => {
    etcd.ctl("del", "--prefix", "/");
    const a = await join_(agentConfig(etcd, 1, { leaseTTL: 4 }));
    const b = await join_(agentConfig(etcd, 2, { leaseTTL: 4 }));
    await waitFor("node1 to see node2", () => a.node.events.includes("added 10.244.2.0-24"));
    await etcd.stopAll();
    await waitFor("a keepalive failure in node1's log", () => logged(a.node, "keepalive failed"), 30_000);
    expect(a.node.registry.list().map((r) => r.nodeName).sort()).toEqual(["10.244.2.0-24", "node1"]);
    await new Promise((r) => setTimeout(r, 8000));
    expect(a.node.events.filter((e) => e.startsWith("removed"))).toEqual([]);
    for (let i = 0; i < 3; i++) etcd.startMember(i);
    await etcd.waitHealthy();
    await waitFor("node1's keepalive to work again", () => logged(a.node, "keepalive works again") || logged(a.node, "took our subnet lease back"), 30_000);
    await waitFor("node2's keepalive to work again", () => logged(b.node, "keepalive works again") || logged(b.node, "took our subnet lease back"), 30_000);
    expect(subnets(etcd)).toEqual(["10.244.1.0-24", "10.244.2.0-24"]);
    expect(a.node.registry.list().map((r) => r.nodeName).sort()).toEqual(["10.244.2.0-24", "node1"]);
    expect([...a.node.events, ...b.node.events].filter((e) => e.startsWith("lost"))).toEqual([]);
  });
});

describe.skipIf(!hasEtcd)("etcd registry: TLS", () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await new EtcdCluster({ tls: true }).start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it("connects with a CA, a client certificate and its key; without the client certificate it is refused", async () => {
    const { record } = await join_(agentConfig(etcd, 1));
    expect(record.subnet).toBe("10.244.1.0/24");
    const noCert = agentConfig(etcd, 2, { certFile: undefined, keyFile: undefined });
    const err = await node(noCert, { startTimeoutMs: 3000 }).registry.start().catch((e: Error) => e);
    expect((err as Error).message).toMatch(/unreachable for 3 s/);
    expect(subnets(etcd)).toEqual(["10.244.1.0-24"]);
  });
});
