// `weft agent` refuses bad configuration before touching the machine (docs/agent.md): exit code 2, stderr naming the key. Run
// as the real binary inside a node namespace of a "routed" lab (its underlay address is the node's only non-loopback
// address, so "publicIP not on this machine" is real), with nothing left behind.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { isRoot, pollStatus, spawnIn } from "./lib/traffic.js";

describe.skipIf(!isRoot)("agent: configuration errors", () => {
  let lab: Lab;
  let dir: string;
  let base: Record<string, unknown>;
  let n = 0;

  /** Runs `weft agent --config <file> [flags…]` in node 1's namespace; kills it if it is still running after 15 s. */
  async function runAgent(config: Record<string, unknown> | null, flags: string[] = [], file?: string) {
    const path = file ?? join(dir, `agent-${++n}.json`);
    if (config) writeFileSync(path, JSON.stringify(config));
    const p = spawnIn(lab.nodes[0].ns, process.execPath, [join(PACKAGE_ROOT, "bin", "weft"), "agent", "--config", path, ...flags]);
    const timer = setTimeout(() => p.child.kill("SIGTERM"), 15_000);
    const r = await p.done;
    clearTimeout(timer);
    return r;
  }

  const weft0 = () => lab.exec(lab.nodes[0].ns, "ip", ["-br", "link", "show"]).split("\n").filter((l) => l.startsWith("weft0"));

  beforeAll(async () => {
    lab = new Lab({ mode: "routed" });
    await lab.up();
    dir = mkdtempSync(join(tmpdir(), "weft-agent-config-"));
    base = {
      nodeName: "node1",
      clusterCIDR: "10.244.0.0/16",
      subnet: "10.244.1.0/24",
      publicIP: lab.nodes[0].underlayIP,
      port: 4789,
      registry: { type: "file", path: join(dir, "peers.json") },
      socket: join(dir, "run", "weft.sock"),
      stateDir: join(dir, "state"),
      metrics: "127.0.0.1:0",
    };
  });
  afterAll(async () => {
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the base config is good: the agent starts with it and stops on SIGTERM (so the failures below are the keys')", async () => {
    const path = join(dir, "good.json");
    writeFileSync(path, JSON.stringify(base));
    const p = spawnIn(lab.nodes[0].ns, process.execPath, [join(PACKAGE_ROOT, "bin", "weft"), "agent", "--config", path]);
    try {
      await pollStatus(base.socket as string, (s) => s.ready, "the agent with the base config to be ready", 15_000);
      expect(weft0()).toHaveLength(1);
    } finally {
      p.child.kill("SIGTERM");
    }
    expect((await p.done).code).toBe(0);
    expect(weft0()).toEqual([]);
  });

  const cases: [string, string, (b: Record<string, unknown>) => Record<string, unknown>][] = [
    ["subnet outside clusterCIDR", "subnet", (b) => ({ ...b, subnet: "10.245.1.0/24" })],
    ["unknown registry type", "registry.type", (b) => ({ ...b, registry: { type: "consul" } })],
    ["malformed clusterCIDR", "clusterCIDR", (b) => ({ ...b, clusterCIDR: "10.244.0.0/33" })],
    ["malformed subnet", "subnet", (b) => ({ ...b, subnet: "10.244.1.x/24" })],
    ["publicIP not an address of this machine (after publicIPWait)", "publicIP", (b) => ({ ...b, publicIP: "192.168.201.7", publicIPWait: 1 })],
    ["publicIP inside the Pod network", "publicIP", (b) => ({ ...b, publicIP: "10.244.1.5" })],
    ["VNI out of range", "vni", (b) => ({ ...b, vni: 1 << 24 })],
    ["unknown key", "subnetLength", (b) => ({ ...b, subnetLength: 24 })],
  ];

  for (const [what, key, mutate] of cases) {
    it(`${what}: exit 2, stderr names ${key}`, async () => {
      const r = await runAgent(mutate(base));
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`weft config: ${key}:`);
      expect(weft0()).toEqual([]);
    });
  }

  it("a flag wins over the file and is checked the same way", async () => {
    const r = await runAgent(base, ["--subnet", "10.99.0.0/24"]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("weft config: subnet:");
    expect(r.stderr).toContain("10.99.0.0/24");
  });

  it("a missing config file: exit 2 naming config", async () => {
    const r = await runAgent(null, [], join(dir, "does-not-exist.json"));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("weft config: config:");
  });
});
