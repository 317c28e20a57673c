// `weft bench`: the packet core's micro-benchmarks and the route-table benchmark, printed and written as JSON.
import { runCoreBench } from "../../bench/core.js";
import { runLpmBench } from "../../bench/lpm.js";
import { writeResult, RESULTS_DIR } from "../../bench/lib/report.js";

export async function runBench(opts: { seconds: number; out?: string; lpm: boolean }): Promise<number> {
  if (!(opts.seconds > 0)) {
    console.error("weft bench: --seconds must be a positive number");
    return 2;
  }
  const core = runCoreBench({ seconds: opts.seconds });
  const file = writeResult("core", { date: new Date().toISOString(), node: process.version, ...core }, opts.out ?? RESULTS_DIR);
  console.log(`\nwrote ${file}`);
  if (opts.lpm) runLpmBench(opts.out ?? RESULTS_DIR);
  return 0;
}
