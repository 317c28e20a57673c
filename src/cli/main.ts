// weft's command line. Each command is a small module; this file only wires them to commander.
import { Command } from "commander";
import { runDemo } from "./demo.js";
import { runBench } from "./bench.js";
import { runAgent } from "../agent/agent.js";
import { runStatus } from "./status.js";
import { runInstallCni } from "./install-cni.js";
import { runUninstall } from "./uninstall.js";
import { buildInfo } from "../control/version.js";

const program = new Command();
program
  .name("weft")
  .description("weft: a userspace VXLAN pod network for Kubernetes, with a WebAssembly packet core")
  .version(buildInfo().id, "-V, --version", "print weft's version and build, e.g. 0.1.0-1a2b3c4 (the image is tagged with it)");

program
  .command("agent")
  .description("run the node's overlay: TUN device, VXLAN dataplane, registry, metrics (docs/agent.md)")
  .option("--config <file>", "agent config (JSON); every key can also be given as a flag, flags win")
  .allowUnknownOption(true)
  .allowExcessArguments(true)
  .addHelpText("after", `
Keys (as flags too): --node-name, --cluster-cidr, --subnet-len, --subnet, --public-ip, --public-ip-wait, --vni, --port,
--vtep-mac, --device, --registry-type, --registry-path, --socket, --state-dir, --metrics, --max-peers, --queues

Example:
  weft agent --config /etc/weft/agent.json
  weft agent --cluster-cidr 10.244.0.0/16 --public-ip 192.168.1.10 --registry-path /etc/weft/peers.json`)
  .action(async (opts: { config?: string }, cmd: Command) => {
    process.exitCode = await runAgent(opts.config, parseKeyFlags(cmd.args));
  });

program
  .command("status")
  .description("show the local agent's node, subnet, offloads, peers and counters")
  .option("--json", "print the status as JSON")
  .option("--socket <path>", "the agent's socket", "/run/weft/weft.sock")
  .addHelpText("after", "\nExample:\n  weft status\n  weft status --json --socket /run/weft/weft.sock")
  .action(async (opts: { json?: boolean; socket: string }) => {
    process.exitCode = await runStatus({ socket: opts.socket, json: !!opts.json });
  });

program
  .command("install-cni")
  .description("install the weft CNI plugin (static front end) and a weft → portmap conflist")
  .option("--bin-dir <dir>", "CNI plugin directory", "/opt/cni/bin")
  .option("--conf-dir <dir>", "CNI config directory", "/etc/cni/net.d")
  .option("--socket <path>", "the agent's socket, written into the conflist", "/run/weft/weft.sock")
  .option("--mtu <n>", "Pod MTU override written into the conflist (default: the agent's)")
  .option("--conflist <file>", "install this conflist (plugins starting with weft) instead of the generated one")
  .addHelpText("after", "\nRun `npm run build` first. Example:\n  sudo weft install-cni\n  sudo weft install-cni --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d --socket /run/weft/weft.sock\n  weft install-cni --bin-dir /host/opt/cni/bin --conf-dir /host/etc/cni/net.d --conflist /etc/weft/cni-conf.json")
  .action(async (o: { binDir: string; confDir: string; socket: string; mtu?: string; conflist?: string }) => {
    process.exitCode = await runInstallCni({ binDir: o.binDir, confDir: o.confDir, socket: o.socket, mtu: o.mtu === undefined ? undefined : Number(o.mtu),
      conflist: o.conflist });
  });

program
  .command("uninstall")
  .description("remove what a stopped agent leaves on this node on purpose: weft0 and its routes, the CNI conflist and plugin")
  .option("--device <name>", "the agent's TUN device", "weft0")
  .option("--socket <path>", "the agent's socket (refuses while an agent answers on it)", "/run/weft/weft.sock")
  .option("--bin-dir <dir>", "CNI plugin directory", "/opt/cni/bin")
  .option("--conf-dir <dir>", "CNI config directory", "/etc/cni/net.d")
  .addHelpText("after", `
An agent's stop (SIGTERM, a crash, an upgrade) leaves weft0, its address and routes in place so that running Pods keep
their network and the next agent adopts them; this command is how they go. Stop the agent first (docs/install.md).

Example:
  sudo weft uninstall
  sudo weft uninstall --device weft0 --socket /run/weft/weft.sock`)
  .action(async (o: { device: string; socket: string; binDir: string; confDir: string }) => {
    process.exitCode = await runUninstall(o);
  });

program
  .command("demo")
  .description("a weft cluster in network namespaces: nodes on a switched underlay, a registry, Pods made through the CNI " +
    "front end, every Pod reaching every Pod, then a short benchmark against kernel VXLAN")
  .option("--nodes <n>", "weft nodes", "3")
  .option("--pods <m>", "Pods per node", "2")
  .option("--registry <type>", "etcd (Debian's etcd-server), kube (a real kube-apiserver, when built), or file", "etcd")
  .option("--seconds <s>", "seconds of the TCP figure in the benchmark", "3")
  .option("--keep", "leave the cluster up and print how to look around and take it down")
  .option("--down <prefix>", "take down a cluster left up by --keep")
  .addHelpText("after", "\nExample:\n  sudo weft demo\n  sudo weft demo --nodes 4 --pods 1 --registry file --keep\n  sudo weft demo --down wl1a2b")
  .action(async (o: { nodes: string; pods: string; registry: string; seconds: string; keep?: boolean; down?: string }) => {
    process.exitCode = await runDemo({ nodes: Number(o.nodes), pods: Number(o.pods), registry: o.registry, seconds: Number(o.seconds),
      keep: !!o.keep, down: o.down });
    // A cluster left up keeps its agents and stores running as children of nothing: exit without waiting for them.
    if (o.keep) process.exit();
  });

program
  .command("bench")
  .description("benchmark Pod-to-Pod networking across namespaced nodes: routed vs kernel VXLAN vs weft (iperf3, ping); " +
    "`weft bench --help` lists the options")
  .helpOption(false)
  .allowUnknownOption(true)
  .allowExcessArguments(true)
  .action(async (_opts: unknown, cmd: Command) => {
    process.exitCode = await runBench(cmd.args);
  });

/** `--key value` / `--key=value` pairs after `weft agent`, for the config's keys (validated by the config loader). */
function parseKeyFlags(args: string[]): Record<string, string | undefined> {
  const flags: Record<string, string | undefined> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) throw new Error(`weft agent: unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf("=");
    if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
    else flags[a.slice(2)] = args[++i];
  }
  return flags;
}

await program.parseAsync(process.argv);
