// weft joins a flannel cluster that uses etcd (docs/registry-etcd.md): a real flanneld (built from its Go module by
// scripts/ensure-cluster-tools.sh) runs in etcd mode with its vxlan backend on a fourth node that joins a lab of three
// weft agents, a real etcd in the lab's control namespace. The network config is written as a flannel operator writes
// it; flanneld and the weft agents see each other as peers, and Pods reach Pods in both directions. flanneld runs inside its node's
// namespace only (its vxlan device, routes, neighbours and iptables rules stay there), with its subnet file in the lab's
// temp dir and no forward or masquerade rules.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTROL_ADDRESS, Lab, type LabNode } from "../../src/lab/topology.js";
import { EtcdCluster, etcdBinaries } from "../../src/lab/etcd.js";
import { isRoot, pollStatus, sleep, waitPing } from "./lib/traffic.js";

const FLANNELD = join(process.env.WEFT_FLANNEL_BIN ?? "/var/cache/weft-tools/flannel-v0.28.10", "flanneld");
const PREFIX = "/coreos.com/network";
const NETWORK = { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } };

const why = !isRoot ? "needs root" : !etcdBinaries() ? "no etcd" : !existsSync(FLANNELD) ? `no flanneld at ${FLANNELD} (scripts/ensure-cluster-tools.sh builds it)` : "";
if (why) console.warn(`flanneld interop test skipped: ${why}`);

describe.skipIf(why !== "")("a flanneld node and weft nodes in one etcd cluster", () => {
  let lab: Lab;
  let etcd: EtcdCluster | undefined;
  let flanneld: ChildProcess | undefined;
  let subnetFile = "";
  let flannelLog = "";
  let flannelNode: LabNode;

  /** Starts flanneld in the node's namespace and waits for its subnet file; the node's Pod is wired from it. */
  async function startFlanneld(l: Lab, n: LabNode): Promise<void> {
    subnetFile = join(l.dir, "flannel", "subnet.env");
    flannelLog = join(l.dir, "flanneld.log");
    flanneld = spawn("ip", ["netns", "exec", n.ns, FLANNELD,
      `--etcd-endpoints=http://${CONTROL_ADDRESS}:2379`, `--etcd-prefix=${PREFIX}`, `--iface=${l.prefix}u${n.index}`, `--public-ip=${n.underlayIP}`,
      `--subnet-file=${subnetFile}`, "--ip-masq=false", "--iptables-forward-rules=false", "--healthz-port=0"], { stdio: ["ignore", "pipe", "pipe"] });
    const out = createWriteStream(flannelLog);
    flanneld.stdout!.pipe(out);
    flanneld.stderr!.pipe(out);
    const deadline = Date.now() + 60_000;
    while (!existsSync(subnetFile)) {
      if (flanneld.exitCode !== null) throw new Error(`flanneld exited with ${flanneld.exitCode}: ${readFileSync(flannelLog, "utf8").slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`flanneld wrote no subnet file in 60 s: ${readFileSync(flannelLog, "utf8").slice(-3000)}`);
      await sleep(200);
    }
    const env = Object.fromEntries(readFileSync(subnetFile, "utf8").trim().split("\n").map((l) => l.split("=")));
    // FLANNEL_SUBNET is the subnet's first address with the subnet's length: 10.244.5.1/24 → 10.244.5.0/24.
    const [first, len] = env.FLANNEL_SUBNET.split("/");
    n.subnet = `${first.replace(/\.\d+$/, ".0")}/${len}`;
    l.addPod(n, 0);
  }

  beforeAll(async () => {
    lab = new Lab({
      mode: "weft", nodes: ["weft", "weft", "weft"], leased: true, port: 8472,
      agentConfig: { registry: { type: "etcd", endpoints: [`http://${CONTROL_ADDRESS}:2379`], prefix: PREFIX, leaseTTL: 60 } },
      beforeAgents: async (l) => {
        etcd = await new EtcdCluster({ netns: l.control, host: CONTROL_ADDRESS }).start();
        etcd.ctl("put", `${PREFIX}/config`, JSON.stringify(NETWORK));
      },
    });
    await lab.up();
    // flanneld's node joins the running cluster, as a new flannel node would.
    flannelNode = lab.addBareNode(4, "flannel-node");
    await startFlanneld(lab, flannelNode);
  });
  afterAll(async () => {
    flanneld?.kill("SIGTERM");
    await lab?.down();
    await etcd?.stop();
  });

  it("flanneld's lease and weft's leases sit side by side in flannel's layout", () => {
    const leases = etcd!.getPrefix(`${PREFIX}/subnets/`);
    expect(leases.size).toBe(4);
    const flannel = JSON.parse(leases.get(`${PREFIX}/subnets/${flannelNode.subnet.replace("/", "-")}`)!);
    expect(flannel).toMatchObject({ PublicIP: flannelNode.underlayIP, BackendType: "vxlan", BackendData: { VNI: 1 } });
    const mac = flannel.BackendData.VtepMAC as string;
    expect(lab.exec(flannelNode.ns, "ip", ["-br", "link", "show", "flannel.1"])).toContain(mac);
    for (const n of lab.nodes) {
      expect(JSON.parse(leases.get(`${PREFIX}/subnets/${n.subnet.replace("/", "-")}`)!)).toMatchObject({ PublicIP: n.underlayIP, NodeName: `node${n.index}` });
    }
  });

  it("flanneld programs the weft nodes as it programs flannel peers, and weft knows flanneld's node", async () => {
    const ns = flannelNode.ns;
    for (const n of lab.nodes) {
      const status = await pollStatus(n.socket!, (s) => s.peers.some((p) => p.subnet === flannelNode.subnet && p.live), `${n.ns} to know flanneld's node`);
      const gw = n.subnet.replace(/\/\d+$/, "");
      expect(lab.exec(ns, "ip", ["neigh", "show", gw, "dev", "flannel.1"])).toContain(status.vtepMAC);
      expect(lab.exec(ns, "bridge", ["fdb", "show", "dev", "flannel.1"])).toContain(`${status.vtepMAC} dst ${n.underlayIP}`);
      expect(lab.exec(ns, "ip", ["route", "show", n.subnet])).toMatch(new RegExp(`via ${gw.replace(/\./g, "\\.")} dev flannel.1 onlink`));
    }
  });

  it("Pods reach Pods both ways between the flanneld node and the weft nodes", async () => {
    for (const from of lab.pods) for (const to of lab.pods) if (from !== to) await waitPing(from.ns, to.ip, 20_000);
  });

  it("flanneld touched nothing outside its node's namespace", () => {
    expect(execFileSync("ip", ["-br", "link", "show"], { encoding: "utf8" })).not.toMatch(/^flannel\./m);
    expect(execFileSync("iptables-save", { encoding: "utf8" })).not.toMatch(/FLANNEL/);
    expect(readFileSync(subnetFile, "utf8")).toMatch(/^FLANNEL_NETWORK=10\.244\.0\.0\/16$/m);
  });
});
