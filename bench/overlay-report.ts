// What the overlay benchmark prints and draws: every mode's figures, each weft run against its targets, and the UDP
// flood's losses stage by stage.
import { TARGETS, headlineRows } from "./lib/headline.js";
import { printTable } from "./lib/report.js";
import { barChart, type ChartGroup } from "./lib/svg.js";
import type { ModeResult, OverlayBenchResult } from "./overlay.js";

const pingText = (m: ModeResult, intervalMs: number) => {
  const p = m.ping.find((q) => q.intervalMs === intervalMs);
  return p ? `${p.p50Us.toFixed(0)} / ${p.p90Us.toFixed(0)} µs` : "";
};

export function printOverlay(r: OverlayBenchResult): void {
  const intervals = [...new Set(r.modes.flatMap((m) => m.ping.map((p) => p.intervalMs)))];
  printTable(
    `Pod → Pod across two nodes, ${r.seconds} s per iperf3 figure; load average ${r.load.before} → ${r.load.after}`,
    ["network", "TCP 1 stream", "TCP 4 streams", "UDP 64 B received", ...intervals.map((i) => `ping p50/p90, ${i} ms`), "CPU/Gbit/s (TCP 1)"],
    r.modes.map((m) => [
      m.label,
      `${m.tcp1.gbps.toFixed(2)} Gbit/s`,
      `${m.tcp4.gbps.toFixed(2)} Gbit/s`,
      `${(m.udp64.pps / 1e3).toFixed(0)} kpps`,
      ...intervals.map((i) => pingText(m, i)),
      m.tcp1.machineCoresPerGbit === undefined ? "" : `${m.tcp1.machineCoresPerGbit.toFixed(2)} cores`,
    ]),
  );
  const kernel = r.modes.find((m) => m.mode === "kernel-vxlan");
  for (const c of r.comparisons) {
    const w = r.modes.find((m) => m.label === c.variant)!;
    printTable(`${c.variant} vs kernel VXLAN, measured in this run, against the targets`,
      ["figure", "weft", "kernel VXLAN", "weft vs kernel", "target", "met"], headlineRows(c, w, kernel!, r.cni));
  }
  printUdpAccounting(r.modes);
}

/** Loss per stage, each mode a column: where the 64 B flood lost what it lost. */
function printUdpAccounting(modes: ModeResult[]): void {
  const stages = [...new Set(modes.flatMap((m) => m.udp64.accounting.stages.map((s) => s.stage)))];
  const cell = (m: ModeResult, n: number | undefined) =>
    n === undefined ? "" : `${n} (${m.udp64.accounting.offered > 0 ? ((100 * n) / m.udp64.accounting.offered).toFixed(1) : "0"} %)`;
  const rows = [
    ["offered (iperf3 sent)", ...modes.map((m) => String(m.udp64.accounting.offered))],
    ...stages.map((s) => [`lost: ${s}`, ...modes.map((m) => cell(m, m.udp64.accounting.stages.find((x) => x.stage === s)?.lost))]),
    ["lost: unaccounted", ...modes.map((m) => cell(m, m.udp64.accounting.unaccounted))],
    ["received (iperf3)", ...modes.map((m) => cell(m, m.udp64.accounting.received))],
    ["weft's own drops, % of read", ...modes.map((m) => (m.udp64.accounting.weft ? `${m.udp64.accounting.weft.droppedPct.toFixed(2)} % of ${m.udp64.accounting.weft.read}` : ""))],
  ];
  printTable("UDP 64 B flood (iperf3 -u -b 0 -l 64): datagrams lost per stage, % of offered", ["stage", ...modes.map((m) => m.label)], rows);
  for (const m of modes) {
    console.log(`\n${m.label}: counters over the UDP run`);
    for (const s of m.udp64.accounting.stages) {
      const nonzero = Object.entries(s.counters).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`);
      console.log(`  ${s.stage}${s.device ? ` (${s.device})` : ""}: ${nonzero.length ? nonzero.join(", ") : "0"}`);
    }
    const q = m.udp64.queues;
    if (q) {
      console.log(`  TUN queues, packets read since start: sender ${q.sender.map((x) => `q${x.queue} ${x.txPacketsIn}`).join(", ")}; ` +
        `datagrams received, receiver ${q.receiver.map((x) => `q${x.queue} ${x.rxDatagramsIn}`).join(", ")}`);
    }
  }
}

/** Bars are ratios to kernel VXLAN, higher is better (latencies and CPU cost drawn inverted); dashed lines are targets. */
export function overlayChart(r: OverlayBenchResult): string {
  const base = r.modes.find((m) => m.mode === "kernel-vxlan");
  const group = (label: string, get: (m: ModeResult) => number | undefined, fmt: (v: number) => string, target?: number): ChartGroup => ({
    label,
    target,
    bars: r.modes.flatMap((m) => {
      const v = get(m);
      const b = base ? get(base) : undefined;
      return v === undefined || b === undefined ? [] : [{ series: m.label, ratio: b === 0 ? 0 : v / b, text: fmt(v) }];
    }),
  });
  const pingGroup = (intervalMs: number) => {
    const p50 = (m: ModeResult) => m.ping.find((p) => p.intervalMs === intervalMs)?.p50Us;
    const k = base ? p50(base) : undefined;
    return group(`1 / ping p50, ${intervalMs} ms`, (m) => { const v = p50(m); return v ? 1 / v : undefined; }, (v) => `${(1 / v).toFixed(0)}µs`,
      k ? k / (k + TARGETS.pingAddedUs) : undefined);
  };
  const groups: ChartGroup[] = [
    group("TCP 1 stream", (m) => m.tcp1.gbps, (v) => `${v.toFixed(1)}G`, TARGETS.tcp1),
    group("TCP 4 streams", (m) => m.tcp4.gbps, (v) => `${v.toFixed(1)}G`, TARGETS.tcp4),
    group("UDP 64 B pps", (m) => m.udp64.pps, (v) => `${(v / 1e3).toFixed(0)}k`, TARGETS.udp64),
    ...[...new Set(r.modes.flatMap((m) => m.ping.map((p) => p.intervalMs)))].map(pingGroup),
    group("1 / CPU per Gbit/s", (m) => (m.tcp1.machineCoresPerGbit ? 1 / m.tcp1.machineCoresPerGbit : undefined), (v) => `${(1 / v).toFixed(2)}c`),
  ];
  if (r.cni) {
    const weft = r.modes.find((m) => m.mode === "weft");
    groups.push({ label: "1 / CNI ADD p50", target: 1 / TARGETS.cniAdd, bars: [
      ...(base ? [{ series: base.label, ratio: 1, text: `${r.cni.referenceAddMs.toFixed(1)}ms` }] : []),
      ...(weft ? [{ series: weft.label, ratio: r.cni.referenceAddMs / r.cni.weftAddMs, text: `${r.cni.weftAddMs.toFixed(1)}ms` }] : []),
    ] });
  }
  return barChart("weft vs kernel VXLAN vs routed, Pod to Pod", `${r.machine.cores} cores, Linux ${r.machine.kernel}, ${r.date.slice(0, 10)}, ` +
    `load ${r.load.before.split(" ").slice(0, 3).join(" ")} — bars are ratios to kernel VXLAN (CNI: to bridge + host-local), dashed: targets`, groups);
}
