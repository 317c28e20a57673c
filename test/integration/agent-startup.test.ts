// The agent's start (docs/agent.md, "Start-up"): every local resource is checked or bound before the node's record is
// published, a refusal names its key and exits 2, and a failed start leaves nothing behind (no registry record, no
// lease.json or subnet.env, no device, no socket). The API socket's directory keeps its mode, and a second agent given a
// live agent's socket refuses instead of taking over. Real agents (bin/weft) in the node namespace of a routed lab.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { callAgent } from "../../src/control/api-server.js";
import { isRoot, pollStatus, spawnIn, type NsProcess } from "./lib/traffic.js";

const WEFT = join(PACKAGE_ROOT, "bin", "weft");

type Config = Record<string, unknown> & { socket: string; stateDir: string; registry: { path: string }; nodeName: string };

describe.skipIf(!isRoot)("agent start-up: local resources before the record, nothing left behind", () => {
  let lab: Lab;
  let dir: string;
  let ns: string;
  let n = 0;

  /** A config of its own (socket, stateDir, registry, metrics) for each run, so one run's leftovers cannot hide another's. */
  function config(overrides: Record<string, unknown> = {}): Config {
    const run = join(dir, `run-${++n}`);
    return {
      nodeName: "node1",
      clusterCIDR: "10.244.0.0/16",
      subnet: "10.244.1.0/24",
      publicIP: lab.nodes[0].underlayIP,
      port: 4789,
      registry: { type: "file", path: join(run, "registry", "peers.json") },
      socket: join(run, "sock", "weft.sock"),
      stateDir: join(run, "state"),
      metrics: "127.0.0.1:0",
      ...overrides,
    } as Config;
  }

  function start(cfg: Config, wrap: string[] = []): NsProcess {
    const file = join(dir, `agent-${++n}.json`);
    writeFileSync(file, JSON.stringify(cfg));
    const [cmd, ...args] = [...wrap, process.execPath, WEFT, "agent", "--config", file];
    return spawnIn(ns, cmd, args);
  }

  /** Runs an agent that should refuse; one still running after 20 s is stopped (and then fails the exit-code check). */
  async function refused(cfg: Config, wrap: string[] = []) {
    const p = start(cfg, wrap);
    const timer = setTimeout(() => p.child.kill("SIGTERM"), 20_000);
    const r = await p.done;
    clearTimeout(timer);
    return r;
  }

  const links = () => (JSON.parse(lab.exec(ns, "ip", ["-j", "link", "show"])) as { ifname: string }[]).map((l) => l.ifname);
  const isSocket = (path: string) => existsSync(path) && lstatSync(path).isSocket();
  const mode = (path: string) => statSync(path).mode & 0o7777;

  /** What a run left behind: its record, lease.json, subnet.env, the device, the socket, the socket's (empty) directory. */
  function leftovers(cfg: Config): string[] {
    const found: string[] = [];
    const registry = cfg.registry.path;
    if (existsSync(registry) && (JSON.parse(readFileSync(registry, "utf8") || "[]") as { nodeName: string }[]).some((r) => r.nodeName === cfg.nodeName)) {
      found.push(`record ${cfg.nodeName} in ${registry}`);
    }
    if (existsSync(join(cfg.stateDir, "lease.json"))) found.push("lease.json");
    if (existsSync(join(cfg.socket, "..", "subnet.env"))) found.push("subnet.env");
    const device = (cfg.device as string | undefined) ?? "weft0";
    if (device !== "lo" && links().includes(device)) found.push(`device ${device}`);
    if (isSocket(cfg.socket)) found.push(`socket ${cfg.socket}`);
    const socketDir = join(cfg.socket, "..");
    if (existsSync(socketDir) && readdirSync(socketDir).length === 0) found.push(`the directory ${socketDir} the start created`);
    return found;
  }

  /** A process in the node namespace holding a port: python3 binding it and waiting to be killed. */
  async function holdPort(kind: "tcp" | "udp", host: string, port: number): Promise<NsProcess> {
    const script = `import socket,time
s=socket.socket(socket.AF_INET, socket.SOCK_${kind === "tcp" ? "STREAM" : "DGRAM"})
s.bind((${JSON.stringify(host)}, ${port}))
${kind === "tcp" ? "s.listen(1)\n" : ""}print("READY", flush=True)
time.sleep(600)`;
    const p = spawnIn(ns, "python3", ["-u", "-c", script]);
    await p.ready;
    return p;
  }

  beforeAll(async () => {
    lab = new Lab({ mode: "routed" });
    await lab.up();
    ns = lab.nodes[0].ns;
    dir = mkdtempSync(join(tmpdir(), "weft-agent-startup-"));
  });
  afterAll(async () => {
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe("a local resource that does not work: exit 2, the key named, nothing left behind", () => {
    it("the metrics port is in use", async () => {
      const holder = await holdPort("tcp", "127.0.0.1", 19464);
      try {
        const cfg = config({ metrics: "127.0.0.1:19464" });
        const r = await refused(cfg);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain("weft config: metrics:");
        expect(r.stderr).toContain("EADDRINUSE");
        expect(leftovers(cfg)).toEqual([]);
      } finally {
        holder.kill();
      }
    });

    it("the VXLAN port is in use", async () => {
      const holder = await holdPort("udp", lab.nodes[0].underlayIP, 4789);
      try {
        const cfg = config();
        const r = await refused(cfg);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain("weft config: port:");
        expect(r.stderr).toContain("EADDRINUSE");
        expect(leftovers(cfg)).toEqual([]);
      } finally {
        holder.kill();
      }
    });

    it("the device name is one the kernel reserves (all, default)", async () => {
      for (const device of ["all", "default"]) {
        const cfg = config({ device });
        const r = await refused(cfg);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain("weft config: device:");
        expect(leftovers(cfg)).toEqual([]);
      }
    });

    it("the device name is an interface that is not a TUN device (lo): the kernel's refusal names device", async () => {
      const cfg = config({ device: "lo" });
      const r = await refused(cfg);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("weft config: device:");
      expect(r.stderr).toContain("TUN");
      expect(leftovers(cfg)).toEqual([]);
      expect(links()).toContain("lo");
    });

    it("the socket path is a regular file: refused, and the file is left as it was", async () => {
      const cfg = config();
      mkdirSync(join(cfg.socket, ".."), { recursive: true });
      writeFileSync(cfg.socket, "not a socket\n");
      const r = await refused(cfg);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("weft config: socket:");
      expect(r.stderr).toContain("regular file");
      expect(readFileSync(cfg.socket, "utf8")).toBe("not a socket\n");
      expect(leftovers(cfg)).toEqual([]);
    });

    it("stateDir is not a directory", async () => {
      const cfg = config();
      mkdirSync(join(cfg.stateDir, ".."), { recursive: true });
      writeFileSync(cfg.stateDir, "a file\n");
      const r = await refused(cfg);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("weft config: stateDir:");
      expect(leftovers(cfg)).toEqual([]);
      // Not even the socket's directory, which this start would have created.
      expect(existsSync(join(cfg.socket, ".."))).toBe(false);
    });

    it("stateDir is on a read-only file system (a read-only bind mount in a private mount namespace)", async () => {
      const cfg = config();
      mkdirSync(cfg.stateDir, { recursive: true });
      const wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
        `mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"`, cfg.stateDir];
      const r = await refused(cfg, wrap);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("weft config: stateDir:");
      expect(r.stderr).toContain("read-only");
      expect(leftovers(cfg)).toEqual([]);
    });

    it("a failure after the record was published (a route to the cluster CIDR already exists) is rolled back", async () => {
      const cfg = config();
      lab.exec(ns, "ip", ["route", "add", "10.244.0.0/16", "dev", "lo"]);
      try {
        const r = await refused(cfg);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toContain("10.244.0.0/16");
        expect(leftovers(cfg)).toEqual([]);
      } finally {
        lab.exec(ns, "ip", ["route", "del", "10.244.0.0/16", "dev", "lo"]);
      }
    });

    it("a failed start puts a record and a lease.json that were there before back as they were", async () => {
      const cfg = config();
      const before = [{ nodeName: "node1", publicIP: "192.168.200.99", subnet: "10.244.1.0/24", vtepMAC: "02:5e:00:00:00:01", vni: 1 }];
      mkdirSync(join(cfg.registry.path, ".."), { recursive: true });
      writeFileSync(cfg.registry.path, JSON.stringify(before));
      // Compact, unlike what the lease writes: a start that rewrote it and did not put it back would show.
      const lease = JSON.stringify({ nodeName: "node1", clusterCIDR: "10.244.0.0/16", subnet: "10.244.1.0/24" });
      mkdirSync(cfg.stateDir, { recursive: true });
      writeFileSync(join(cfg.stateDir, "lease.json"), lease);
      lab.exec(ns, "ip", ["route", "add", "10.244.0.0/16", "dev", "lo"]);
      try {
        const r = await refused(cfg);
        expect(r.code, r.stderr).toBe(1);
        expect(JSON.parse(readFileSync(cfg.registry.path, "utf8"))).toEqual(before);
        expect(readFileSync(join(cfg.stateDir, "lease.json"), "utf8")).toBe(lease);
      } finally {
        lab.exec(ns, "ip", ["route", "del", "10.244.0.0/16", "dev", "lo"]);
      }
    });
  });

  describe("the API socket", () => {
    it("in a shared 1777 directory: the directory keeps its mode, the socket is 0600, stop removes only the socket", async () => {
      const shared = join(dir, "shared-tmp");
      mkdirSync(shared);
      chmodSync(shared, 0o1777);
      const cfg = config({ socket: join(shared, "weft.sock") });
      const p = start(cfg);
      try {
        await pollStatus(cfg.socket, (s) => s.ready, "the agent to be ready", 20_000);
        expect(mode(shared).toString(8)).toBe("1777");
        expect(mode(cfg.socket).toString(8)).toBe("600");
      } finally {
        p.child.kill("SIGTERM");
      }
      expect((await p.done).code).toBe(0);
      expect(mode(shared).toString(8)).toBe("1777");
      expect(isSocket(cfg.socket)).toBe(false);
    });

    it("in a directory that does not exist: created 0700", async () => {
      const cfg = config();
      const p = start(cfg);
      try {
        await pollStatus(cfg.socket, (s) => s.ready, "the agent to be ready", 20_000);
        expect(mode(join(cfg.socket, "..")).toString(8)).toBe("700");
        expect(mode(cfg.socket).toString(8)).toBe("600");
      } finally {
        p.child.kill("SIGTERM");
      }
      expect((await p.done).code).toBe(0);
    });

    it("a second agent given a live agent's socket refuses, naming socket; the first keeps its socket, subnet.env and peers", async () => {
      const first = config();
      const a = start(first);
      try {
        await pollStatus(first.socket, (s) => s.ready, "the first agent to be ready", 20_000);
        const subnetEnv = join(first.socket, "..", "subnet.env");
        const envBefore = readFileSync(subnetEnv, "utf8");
        const second = config({
          nodeName: "node9", clusterCIDR: "10.245.0.0/16", subnet: "10.245.9.0/24", port: 4790, device: "weft9",
          socket: first.socket, registry: first.registry,
        });
        const r = await refused(second);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain("weft config: socket:");
        expect(r.stderr).toContain('node "node1"');
        // The first agent still answers on its socket, as itself; nothing of the second one went out.
        expect(((await callAgent(first.socket, { op: "status" })) as { nodeName: string }).nodeName).toBe("node1");
        expect(readFileSync(subnetEnv, "utf8")).toBe(envBefore);
        expect(leftovers({ ...second, socket: join(dir, "none", "weft.sock") })).toEqual([]);
        expect(links()).not.toContain("weft9");
      } finally {
        a.child.kill("SIGTERM");
      }
      expect((await a.done).code).toBe(0);
      expect(isSocket(first.socket)).toBe(false);
    });

    it("a stale socket file (its agent was killed) is replaced", async () => {
      const cfg = config();
      const a = start(cfg);
      await pollStatus(cfg.socket, (s) => s.ready, "the agent to be ready", 20_000);
      a.kill();
      await a.done;
      expect(isSocket(cfg.socket)).toBe(true);
      const b = start(cfg);
      try {
        await pollStatus(cfg.socket, (s) => s.ready, "the restarted agent to be ready", 20_000);
      } finally {
        b.child.kill("SIGTERM");
      }
      expect((await b.done).code).toBe(0);
    });
  });
});
