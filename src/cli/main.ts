// weft's command line. Each command is a small module; this file only wires them to commander.
import { Command } from "commander";
import { runDemo } from "./demo.js";
import { runBench } from "./bench.js";

const program = new Command();
program
  .name("weft")
  .description("weft: a userspace VXLAN pod network for Kubernetes, with a WebAssembly packet core");

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

await program.parseAsync(process.argv);
