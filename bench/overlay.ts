// The overlay benchmark: the same two-node topology built three ways in one run — routed (host-gw, the ceiling), kernel
// VXLAN as flannel configures it, and weft (once per TUN queue count asked for) — measured Pod to Pod with iperf3 and ping,
// with the CPU each throughput run cost and, for the UDP flood, where every lost datagram was lost. CNI ADD is measured in
// the same run. Ratios are weft / kernel VXLAN (bench/lib/headline.ts holds the targets).
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { callAgent } from "../src/control/api-server.js";
import { Lab, sleep, type Mode } from "../src/lab/topology.js";
import { iperf3 as iperf3Between, type Iperf3Json, percentile, pingRtts } from "../src/lab/measure.js";
import { runCniBench } from "./cni.js";
import { coresPerGbit, cpuBetween, sampleCpu } from "./lib/cpu.js";
import { type CniFigure, type Comparison, type ModeFigures, type PingFigure, type ThroughputFigure, TARGETS, compare } from "./lib/headline.js";
import { writeResult, RESULTS_DIR } from "./lib/report.js";
import { type UdpPath, accountUdp, snapshotUdpPath } from "./lib/udp-accounting.js";
import { overlayChart, printOverlay } from "./overlay-report.js";

export type BenchMode = Exclude<Mode, "mixed">;
export const BENCH_MODES: BenchMode[] = ["routed", "kernel-vxlan", "weft"];
/** ping intervals: back to back (2 ms, a busy path) and idle (200 ms, every packet wakes the path up). */
export const PING_INTERVALS = [{ intervalMs: 2, count: 500 }, { intervalMs: 200, count: 60 }] as const;
/** The agents report their counters every second: wait this long for a report that covers a run. */
const COUNTER_SETTLE_MS = 1300;
const IPERF_PORT = 5201;

/** One lab of the run: a mode, and for weft the agent's TUN queue count (`queues`) when one was asked for. */
export interface PlannedRun {
  mode: BenchMode;
  label: string;
  queues?: number;
}

export interface ModeResult extends ModeFigures {
  mode: BenchMode;
  queues?: number;
  tcp1: ThroughputFigure & { retransmits?: number };
  tcp4: ThroughputFigure & { retransmits?: number };
  udp64: ModeFigures["udp64"] & {
    sent: number;
    iperfLostPct: number;
    seconds: number;
    /** weft: each agent's TUN queues and what each took in (totals since the agent started), after the flood. */
    queues?: { sender: QueueIntake[]; receiver: QueueIntake[] };
  };
}

/** One TUN queue's intake as the agent's status reports it. */
export interface QueueIntake {
  queue: number;
  txPacketsIn: number;
  rxDatagramsIn: number;
}

export interface OverlayBenchResult {
  date: string;
  seconds: number;
  machine: { cores: number; kernel: string; node: string };
  /** /proc/loadavg before and after: the machine is shared, the figures are only comparable inside one run. */
  load: { before: string; after: string };
  targets: typeof TARGETS;
  modes: ModeResult[];
  /** Each weft run against the kernel VXLAN run. */
  comparisons: Comparison[];
  cni?: CniFigure;
}

/** The labs to build, in order: each mode once, weft once per queue count when `queues` is given. */
export function plannedRuns(modes: BenchMode[], queues?: number[]): PlannedRun[] {
  return modes.flatMap((mode): PlannedRun[] => {
    if (mode !== "weft" || !queues) return [{ mode, label: mode }];
    return queues.map((q) => ({ mode, label: `weft ${q}q`, queues: q }));
  });
}

function throughput(lab: Lab, args: string[], seconds: number, agentPids: number[]): ThroughputFigure & { retransmits?: number } {
  const before = sampleCpu(agentPids);
  const json: Iperf3Json = iperf3Between(lab, lab.pod(1), lab.pod(2), ["-O", "1", ...args], seconds);
  const cpu = cpuBetween(before, sampleCpu(agentPids));
  const gbps = json.end.sum_received!.bits_per_second / 1e9;
  return { gbps, retransmits: json.end.sum_sent?.retransmits, cpu, machineCoresPerGbit: coresPerGbit(cpu.machineCores, gbps),
    agentCoresPerGbit: agentPids.length ? coresPerGbit(cpu.processCores, gbps) : undefined };
}

function udpPath(lab: Lab): UdpPath {
  const [a, b] = lab.nodes;
  const overlay = (n: typeof a) => (lab.mode === "weft" ? "weft0" : lab.mode === "kernel-vxlan" ? `${lab.prefix}v${n.index}` : "(none)");
  return {
    senderPod: lab.pod(1).ns, senderNode: a.ns, receiverNode: b.ns, receiverPod: lab.pod(2).ns,
    senderHostVeth: lab.pod(1).hostVeth, receiverHostVeth: lab.pod(2).hostVeth,
    senderOverlay: overlay(a), receiverOverlay: overlay(b),
    senderUnderlay: `${lab.prefix}u${a.index}`, receiverUnderlay: `${lab.prefix}u${b.index}`,
    vxlanPort: lab.port,
  };
}

async function udpFlood(lab: Lab, seconds: number): Promise<ModeResult["udp64"]> {
  const path = udpPath(lab);
  const [sender, receiver] = lab.nodes;
  let queues: ModeResult["udp64"]["queues"];
  const weft = sender.socket && receiver.socket ? async () => {
    const status = async (socket: string) => (await callAgent(socket, { op: "status" })) as { counters: Record<string, number>; queues: QueueIntake[] };
    const [s, r] = [await status(sender.socket!), await status(receiver.socket!)];
    queues = { sender: s.queues, receiver: r.queues };
    return { sender: s.counters, receiver: r.counters };
  } : undefined;
  const exec = (ns: string, cmd: string, args: string[]) => lab.exec(ns, cmd, args);
  await sleep(COUNTER_SETTLE_MS);
  const before = await snapshotUdpPath(path, exec, weft);
  const sum = iperf3Between(lab, lab.pod(1), lab.pod(2), ["-u", "-b", "0", "-l", "64"], seconds).end.sum!;
  await sleep(COUNTER_SETTLE_MS);
  const after = await snapshotUdpPath(path, exec, weft);
  const received = sum.packets - sum.lost_packets;
  return { pps: received / sum.seconds, sent: sum.packets, iperfLostPct: sum.lost_percent, seconds: sum.seconds,
    accounting: accountUdp(path, before, after, sum.packets, received), queues };
}

function ping(lab: Lab, intervalMs: number, count: number): PingFigure {
  const rtts = pingRtts(lab, lab.pod(1), lab.pod(2), count, intervalMs / 1000);
  if (rtts.length === 0) throw new Error(`ping every ${intervalMs} ms: no replies`);
  return { intervalMs, count: rtts.length, p50Us: percentile(rtts, 50), p90Us: percentile(rtts, 90), p99Us: percentile(rtts, 99) };
}

async function measure(run: PlannedRun, seconds: number, say: (s: string) => void): Promise<ModeResult> {
  const tag = `[${run.label}]`;
  say(`${tag} building the two-node lab`);
  const lab = await new Lab({ mode: run.mode, podsVia: "cni", agentConfig: run.queues === undefined ? undefined : { queues: run.queues } }).up();
  const server = spawn("ip", ["netns", "exec", lab.pod(2).ns, "iperf3", "-s", "-p", String(IPERF_PORT)], { stdio: "ignore" });
  try {
    await sleep(300);
    lab.exec(lab.pod(1).ns, "ping", ["-c", "3", "-i", "0.2", "-W", "2", lab.pod(2).ip]);
    // `ip netns exec` execs the agent in place: the lab's child pid is the agent's.
    const agentPids = lab.nodes.flatMap((n) => (n.agent?.pid ? [n.agent.pid] : []));
    const cpuText = (t: ThroughputFigure) => `machine ${t.cpu.machineCores.toFixed(2)} cores` +
      (agentPids.length ? `, agents ${t.cpu.processCores.toFixed(2)}` : "");
    const tcp1 = throughput(lab, [], seconds, agentPids);
    say(`${tag} TCP, 1 stream:  ${tcp1.gbps.toFixed(2)} Gbit/s (${cpuText(tcp1)})`);
    const tcp4 = throughput(lab, ["-P", "4"], seconds, agentPids);
    say(`${tag} TCP, 4 streams: ${tcp4.gbps.toFixed(2)} Gbit/s (${cpuText(tcp4)})`);
    const udp64 = await udpFlood(lab, seconds);
    say(`${tag} UDP 64 B:       ${(udp64.pps / 1e3).toFixed(0)} kpps received of ${(udp64.sent / udp64.seconds / 1e3).toFixed(0)} kpps sent` +
      (udp64.accounting.weft ? `; weft dropped ${udp64.accounting.weft.droppedPct.toFixed(2)} % of what it read` : ""));
    const pings = PING_INTERVALS.map((p) => ping(lab, p.intervalMs, p.count));
    for (const p of pings) say(`${tag} ping every ${p.intervalMs} ms: p50 ${p.p50Us.toFixed(0)} µs, p90 ${p.p90Us.toFixed(0)} µs`);
    return { mode: run.mode, label: run.label, queues: run.queues, tcp1, tcp4, udp64, ping: pings };
  } finally {
    server.kill("SIGKILL");
    await lab.down();
  }
}

const loadavg = () => readFileSync("/proc/loadavg", "utf8").trim();

export async function runOverlayBench(opts: { seconds: number; out?: string; modes?: BenchMode[]; queues?: number[]; cni?: boolean;
  say?: (s: string) => void }): Promise<OverlayBenchResult> {
  const say = opts.say ?? ((s: string) => console.log(s));
  const before = loadavg();
  const modes: ModeResult[] = [];
  for (const run of plannedRuns(opts.modes ?? BENCH_MODES, opts.queues)) modes.push(await measure(run, opts.seconds, say));
  let cni: CniFigure | undefined;
  if (opts.cni) {
    const r = await runCniBench({ outDir: opts.out });
    const add = (prefix: string) => r.rows.find((row) => row.plugin.startsWith(prefix))?.addMs.p50;
    const weftAddMs = add("weft (front end");
    if (weftAddMs !== undefined) cni = { weftAddMs, referenceAddMs: add("bridge")! };
  }
  const kernel = modes.find((m) => m.mode === "kernel-vxlan");
  const result: OverlayBenchResult = {
    date: new Date().toISOString(),
    seconds: opts.seconds,
    machine: { cores: cpus().length, kernel: release(), node: process.version },
    load: { before, after: loadavg() },
    targets: TARGETS,
    modes,
    comparisons: kernel ? modes.filter((m) => m.mode === "weft").map((m) => compare(m, kernel, cni)) : [],
    cni,
  };
  printOverlay(result);
  const dir = opts.out ?? RESULTS_DIR;
  const file = writeResult("overlay", result, dir);
  const svg = join(dir, "overlay.svg");
  writeFileSync(svg, overlayChart(result));
  say(`\nwrote ${file} and ${svg}`);
  return result;
}
