// Dual-stack (docs/agent.md, clusterCIDRv6): IPv6 Pod traffic over the IPv4 underlay. The lab wires Pods for IPv4 only, so the
// test adds the IPv6 half the way the CNI plugin would (ptp style) inside each node's leased IPv6 subnet.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { isRoot, ping, pollStatus, status, tcpTransfer, waitPing } from "./lib/traffic.js";

const CLUSTER6 = "fd00:10:244::/56";

describe.skipIf(!isRoot)("dataplane: IPv6 Pods (dual-stack)", () => {
  let lab: Lab;
  const pod6: string[] = [];

  beforeAll(async () => {
    lab = new Lab({ mode: "weft", agentConfig: { clusterCIDRv6: CLUSTER6 } });
    await lab.up();
    for (const n of lab.nodes) {
      const s = await status(n.socket!);
      expect(s.subnetV6, `node${n.index} leased an IPv6 subnet`).toMatch(/^fd00:10:244:[0-9a-f]*::\/64$/);
      const prefix = s.subnetV6!.replace(/::\/64$/, "");
      const pod = lab.pod(n.index);
      const ip6 = `${prefix}::a`;
      const gw6 = `${prefix}::1`;
      lab.exec(pod.ns, "ip", ["-6", "addr", "add", `${ip6}/64`, "dev", "eth0", "nodad"]);
      lab.exec(pod.ns, "ip", ["-6", "route", "add", `${gw6}/128`, "dev", "eth0"]);
      lab.exec(pod.ns, "ip", ["-6", "route", "add", "default", "via", gw6, "dev", "eth0"]);
      lab.exec(n.ns, "ip", ["-6", "addr", "add", `${gw6}/128`, "dev", pod.hostVeth, "nodad"]);
      lab.exec(n.ns, "ip", ["-6", "route", "add", `${ip6}/128`, "dev", pod.hostVeth]);
      pod6[n.index] = ip6;
    }
    // Both agents know each other's IPv6 subnet from the registry.
    for (const n of lab.nodes) {
      await pollStatus(n.socket!, (s) => s.peers.length === 1 && !!s.peers[0].subnetV6, `node${n.index} to know its peer's IPv6 subnet`);
    }
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("the agent routes the IPv6 cluster network through weft0", () => {
    expect(lab.exec(lab.nodes[0].ns, "ip", ["-6", "route", "show", CLUSTER6])).toMatch(/dev weft0/);
  });

  it("IPv6 Pods ping each other both ways", async () => {
    await waitPing(lab.pod(1).ns, pod6[2]);
    expect(ping(lab.pod(1).ns, pod6[2], 3)).toBe(3);
    expect(ping(lab.pod(2).ns, pod6[1], 3)).toBe(3);
  });

  it("IPv6 TCP both ways, 20 MB byte for byte, source preserved", async () => {
    const there = await tcpTransfer(lab.pod(1).ns, lab.pod(2).ns, pod6[2], 7301, 20 * 1024 * 1024, { family: 6, timeoutS: 60 });
    expect(there.server.peer).toBe(pod6[1]);
    expect(there.server.sha256).toBe(there.client.sha256);
    const back = await tcpTransfer(lab.pod(2).ns, lab.pod(1).ns, pod6[1], 7302, 20 * 1024 * 1024, { family: 6, timeoutS: 60 });
    expect(back.server.peer).toBe(pod6[2]);
    expect(back.server.sha256).toBe(back.client.sha256);
  }, 120_000);

  it("a restart adopts the dual-stack weft0: one IPv6 route, its blackhole, one IPv6 address, and IPv6 Pods talk again", async () => {
    const n1 = lab.nodes[0];
    const routes6 = () => (JSON.parse(lab.exec(n1.ns, "ip", ["-j", "-6", "route", "show", CLUSTER6])) as { type?: string; dev?: string }[])
      .map((r) => (r.type === "blackhole" ? "blackhole" : `dev ${r.dev}`));
    const addresses6 = () => (JSON.parse(lab.exec(n1.ns, "ip", ["-j", "-6", "addr", "show", "dev", "weft0", "scope", "global"])) as
      { addr_info: { local?: string; prefixlen: number }[] }[]).flatMap((l) => l.addr_info.filter((a) => a.local).map((a) => `${a.local}/${a.prefixlen}`));
    const before = addresses6();
    expect(before, JSON.stringify(before)).toHaveLength(1);
    expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
    expect(routes6()).toEqual(["dev weft0", "blackhole"]);
    lab.startAgent(n1);
    await lab.waitReady(n1);
    expect(routes6()).toEqual(["dev weft0", "blackhole"]);
    expect(addresses6()).toEqual(before);
    await waitPing(lab.pod(1).ns, pod6[2]);
    expect(ping(lab.pod(2).ns, pod6[1], 3)).toBe(3);
  });
});
