// The demo's cluster: N weft nodes in network namespaces on one switched underlay, M Pods per node made through the real
// CNI front end, a registry (etcd, the Kubernetes API, or the shared file); then a connectivity matrix (every Pod to every
// Pod with the source address checked, each node to its own Pods) and a short headline benchmark against kernel VXLAN
// on the same shape of cluster. Every step reports its elapsed time; a failure names its step and leaves nothing behind.
import { execFileSync, spawn } from "node:child_process";
import { Lab, type LabNode, type LabPod, type LabRegistry, type NodeKind } from "./topology.js";
import { iperf3, percentile, pingRtts } from "./measure.js";

export interface ClusterDemoOptions {
  nodes: number;
  pods: number;
  registry: LabRegistry;
  seconds: number;
  keep: boolean;
  /** The weft CLI to show `weft status` with (process.argv[1] of the running CLI). */
  weftBin: string;
}

class StepError extends Error {
  constructor(readonly step: string, cause: Error) {
    super(`step "${step}" failed: ${cause.message}`);
  }
}

let started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;

async function step<T>(name: string, work: () => T | Promise<T>): Promise<T> {
  console.log(`[${elapsed()}] ${name} …`);
  try {
    return await work();
  } catch (err) {
    throw new StepError(name, err as Error);
  }
}

/** A UDP server in each Pod that answers every datagram with the source address it saw. */
const ECHO_SERVER = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',7001))\n" +
  "while True:\n d,a=s.recvfrom(64)\n s.sendto(a[0].encode(),a)";

/** From one Pod: asks every target (3 tries each) and prints "target seen-source" per line ("-" when no answer). */
function echoClient(targets: string[]): string {
  return "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(0.5)\n" +
    `for t in ${JSON.stringify(targets)}:\n seen='-'\n for i in range(3):\n  s.sendto(b'who',(t,7001))\n` +
    "  try:\n   d,a=s.recvfrom(64)\n   if a[0]==t: seen=d.decode(); break\n  except socket.timeout: pass\n print(t,seen)";
}

/** Every Pod to every other Pod; true where the answer came back and the target saw the sender's own address. */
function podMatrix(lab: Lab): boolean[][] {
  const servers = lab.pods.map((p) => spawn("ip", ["netns", "exec", p.ns, "python3", "-c", ECHO_SERVER], { stdio: "ignore" }));
  try {
    execFileSync("sleep", ["0.5"]);
    return lab.pods.map((from) => {
      const targets = lab.pods.filter((p) => p !== from).map((p) => p.ip);
      const seen = new Map(lab.exec(from.ns, "python3", ["-c", echoClient(targets)]).trim().split("\n").map((l) => l.split(" ") as [string, string]));
      return lab.pods.map((to) => to === from || seen.get(to.ip) === from.ip);
    });
  } finally {
    servers.forEach((s) => s.kill("SIGKILL"));
  }
}

function printMatrix(pods: LabPod[], ok: boolean[][]): void {
  const name = (p: LabPod) => `n${p.node}:${p.ip}`;
  const width = Math.max(...pods.map((p) => name(p).length));
  console.log(`\n  ${"from \\ to".padEnd(width)}  ${pods.map((p, j) => `p${j + 1}`.padStart(3)).join(" ")}`);
  pods.forEach((p, i) => {
    const cells = pods.map((_, j) => (i === j ? "  ·" : ok[i][j] ? "  ✓" : "  ✗"));
    console.log(`  ${name(p).padEnd(width)}  ${cells.join(" ")}   p${i + 1}`);
  });
  console.log("  ✓: answered, and the target saw the sender's own Pod address (no NAT)\n");
}

/** Each node pings its own Pods (the kernel routes those itself: /32 routes to the Pods' veths). */
function nodeToLocalPods(lab: Lab): string[] {
  const failed: string[] = [];
  for (const n of lab.nodes) {
    for (const p of lab.pods.filter((x) => x.node === n.index)) {
      try {
        lab.exec(n.ns, "ping", ["-c", "1", "-W", "2", p.ip]);
      } catch {
        failed.push(`${n.name} → ${p.ip}`);
      }
    }
  }
  return failed;
}

interface Headline {
  network: string;
  tcp1Gbps: number;
  rttP50Us: number;
}

/** TCP one stream and ping between the first Pods of nodes 1 and 2. */
async function headline(lab: Lab, network: string, seconds: number): Promise<Headline> {
  const [a, b] = [lab.pod(1), lab.pod(2)];
  const server = spawn("ip", ["netns", "exec", b.ns, "iperf3", "-s", "-p", "5201"], { stdio: "ignore" });
  try {
    await new Promise((r) => setTimeout(r, 300));
    lab.exec(a.ns, "ping", ["-c", "2", "-i", "0.2", "-W", "2", b.ip]);
    const tcp1Gbps = iperf3(lab, a, b, ["-O", "1"], seconds).end.sum_received!.bits_per_second / 1e9;
    const rttP50Us = percentile(pingRtts(lab, a, b, 200), 50);
    return { network, tcp1Gbps, rttP50Us };
  } finally {
    server.kill("SIGKILL");
  }
}

function labFor(o: ClusterDemoOptions, kind: NodeKind): Lab {
  return new Lab({ mode: kind === "weft" ? "weft" : "kernel-vxlan", nodes: Array<NodeKind>(o.nodes).fill(kind), bridged: true,
    pods: o.pods, podsVia: "cni", registry: kind === "weft" ? o.registry : "file" });
}

export async function runClusterDemo(o: ClusterDemoOptions): Promise<boolean> {
  started = Date.now();
  console.log(`\n${o.nodes} weft nodes in network namespaces on one switched underlay (a bridge), registry "${o.registry}", ` +
    `${o.pods} Pods per node made by each node's agent through the CNI front end (build/cni/weft)\n`);
  const lab = labFor(o, "weft");
  let ok = true;
  let kept = false;
  try {
    await step(`cluster up: ${o.nodes} nodes, ${registryText(o.registry)}, ${o.nodes * o.pods} Pods`, () => lab.up());
    for (const n of lab.nodes) console.log(`           ${n.name}: underlay ${n.underlayIP}, Pod subnet ${n.subnet}, Pods ${lab.pods.filter((p) => p.node === n.index).map((p) => p.ip).join(" ")}`);
    const matrix = await step("connectivity: every Pod to every Pod (UDP echo of the source address)", () => podMatrix(lab));
    printMatrix(lab.pods, matrix);
    const broken = matrix.flatMap((row, i) => row.map((v, j) => (v ? "" : `${lab.pods[i].ip} → ${lab.pods[j].ip}`))).filter(Boolean);
    if (broken.length) throw new StepError("connectivity", new Error(`no answer or wrong source: ${broken.join(", ")}`));
    const local = await step("each node reaches its own Pods", () => nodeToLocalPods(lab));
    if (local.length) throw new StepError("node to local Pods", new Error(local.join(", ")));
    await step(`weft status on ${lab.nodes[0].name}`, () => showStatus(lab.nodes[0], o.weftBin));
    const weft = await step(`headline benchmark, weft: TCP 1 stream ${o.seconds} s and 200 pings, ${lab.pod(1).ip} → ${lab.pod(2).ip}`,
      () => headline(lab, "weft", o.seconds));
    const kernel = await step("headline benchmark, kernel VXLAN (flannel-style) on the same shape of cluster", async () => {
      if (o.keep) return undefined;
      await lab.down();
      const k = await labFor(o, "kernel-vxlan").up();
      try {
        return await headline(k, "kernel VXLAN", o.seconds);
      } finally {
        await k.down();
      }
    });
    printHeadline(weft, kernel);
    if (o.keep) {
      kept = true;
      lab.keep();
      printKeep(lab, o.weftBin);
    }
  } catch (err) {
    ok = false;
    console.log(`\n[${elapsed()}] demo failed: ${(err as Error).message}`);
  } finally {
    if (!kept) await step("teardown: agents stopped, namespaces and files removed", () => lab.down());
  }
  return ok;
}

function registryText(r: LabRegistry): string {
  return r === "etcd" ? "etcd in the control namespace" : r === "kube" ? "kube-apiserver + controller-manager in the control namespace" : "a shared file";
}

function showStatus(n: LabNode, weftBin: string): void {
  console.log(execFileSync("ip", ["netns", "exec", n.ns, process.execPath, weftBin, "status", "--socket", n.socket!], { encoding: "utf8" }));
}

function printHeadline(weft: Headline, kernel: Headline | undefined): void {
  console.log("\n  network        TCP 1 stream          ping p50");
  for (const h of [weft, kernel].filter((x): x is Headline => !!x)) {
    const ratio = kernel && h !== kernel ? ` (${(h.tcp1Gbps / kernel.tcp1Gbps).toFixed(2)}×)` : "";
    const added = kernel && h !== kernel ? ` (+${(h.rttP50Us - kernel.rttP50Us).toFixed(0)} µs)` : "";
    console.log(`  ${h.network.padEnd(13)}  ${`${h.tcp1Gbps.toFixed(2)} Gbit/s${ratio}`.padEnd(20)}  ${h.rttP50Us.toFixed(0)} µs${added}`);
  }
  if (!kernel) console.log("  (kernel VXLAN is not measured with --keep: the cluster stays up instead)");
  console.log("  the full benchmark (4 streams, UDP 64 B, routed too): sudo node bin/weft bench\n");
}

function printKeep(lab: Lab, weftBin: string): void {
  const n = lab.nodes[0];
  const [a, b] = [lab.pod(1), lab.pod(2)];
  console.log(`The cluster stays up (prefix ${lab.prefix}, files in ${lab.dir}). Look around:`);
  console.log(`  ip netns list | grep ${lab.prefix}`);
  console.log(`  ip netns exec ${n.ns} node ${weftBin} status --socket ${n.socket}`);
  console.log(`  ip netns exec ${a.ns} ping ${b.ip}`);
  console.log(`  ip -n ${n.ns} route; tail ${n.logFile}`);
  console.log(`Take it down:\n  sudo node ${weftBin} demo --down ${lab.prefix}`);
}
