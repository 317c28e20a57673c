// `weft bench`: runs the benchmark program (bench/main.ts, built into dist/bench/) as a child, so the product itself carries
// no benchmark code; its arguments and output pass through unchanged.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../paths.js";

export async function runBench(args: string[]): Promise<number> {
  const main = join(PACKAGE_ROOT, "dist", "bench", "main.js");
  if (!existsSync(main)) {
    console.error(`weft bench: ${main} is missing: the benchmarks ship with the source checkout (npm run build there)`);
    return 2;
  }
  const child = spawn(process.execPath, [main, ...args], { stdio: "inherit" });
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}
