// Child processes that run the sources under test as they are (through tsx), never a build of them that may be stale.
import { createRequire } from "node:module";

/** Node options for fork() of a `.ts` entry point: fork(file, args, { execArgv: TS_EXEC_ARGV }). */
export const TS_EXEC_ARGV = ["--import", createRequire(import.meta.url).resolve("tsx")];
