// Parsing of `weft bench`'s list-valued flags: plain functions that turn the text into values or throw a message naming
// the flag, so bench/main.ts only wires them to commander.
import { MAX_QUEUES } from "../control/config.js";

/** `--queues 1,2,4`: distinct queue counts in the order given, each one the agent's `queues` key takes (docs/agent.md). */
export function parseQueueCounts(text: string): number[] {
  const items = text.split(",").map((s) => s.trim());
  const counts: number[] = [];
  for (const item of items) {
    if (!/^\d+$/.test(item) || Number(item) < 1 || Number(item) > MAX_QUEUES) {
      throw new Error(`--queues: ${JSON.stringify(item)} is not a queue count: expected integers from 1 to ${MAX_QUEUES}, comma-separated (e.g. 1,2)`);
    }
    if (counts.includes(Number(item))) throw new Error(`--queues: ${item} is listed twice`);
    counts.push(Number(item));
  }
  return counts;
}

/** `--modes routed,weft`: a subset of `known`, in the order given. */
export function parseModeList<T extends string>(text: string, known: readonly T[]): T[] {
  const modes = text.split(",").map((s) => s.trim());
  const unknown = modes.filter((m) => !known.includes(m as T));
  if (unknown.length) throw new Error(`--modes: unknown mode ${unknown.map((m) => JSON.stringify(m)).join(", ")}; expected some of ${known.join(", ")}`);
  const repeated = modes.find((m, i) => modes.indexOf(m) !== i);
  if (repeated !== undefined) throw new Error(`--modes: ${repeated} is listed twice`);
  return modes as T[];
}
