// The file registry: upserts under a lock from many instances and many processes, hand-written records kept, bad records
// and bad files reported without losing state, and watch events for changes made by others.
import { fork, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deriveVtepMAC } from "../../src/control/config.js";
import { EtcdRegistry } from "../../src/control/registry/etcd.js";
import { FileRegistry } from "../../src/control/registry/file.js";
import { createRegistry, KubeRegistry, type NodeRecord, type RegistryEvents } from "../../src/control/registry/index.js";
import { TS_EXEC_ARGV } from "../helpers/ts-child.js";
import { captureLog, tempDir, waitFor } from "./fixtures-control/helpers.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function record(nodeName: string, i: number, extra: Partial<NodeRecord> = {}): NodeRecord {
  return { nodeName, publicIP: `192.168.0.${i}`, subnet: `10.244.${i}.0/24`, vtepMAC: deriveVtepMAC(nodeName), vni: 1, ...extra };
}

const KERNEL_NODE = { nodeName: "flannel-node", publicIP: "192.168.1.50", subnet: "10.244.200.0/24", vtepMAC: "5e:aa:bb:cc:dd:ee", vni: 1, comment: "kernel VXLAN, listed by hand" };

let tmp: ReturnType<typeof tempDir>;
let path: string;
const open: FileRegistry[] = [];
beforeEach(() => {
  tmp = tempDir("registry");
  path = join(tmp.dir, "peers.json");
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close()));
  tmp.cleanup();
});

function registry(nodeName: string, log = captureLog().log, extra: Partial<ConstructorParameters<typeof FileRegistry>[0]> = {}): FileRegistry {
  const r = new FileRegistry({ path, nodeName, log, pollMs: 100, debounceMs: 10, ...extra });
  open.push(r);
  return r;
}

function fileEntries(): unknown[] {
  return JSON.parse(readFileSync(path, "utf8"));
}

function recordEvents(r: FileRegistry): { kind: keyof RegistryEvents; name: string; prev?: NodeRecord }[] {
  const events: { kind: keyof RegistryEvents; name: string; prev?: NodeRecord }[] = [];
  r.on("added", (rec) => events.push({ kind: "added", name: rec.nodeName }));
  r.on("removed", (rec) => events.push({ kind: "removed", name: rec.nodeName }));
  r.on("changed", (rec, prev) => events.push({ kind: "changed", name: rec.nodeName, prev }));
  return events;
}

describe("FileRegistry", () => {
  it("starts on a missing file, stores its own record and lists it", async () => {
    const r = registry("node1");
    await r.start();
    expect(r.list()).toEqual([]);
    await r.upsertSelf(record("node1", 1));
    expect(fileEntries()).toEqual([record("node1", 1)]);
    expect(r.list()).toEqual([record("node1", 1)]);
    expect(readdirSync(tmp.dir).sort()).toEqual(["peers.json"]);
  });

  it("keeps every record when many instances upsert at once (in-process)", async () => {
    writeFileSync(path, JSON.stringify([KERNEL_NODE]));
    const names = Array.from({ length: 16 }, (_, i) => `node${i + 1}`);
    await Promise.all(names.map((name, i) => registry(name).upsertSelf(record(name, i + 1))));
    const entries = fileEntries() as NodeRecord[];
    expect(entries).toHaveLength(17);
    expect(entries[0]).toEqual(KERNEL_NODE);
    expect(new Set(entries.map((e) => e.nodeName))).toEqual(new Set(["flannel-node", ...names]));
  });

  it("replaces its own entry in place and keeps foreign and unparsable entries verbatim", async () => {
    const broken = { nodeName: "typo-node", publicIP: "192.168.1.300", subnet: "10.244.9.0/24", vtepMAC: "02:00:00:00:00:09", vni: 1 };
    writeFileSync(path, JSON.stringify([KERNEL_NODE, record("node1", 1), broken, "junk"]));
    const { log, lines } = captureLog();
    const r = registry("node1", log);
    await r.start();
    expect(r.list().map((x) => x.nodeName)).toEqual(["flannel-node", "node1"]);
    expect(lines.some((l) => l.msg === "skipping invalid node record" && String(l.record).includes('"typo-node"') && String(l.problem).includes("publicIP"))).toBe(true);
    expect(lines.some((l) => l.msg === "skipping invalid node record" && l.record === "record #3")).toBe(true);
    await r.upsertSelf(record("node1", 1, { publicIP: "192.168.0.77" }));
    expect(fileEntries()).toEqual([KERNEL_NODE, record("node1", 1, { publicIP: "192.168.0.77" }), broken, "junk"]);
    await r.removeSelf();
    expect(fileEntries()).toEqual([KERNEL_NODE, broken, "junk"]);
  });

  it("reports foreign records like any other, without the extra fields", async () => {
    writeFileSync(path, JSON.stringify([KERNEL_NODE]));
    const r = registry("node1");
    await r.start();
    const { comment: _comment, ...expected } = KERNEL_NODE;
    expect(r.list()).toEqual([expected]);
  });

  it("emits added, changed and removed for another agent's writes", async () => {
    const watcher = registry("node1");
    await watcher.start();
    const events = recordEvents(watcher);
    const other = registry("node2");
    await other.upsertSelf(record("node2", 2));
    await waitFor("added node2", () => events.some((e) => e.kind === "added" && e.name === "node2"));
    await other.upsertSelf(record("node2", 2, { publicIP: "192.168.0.99" }));
    await waitFor("changed node2", () => events.some((e) => e.kind === "changed"));
    expect(events.find((e) => e.kind === "changed")?.prev?.publicIP).toBe("192.168.0.2");
    await other.removeSelf();
    await waitFor("removed node2", () => events.some((e) => e.kind === "removed" && e.name === "node2"));
    expect(watcher.list()).toEqual([]);
  });

  it("notices changes by polling alone", async () => {
    const watcher = registry("node1", captureLog().log, { pollMs: 30, debounceMs: 60_000 });
    await watcher.start();
    const events = recordEvents(watcher);
    writeFileSync(path, JSON.stringify([KERNEL_NODE]));
    await waitFor("added flannel-node", () => events.some((e) => e.kind === "added" && e.name === "flannel-node"));
  });

  it("emits removals before additions so a subnet can move between nodes", async () => {
    writeFileSync(path, JSON.stringify([record("old", 3)]));
    const watcher = registry("node1");
    await watcher.start();
    const events = recordEvents(watcher);
    writeFileSync(path, JSON.stringify([record("new", 3)]));
    await waitFor("both events", () => events.length === 2);
    expect(events.map((e) => `${e.kind} ${e.name}`)).toEqual(["removed old", "added new"]);
  });

  it("keeps the last state on a malformed file, warns, and recovers", async () => {
    writeFileSync(path, JSON.stringify([KERNEL_NODE]));
    const { log, lines } = captureLog();
    const watcher = registry("node1", log);
    await watcher.start();
    const events = recordEvents(watcher);
    writeFileSync(path, '[{"nodeName": "half-writ');
    await waitFor("a warning", () => lines.some((l) => l.msg?.toString().includes("not a JSON array")));
    expect(watcher.list().map((r) => r.nodeName)).toEqual(["flannel-node"]);
    expect(events).toEqual([]);
    await expect(registry("node2").upsertSelf(record("node2", 2))).rejects.toThrow(/cannot update .*peers\.json: not valid JSON.*fix or remove the file/);
    expect(readFileSync(path, "utf8")).toBe('[{"nodeName": "half-writ');
    writeFileSync(path, JSON.stringify({ not: "an array" }));
    await waitFor("second warning", () => lines.filter((l) => l.msg?.toString().includes("not a JSON array")).length >= 2);
    writeFileSync(path, JSON.stringify([KERNEL_NODE, record("node3", 3)]));
    await waitFor("recovery", () => events.some((e) => e.kind === "added" && e.name === "node3"));
  });

  it("refuses to store a record for another node or an invalid one", async () => {
    const r = registry("node1");
    await expect(r.upsertSelf(record("node2", 2))).rejects.toThrow(/stores "node1", not "node2"/);
    await expect(r.upsertSelf({ ...record("node1", 1), subnet: "10.244.1.0/33" })).rejects.toThrow(/invalid record for node1: subnet/);
    expect(existsSync(path)).toBe(false);
  });
});

describe("the lock", () => {
  it("breaks a lock left by a dead process", async () => {
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: Number(dead.stdout), host: (await import("node:os")).hostname(), token: "x" }));
    await registry("node1", captureLog().log, { lock: { timeoutMs: 2000 } }).upsertSelf(record("node1", 1));
    expect(fileEntries()).toHaveLength(1);
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it("breaks an old lock of a holder it cannot check (another host or PID namespace)", async () => {
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: 1, host: "elsewhere", token: "x" }));
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${path}.lock`, old, old);
    await registry("node1", captureLog().log, { lock: { timeoutMs: 2000, staleMs: 10_000 } }).upsertSelf(record("node1", 1));
    expect(fileEntries()).toHaveLength(1);
  });

  it("waits for a live holder and gives up naming it", async () => {
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: process.pid, host: (await import("node:os")).hostname(), token: "x" }));
    const r = registry("node1", captureLog().log, { lock: { timeoutMs: 200 } });
    await expect(r.upsertSelf(record("node1", 1))).rejects.toThrow(`held by pid ${process.pid}`);
    expect(existsSync(path)).toBe(false);
  });
});

describe("createRegistry", () => {
  const base = { nodeName: "node1", publicIP: "10.0.0.1", clusterCIDR: "10.244.0.0/16", subnetLen: 24, vni: 1, port: 8472 };
  it("builds the file registry", async () => {
    const r = await createRegistry({ ...base, registry: { type: "file", path } }, captureLog().log);
    expect(r).toBeInstanceOf(FileRegistry);
  });
  it("makes an etcd registry for registry.type etcd (it connects on start)", async () => {
    const r = await createRegistry({ ...base, registry: { type: "etcd", endpoints: ["http://127.0.0.1:2379"], prefix: "/coreos.com/network", leaseTTL: 60 } }, captureLog().log);
    expect(r).toBeInstanceOf(EtcdRegistry);
  });
  it("builds the kube registry from the agent's config (without connecting: that is start's job)", async () => {
    const config = { ...base, registry: { type: "kube" as const }, clusterCIDR: "10.244.0.0/16", subnetLen: 24, publicIP: "10.0.0.1",
      vtepMAC: "02:5e:00:00:00:01", vni: 1 };
    expect(await createRegistry(config, captureLog().log)).toBeInstanceOf(KubeRegistry);
    await expect(createRegistry({ nodeName: "node1", registry: { type: "kube" } }, captureLog().log)).rejects.toThrow(/needs clusterCIDR/);
  });
});

// ---- real processes ---------------------------------------------------------------------------------------------------

const CHILD = join(ROOT, "test/unit/fixtures-control/registry-child.ts");

interface ChildResult {
  ok: boolean;
  record?: NodeRecord;
  error?: string;
}

/** Forks `count` children, lets them all get ready, then starts them together. */
async function raceChildren(mode: "upsert" | "lease", registryPath: string, count: number, stateRoot: string): Promise<ChildResult[]> {
  const children = Array.from({ length: count }, (_, i) =>
    fork(CHILD, [mode, registryPath, `proc${i + 1}`, String(i), join(stateRoot, `state${i + 1}`)], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: TS_EXEC_ARGV }));
  const ready = children.map((c) => new Promise<void>((res, rej) => {
    c.once("message", () => res());
    c.once("exit", (code) => rej(new Error(`child exited early with ${code}`)));
  }));
  await Promise.all(ready);
  const results = children.map((c) => new Promise<ChildResult>((res) => c.once("message", (m) => res(m as ChildResult))));
  for (const c of children) c.send("go");
  return Promise.all(results);
}

/** Reads and parses `file` every millisecond until stopped; returns how many reads there were and the texts that did not parse. */
function readContinuously(file: string): { stop: () => { reads: number; torn: string[] } } {
  let reads = 0;
  const torn: string[] = [];
  const timer = setInterval(() => {
    const text = readFileSync(file, "utf8");
    reads++;
    try {
      JSON.parse(text);
    } catch {
      torn.push(text);
    }
  }, 1);
  return { stop: () => (clearInterval(timer), { reads, torn }) };
}

describe("across processes", () => {
  it("keeps every record when 8 processes upsert at once, and readers never see torn JSON", async () => {
    writeFileSync(path, JSON.stringify([KERNEL_NODE]));
    const reader = readContinuously(path);
    const results = await raceChildren("upsert", path, 8, tmp.dir);
    const { reads, torn } = reader.stop();
    expect(reads).toBeGreaterThan(0);
    expect(torn).toEqual([]);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const entries = fileEntries() as NodeRecord[];
    expect(entries).toHaveLength(9);
    expect(entries[0]).toEqual(KERNEL_NODE);
    expect(entries.map((e) => e.nodeName).sort()).toEqual(["flannel-node", ...Array.from({ length: 8 }, (_, i) => `proc${i + 1}`)].sort());
  });

  it("gives 8 racing agents 8 distinct subnets", async () => {
    const results = await raceChildren("lease", path, 8, tmp.dir);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const subnets = results.map((r) => r.record!.subnet);
    expect(new Set(subnets).size).toBe(8);
    expect(new Set(subnets)).toEqual(new Set(Array.from({ length: 8 }, (_, i) => `10.244.${i + 1}.0/24`)));
    expect((fileEntries() as NodeRecord[]).map((e) => e.subnet).sort()).toEqual([...subnets].sort());
  });
});
