// The overlay benchmark on a real lab, kernel VXLAN against weft with two TUN queues, one second per iperf3 figure: the
// report carries every figure, the agents ran with the queue count asked for, and the UDP flood's losses are explained
// stage by stage by the kernel's and the agents' counters. Figures are not judged here (the machine is shared).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runOverlayBench } from "../../bench/overlay.js";
import { isRoot } from "./lib/traffic.js";

describe.skipIf(!isRoot)("weft bench: the overlay benchmark", () => {
  const out = mkdtempSync(join(tmpdir(), "weft-bench-test-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("kernel VXLAN and weft with 2 queues in one run: every figure, the queues, the UDP loss accounted for per stage", async () => {
    const r = await runOverlayBench({ seconds: 1, out, modes: ["kernel-vxlan", "weft"], queues: [2], cni: false, say: () => undefined });
    expect(r.modes.map((m) => m.label)).toEqual(["kernel-vxlan", "weft 2q"]);
    const [kernel, weft] = r.modes;
    for (const m of r.modes) {
      expect(m.tcp1.gbps).toBeGreaterThan(0);
      expect(m.tcp4.gbps).toBeGreaterThan(0);
      expect(m.tcp1.cpu.machineCores).toBeGreaterThan(0);
      expect(m.ping.map((p) => p.intervalMs)).toEqual([2, 200]);
      const a = m.udp64.accounting;
      expect(a.received).toBeGreaterThan(0);
      // What the sender offered is what arrived plus what the stages' counters say they dropped.
      expect(Math.abs(a.unaccounted)).toBeLessThanOrEqual(a.offered * 0.01);
    }
    expect(weft.udp64.queues!.sender.map((q) => q.queue)).toEqual([0, 1]);
    expect(weft.udp64.queues!.receiver.map((q) => q.queue)).toEqual([0, 1]);
    expect(weft.udp64.accounting.weft!.read).toBeGreaterThan(0);
    expect(weft.tcp1.agentCoresPerGbit).toBeGreaterThan(0);
    expect(kernel.udp64.accounting.weft).toBeUndefined();
    expect(kernel.tcp1.agentCoresPerGbit).toBeUndefined();
    expect(r.comparisons.map((c) => c.variant)).toEqual(["weft 2q"]);
    expect(r.comparisons[0].ping.map((p) => p.intervalMs)).toEqual([2, 200]);
    const json = JSON.parse(readFileSync(join(out, "overlay.json"), "utf8")) as typeof r;
    expect(json.modes[1].udp64.accounting.stages.map((s) => s.stage)).toContain("overlay device queue (sender node)");
    expect(existsSync(join(out, "overlay.svg"))).toBe(true);
  });
});
