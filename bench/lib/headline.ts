// The figures the dataplane is judged by, weft against kernel VXLAN measured in the same run: TCP with 1 and 4 streams,
// UDP 64 B packets received per second (and weft's own drops), ping at two intervals, CNI ADD through the front end
// against bridge + host-local, and CPU per Gbit/s. Pure: numbers in, comparisons and printable rows out.
import type { CpuUse } from "./cpu.js";
import type { UdpAccounting } from "./udp-accounting.js";

export const TARGETS = {
  /** weft / kernel VXLAN, at least. */
  tcp1: 0.8,
  tcp4: 0.6,
  udp64: 0.8,
  /** weft's own drops, % of what it read, at most. */
  udp64WeftDropPct: 1,
  /** ping p50, weft − kernel VXLAN in µs, at most (every interval). */
  pingAddedUs: 50,
  /** CNI ADD p50, weft through the front end / bridge + host-local, at most. */
  cniAdd: 0.5,
} as const;

export interface ThroughputFigure {
  gbps: number;
  cpu: CpuUse;
  /** Busy cores per Gbit/s: the whole machine, and the weft agents' processes alone. */
  machineCoresPerGbit?: number;
  agentCoresPerGbit?: number;
}

export interface PingFigure {
  intervalMs: number;
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
}

export interface ModeFigures {
  label: string;
  tcp1: ThroughputFigure;
  tcp4: ThroughputFigure;
  udp64: { pps: number; accounting: UdpAccounting };
  ping: PingFigure[];
}

export interface CniFigure {
  /** ADD p50 in ms: weft through its front end, and the reference bridge + host-local. */
  weftAddMs: number;
  referenceAddMs: number;
}

export interface PingComparison {
  intervalMs: number;
  p50AddedUs: number;
  p50Ratio: number;
  p90AddedUs: number;
  p90Ratio: number;
}

export interface Comparison {
  variant: string;
  tcp1: number;
  tcp4: number;
  udp64: number;
  udp64WeftDropPct?: number;
  ping: PingComparison[];
  cniAdd?: number;
  met: { tcp1: boolean; tcp4: boolean; udp64: boolean; ping: boolean; cniAdd?: boolean };
}

/** weft variant `w` against kernel VXLAN `k` (ping compared at the intervals both measured). */
export function compare(w: ModeFigures, k: ModeFigures, cni?: CniFigure): Comparison {
  const ping = w.ping.flatMap((wp): PingComparison[] => {
    const kp = k.ping.find((p) => p.intervalMs === wp.intervalMs);
    return kp ? [{ intervalMs: wp.intervalMs, p50AddedUs: wp.p50Us - kp.p50Us, p50Ratio: wp.p50Us / kp.p50Us,
      p90AddedUs: wp.p90Us - kp.p90Us, p90Ratio: wp.p90Us / kp.p90Us }] : [];
  });
  const dropPct = w.udp64.accounting.weft?.droppedPct;
  const c: Comparison = {
    variant: w.label,
    tcp1: w.tcp1.gbps / k.tcp1.gbps,
    tcp4: w.tcp4.gbps / k.tcp4.gbps,
    udp64: w.udp64.pps / k.udp64.pps,
    udp64WeftDropPct: dropPct,
    ping,
    cniAdd: cni ? cni.weftAddMs / cni.referenceAddMs : undefined,
    met: { tcp1: false, tcp4: false, udp64: false, ping: false },
  };
  c.met = {
    tcp1: c.tcp1 >= TARGETS.tcp1,
    tcp4: c.tcp4 >= TARGETS.tcp4,
    udp64: c.udp64 >= TARGETS.udp64 && dropPct !== undefined && dropPct <= TARGETS.udp64WeftDropPct,
    ping: ping.length > 0 && ping.every((p) => p.p50AddedUs <= TARGETS.pingAddedUs),
    cniAdd: c.cniAdd === undefined ? undefined : c.cniAdd <= TARGETS.cniAdd,
  };
  return c;
}

const x = (r: number) => `${r.toFixed(2)}×`;
const us = (v: number) => `${v.toFixed(0)} µs`;
const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(0)} µs`;
const yes = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? "yes" : "NO");
const cores = (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(2)} cores/Gbit/s`);

/** Rows of the targets table: figure, weft, kernel VXLAN, weft vs kernel, target, met. */
export function headlineRows(c: Comparison, w: ModeFigures, k: ModeFigures, cni?: CniFigure): string[][] {
  const rows: string[][] = [
    ["TCP, 1 stream", `${w.tcp1.gbps.toFixed(2)} Gbit/s`, `${k.tcp1.gbps.toFixed(2)} Gbit/s`, x(c.tcp1), `≥ ${x(TARGETS.tcp1)}`, yes(c.met.tcp1)],
    ["TCP, 4 streams", `${w.tcp4.gbps.toFixed(2)} Gbit/s`, `${k.tcp4.gbps.toFixed(2)} Gbit/s`, x(c.tcp4), `≥ ${x(TARGETS.tcp4)}`, yes(c.met.tcp4)],
    ["UDP 64 B received", `${(w.udp64.pps / 1e3).toFixed(0)} kpps`, `${(k.udp64.pps / 1e3).toFixed(0)} kpps`, x(c.udp64),
      `≥ ${x(TARGETS.udp64)}, weft drops ≤ ${TARGETS.udp64WeftDropPct} %`, yes(c.met.udp64)],
    ["  weft's own drops", c.udp64WeftDropPct === undefined ? "—" : `${c.udp64WeftDropPct.toFixed(2)} % of read`, "", "", `≤ ${TARGETS.udp64WeftDropPct} %`,
      c.udp64WeftDropPct === undefined ? "" : yes(c.udp64WeftDropPct <= TARGETS.udp64WeftDropPct)],
  ];
  for (const p of c.ping) {
    const wp = w.ping.find((q) => q.intervalMs === p.intervalMs)!;
    const kp = k.ping.find((q) => q.intervalMs === p.intervalMs)!;
    rows.push([`ping p50, every ${p.intervalMs} ms`, us(wp.p50Us), us(kp.p50Us), `${signed(p.p50AddedUs)} (${x(p.p50Ratio)})`,
      `≤ +${TARGETS.pingAddedUs} µs`, yes(p.p50AddedUs <= TARGETS.pingAddedUs)]);
    rows.push([`ping p90, every ${p.intervalMs} ms`, us(wp.p90Us), us(kp.p90Us), `${signed(p.p90AddedUs)} (${x(p.p90Ratio)})`, "", ""]);
  }
  if (cni && c.cniAdd !== undefined) {
    rows.push(["CNI ADD p50 (front end)", `${cni.weftAddMs.toFixed(2)} ms`, `${cni.referenceAddMs.toFixed(2)} ms (bridge + host-local)`, x(c.cniAdd),
      `≤ ${x(TARGETS.cniAdd)}`, yes(c.met.cniAdd)]);
  }
  for (const [name, f, kf] of [["TCP 1 stream", w.tcp1, k.tcp1], ["TCP 4 streams", w.tcp4, k.tcp4]] as const) {
    rows.push([`CPU, ${name}: machine`, cores(f.machineCoresPerGbit), cores(kf.machineCoresPerGbit),
      f.machineCoresPerGbit && kf.machineCoresPerGbit ? x(f.machineCoresPerGbit / kf.machineCoresPerGbit) : "", "", ""]);
    rows.push([`CPU, ${name}: weft agents`, cores(f.agentCoresPerGbit), "", "", "", ""]);
  }
  return rows;
}

/** Loss per stage of a UDP run, largest first, as % of what the sender offered; only stages that lost something. */
export function lossRows(a: UdpAccounting): string[][] {
  const pct = (n: number) => (a.offered > 0 ? `${((100 * n) / a.offered).toFixed(1)} %` : "");
  const rows = a.stages.filter((s) => s.lost > 0).sort((p, q) => q.lost - p.lost).map((s) => [s.stage, String(s.lost), pct(s.lost)]);
  if (a.unaccounted !== 0) rows.push(["unaccounted (offered − received − the above)", String(a.unaccounted), pct(a.unaccounted)]);
  return rows;
}
