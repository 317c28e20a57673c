// Measurements between two Pods of a lab, shared by the benchmark and the demo: iperf3 (JSON) and ping round trips.
import type { Lab, LabPod } from "./topology.js";

export interface Iperf3Json {
  end: {
    sum_received?: { bits_per_second: number; bytes: number };
    sum_sent?: { bytes: number; retransmits?: number };
    sum?: { packets: number; lost_packets: number; seconds: number; lost_percent: number };
  };
  error?: string;
}

/** iperf3 from `from` to `to` (an iperf3 server must be listening there on 5201). */
export function iperf3(lab: Lab, from: LabPod, to: LabPod, args: string[], seconds: number): Iperf3Json {
  const out = lab.exec(from.ns, "iperf3", ["-c", to.ip, "-J", "-t", String(seconds), ...args], { timeoutMs: (seconds + 30) * 1000 });
  const json = JSON.parse(out) as Iperf3Json;
  if (json.error) throw new Error(`iperf3 ${args.join(" ")}: ${json.error}`);
  return json;
}

/** Round trips in µs, sorted; pings every `intervalS` seconds (ping's -i). */
export function pingRtts(lab: Lab, from: LabPod, to: LabPod, count: number, intervalS = 0.002): number[] {
  const out = lab.exec(from.ns, "ping", ["-c", String(count), "-i", String(intervalS), "-W", "1", to.ip], { timeoutMs: 60_000 + count * intervalS * 2000 });
  return [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
