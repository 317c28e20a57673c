// publicIP is looked up over rtnetlink (docs/agent.md, "Start-up"): an address on a link without carrier counts (right
// after the link comes up, or at boot before the NIC has carrier), and an address that is not there yet is waited for, up to
// publicIPWait seconds, with a log line; then the refusal names publicIP. The underlay is a real veth whose peer is down.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { Sandbox, ip, ipJson, nsExec } from "./lib/netns.js";
import { isRoot, pollStatus, sleep, spawnIn, type NsProcess } from "./lib/traffic.js";

const UNDERLAY_IP = "192.168.77.1";

describe.skipIf(!isRoot)("agent: publicIP on a link without carrier, and one that appears later", () => {
  let sandbox: Sandbox;
  let ns: string;
  let link: string;
  let dir: string;
  let n = 0;

  function start(overrides: Record<string, unknown> = {}): { p: NsProcess; socket: string; output: () => string } {
    const run = join(dir, `run-${++n}`);
    const socket = join(run, "weft.sock");
    const file = join(dir, `agent-${n}.json`);
    writeFileSync(file, JSON.stringify({
      nodeName: "node1",
      clusterCIDR: "10.244.0.0/16",
      subnet: "10.244.1.0/24",
      publicIP: UNDERLAY_IP,
      registry: { type: "file", path: join(run, "peers.json") },
      socket,
      stateDir: join(run, "state"),
      metrics: "127.0.0.1:0",
      ...overrides,
    }));
    const p = spawnIn(ns, process.execPath, [join(PACKAGE_ROOT, "bin", "weft"), "agent", "--config", file]);
    let out = "";
    p.child.stdout!.on("data", (chunk: string) => (out += chunk));
    return { p, socket, output: () => out };
  }

  const inNs = (cmd: string, ...args: string[]) => nsExec(ns, cmd, ...args);
  const operstate = () => ipJson<{ operstate: string; flags: string[] }[]>(ns, "link", "show", link)[0];

  beforeAll(() => {
    sandbox = new Sandbox();
    ns = sandbox.netns("n");
    link = `${sandbox.prefix}u`;
    ip("-n", ns, "link", "add", link, "type", "veth", "peer", "name", `${sandbox.prefix}p`);
    ip("-n", ns, "link", "set", link, "up");
    dir = mkdtempSync(join(tmpdir(), "weft-underlay-wait-"));
  });
  afterAll(() => {
    sandbox?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the underlay link is up without carrier (its veth peer is down): no IFF_RUNNING", () => {
    expect(operstate().flags).toContain("NO-CARRIER");
    expect(operstate().flags).not.toContain("LOWER_UP");
  });

  it("publicIP on that link: the agent starts", async () => {
    ip("-n", ns, "addr", "add", `${UNDERLAY_IP}/24`, "dev", link);
    const a = start({ publicIPWait: 0 });
    try {
      const s = await pollStatus(a.socket, (x) => x.ready, "the agent to be ready", 20_000);
      expect(s.publicIP).toBe(UNDERLAY_IP);
      expect(operstate().flags).toContain("NO-CARRIER");
    } finally {
      a.p.child.kill("SIGTERM");
    }
    expect((await a.p.done).code).toBe(0);
    ip("-n", ns, "addr", "del", `${UNDERLAY_IP}/24`, "dev", link);
  });

  it("publicIP not there yet: the agent logs that it waits, and starts once the address appears", async () => {
    const a = start({ publicIPWait: 120 });
    try {
      for (let i = 0; i < 400 && !/waiting for publicIP/.test(a.output()); i++) await sleep(50);
      expect(a.output()).toMatch(/waiting for publicIP to appear/);
      expect(a.p.child.exitCode).toBeNull();
      ip("-n", ns, "addr", "add", `${UNDERLAY_IP}/24`, "dev", link);
      await pollStatus(a.socket, (x) => x.ready, "the agent to be ready once the address is there", 20_000);
      expect(a.output()).toMatch(/publicIP is present/);
    } finally {
      a.p.child.kill("SIGTERM");
    }
    expect((await a.p.done).code).toBe(0);
    ip("-n", ns, "addr", "del", `${UNDERLAY_IP}/24`, "dev", link);
  });

  it("SIGTERM while waiting for publicIP: exits 0 without waiting out publicIPWait, its socket removed", async () => {
    const a = start({ publicIPWait: 600 });
    for (let i = 0; i < 400 && !/waiting for publicIP/.test(a.output()); i++) await sleep(50);
    expect(a.output()).toMatch(/waiting for publicIP to appear/);
    a.p.child.kill("SIGTERM");
    const r = await a.p.done;
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(a.socket)).toBe(false);
  });

  it("while an agent waits for publicIP its socket is already held: a second agent on it refuses, naming socket", async () => {
    const a = start({ publicIPWait: 600 });
    try {
      for (let i = 0; i < 400 && !/waiting for publicIP/.test(a.output()); i++) await sleep(50);
      expect(a.output()).toMatch(/waiting for publicIP to appear/);
      const b = start({ socket: a.socket, nodeName: "node2", port: 4790, device: "weft2", publicIPWait: 0 });
      const r = await b.p.done;
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("weft config: socket:");
      expect(r.stderr).toContain("weft agent is starting (waiting for publicIP");
      expect(a.p.child.exitCode).toBeNull();
    } finally {
      a.p.child.kill("SIGTERM");
    }
    expect((await a.p.done).code).toBe(0);
  });

  it("an IPv6 publicIP still in duplicate address detection (no carrier: it stays tentative) is waited for until it is usable", async () => {
    const v6 = "fd00:77::1";
    inNs("sysctl", "-qw", `net.ipv6.conf.${link}.accept_dad=1`);
    ip("-n", ns, "addr", "add", `${v6}/64`, "dev", link);
    const a = start({ publicIP: v6, publicIPWait: 120 });
    try {
      expect(ip("-n", ns, "-6", "addr", "show", "dev", link)).toMatch(/tentative/);
      for (let i = 0; i < 400 && !/waiting for publicIP/.test(a.output()); i++) await sleep(50);
      expect(a.output()).toMatch(/waiting for publicIP to appear/);
      ip("-n", ns, "link", "set", `${sandbox.prefix}p`, "up");
      const s = await pollStatus(a.socket, (x) => x.ready, "the agent to be ready once DAD is done", 30_000);
      expect(s.publicIP).toBe(v6);
      expect(s.mtu).toBe(1500 - 70);
    } finally {
      a.p.child.kill("SIGTERM");
      ip("-n", ns, "link", "set", `${sandbox.prefix}p`, "down");
      ip("-n", ns, "addr", "del", `${v6}/64`, "dev", link);
    }
    expect((await a.p.done).code).toBe(0);
  });

  it("publicIP still absent after publicIPWait: exit 2 naming publicIP and the wait, nothing left behind", async () => {
    const a = start({ publicIPWait: 1 });
    const r = await a.p.done;
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("weft config: publicIP:");
    expect(r.stderr).toContain("publicIPWait");
    expect(ipJson<{ ifname: string }[]>(ns, "link", "show").map((l) => l.ifname)).not.toContain("weft0");
  });
});
