// The real front end (build/cni/weft) against a real agent, with 10 000 hostile calls generated from a seed
// (lib/cni-fuzz.ts): every call ends in a spec error code with a message on stdout, or in success; a successful ADD is
// DELeted again (twice, as containerd does); and nothing on the host changes that a successful ADD did not make. The agent
// lives in a namespaced lab node (src/lab/topology.ts), whose links, addresses, routes and files are compared with a
// baseline after every batch of calls, as are the Pod namespaces and the machine's own namespace. Names start with wfz.
//
// WEFT_FUZZ_SEED=<n> and WEFT_FUZZ_CASES=<n> reproduce or widen a run; the seed is printed.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callAgent } from "../../src/control/api-server.js";
import { Lab, type LabNode } from "../../src/lab/topology.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { type FuzzCase, type FuzzTargets, MAX_CONFIG_BYTES, generateCase, strictJson } from "./lib/cni-fuzz.js";
import { ip } from "./lib/netns.js";
import { isRoot } from "./lib/traffic.js";

const FRONTEND = join(PACKAGE_ROOT, "build", "cni", "weft");
const SEED = Number(process.env.WEFT_FUZZ_SEED ?? 20261201) >>> 0;
const CASES = Number(process.env.WEFT_FUZZ_CASES ?? 10_000);
const WORKERS = 8;
const PODS_PER_WORKER = 2;
const BATCH = 1000;
const NETWORK = "fuzznet";
/** The spec's well-known codes a plugin may answer with, and its own (100 and up). */
const SPEC_CODES = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50]);
const COMMANDS = new Set(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]);
const run = promisify(execFile);

const ready = isRoot && existsSync(FRONTEND);
if (!ready) console.warn("weft CNI hostile-input suite needs root and the front end (`npm run build`): skipped");

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
}

function frontend(env: Record<string, string>, stdin: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(FRONTEND, [], { env, stdio: ["pipe", "pipe", "ignore"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stdin.on("error", () => undefined); // it stops reading past the size limit
    child.on("error", reject);
    child.on("close", (status, signal) => resolve({ status, signal, stdout: Buffer.concat(out).toString("utf8") }));
    child.stdin.end(stdin);
  });
}

/**
 * A namespace's links and addresses (and routes, unless `linksOnly`: a Pod's routes go with its veth), as comparable
 * lines; `keep` filters them (the machine's namespace).
 */
async function netState(ns: string | null, keep: (line: string) => boolean = () => true, linksOnly = false): Promise<string[]> {
  const ipj = async (...args: string[]) => JSON.parse((await run("ip", [...(ns ? ["-n", ns] : []), "-j", ...args])).stdout || "[]") as object[];
  const [links, routes4, routes6] = await Promise.all([ipj("-d", "addr", "show"),
    linksOnly ? [] : ipj("route", "show", "table", "all"), linksOnly ? [] : ipj("-6", "route", "show", "table", "all")]);
  const lines: string[] = [];
  for (const l of links as { ifindex: number; ifname: string; link_type: string; mtu: number; flags: string[]; address?: string;
    ifalias?: string; linkinfo?: { info_kind?: string }; addr_info: { local: string; prefixlen: number; scope: string }[] }[]) {
    lines.push(`link ${l.ifindex} ${l.ifname} ${l.link_type} ${l.linkinfo?.info_kind ?? "-"} mtu ${l.mtu} ${l.flags.join(",")} ${l.address ?? ""} ${l.ifalias ?? ""}`);
    for (const a of l.addr_info) lines.push(`addr ${l.ifname} ${a.local}/${a.prefixlen} ${a.scope}`);
  }
  for (const r of [...routes4, ...routes6]) lines.push(`route ${JSON.stringify(r)}`);
  return lines.filter(keep).sort();
}

/** Waits (bounded) until no address in these namespaces is tentative. */
async function settleIPv6(namespaces: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (const n of namespaces) {
    while ((await run("ip", ["-n", n, "-6", "addr", "show", "tentative"])).stdout.trim() !== "" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Every file under `dir` but those under `except`, with sizes (logs only by name: they grow). */
function files(dir: string, except: string[]): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (except.includes(p)) continue;
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out.push(`${relative(dir, p)} ${p.endsWith(".log") ? "" : st.size}`);
    }
  };
  walk(dir);
  return out.sort();
}

describe.skipIf(!ready)(`CNI hostile input: ${CASES} generated calls through the front end (seed ${SEED})`, () => {
  const prefix = `wfz${randomBytes(2).toString("hex")}`;
  const pods: string[] = [];
  let lab: Lab;
  let node: LabNode;
  let stateDir = "";
  let scratch = "";
  let targets: Omit<FuzzTargets, "pods">;
  /** Lines of the machine's namespace that weft or this run could have made. */
  const ours = (line: string) => /weft[0-9a-f]{11}|10\.244\.1\.|fd00:10:244:1:/.test(line) || line.includes(prefix);

  const snapshot = async () => ({
    node: await netState(node.ns),
    root: await netState(null, ours),
    pods: await Promise.all(pods.map((p) => netState(p))),
    files: files(lab.dir, [stateDir]),
    scratch: files(scratch, []),
    namespaces: readdirSync("/run/netns").filter((n) => n.startsWith(prefix)).sort(),
    varLibCni: existsSync("/var/lib/cni") ? files("/var/lib/cni", []) : [],
  });
  /** What weft keeps per attachment: nothing once every ADD was DELeted. */
  const held = () => ({
    records: existsSync(join(stateDir, "attachments")) ? readdirSync(join(stateDir, "attachments")) : [],
    reservations: readdirSync(join(stateDir, "ipam", node.subnet.replace("/", "_"))).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
  });

  beforeAll(async () => {
    console.log(`weft CNI hostile-input suite: seed ${SEED}, ${CASES} cases (WEFT_FUZZ_SEED=${SEED} reproduces)`);
    lab = await new Lab({ mode: "weft", pods: 0, podsVia: "hand", prefix: `${prefix}l` }).up();
    node = lab.nodes[0];
    stateDir = join(lab.dir, "node1", "state");
    scratch = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const nowhere = join(scratch, "nowhere");
    const emptyPluginDir = join(scratch, "plugins");
    for (const d of [nowhere, emptyPluginDir]) rmSync(d, { recursive: true, force: true });
    await run("mkdir", ["-p", nowhere, emptyPluginDir]);
    for (let i = 0; i < WORKERS * PODS_PER_WORKER; i++) {
      ip("netns", "add", `${prefix}p${i}`);
      // Loopback up is part of what an ADD makes (and DEL leaves): start from there.
      ip("-n", `${prefix}p${i}`, "link", "set", "lo", "up");
      pods.push(`${prefix}p${i}`);
    }
    // The baseline is taken once IPv6 has settled: a link-local address still in duplicate address detection gains its
    // local route later, which would read as a change made by a call.
    await settleIPv6([node.ns, ...pods]);
    targets = { socket: node.socket!, nowhere, emptyPluginDir, network: NETWORK,
      ownNetns: [`/run/netns/${node.ns}`, "/proc/self/ns/net", "/proc/thread-self/ns/net", `/proc/${node.agent!.pid}/ns/net`] };
  }, 120_000);

  afterAll(async () => {
    await lab?.down();
    for (const p of pods) {
      try {
        ip("netns", "del", p);
      } catch {
        // never made
      }
    }
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** What a call must end in: success as its command defines it, or a spec error JSON; returns the failure, if any. */
  function judge(c: FuzzCase, r: Run): string | undefined {
    if (r.signal || (r.status !== 0 && r.status !== 1)) return `exited ${r.status ?? r.signal}`;
    const command = c.env.CNI_COMMAND;
    if (r.status === 1) {
      let e: { cniVersion?: unknown; code?: unknown; msg?: unknown };
      try {
        e = JSON.parse(r.stdout) as typeof e;
      } catch {
        return `exit 1 without an error JSON: ${JSON.stringify(r.stdout.slice(0, 200))}`;
      }
      if (typeof e.cniVersion !== "string" || typeof e.msg !== "string" || e.msg === "") return `malformed error ${r.stdout.slice(0, 300)}`;
      if (!Number.isInteger(e.code) || !(SPEC_CODES.has(e.code as number) || ((e.code as number) >= 100 && e.code !== 999))) {
        return `code ${String(e.code)} is no spec code: ${r.stdout.slice(0, 300)}`;
      }
      const knownCommand = command !== undefined && COMMANDS.has(command);
      if (c.stdin.length <= MAX_CONFIG_BYTES && knownCommand && command !== "VERSION" && strictJson(c.stdin) === undefined && e.code !== 6) {
        return `stdin is not JSON, yet code ${String(e.code)}: ${r.stdout.slice(0, 300)}`;
      }
      return undefined;
    }
    if (command === "ADD") {
      const result = JSON.parse(r.stdout) as { ips?: unknown[]; interfaces?: unknown[] };
      return Array.isArray(result.ips) && result.ips.length > 0 && Array.isArray(result.interfaces) ? undefined : `ADD result ${r.stdout}`;
    }
    if (command === "VERSION") return Array.isArray((JSON.parse(r.stdout) as { supportedVersions?: unknown }).supportedVersions) ? undefined : r.stdout;
    return r.stdout === "" ? undefined : `${command} succeeded with output ${r.stdout.slice(0, 200)}`;
  }

  it("every call ends in success or a spec error, successful ADDs are undone by DEL, and nothing else on the host changes",
    async () => {
      const baseline = await snapshot();
      const failures: string[] = [];
      const codes = new Map<string, number>();
      let added = 0;
      const describeCase = (c: FuzzCase) =>
        `case ${c.index} (WEFT_FUZZ_SEED=${SEED}): env ${JSON.stringify(c.env).slice(0, 400)} stdin ${JSON.stringify(c.stdin.subarray(0, 200).toString())}` +
        ` [${c.notes.join("; ").slice(0, 300)}]`;

      async function worker(w: number, from: number, to: number): Promise<void> {
        const mine = pods.slice(w * PODS_PER_WORKER, (w + 1) * PODS_PER_WORKER);
        const t: FuzzTargets = { ...targets, pods: mine.map((p) => `/run/netns/${p}`) };
        for (let i = from + w; i < to; i += WORKERS) {
          const c = generateCase(SEED, i, t);
          const r = await frontend(c.env, c.stdin);
          const wrong = judge(c, r);
          if (wrong) failures.push(`${describeCase(c)}: ${wrong}`);
          const code = r.status === 0 ? "ok" : (/"code":(\d+)/.exec(r.stdout)?.[1] ?? "?");
          codes.set(`${c.env.CNI_COMMAND} ${code}`, (codes.get(`${c.env.CNI_COMMAND} ${code}`) ?? 0) + 1);
          if (r.status !== 0 || c.env.CNI_COMMAND !== "ADD") continue;
          added++;
          for (const netns of [c.env.CNI_NETNS, ""]) {
            const del = await frontend({ ...c.env, CNI_COMMAND: "DEL", CNI_NETNS: netns }, c.stdin);
            if (del.status !== 0) failures.push(`${describeCase(c)}: DEL after its ADD failed: ${del.stdout}`);
          }
          const podIndex = pods.indexOf(c.env.CNI_NETNS.split("/").pop()!);
          if (podIndex < 0) {
            failures.push(`${describeCase(c)}: ADD succeeded into ${c.env.CNI_NETNS}, which is no Pod namespace of this run`);
            continue;
          }
          const after = await netState(pods[podIndex], undefined, true);
          if (JSON.stringify(after) !== JSON.stringify(baseline.pods[podIndex].filter((l) => !l.startsWith("route ")))) {
            failures.push(`${describeCase(c)}: the Pod namespace differs after ADD+DEL: ${after.join(" | ")}`);
          }
        }
      }

      for (let from = 0; from < CASES && failures.length === 0; from += BATCH) {
        const to = Math.min(from + BATCH, CASES);
        await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w, from, to)));
        expect(failures.slice(0, 5)).toEqual([]);
        // Between batches nothing is in flight: the host must be as it was, and weft hold nothing.
        expect({ batch: `${from}-${to}`, ...(await snapshot()) }).toEqual({ batch: `${from}-${to}`, ...baseline });
        expect(held()).toEqual({ records: [], reservations: [] });
        expect(node.agent!.exitCode).toBeNull();
        expect(await callAgent(node.socket!, { op: "status" })).toMatchObject({ ready: true });
      }
      console.log(`${CASES} cases, ${added} successful ADDs (each DELeted twice); outcomes by command and code: ` +
        [...codes.entries()].sort().map(([k, v]) => `${k}: ${v}`).join(", "));
      expect(added).toBeGreaterThan(CASES / 50);

      // The agent still serves a plain Pod: ADD, CHECK, DEL through the front end.
      const env = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "after-fuzz", CNI_NETNS: `/run/netns/${pods[0]}`, CNI_IFNAME: "eth0",
        CNI_PATH: targets.emptyPluginDir };
      const conf = Buffer.from(JSON.stringify({ cniVersion: "1.1.0", name: NETWORK, type: "weft", socket: node.socket }));
      const add = await frontend(env, conf);
      expect(add).toMatchObject({ status: 0 });
      const withPrev = Buffer.from(JSON.stringify({ ...JSON.parse(conf.toString()), prevResult: JSON.parse(add.stdout) }));
      expect(await frontend({ ...env, CNI_COMMAND: "CHECK" }, withPrev)).toEqual({ status: 0, signal: null, stdout: "" });
      expect(await frontend({ ...env, CNI_COMMAND: "DEL" }, withPrev)).toEqual({ status: 0, signal: null, stdout: "" });
      expect(await snapshot()).toEqual(baseline);
    }, 1_800_000);
});
