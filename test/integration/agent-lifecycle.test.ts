// The agent's lifecycle on a live two-node lab. A stop is not an uninstall: SIGTERM and SIGKILL both leave weft0 (persistent)
// with its address, its cluster route and the blackhole below it, so the Pods keep their wiring and nothing leaks; the next
// agent adopts the device, fixes what is wrong on it, and comes back to a working, unduplicated state. Only
// `weft uninstall` removes the device.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, type LabNode } from "../../src/lab/topology.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { buildInfo } from "../../src/control/version.js";
import { isRoot, ping, pollStatus, sleep, spawnIn, waitPing } from "./lib/traffic.js";

const CLUSTER = "10.244.0.0/16";

describe.skipIf(!isRoot)("agent lifecycle: SIGTERM, SIGKILL, restart, adoption, uninstall", () => {
  let lab: Lab;
  let cniDirs: string;

  const links = (n: LabNode) => JSON.parse(lab.exec(n.ns, "ip", ["-j", "link", "show"])) as { ifname: string; mtu: number }[];
  const tunLinks = (n: LabNode) => links(n).filter((l) => l.ifname === "weft0");
  const routes = (n: LabNode, dst = CLUSTER) =>
    (JSON.parse(lab.exec(n.ns, "ip", ["-j", "route", "show", dst])) as { type?: string; dst: string; dev?: string; metric?: number }[])
      .map((r) => (r.type === "blackhole" ? `blackhole ${r.dst} metric ${r.metric}` : `${r.dst} ${r.dev}`));
  const weft0Addresses = (n: LabNode) => (JSON.parse(lab.exec(n.ns, "ip", ["-j", "-4", "addr", "show", "dev", "weft0"])) as
    { addr_info: { local: string; prefixlen: number }[] }[]).flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
  const log = (n: LabNode) => readFileSync(n.logFile!, "utf8");
  const KEPT = [`${CLUSTER} weft0`, `blackhole ${CLUSTER} metric 4294967295`];

  async function expectWorking(n: LabNode): Promise<void> {
    await lab.waitReady(n);
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
    expect(ping(lab.pod(1).ns, lab.pod(2).ip, 3)).toBe(3);
    expect(ping(lab.pod(2).ns, lab.pod(1).ip, 3)).toBe(3);
    expect(ping(n.ns, lab.pod(2).ip, 2)).toBe(2);
    // Exactly one of everything: one weft0 with one address, one cluster route through it, one blackhole below it.
    expect(tunLinks(n)).toHaveLength(1);
    expect(weft0Addresses(n)).toEqual(["10.244.1.0/32"]);
    expect(routes(n)).toEqual(KEPT);
    // And node 2 still has node 1 as its one live peer.
    const s2 = await pollStatus(lab.nodes[1].socket!, (s) => s.peers.length === 1 && s.peers[0].live, "node2 to list node1 live");
    expect(s2.peers.map((p) => p.nodeName)).toEqual(["node1"]);
  }

  /** `weft uninstall` inside node `n` (CNI directories of this test, never the host's). */
  async function uninstall(n: LabNode) {
    const p = spawnIn(n.ns, process.execPath, [join(PACKAGE_ROOT, "bin", "weft"), "uninstall", "--socket", n.socket!,
      "--bin-dir", join(cniDirs, "bin"), "--conf-dir", join(cniDirs, "net.d")]);
    return p.done;
  }

  beforeAll(async () => {
    cniDirs = mkdtempSync(join(tmpdir(), "weft-lifecycle-cni-"));
    lab = new Lab({ mode: "weft" });
    await lab.up();
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });
  afterAll(async () => {
    await lab?.down();
    if (cniDirs) rmSync(cniDirs, { recursive: true, force: true });
  });

  it("SIGTERM: exits 0 and removes the socket; weft0, its address, the cluster route and the blackhole stay", async () => {
    const n1 = lab.nodes[0];
    expect(existsSync(n1.socket!)).toBe(true);
    expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
    expect(existsSync(n1.socket!)).toBe(false);
    expect(tunLinks(n1)).toHaveLength(1);
    expect(weft0Addresses(n1)).toEqual(["10.244.1.0/32"]);
    expect(routes(n1)).toEqual(KEPT);
    // The Pods' own wiring is untouched; cross-node traffic waits (dropped in the reader-less TUN) for the next agent.
    expect(ping(n1.ns, lab.pod(1).ip, 1)).toBe(1);
    expect(ping(lab.pod(1).ns, lab.pod(2).ip, 2)).toBe(0);
  });

  it("restart after SIGTERM: adopts weft0 as it is, ready, traffic flows", async () => {
    const n1 = lab.nodes[0];
    lab.startAgent(n1);
    await expectWorking(n1);
    expect(log(n1)).toMatch(/"fixed":\[\],"msg":"adopted the existing device"/);
    // Which weft runs here, in its log and its metrics: what `weft --version` prints.
    const lines = log(n1).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.msg === "weft agent starting").at(-1)).toMatchObject({ version: buildInfo().id, node: "node1" });
    const { host, port } = lines.filter((l) => l.msg === "weft agent ready").at(-1)!.metrics as { host: string; port: number };
    const metrics = lab.exec(n1.ns, "python3", ["-c", "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
      `http://${host}:${port}/metrics`]);
    expect(metrics).toMatch(new RegExp(`^weft_info\\{node="node1",.*version="${buildInfo().id}"\\} 1$`, "m"));
  });

  it("SIGKILL: weft0 and its routes stay (persistent); the socket file is left behind", async () => {
    const n1 = lab.nodes[0];
    const agent = n1.agent!;
    await lab.stopAgent(n1, "SIGKILL");
    expect(agent.signalCode).toBe("SIGKILL");
    await sleep(200);
    expect(tunLinks(n1)).toHaveLength(1);
    expect(routes(n1)).toEqual(KEPT);
    expect(existsSync(n1.socket!)).toBe(true);
  });

  it("restart after SIGKILL: the stale socket is replaced, weft0 adopted, nothing duplicated", async () => {
    const n1 = lab.nodes[0];
    lab.startAgent(n1);
    await expectWorking(n1);
  });

  it("adoption fixes what is wrong on the device: MTU, a foreign address, a missing cluster route, a stale route", async () => {
    const n1 = lab.nodes[0];
    expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
    const mtu = tunLinks(n1)[0].mtu;
    lab.exec(n1.ns, "ip", ["link", "set", "weft0", "mtu", "1280"]);
    lab.exec(n1.ns, "ip", ["addr", "add", "10.244.9.0/32", "dev", "weft0"]);
    lab.exec(n1.ns, "ip", ["route", "del", CLUSTER, "dev", "weft0"]);
    lab.exec(n1.ns, "ip", ["route", "add", "10.99.0.0/16", "dev", "weft0"]);
    lab.startAgent(n1);
    await expectWorking(n1);
    expect(tunLinks(n1)[0].mtu).toBe(mtu);
    expect(routes(n1, "10.99.0.0/16")).toEqual([]);
    const line = log(n1).split("\n").filter((l) => l.includes("adopted the existing device")).at(-1)!;
    expect(JSON.parse(line).fixed).toEqual([`mtu 1280 → ${mtu}`, "removed address 10.244.9.0/32", "removed route 10.99.0.0/16",
      `added route ${CLUSTER} dev weft0`]);
  });

  it("a restart with another queue count re-attaches to the same weft0 with that many queues", async () => {
    const n1 = lab.nodes[0];
    const ifindex = () => (JSON.parse(lab.exec(n1.ns, "ip", ["-j", "link", "show", "weft0"])) as { ifindex: number }[])[0].ifindex;
    const before = ifindex();
    expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
    const configured = (JSON.parse(readFileSync(n1.configFile!, "utf8")) as { queues?: number }).queues;
    const queues = configured === 2 ? 1 : 2;
    try {
      lab.startAgent(n1, { queues });
      await expectWorking(n1);
      expect(ifindex()).toBe(before);
      const s = await pollStatus(n1.socket!, (st) => st.ready, "node1 ready");
      expect(s.queues).toHaveLength(queues);
    } finally {
      expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
      lab.startAgent(n1);
    }
    await expectWorking(n1);
  });

  it("a single-queue weft0 left by an older agent is made again as a multi-queue device; a TAP of that name is refused", async () => {
    const n1 = lab.nodes[0];
    expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
    lab.exec(n1.ns, "ip", ["link", "del", "weft0"]);
    lab.exec(n1.ns, "ip", ["tuntap", "add", "dev", "weft0", "mode", "tap"]);
    const tap = spawnIn(n1.ns, process.execPath, [join(PACKAGE_ROOT, "bin", "weft"), "agent", "--config", n1.configFile!]);
    const refused = await tap.done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/weft config: device: .*weft0 exists and is a TAP device, not weft's TUN/);
    expect(lab.exec(n1.ns, "ip", ["-d", "link", "show", "weft0"])).toMatch(/tun type tap/);
    lab.exec(n1.ns, "ip", ["link", "del", "weft0"]);
    // `ip tuntap add` without multi_queue makes the persistent single-queue TUN an older agent would have left.
    lab.exec(n1.ns, "ip", ["tuntap", "add", "dev", "weft0", "mode", "tun", "vnet_hdr"]);
    expect(lab.exec(n1.ns, "ip", ["-d", "link", "show", "weft0"])).not.toMatch(/multi_queue/);
    lab.startAgent(n1);
    await expectWorking(n1);
    expect(lab.exec(n1.ns, "ip", ["-d", "link", "show", "weft0"])).toMatch(/tun type tun .*multi_queue/);
    expect(log(n1)).toMatch(/the existing device was single-queue: made it again as a multi-queue device/);
  });

  it("a second agent for a device another agent holds refuses to start and says why", async () => {
    const n1 = lab.nodes[0];
    const config = JSON.parse(readFileSync(n1.configFile!, "utf8")) as Record<string, unknown>;
    const second = { ...config, port: 4790, socket: join(cniDirs, "second.sock"), stateDir: join(cniDirs, "second-state") };
    const file = join(cniDirs, "second.json");
    writeFileSync(file, JSON.stringify(second));
    const p = spawnIn(n1.ns, process.execPath, [join(PACKAGE_ROOT, "bin", "weft"), "agent", "--config", file]);
    const r = await p.done;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/weft config: device: .*weft0 exists and another process holds it \(\d+ queue\(s\) attached\)/);
    expect(ping(lab.pod(1).ns, lab.pod(2).ip, 2)).toBe(2);
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
    for (let i = 0; i < 40 && !/dataplane failed/.test(log(n1)); i++) await sleep(50);
    expect(log(n1)).toMatch(/dataplane failed: queue 0 worker: read TUN queue 0: EBADFD/);
    expect(existsSync(n1.socket!)).toBe(false);
    // Without weft0 its route is gone, and the blackhole holds the cluster network.
    expect(routes(n1)).toEqual([`blackhole ${CLUSTER} metric 4294967295`]);
    lab.startAgent(n1);
    await expectWorking(n1);
  });

  it("weft uninstall: refused while the agent runs; after a stop it removes weft0, its routes and the blackhole", async () => {
    const n1 = lab.nodes[0];
    const refused = await uninstall(n1);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`an agent is running on ${n1.socket}`);
    expect(tunLinks(n1)).toHaveLength(1);
    expect(await lab.stopAgent(n1, "SIGTERM")).toBe(0);
    const done = await uninstall(n1);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain("removed device weft0");
    expect(done.stdout).toContain(`removed blackhole route ${CLUSTER}`);
    expect(tunLinks(n1)).toEqual([]);
    expect(routes(n1)).toEqual([]);
    // A fresh start after an uninstall creates everything again.
    lab.startAgent(n1);
    await expectWorking(n1);
  });
});
