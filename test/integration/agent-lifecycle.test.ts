// The agent's lifecycle on a live two-node lab: SIGTERM undoes everything it made (weft0 and with it the cluster route, the
// API socket) and exits 0; SIGKILL leaves a stale socket, and the kernel removes the non-persistent TUN; either way a
// restart comes back to a working, unduplicated state.
import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, type LabNode } from "../../src/lab/topology.js";
import { isRoot, ping, pollStatus, sleep, waitPing } from "./lib/traffic.js";

const CLUSTER = "10.244.0.0/16";

describe.skipIf(!isRoot)("agent lifecycle: SIGTERM, SIGKILL, restart", () => {
  let lab: Lab;

  const links = (n: LabNode) => JSON.parse(lab.exec(n.ns, "ip", ["-j", "link", "show"])) as { ifname: string }[];
  const tunLinks = (n: LabNode) => links(n).filter((l) => l.ifname === "weft0");
  const clusterRoutes = (n: LabNode) => JSON.parse(lab.exec(n.ns, "ip", ["-j", "route", "show", CLUSTER])) as { dst: string; dev: string }[];
  const weft0Addresses = (n: LabNode) => (JSON.parse(lab.exec(n.ns, "ip", ["-j", "-4", "addr", "show", "dev", "weft0"])) as
    { addr_info: { local: string; prefixlen: number }[] }[]).flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));

  async function waitGone(n: LabNode): Promise<void> {
    const deadline = Date.now() + 5000;
    while (tunLinks(n).length > 0 && Date.now() < deadline) await sleep(50);
  }

  async function expectWorking(n: LabNode): Promise<void> {
    await lab.waitReady(n);
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
    expect(ping(lab.pod(1).ns, lab.pod(2).ip, 3)).toBe(3);
    expect(ping(lab.pod(2).ns, lab.pod(1).ip, 3)).toBe(3);
    expect(ping(n.ns, lab.pod(2).ip, 2)).toBe(2);
    // Exactly one of everything: one weft0 with one address, one cluster route through it.
    expect(tunLinks(n)).toHaveLength(1);
    expect(weft0Addresses(n)).toEqual(["10.244.1.0/32"]);
    expect(clusterRoutes(n).map((r) => `${r.dst} ${r.dev}`)).toEqual([`${CLUSTER} weft0`]);
    // And node 2 still has node 1 as its one live peer.
    const s2 = await pollStatus(lab.nodes[1].socket!, (s) => s.peers.length === 1 && s.peers[0].live, "node2 to list node1 live");
    expect(s2.peers.map((p) => p.nodeName)).toEqual(["node1"]);
  }

  beforeAll(async () => {
    lab = new Lab({ mode: "weft" });
    await lab.up();
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("SIGTERM: exits 0, removes weft0, its cluster route and the socket", async () => {
    const n1 = lab.nodes[0];
    expect(tunLinks(n1)).toHaveLength(1);
    expect(clusterRoutes(n1)).toHaveLength(1);
    expect(existsSync(n1.socket!)).toBe(true);
    expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
    expect(tunLinks(n1)).toEqual([]);
    expect(clusterRoutes(n1)).toEqual([]);
    expect(existsSync(n1.socket!)).toBe(false);
    // The Pods' own wiring is not the agent's: still there.
    expect(ping(n1.ns, lab.pod(1).ip, 1)).toBe(1);
    expect(ping(lab.pod(1).ns, lab.pod(2).ip, 2)).toBe(0);
  });

  it("restart after SIGTERM: ready, traffic flows", async () => {
    const n1 = lab.nodes[0];
    lab.startAgent(n1);
    await expectWorking(n1);
  });

  it("SIGKILL: the kernel removes the TUN; the socket file is left behind", async () => {
    const n1 = lab.nodes[0];
    const agent = n1.agent!;
    await lab.stopAgent(n1, "SIGKILL");
    expect(agent.signalCode).toBe("SIGKILL");
    await waitGone(n1);
    expect(tunLinks(n1)).toEqual([]);
    expect(clusterRoutes(n1)).toEqual([]);
    expect(existsSync(n1.socket!)).toBe(true);
  });

  it("restart after SIGKILL: the stale socket is replaced, the TUN recreated, nothing duplicated", async () => {
    const n1 = lab.nodes[0];
    lab.startAgent(n1);
    await expectWorking(n1);
  });

  it("weft0 deleted under a running agent: its dataplane fails, the agent says why and exits 1 (for its supervisor to restart it)", async () => {
    const n1 = lab.nodes[0];
    const agent = n1.agent!;
    const exited = new Promise<number | null>((res) => agent.once("exit", (code) => res(code)));
    lab.exec(n1.ns, "ip", ["link", "del", "weft0"]);
    ping(lab.pod(1).ns, lab.pod(2).ip, 1); // traffic towards weft0 wakes the TX worker, whose read now fails
    const code = await Promise.race([exited, sleep(10_000).then(() => "still running")]);
    expect(code).toBe(1);
    // The lab copies the agent's output into its log asynchronously: give the last lines a moment to land.
    const log = () => readFileSync(n1.logFile!, "utf8");
    for (let i = 0; i < 40 && !/dataplane failed/.test(log()); i++) await sleep(50);
    expect(log()).toMatch(/dataplane failed: tx worker: read TUN: EBADFD/);
    expect(existsSync(n1.socket!)).toBe(false);
    lab.startAgent(n1);
    await expectWorking(n1);
  });
});
