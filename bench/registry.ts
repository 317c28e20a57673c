// The kube registry at cluster scale: a real kube-apiserver (with etcd and kube-controller-manager) holding N Node
// objects annotated as flanneld annotates its Node, and weft's registry syncing them (docs/registry-kube.md). Measured:
// the initial sync (list of every page, parse, peer records ready; the client library's one-off load is shown apart),
// and a re-list that changes nothing (forced the real way: kube-apiserver restarts, the watch's version is then older
// than its cache, 410 Gone), which must emit no events. Everything runs in a namespace of its own, the API server on an
// address of a veth inside it (kube-apiserver refuses to advertise a loopback address).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../src/control/log.js";
import { KubeRegistry } from "../src/control/registry/kube.js";
import type { ListInfo } from "../src/control/registry/kube-informer.js";
import { findClusterTools, KubeControlPlane } from "../src/lab/kube.js";
import { flannelAnnotations, nodeObject } from "../src/lab/kube-nodes.js";
import { enterNetns } from "../src/sys/netns.js";
import { printTable, writeResult } from "./lib/report.js";

export interface RegistryBenchOptions {
  nodes: number;
  /** Fresh registries timed for the initial sync. */
  runs: number;
  outDir?: string;
}

const CLUSTER = "10.0.0.0/8";
const API_ADDRESS = "192.168.211.254";

export async function runRegistryBench(o: RegistryBenchOptions): Promise<Record<string, unknown>> {
  const tools = findClusterTools();
  if (typeof tools === "string") throw new Error(`weft bench --registry: ${tools}`);
  const ns = `wkb${process.pid.toString(16).slice(-4)}`;
  const dir = mkdtempSync(join(tmpdir(), `${ns}-`));
  execFileSync("ip", ["netns", "add", ns]);
  execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
  execFileSync("ip", ["-n", ns, "link", "add", `${ns}a`, "type", "veth", "peer", "name", `${ns}b`]);
  execFileSync("ip", ["-n", ns, "addr", "add", `${API_ADDRESS}/24`, "dev", `${ns}a`]);
  for (const end of ["a", "b"]) execFileSync("ip", ["-n", ns, "link", "set", `${ns}${end}`, "up"]);
  const leave = enterNetns(ns);
  const kube = new KubeControlPlane({ tools, ns, address: API_ADDRESS, dir, clusterCIDR: CLUSTER, nodeCIDRMaskSize: 24 });
  try {
    console.log(`starting etcd, kube-apiserver and kube-controller-manager in namespace ${ns} ...`);
    await kube.start();
    const loadStart = performance.now();
    const lib = await import("@kubernetes/client-node");
    const libraryLoadMs = Math.round(performance.now() - loadStart);
    await createNodes(lib, kube.admin.kubeconfig, o.nodes);

    const log = createLogger({ name: "bench", level: "warn" });
    const registry = (onListed?: (l: ListInfo) => void, backoffMs = { initial: 100, max: 500 }) => new KubeRegistry({
      nodeName: "bench-observer", kubeconfig: kube.weft.kubeconfig, clusterCIDR: CLUSTER, subnetLen: 24,
      self: { publicIP: API_ADDRESS, vtepMAC: "02:5e:00:00:00:fe", vni: 1 }, log, informer: { backoffMs, onListed },
    });

    const syncs: { startMs: number; fetchMs: number; applyMs: number; peers: number }[] = [];
    for (let run = 0; run < o.runs; run++) {
      let list: ListInfo | undefined;
      const r = registry((l) => (list = l));
      const began = performance.now();
      await r.start();
      syncs.push({ startMs: Math.round(performance.now() - began), fetchMs: list!.fetchMs, applyMs: list!.applyMs, peers: r.list().length });
      await r.close();
    }

    // A restart answers the watch with 410 Gone. Right after it the server is still filling its caches: that re-list is
    // timed, and another whose first retry comes 8 s later (the backoff's longest pause), against a warm server.
    const cold = await relistAfterRestart(kube, (onListed) => registry(onListed, { initial: 100, max: 500 }));
    const warm = await relistAfterRestart(kube, (onListed) => registry(onListed, { initial: 8000, max: 8000 }));

    const sorted = [...syncs].sort((a, b) => a.startMs - b.startMs);
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      nodes: o.nodes,
      libraryLoadMs,
      initialSync: { runs: syncs, medianStartMs: sorted[Math.floor(sorted.length / 2)].startMs, bestStartMs: sorted[0].startMs },
      relistColdServer: cold,
      relistWarmServer: warm,
    };
    const row = (what: string, r: RelistResult) => [what, r.fetchMs + r.applyMs, r.fetchMs, r.applyMs, r.peers, r.events];
    printTable(`kube registry, ${o.nodes} flannel-annotated Nodes in a real kube-apiserver`, ["measure", "total ms", "fetch+parse", "apply/diff", "peers", "events"], [
      ...syncs.map((s, i) => [`initial sync #${i + 1} (start())`, s.startMs, s.fetchMs, s.applyMs, s.peers, "-"]),
      row("no-op re-list (410 Gone), server just restarted", cold),
      row("no-op re-list (410 Gone), server warm (8 s later)", warm),
      ["client library load (once per process)", libraryLoadMs, "-", "-", "-", "-"],
    ]);
    console.log(`\nwrote ${writeResult("registry", result, o.outDir)}`);
    return result;
  } finally {
    await kube.stop();
    leave();
    try {
      execFileSync("ip", ["netns", "del", ns]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

interface RelistResult {
  fetchMs: number;
  applyMs: number;
  peers: number;
  /** Events the re-list emitted: nothing changed, so this must be 0. */
  events: number;
}

async function relistAfterRestart(kube: KubeControlPlane, make: (onListed: (l: ListInfo) => void) => KubeRegistry): Promise<RelistResult> {
  const lists: ListInfo[] = [];
  let events = 0;
  const registry = make((l) => lists.push(l));
  for (const e of ["added", "removed", "changed"] as const) registry.on(e, () => events++);
  await registry.start();
  await kube.stopApiServer();
  await kube.startApiServer();
  const deadline = Date.now() + 120_000;
  while (!lists.some((l) => l.relist) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const relist = lists.find((l) => l.relist);
  await registry.close();
  if (!relist) throw new Error("no re-list within 120 s of the API server's restart");
  return { fetchMs: relist.fetchMs, applyMs: relist.applyMs, peers: registry.list().length, events };
}

/** N Nodes as flanneld leaves them: its annotations, a podCIDR each (set at creation, as if the controller had). */
async function createNodes(lib: typeof import("@kubernetes/client-node"), kubeconfig: string, count: number): Promise<void> {
  const config = new lib.KubeConfig();
  config.loadFromFile(kubeconfig);
  const api = config.makeApiClient(lib.CoreV1Api);
  const began = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const address = `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      const mac = `02:5e:00:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
      const body = nodeObject(`bench-node-${i}`, address, { annotations: flannelAnnotations(mac, address) }) as { spec?: object };
      const subnet = `10.${(i + 1) >> 8}.${(i + 1) & 255}.0/24`;
      body.spec = { podCIDR: subnet, podCIDRs: [subnet] };
      await api.createNode({ body: body as never });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  console.log(`created ${count} Nodes in ${((performance.now() - began) / 1000).toFixed(1)} s`);
}
