// CPU time around a benchmark run: the whole machine's busy time from /proc/stat (every core, every process, softirqs
// included) and given processes' own user + system time from /proc/<pid>/stat, so a throughput figure can carry its
// CPU cost: cores kept busy per Gbit/s carried.
import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc's counters (USER_HZ): 100 on every Linux ABI that weft runs on. */
export const USER_HZ = 100;

export interface CpuSample {
  /** Wall clock, ms. */
  at: number;
  /** Machine-wide ticks not idle and not iowait, summed over cores. */
  busyTicks: number;
  /** Per pid: utime + stime ticks (every thread of the process). */
  processTicks: Record<number, number>;
}

export interface CpuUse {
  seconds: number;
  /** Busy cores on average over the run: machine-wide, and the named processes together. */
  machineCores: number;
  processCores: number;
}

/** Busy ticks from the first ("cpu ") line of /proc/stat: everything but idle (4th) and iowait (5th). */
export function parseStatBusy(stat: string): number {
  const line = stat.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) throw new Error("/proc/stat has no aggregate cpu line");
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
  return f.slice(0, 8).reduce((sum, v, i) => (i === 3 || i === 4 ? sum : sum + v), 0);
}

/** utime + stime from /proc/<pid>/stat (fields 14 and 15; the command name in parentheses may hold spaces). */
export function parseProcessTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state): utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`not a /proc/<pid>/stat line: ${stat.slice(0, 60)}`);
  return utime + stime;
}

export function sampleCpu(pids: number[]): CpuSample {
  const processTicks: Record<number, number> = {};
  for (const pid of pids) processTicks[pid] = parseProcessTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
  return { at: Date.now(), busyTicks: parseStatBusy(readFileSync("/proc/stat", "utf8")), processTicks };
}

export function cpuBetween(a: CpuSample, b: CpuSample): CpuUse {
  const seconds = (b.at - a.at) / 1000;
  let processTicks = 0;
  for (const [pid, ticks] of Object.entries(b.processTicks)) processTicks += ticks - (a.processTicks[Number(pid)] ?? ticks);
  return { seconds, machineCores: (b.busyTicks - a.busyTicks) / USER_HZ / seconds, processCores: processTicks / USER_HZ / seconds };
}

/** Cores per Gbit/s: average busy cores over the run divided by the rate carried (undefined when nothing was carried). */
export function coresPerGbit(cores: number, gbps: number): number | undefined {
  return gbps > 0 ? cores / gbps : undefined;
}
