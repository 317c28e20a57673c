// The overlay benchmark: the same two-node topology built three ways in one run — routed (host-gw, the ceiling), kernel
// VXLAN as flannel configures it, and weft — measured Pod to Pod with iperf3 and ping. Ratios are to kernel VXLAN.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, sleep, type Mode } from "../src/lab/topology.js";
import { iperf3 as iperf3Between, type Iperf3Json, percentile, pingRtts } from "../src/lab/measure.js";
import { printTable, writeResult, RESULTS_DIR } from "./lib/report.js";
import { barChart } from "./lib/svg.js";

export type BenchMode = Exclude<Mode, "mixed">;
export const BENCH_MODES: BenchMode[] = ["routed", "kernel-vxlan", "weft"];

export interface ModeResult {
  mode: BenchMode;
  tcp1Gbps: number;
  tcp4Gbps: number;
  udp64Pps: number;
  udp64LossPct: number;
  rttP50Us: number;
  rttP99Us: number;
  /** weft only: what the agents said about their offloads and drops. */
  notes?: string;
}

export interface OverlayBenchResult {
  date: string;
  seconds: number;
  machine: { cores: number; kernel: string; node: string };
  modes: ModeResult[];
  ratios: Record<string, { tcp1: number; tcp4: number; udp64: number; addedRttP50Us: number }>;
}

function iperf3(lab: Lab, args: string[], seconds: number): Iperf3Json {
  return iperf3Between(lab, lab.pod(1), lab.pod(2), args, seconds);
}

async function measure(mode: BenchMode, seconds: number, say: (s: string) => void): Promise<ModeResult> {
  say(`[${mode}] building the two-node lab`);
  const lab = await new Lab({ mode, podsVia: "cni" }).up();
  const server = spawn("ip", ["netns", "exec", lab.pod(2).ns, "iperf3", "-s", "-p", "5201"], { stdio: "ignore" });
  try {
    await sleep(300);
    lab.exec(lab.pod(1).ns, "ping", ["-c", "3", "-i", "0.2", "-W", "2", lab.pod(2).ip]);
    const tcp1 = iperf3(lab, ["-O", "1"], seconds).end.sum_received!.bits_per_second / 1e9;
    say(`[${mode}] TCP, 1 stream:  ${tcp1.toFixed(2)} Gbit/s`);
    const tcp4 = iperf3(lab, ["-O", "1", "-P", "4"], seconds).end.sum_received!.bits_per_second / 1e9;
    say(`[${mode}] TCP, 4 streams: ${tcp4.toFixed(2)} Gbit/s`);
    const udp = iperf3(lab, ["-u", "-b", "0", "-l", "64"], seconds).end.sum!;
    const udp64Pps = (udp.packets - udp.lost_packets) / udp.seconds;
    say(`[${mode}] UDP 64 B:       ${(udp64Pps / 1e3).toFixed(0)} kpps received (${udp.lost_percent.toFixed(1)}% lost)`);
    const rtts = pingRtts(lab, lab.pod(1), lab.pod(2), 500);
    const r: ModeResult = { mode, tcp1Gbps: tcp1, tcp4Gbps: tcp4, udp64Pps, udp64LossPct: udp.lost_percent, rttP50Us: percentile(rtts, 50), rttP99Us: percentile(rtts, 99) };
    say(`[${mode}] ping RTT:       p50 ${r.rttP50Us.toFixed(0)} µs, p99 ${r.rttP99Us.toFixed(0)} µs`);
    return r;
  } finally {
    server.kill("SIGKILL");
    await lab.down();
  }
}

export async function runOverlayBench(opts: { seconds: number; out?: string; modes?: BenchMode[]; say?: (s: string) => void }): Promise<OverlayBenchResult> {
  const say = opts.say ?? ((s: string) => console.log(s));
  const modes: ModeResult[] = [];
  for (const mode of opts.modes ?? BENCH_MODES) modes.push(await measure(mode, opts.seconds, say));
  const kernel = modes.find((m) => m.mode === "kernel-vxlan");
  const ratios: OverlayBenchResult["ratios"] = {};
  for (const m of modes) {
    if (!kernel) break;
    ratios[m.mode] = {
      tcp1: m.tcp1Gbps / kernel.tcp1Gbps,
      tcp4: m.tcp4Gbps / kernel.tcp4Gbps,
      udp64: m.udp64Pps / kernel.udp64Pps,
      addedRttP50Us: m.rttP50Us - kernel.rttP50Us,
    };
  }
  const { cpus, release } = await import("node:os");
  const result: OverlayBenchResult = {
    date: new Date().toISOString(),
    seconds: opts.seconds,
    machine: { cores: cpus().length, kernel: release(), node: process.version },
    modes,
    ratios,
  };
  printOverlay(result);
  const dir = opts.out ?? RESULTS_DIR;
  const file = writeResult("overlay", result, dir);
  const svg = join(dir, "overlay.svg");
  writeFileSync(svg, chart(result));
  say(`\nwrote ${file} and ${svg}`);
  return result;
}

function ratioText(r: number | undefined): string {
  return r === undefined ? "" : ` (${r.toFixed(2)}×)`;
}

export function printOverlay(r: OverlayBenchResult): void {
  printTable(
    `Pod → Pod across two nodes, ${r.seconds} s per figure, ratio to kernel VXLAN in brackets`,
    ["network", "TCP 1 stream", "TCP 4 streams", "UDP 64 B", "ping p50", "ping p99"],
    r.modes.map((m) => [
      m.mode,
      `${m.tcp1Gbps.toFixed(2)} Gbit/s${ratioText(r.ratios[m.mode]?.tcp1)}`,
      `${m.tcp4Gbps.toFixed(2)} Gbit/s${ratioText(r.ratios[m.mode]?.tcp4)}`,
      `${(m.udp64Pps / 1e3).toFixed(0)} kpps${ratioText(r.ratios[m.mode]?.udp64)}`,
      `${m.rttP50Us.toFixed(0)} µs${r.ratios[m.mode] ? ` (${r.ratios[m.mode].addedRttP50Us >= 0 ? "+" : ""}${r.ratios[m.mode].addedRttP50Us.toFixed(0)})` : ""}`,
      `${m.rttP99Us.toFixed(0)} µs`,
    ]),
  );
}

function chart(r: OverlayBenchResult): string {
  const metric = (label: string, get: (m: ModeResult) => number, fmt: (v: number) => string) => {
    const base = r.modes.find((m) => m.mode === "kernel-vxlan");
    return { label, bars: r.modes.map((m) => ({ series: m.mode, ratio: base ? get(m) / get(base) : 1, text: fmt(get(m)) })) };
  };
  return barChart("weft vs kernel VXLAN vs routed, Pod to Pod", `${r.machine.cores} cores, Linux ${r.machine.kernel}, ${r.date.slice(0, 10)} — bars are ratios to kernel VXLAN`, [
    metric("TCP 1 stream", (m) => m.tcp1Gbps, (v) => `${v.toFixed(1)}G`),
    metric("TCP 4 streams", (m) => m.tcp4Gbps, (v) => `${v.toFixed(1)}G`),
    metric("UDP 64 B pps", (m) => m.udp64Pps, (v) => `${(v / 1e3).toFixed(0)}k`),
    metric("1 / ping p50", (m) => 1 / m.rttP50Us, (v) => `${(1 / v).toFixed(0)}µs`),
  ]);
}
