// The overlay benchmark's arithmetic: /proc parsers, CPU per Gbit/s, the UDP loss accounting per stage, the comparison
// against kernel VXLAN with its targets, and the runs planned for --queues. Fixtures are text as the kernel writes it.
import { describe, expect, it } from "vitest";
import { coresPerGbit, cpuBetween, parseProcessTicks, parseStatBusy } from "../../bench/lib/cpu.js";
import { TARGETS, compare, headlineRows, lossRows, type ModeFigures } from "../../bench/lib/headline.js";
import { type NetnsCounters, type UdpPath, type UdpSnapshot, accountUdp, parseLinkStats, parseSnmpUdp, parseSocketDrops,
  parseSoftnetDropped } from "../../bench/lib/udp-accounting.js";
import { overlayChart } from "../../bench/overlay-report.js";
import { plannedRuns, type ModeResult, type OverlayBenchResult } from "../../bench/overlay.js";

const SNMP = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 10
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 384535 0 258429 1 258429 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
`;

const PROC_NET_UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
 8598: 01C8A8C0:F89B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3997657 2 000000007da36879 0       
 8599: 01C8A8C0:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3997658 2 00000000c53b46bf 17      
 8600: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3997659 2 00000000c53b46c0 3       
`;

describe("/proc parsers", () => {
  it("reads the Udp counters of /proc/net/snmp, not UdpLite's", () => {
    expect(parseSnmpUdp(SNMP)).toEqual({ InDatagrams: 384535, InErrors: 258429, OutDatagrams: 1, RcvbufErrors: 258429, SndbufErrors: 0 });
    expect(() => parseSnmpUdp("Ip: a\nIp: 1\n")).toThrow(/no Udp lines/);
  });

  it("sums /proc/net/udp's drops column by local port", () => {
    expect(parseSocketDrops(PROC_NET_UDP)).toEqual({ 0xf89b: 0, 4789: 20 });
  });

  it("reads packets, drops and errors of every link from ip -s -s -j link", () => {
    const json = JSON.stringify([
      { ifname: "weft0", stats64: { rx: { packets: 16, dropped: 0, errors: 0 }, tx: { packets: 643236, dropped: 593811, errors: 0, fifo_errors: 2 } } },
      { ifname: "nostats" },
    ]);
    expect(parseLinkStats(json)).toEqual({
      weft0: { rxPackets: 16, rxDropped: 0, rxErrors: 0, txPackets: 643236, txDropped: 593811, txErrors: 0, txFifoErrors: 2 },
    });
  });

  it("sums softnet_stat's dropped column (hex) over CPUs", () => {
    expect(parseSoftnetDropped("00be6dae 0000000a 00000045\n00c17daf 00000010 00000050\n")).toBe(26);
  });

  it("takes busy ticks from /proc/stat without idle and iowait, and utime + stime from /proc/<pid>/stat", () => {
    // user nice system idle iowait irq softirq steal guest guest_nice
    expect(parseStatBusy("cpu  100 2 30 5000 7 1 9 3 50 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")).toBe(100 + 2 + 30 + 1 + 9 + 3);
    expect(parseProcessTicks("27766 (node (weft) x) S 1 2 3 0 -1 4194560 9 0 0 0 170 35 0 0 20 0 11 0 1 2 3")).toBe(205);
    expect(() => parseStatBusy("intr 1 2\n")).toThrow(/no aggregate cpu line/);
  });
});

describe("CPU per Gbit/s", () => {
  it("is the average busy cores over the run divided by the rate; the agents' ticks count only for pids sampled at both ends", () => {
    const use = cpuBetween({ at: 0, busyTicks: 1000, processTicks: { 10: 50, 11: 5 } }, { at: 5000, busyTicks: 2000, processTicks: { 10: 300, 11: 55 } });
    expect(use).toEqual({ seconds: 5, machineCores: 2, processCores: 0.6 });
    expect(coresPerGbit(use.machineCores, 8)).toBe(0.25);
    expect(coresPerGbit(1, 0)).toBeUndefined();
  });
});

const PATH: UdpPath = { senderPod: "p1", senderNode: "n1", receiverNode: "n2", receiverPod: "p2", senderHostVeth: "h1",
  receiverHostVeth: "h2", senderOverlay: "weft0", receiverOverlay: "weft0", senderUnderlay: "u1", receiverUnderlay: "u2", vxlanPort: 4789 };

const udp = (o: Partial<NetnsCounters["udp"]> = {}) => ({ InDatagrams: 0, InErrors: 0, OutDatagrams: 0, RcvbufErrors: 0, SndbufErrors: 0, ...o });
const dev = (o: Partial<NetnsCounters["links"][string]> = {}) =>
  ({ rxPackets: 0, rxDropped: 0, rxErrors: 0, txPackets: 0, txDropped: 0, txErrors: 0, txFifoErrors: 0, ...o });

function snapshot(o: { sent?: number; tunTx?: number; tunDropped?: number; rcvbuf?: number; vxlanDrops?: number; softnet?: number;
  weft?: { read: number; out: number; in: number; noRoute?: number; writeErrors?: number; stalls?: number } }): UdpSnapshot {
  return {
    senderPod: { links: { eth0: dev({ txPackets: o.sent ?? 0 }) }, udp: udp({ OutDatagrams: o.sent ?? 0 }), socketDrops: {} },
    senderNode: { links: { h1: dev(), weft0: dev({ txPackets: o.tunTx ?? 0, txDropped: o.tunDropped ?? 0 }), u1: dev() }, udp: udp(), socketDrops: {} },
    receiverNode: { links: { u2: dev(), weft0: dev(), h2: dev() }, udp: udp(), socketDrops: { 4789: o.vxlanDrops ?? 0 } },
    receiverPod: { links: { eth0: dev() }, udp: udp({ RcvbufErrors: o.rcvbuf ?? 0 }), socketDrops: {} },
    softnetDropped: o.softnet ?? 0,
    weft: o.weft && {
      sender: { tx_packets_in: o.weft.read, tx_datagrams_out: o.weft.out, tx_drop_no_route: o.weft.noRoute ?? 0, tx_send_errors: 0, tx_send_stalls: o.weft.stalls ?? 0 },
      receiver: { rx_datagrams_in: o.weft.in, rx_packets_out: o.weft.in, rx_tun_write_errors: o.weft.writeErrors ?? 0 },
    },
  };
}

describe("UDP loss accounting", () => {
  // The shape of a real run: 1,237,031 offered, weft0's ring dropped 593,811, the receiving iperf3's socket 258,429.
  const before = snapshot({ weft: { read: 100, out: 100, in: 100 } });
  const after = snapshot({ sent: 1237031, tunTx: 643220, tunDropped: 593811, rcvbuf: 258429, vxlanDrops: 0,
    weft: { read: 100 + 643220, out: 100 + 643220 - 20, in: 100 + 643220 - 20 - 5, noRoute: 20, writeErrors: 3, stalls: 1 } });
  const a = accountUdp(PATH, before, after, 1237031, 384780 - 28);

  it("puts each loss at the stage whose counter saw it, and weft's own drops against what weft read", () => {
    const lost = Object.fromEntries(a.stages.map((s) => [s.stage, s.lost]));
    expect(lost["overlay device queue (sender node)"]).toBe(593811);
    expect(lost["weft TX (sender agent)"]).toBe(20);
    expect(lost["weft send stalls"]).toBe(5);
    expect(lost["weft RX (receiver agent)"]).toBe(3);
    expect(lost["receiver Pod socket"]).toBe(258429);
    expect(a.weft).toEqual({ read: 643220, dropped: 28, droppedPct: (100 * 28) / 643220 });
    expect(a.unaccounted).toBe(1237031 - (384780 - 28) - 593811 - 28 - 258429);
  });

  it("without send stalls, puts every datagram weft sent and never received in the underlay, however few drops the kernel counted", () => {
    // A dropped UDP_GRO skb of 8 datagrams counts once in RcvbufErrors and in the socket's drops column.
    const u = accountUdp(PATH, snapshot({ weft: { read: 0, out: 0, in: 0 } }),
      snapshot({ sent: 1000, tunTx: 1000, vxlanDrops: 5, weft: { read: 1000, out: 1000, in: 960 } }), 1000, 960);
    const underlay = u.stages.find((s) => s.stage === "underlay (sockets, veths)")!;
    expect(underlay.lost).toBe(40);
    expect(underlay.counters).toMatchObject({ vxlan_socket_drops: 5, weft_sent_not_received: 40 });
    expect(u.stages.some((s) => s.stage === "weft send stalls")).toBe(false);
    expect(u.weft!.dropped).toBe(0);
    expect(u.unaccounted).toBe(0);
  });

  it("has no weft stages and no weft drop rate on a kernel path", () => {
    const k = accountUdp({ ...PATH, senderOverlay: "v1", receiverOverlay: "v2" }, snapshot({}), snapshot({ sent: 500, rcvbuf: 10, softnet: 2 }), 500, 488);
    expect(k.stages.some((s) => s.weft)).toBe(false);
    expect(k.weft).toBeUndefined();
    expect(k.stages.find((s) => s.stage === "sender Pod veth")!.lost).toBe(2);
    expect(lossRows(k)).toEqual([["receiver Pod socket", "10", "2.0 %"], ["sender Pod veth", "2", "0.4 %"]]);
  });
});

function figures(label: string, o: { tcp1: number; tcp4: number; pps: number; p50: [number, number]; dropPct?: number }): ModeFigures {
  const cpu = { seconds: 5, machineCores: 2, processCores: 1 };
  return {
    label,
    tcp1: { gbps: o.tcp1, cpu, machineCoresPerGbit: 2 / o.tcp1 },
    tcp4: { gbps: o.tcp4, cpu, machineCoresPerGbit: 2 / o.tcp4 },
    udp64: { pps: o.pps, accounting: { offered: 1, received: 1, stages: [], unaccounted: 0,
      weft: o.dropPct === undefined ? undefined : { read: 100, dropped: o.dropPct, droppedPct: o.dropPct } } },
    ping: [{ intervalMs: 2, count: 500, p50Us: o.p50[0], p90Us: o.p50[0] * 2, p99Us: 0 }, { intervalMs: 200, count: 60, p50Us: o.p50[1], p90Us: o.p50[1] * 2, p99Us: 0 }],
  };
}

describe("comparison with kernel VXLAN", () => {
  const kernel = figures("kernel-vxlan", { tcp1: 15, tcp4: 10, pps: 170_000, p50: [30, 80] });

  it("gives ratios, added latency per interval and whether each target is met", () => {
    const weft = figures("weft", { tcp1: 12, tcp4: 5, pps: 136_000, p50: [80, 140], dropPct: 0.5 });
    const c = compare(weft, kernel, { weftAddMs: 10, referenceAddMs: 25 });
    expect(c.tcp1).toBeCloseTo(0.8);
    expect(c.tcp4).toBeCloseTo(0.5);
    expect(c.udp64).toBeCloseTo(0.8);
    expect(c.ping).toEqual([
      { intervalMs: 2, p50AddedUs: 50, p50Ratio: 80 / 30, p90AddedUs: 100, p90Ratio: 160 / 60 },
      { intervalMs: 200, p50AddedUs: 60, p50Ratio: 140 / 80, p90AddedUs: 120, p90Ratio: 280 / 160 },
    ]);
    expect(c.cniAdd).toBeCloseTo(0.4);
    expect(c.met).toEqual({ tcp1: true, tcp4: false, udp64: true, ping: false, cniAdd: true });
  });

  it("fails UDP 64 B on weft's own drops even at full rate, and without a drop figure", () => {
    expect(compare(figures("weft", { tcp1: 15, tcp4: 10, pps: 170_000, p50: [30, 80], dropPct: 1.5 }), kernel).met.udp64).toBe(false);
    expect(compare(figures("weft", { tcp1: 15, tcp4: 10, pps: 170_000, p50: [30, 80] }), kernel).met.udp64).toBe(false);
  });

  it("prints each figure beside its target", () => {
    const weft = figures("weft", { tcp1: 6, tcp4: 6.5, pps: 91_000, p50: [109, 268], dropPct: 0.25 });
    const c = compare(weft, kernel, { weftAddMs: 12.14, referenceAddMs: 25.32 });
    const rows = headlineRows(c, weft, kernel, { weftAddMs: 12.14, referenceAddMs: 25.32 });
    const row = (figure: string) => rows.find((r) => r[0] === figure)!;
    expect(row("TCP, 1 stream")).toEqual(["TCP, 1 stream", "6.00 Gbit/s", "15.00 Gbit/s", "0.40×", `≥ ${TARGETS.tcp1.toFixed(2)}×`, "NO"]);
    expect(row("ping p50, every 200 ms")).toEqual(["ping p50, every 200 ms", "268 µs", "80 µs", "+188 µs (3.35×)", "≤ +50 µs", "NO"]);
    expect(row("CNI ADD p50 (front end)").slice(3)).toEqual(["0.48×", "≤ 0.50×", "yes"]);
    expect(row("  weft's own drops").slice(1)).toEqual(["0.25 % of read", "", "", "≤ 1 %", "yes"]);
    expect(row("CPU, TCP 1 stream: machine").slice(1, 4)).toEqual(["0.33 cores/Gbit/s", "0.13 cores/Gbit/s", "2.50×"]);
  });
});

describe("the runs of one benchmark", () => {
  it("runs weft once per queue count, other modes once", () => {
    expect(plannedRuns(["routed", "kernel-vxlan", "weft"])).toEqual([
      { mode: "routed", label: "routed" }, { mode: "kernel-vxlan", label: "kernel-vxlan" }, { mode: "weft", label: "weft" }]);
    expect(plannedRuns(["kernel-vxlan", "weft"], [1, 2])).toEqual([
      { mode: "kernel-vxlan", label: "kernel-vxlan" }, { mode: "weft", label: "weft 1q", queues: 1 }, { mode: "weft", label: "weft 2q", queues: 2 }]);
  });

  it("draws the ratio figures with their targets, CNI and CPU cost included", () => {
    const mode = (f: ModeFigures, m: ModeResult["mode"]): ModeResult =>
      ({ ...f, mode: m, udp64: { ...f.udp64, sent: 1, iperfLostPct: 0, seconds: 5 } });
    const kernel = mode(figures("kernel-vxlan", { tcp1: 15, tcp4: 10, pps: 170_000, p50: [30, 80] }), "kernel-vxlan");
    const weft = mode(figures("weft", { tcp1: 12, tcp4: 5, pps: 85_000, p50: [80, 140], dropPct: 0 }), "weft");
    const r: OverlayBenchResult = { date: "2026-12-02T00:00:00Z", seconds: 5, machine: { cores: 2, kernel: "6.18", node: "v20" },
      load: { before: "1.00 1.00 1.00 1/2 3", after: "1 1 1 1/2 3" }, targets: TARGETS, modes: [kernel, weft], comparisons: [],
      cni: { weftAddMs: 10, referenceAddMs: 25 } };
    const svg = overlayChart(r);
    for (const label of ["TCP 1 stream", "TCP 4 streams", "UDP 64 B pps", "1 / ping p50, 2 ms", "1 / ping p50, 200 ms", "1 / CNI ADD p50", "1 / CPU per Gbit/s"]) {
      expect(svg).toContain(`>${label}</text>`);
    }
    expect(svg.match(/stroke-dasharray/g)).toHaveLength(6);
    expect(svg).toContain(">85k</text>");
    expect(svg).toContain(">10.0ms</text>");
  });
});
