// Subnet leases: the first free subnet after the first, stable across restarts, configured subnets checked against other
// nodes, racing agents kept apart, and a full cluster refused clearly.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cidrToString, parseCIDR } from "../../src/net/addr.js";
import { type AgentConfig, deriveVtepMAC, loadAgentConfig } from "../../src/control/config.js";
import { acquireLease, firstFreeSubnet, LeaseError, leaseFile } from "../../src/control/lease.js";
import { FileRegistry } from "../../src/control/registry/file.js";
import type { NodeRecord } from "../../src/control/registry/record.js";
import { captureLog, tempDir } from "./fixtures-control/helpers.js";

let tmp: ReturnType<typeof tempDir>;
let peers: string;
const open: FileRegistry[] = [];
beforeEach(() => {
  tmp = tempDir("lease");
  peers = join(tmp.dir, "peers.json");
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close()));
  tmp.cleanup();
});

function config(nodeName: string, flags: Record<string, string> = {}): AgentConfig {
  return loadAgentConfig(undefined, {
    nodeName, clusterCIDR: "10.244.0.0/16", publicIP: "10.0.0.1", stateDir: join(tmp.dir, `state-${nodeName}`),
    "registry-path": peers, ...flags,
  });
}

function registry(nodeName: string): FileRegistry {
  const r = new FileRegistry({ path: peers, nodeName, log: captureLog().log, pollMs: 100, debounceMs: 10 });
  open.push(r);
  return r;
}

async function lease(nodeName: string, flags: Record<string, string> = {}): Promise<NodeRecord> {
  const r = registry(nodeName);
  await r.start();
  return acquireLease(config(nodeName, flags), r);
}

function foreign(nodeName: string, subnet: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return { nodeName, publicIP: "192.168.1.9", subnet, vtepMAC: deriveVtepMAC(nodeName), vni: 1, ...extra };
}

describe("acquireLease", () => {
  it("skips the cluster's first subnet and takes the next free one", async () => {
    const rec = await lease("node1");
    expect(rec).toEqual({ nodeName: "node1", publicIP: "10.0.0.1", subnet: "10.244.1.0/24", vtepMAC: deriveVtepMAC("node1"), vni: 1 });
    expect(JSON.parse(readFileSync(peers, "utf8"))).toEqual([rec]);
  });

  it("steps over subnets other nodes hold, wider ones included", async () => {
    writeFileSync(peers, JSON.stringify([foreign("k1", "10.244.1.0/24"), foreign("k2", "10.244.2.0/23"), foreign("k3", "10.244.5.0/24")]));
    expect((await lease("node1")).subnet).toBe("10.244.4.0/24");
  });

  it("keeps its subnet across restarts through its registry record", async () => {
    writeFileSync(peers, JSON.stringify([foreign("k1", "10.244.1.0/24")]));
    const first = await lease("node1");
    expect(first.subnet).toBe("10.244.2.0/24");
    writeFileSync(peers, JSON.stringify([foreign("k0", "10.244.3.0/24"), ...JSON.parse(readFileSync(peers, "utf8"))].filter((r) => r.nodeName !== "k1")));
    expect((await lease("node1")).subnet).toBe("10.244.2.0/24");
  });

  it("keeps its subnet across restarts through stateDir/lease.json when the registry forgot it", async () => {
    writeFileSync(peers, JSON.stringify([foreign("k1", "10.244.1.0/24"), foreign("k2", "10.244.2.0/24")]));
    const first = await lease("node1");
    expect(first.subnet).toBe("10.244.3.0/24");
    expect(JSON.parse(readFileSync(leaseFile(join(tmp.dir, "state-node1")), "utf8"))).toEqual({
      nodeName: "node1", clusterCIDR: "10.244.0.0/16", subnet: "10.244.3.0/24",
    });
    writeFileSync(peers, JSON.stringify([foreign("k2", "10.244.2.0/24")]));
    expect((await lease("node1")).subnet).toBe("10.244.3.0/24");
  });

  it("does not keep a remembered subnet someone else took meanwhile, or one outside a changed cluster", async () => {
    await lease("node1");
    writeFileSync(peers, JSON.stringify([foreign("thief", "10.244.1.0/24")]));
    expect((await lease("node1")).subnet).toBe("10.244.2.0/24");
    expect((await lease("node1", { clusterCIDR: "10.96.0.0/16" })).subnet).toBe("10.96.1.0/24");
  });

  it("uses a configured subnet, even the first one", async () => {
    writeFileSync(peers, JSON.stringify([foreign("k1", "10.244.1.0/24")]));
    expect((await lease("node1", { subnet: "10.244.0.0/24" })).subnet).toBe("10.244.0.0/24");
  });

  it("refuses a configured subnet another node holds, naming that node", async () => {
    writeFileSync(peers, JSON.stringify([foreign("kube-1", "10.244.3.0/24")]));
    await expect(lease("node1", { subnet: "10.244.3.0/24" })).rejects.toThrow(LeaseError);
    await expect(lease("node1", { subnet: "10.244.3.0/24" })).rejects.toThrow(/already leased by node "kube-1"/);
    expect(JSON.parse(readFileSync(peers, "utf8"))).toHaveLength(1);
  });

  it("refuses a configured subnet that overlaps a wider one of another node", async () => {
    writeFileSync(peers, JSON.stringify([foreign("wide", "10.244.2.0/23")]));
    await expect(lease("node1", { subnet: "10.244.3.0/24" })).rejects.toThrow(/overlaps 10\.244\.2\.0\/23 already leased by node "wide"/);
  });

  it("gives agents racing in one process distinct subnets", async () => {
    const names = Array.from({ length: 12 }, (_, i) => `node${i + 1}`);
    const records = await Promise.all(names.map((n) => lease(n)));
    const subnets = records.map((r) => r.subnet);
    expect(new Set(subnets).size).toBe(names.length);
    expect(JSON.parse(readFileSync(peers, "utf8"))).toHaveLength(names.length);
  });

  it("refuses clearly when the cluster is exhausted, and stores nothing", async () => {
    const flags = { clusterCIDR: "10.244.0.0/28", subnetLen: "30" };
    writeFileSync(peers, JSON.stringify([foreign("a", "10.244.0.4/30"), foreign("b", "10.244.0.8/30"), foreign("c", "10.244.0.12/30")]));
    await expect(lease("node1", flags)).rejects.toThrow(
      "weft lease: clusterCIDR 10.244.0.0/28 has no free /30 left: its 3 leasable subnets (the first is never leased) are all taken",
    );
    expect(JSON.parse(readFileSync(peers, "utf8"))).toHaveLength(3);
    expect(existsSync(leaseFile(join(tmp.dir, "state-node1")))).toBe(false);
  });

  it("leases an IPv6 subnet too when dual-stack", async () => {
    writeFileSync(peers, JSON.stringify([foreign("k1", "10.244.1.0/24", { subnetV6: "fd00:10:244:1::/64" })]));
    const rec = await lease("node1", { clusterCIDRv6: "fd00:10:244::/56", publicIPv6: "fd00::1" });
    expect(rec).toMatchObject({ subnet: "10.244.2.0/24", subnetV6: "fd00:10:244:2::/64", publicIPv6: "fd00::1" });
    expect(JSON.parse(readFileSync(leaseFile(join(tmp.dir, "state-node1")), "utf8"))).toMatchObject({
      clusterCIDRv6: "fd00:10:244::/56", subnetV6: "fd00:10:244:2::/64",
    });
  });
});

describe("firstFreeSubnet", () => {
  const pick = (cluster: string, len: number, used: string[]) => {
    const free = firstFreeSubnet(parseCIDR(cluster), len, used.map(parseCIDR));
    return free && cidrToString(free);
  };

  it("ignores subnets outside the cluster and of the other family", () => {
    expect(pick("10.244.0.0/16", 24, ["10.245.1.0/24", "fd00::/64"])).toBe("10.244.1.0/24");
  });

  it("finds a gap among many leases", () => {
    const used = Array.from({ length: 200 }, (_, i) => `10.244.${i + 1}.0/24`).filter((s) => s !== "10.244.137.0/24");
    expect(pick("10.244.0.0/16", 24, used)).toBe("10.244.137.0/24");
  });

  it("is quick in huge IPv6 clusters", () => {
    expect(pick("fd00::/32", 64, ["fd00:0:0:1::/64", "fd00:0:0:2::/63"])).toBe("fd00:0:0:4::/64");
  });

  it("returns nothing when a record covers the whole cluster or every leasable subnet is taken", () => {
    expect(pick("10.244.0.0/16", 24, ["10.0.0.0/8"])).toBeUndefined();
    expect(pick("10.244.0.0/16", 17, ["10.244.128.0/17"])).toBeUndefined();
    expect(pick("10.244.0.0/16", 17, [])).toBe("10.244.128.0/17");
  });
});
