// weft's command line. Each command is a small module; this file only wires them to commander.
import { Command } from "commander";
import { runDemo } from "./demo.js";
import { runBench } from "./bench.js";
import { runAgent } from "./agent.js";
import { runStatus } from "./status.js";

const program = new Command();
program
  .name("weft")
  .description("weft: a userspace VXLAN pod network for Kubernetes, with a WebAssembly packet core");

program
  .command("agent")
  .description("run the node's overlay: TUN device, VXLAN dataplane, registry, metrics (DESIGN §5)")
  .option("--config <file>", "agent config (JSON); every key can also be given as a flag, flags win")
  .allowUnknownOption(true)
  .allowExcessArguments(true)
  .addHelpText("after", `
Keys (as flags too): --node-name, --cluster-cidr, --subnet-len, --subnet, --public-ip, --vni, --port, --vtep-mac, --device,
--registry-type, --registry-path, --socket, --state-dir, --metrics

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
  .command("demo")
  .description("run the packet core's self-check and micro-benchmarks")
  .option("--seconds <s>", "seconds per benchmark figure", "0.5")
  .addHelpText("after", "\nExample:\n  weft demo --seconds 1")
  .action(async (opts: { seconds: string }) => {
    process.exitCode = await runDemo({ seconds: Number(opts.seconds) });
  });

program
  .command("bench")
  .description("measure the packet core (packets/s, TSO split, LPM lookups) and write JSON under bench/results/")
  .option("--seconds <s>", "seconds per figure", "1")
  .option("--out <dir>", "directory for the JSON results")
  .option("--no-lpm", "skip the route-table benchmark (1M IPv4 / 200k IPv6 prefixes, ~30 s)")
  .addHelpText("after", "\nExample:\n  weft bench --seconds 2 --out /tmp/weft-bench")
  .action(async (opts: { seconds: string; out?: string; lpm: boolean }) => {
    process.exitCode = await runBench({ seconds: Number(opts.seconds), out: opts.out, lpm: opts.lpm });
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
