// `weft bench` runs this program: the benchmarks live outside the product, which only starts them (src/cli/bench.ts).
import { Command } from "commander";
import { runBench } from "./run.js";

const program = new Command();
program
  .name("weft bench")
  .description("benchmark Pod-to-Pod networking across two namespaced nodes: routed vs kernel VXLAN vs weft (iperf3, ping)")
  .option("--seconds <s>", "seconds per iperf3 figure", "5")
  .option("--out <dir>", "directory for the JSON and SVG results (default bench/results)")
  .option("--modes <list>", "comma-separated subset of routed,kernel-vxlan,weft")
  .option("--queues <list>", "run the weft mode once per TUN queue count, e.g. 1,2 (the agent's `queues` key)")
  .option("--no-overlay", "skip the two-node benchmark")
  .option("--core", "also run the packet core's micro-benchmarks (packets/s, TSO split, GRO)")
  .option("--lpm", "also run the route-table benchmark (1M IPv4 / 200k IPv6 prefixes, ~30 s)")
  .option("--cni", "measure CNI ADD/DEL latency over 200 Pods, weft vs the reference bridge + host-local (part of the overlay benchmark; alone with --no-overlay)")
  .option("--registry", "also measure the kube registry: initial sync and a no-op re-list of N Nodes in a real kube-apiserver")
  .option("--registry-nodes <n>", "Node objects for --registry", "5000")
  .option("--peers", "also measure a real agent taking thousands of peers from its registry file, a no-op re-list, and its RSS")
  .option("--peer-count <n>", "records the peer benchmark adds", "5000")
  .option("--registry-etcd", "also measure the etcd registry with 5,000 leases in a 3-member etcd on loopback (initial sync, claim, watch, re-list)")
  .addHelpText("after", "\nNeeds root (network namespaces). Examples:\n  weft bench\n  weft bench --seconds 10 --core --out /tmp/weft-bench\n  weft bench --modes kernel-vxlan,weft --queues 1,2\n  weft bench --no-overlay --core --lpm --cni\n  weft bench --no-overlay --peers --peer-count 5000\n  weft bench --no-overlay --registry --registry-nodes 5000\n  weft bench --no-overlay --registry-etcd")
  .action(async (opts: { seconds: string; out?: string; modes?: string; queues?: string; overlay: boolean; core?: boolean; lpm?: boolean; cni?: boolean; peers?: boolean; peerCount: string;
    registry?: boolean; registryNodes: string; registryEtcd?: boolean }) => {
    process.exitCode = await runBench({ seconds: Number(opts.seconds), out: opts.out, modes: opts.modes, queues: opts.queues, overlay: opts.overlay,
      core: !!opts.core, lpm: !!opts.lpm, cni: !!opts.cni, peers: !!opts.peers, peerCount: Number(opts.peerCount),
      registryNodes: opts.registry ? Number(opts.registryNodes) : undefined, registryEtcd: !!opts.registryEtcd });
  });

await program.parseAsync(process.argv);
