// The benchmarks behind `weft bench`: the two-node overlay benchmark (routed vs kernel VXLAN vs weft, iperf3 and ping), and
// on request the packet core, route-table, CNI, peer and registry benchmarks. Everything printed and written as JSON (+ SVG).
import { runCoreBench } from "./core.js";
import { runLpmBench } from "./lpm.js";
import { runCniBench } from "./cni.js";
import { runRegistryBench } from "./registry.js";
import { runEtcdRegistryBench } from "./registry-etcd.js";
import { runPeersBench } from "./peers.js";
import { BENCH_MODES, runOverlayBench, type BenchMode } from "./overlay.js";
import { writeResult, RESULTS_DIR } from "./lib/report.js";
import { parseModeList, parseQueueCounts } from "../src/cli/bench-flags.js";

export interface BenchOptions {
  seconds: number;
  out?: string;
  overlay: boolean;
  core: boolean;
  lpm: boolean;
  cni: boolean;
  /** Nodes for the kube registry benchmark; undefined skips it. */
  registryNodes?: number;
  registryEtcd: boolean;
  peers: boolean;
  peerCount: number;
  modes?: string;
  /** `--queues 1,2`: weft runs once per TUN queue count. */
  queues?: string;
}

export async function runBench(opts: BenchOptions): Promise<number> {
  if (!(opts.seconds > 0)) {
    console.error("weft bench: --seconds must be a positive number");
    return 2;
  }
  const out = opts.out ?? RESULTS_DIR;
  if (opts.overlay) {
    let modes: BenchMode[];
    let queues: number[] | undefined;
    try {
      modes = opts.modes ? parseModeList(opts.modes, BENCH_MODES) : BENCH_MODES;
      queues = opts.queues === undefined ? undefined : parseQueueCounts(opts.queues);
    } catch (err) {
      console.error(`weft bench: ${(err as Error).message}`);
      return 2;
    }
    if (queues && !modes.includes("weft")) {
      console.error("weft bench: --queues applies to the weft mode, which --modes leaves out");
      return 2;
    }
    if (process.getuid?.() !== 0) {
      console.error("weft bench: the overlay benchmark builds network namespaces and needs root (or use --no-overlay --core)");
      return 2;
    }
    // CNI ADD is one of the figures weft is judged by: it is measured with the overlay, in the same run.
    await runOverlayBench({ seconds: opts.seconds, out, modes, queues, cni: true });
  }
  if (opts.core) {
    const core = runCoreBench({ seconds: Math.min(opts.seconds, 2) });
    console.log(`\nwrote ${writeResult("core", { date: new Date().toISOString(), node: process.version, ...core }, out)}`);
  }
  if (opts.lpm) runLpmBench(out);
  if (opts.cni && !opts.overlay) {
    if (process.getuid?.() !== 0) {
      console.error("weft bench: the CNI benchmark creates veths and namespaces and needs root");
      return 2;
    }
    await runCniBench({ outDir: out });
  }
  if (opts.peers) {
    if (process.getuid?.() !== 0) {
      console.error("weft bench: the peer benchmark runs agents in namespaces and needs root");
      return 2;
    }
    if (!Number.isInteger(opts.peerCount) || opts.peerCount < 1 || opts.peerCount > 39000) {
      console.error("weft bench: --peer-count must be an integer from 1 to 39000 (the /24s of 10.100.0.0-10.255.255.0)");
      return 2;
    }
    await runPeersBench({ peers: opts.peerCount, out });
  }
  if (opts.registryNodes !== undefined) {
    if (!(Number.isInteger(opts.registryNodes) && opts.registryNodes > 0)) {
      console.error("weft bench: --registry-nodes must be a positive integer");
      return 2;
    }
    if (process.getuid?.() !== 0) {
      console.error("weft bench: the registry benchmark runs kube-apiserver in a network namespace and needs root");
      return 2;
    }
    await runRegistryBench({ nodes: opts.registryNodes, runs: 3, outDir: out });
  }
  if (opts.registryEtcd) await runEtcdRegistryBench({ outDir: out });
  return 0;
}
