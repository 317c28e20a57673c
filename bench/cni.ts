// CNI ADD and DEL latency, one call at a time over N Pods (all N attached before the first DEL, as on a busy node):
// weft's service as the agent runs it, weft through its native front end (exec + socket, what a runtime sees), and the
// reference plugins exec'd from /usr/lib/cni (bridge + host-local, and ptp + host-local, weft's routed design) in the
// same run, the Pods of each interleaved so that drift on the machine hits them alike. Everything happens in a node
// namespace of its own (wcb<4 hex>…) that is deleted at the end. Needs root.
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { pino } from "pino";
import { createCniService, type CniService } from "../src/cni/service.js";
import { startApiServer } from "../src/control/api-server.js";
import { PACKAGE_ROOT } from "../src/paths.js";
import { CLONE_NEWNET, CURRENT_NETNS, closeFd, libc, openNetns } from "../src/sys/index.js";
import { printTable, writeResult } from "./lib/report.js";

const CNI_DIR = "/usr/lib/cni";
const FRONT_END = join(PACKAGE_ROOT, "build", "cni", "weft");

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
}

export interface LatencyRow {
  plugin: string;
  pods: number;
  addMs: Latency;
  delMs: Latency;
  /** Through the front end: the agent's part of each call, from the request's first bytes read to the reply handed to the kernel. */
  agentMs?: { add: Latency; del: Latency };
}

export interface CniBenchResult {
  date: string;
  machine: { cpu?: string; cores: number; node: string; kernel: string };
  pods: number;
  rows: LatencyRow[];
  /** weft's service ADD p50 over the reference bridge + host-local ADD p50 (target ≤ 0.5). */
  addRatioService: number;
  /** The same through the front end, when it is built. */
  addRatioFrontEnd?: number;
}

interface Contender {
  name: string;
  add: (i: number) => Promise<void>;
  del: (i: number) => Promise<void>;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
function summary(samples: number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return { p50: round(quantile(s, 0.5)), p90: round(quantile(s, 0.9)), p99: round(quantile(s, 0.99)),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length) };
}

function execPlugin(path: string, env: Record<string, string>, stdin: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(path, [], { env: { ...env, PATH: process.env.PATH }, maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) reject(new Error(`${path} ${env.CNI_COMMAND}: ${stdout || err.message}`));
      else resolve();
    });
    child.stdin!.end(stdin);
  });
}

class NodeNamespace {
  readonly prefix = `wcb${randomBytes(2).toString("hex")}`;
  private readonly names: string[] = [];
  private original = -1;

  enter(): void {
    const node = this.add("node");
    this.original = openNetns(CURRENT_NETNS);
    const fd = openNetns(node);
    if (libc.setns(fd, CLONE_NEWNET) < 0) throw new Error("setns into the bench's node namespace failed");
    closeFd(fd);
    execFileSync("ip", ["link", "set", "lo", "up"]);
    execFileSync("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
  }

  add(suffix: string): string {
    const name = `${this.prefix}${suffix}`;
    execFileSync("ip", ["netns", "add", name]);
    this.names.push(name);
    return `/var/run/netns/${name}`;
  }

  cleanup(): void {
    if (this.original >= 0) {
      libc.setns(this.original, CLONE_NEWNET);
      closeFd(this.original);
      this.original = -1;
    }
    for (const name of this.names.splice(0).reverse()) {
      try {
        execFileSync("ip", ["netns", "del", name]);
      } catch {
        // gone already
      }
    }
  }
}

export async function runCniBench(opts: { pods?: number; outDir?: string; quiet?: boolean } = {}): Promise<CniBenchResult> {
  if (process.getuid?.() !== 0) throw new Error("the CNI benchmark creates network namespaces and veths: run it as root");
  const pods = opts.pods ?? 200;
  if (pods > 250) throw new Error("at most 250 Pods (one /24 per contender)");
  const log = (line: string) => opts.quiet || console.log(line);
  const ns = new NodeNamespace();
  const work = mkdtempSync(join(tmpdir(), "weft-cni-bench-"));
  const services: CniService[] = [];
  let api: Awaited<ReturnType<typeof startApiServer>> | undefined;
  try {
    ns.enter();
    // Two agents' services, a /24 each: one called directly, one behind the socket the front end talks to.
    const newService = (subnet: string, dir: string) => {
      const s = createCniService({ subnet, mtu: 1450, stateDir: join(work, dir), log: pino({ level: "silent" }), ready: () => true });
      services.push(s);
      return s;
    };
    const svc = newService("10.244.1.0/24", "state-service");
    const behindSocket = newService("10.244.2.0/24", "state-frontend");
    const socket = join(work, "weft.sock");
    // The agent's part of each front-end call, measured where the agent's metric measures it.
    const agentSamples: Record<string, number[]> = { ADD: [], DEL: [] };
    api = await startApiServer(socket, { cni: (req) => behindSocket.handle(req as unknown as { env: Record<string, string>; stdin: string }) },
      {}, (req, seconds) => agentSamples[String((req.env as Record<string, unknown>)?.CNI_COMMAND)]?.push(seconds * 1000));

    const env = (command: string, id: string, netns: string) =>
      ({ CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: CNI_DIR });
    const netnsOf = (tag: string) => Array.from({ length: pods }, (_, i) => ns.add(`${tag}${i}`));
    const hostLocal = (subnet: string, dir: string) => ({ type: "host-local", ranges: [[{ subnet }]], dataDir: join(work, dir) });

    const contenders: Contender[] = [];
    const weftConf = JSON.stringify({ cniVersion: "1.0.0", name: "weftnet", type: "weft", socket });
    const svcPods = netnsOf("s");
    const call = async (command: string, id: string, netns: string) => {
      const r = await svc.handle({ env: env(command, id, netns), stdin: weftConf });
      if (r.code !== 0) throw new Error(`weft ${command}: ${r.output}`);
    };
    contenders.push({ name: "weft (agent service)", add: (i) => call("ADD", `s${i}`, svcPods[i]), del: (i) => call("DEL", `s${i}`, svcPods[i]) });
    if (existsSync(FRONT_END)) {
      const fePods = netnsOf("f");
      contenders.push({
        name: "weft (front end → agent)",
        add: (i) => execPlugin(FRONT_END, env("ADD", `f${i}`, fePods[i]), weftConf),
        del: (i) => execPlugin(FRONT_END, env("DEL", `f${i}`, fePods[i]), weftConf),
      });
    } else {
      log(`(no ${FRONT_END}: run 'npm run build:cni' to measure weft through its front end)`);
    }
    for (const [type, subnet, extra] of [
      ["bridge", "10.245.1.0/24", { bridge: `${ns.prefix}br`, isGateway: true }],
      ["ptp", "10.246.1.0/24", {}],
    ] as const) {
      const conf = JSON.stringify({ cniVersion: "1.0.0", name: `${type}net`, type, ...extra, ipam: hostLocal(subnet, type) });
      const refPods = netnsOf(type[0]);
      contenders.push({
        name: `${type} + host-local (reference)`,
        add: (i) => execPlugin(join(CNI_DIR, type), env("ADD", `${type}${i}`, refPods[i]), conf),
        del: (i) => execPlugin(join(CNI_DIR, type), env("DEL", `${type}${i}`, refPods[i]), conf),
      });
    }

    const samples = contenders.map(() => ({ add: [] as number[], del: [] as number[] }));
    const timed = async (fn: () => Promise<void>) => {
      const started = performance.now();
      await fn();
      return performance.now() - started;
    };
    log(`CNI latency: ${pods} Pods per contender, ${contenders.length} contenders, interleaved`);
    for (let i = 0; i < pods; i++) for (const [c, k] of contenders.entries()) samples[c].add.push(await timed(() => k.add(i)));
    for (let i = 0; i < pods; i++) for (const [c, k] of contenders.entries()) samples[c].del.push(await timed(() => k.del(i)));

    const rows: LatencyRow[] = contenders.map((k, c) => ({ plugin: k.name, pods, addMs: summary(samples[c].add), delMs: summary(samples[c].del) }));
    const frontEnd = rows.find((r) => r.plugin === "weft (front end → agent)");
    if (frontEnd && agentSamples.ADD.length > 0) frontEnd.agentMs = { add: summary(agentSamples.ADD), del: summary(agentSamples.DEL) };
    const reference = rows.find((r) => r.plugin.startsWith("bridge"))!;
    const ratio = (name: string) => {
      const row = rows.find((r) => r.plugin === name);
      return row ? Math.round((row.addMs.p50 / reference.addMs.p50) * 100) / 100 : undefined;
    };
    const result: CniBenchResult = {
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, kernel: execFileSync("uname", ["-r"], { encoding: "utf8" }).trim() },
      pods,
      rows,
      addRatioService: ratio("weft (agent service)")!,
      addRatioFrontEnd: ratio("weft (front end → agent)"),
    };
    if (!opts.quiet) {
      const ms = (v: number | undefined) => (v === undefined ? "" : v.toFixed(2));
      printTable(`CNI ADD/DEL latency, ms (${pods} Pods each, one call at a time)`,
        ["plugin", "ADD p50", "ADD p90", "ADD p99", "agent's ADD p50", "DEL p50", "DEL p99", "agent's DEL p50"],
        rows.map((r) => [r.plugin, ms(r.addMs.p50), ms(r.addMs.p90), ms(r.addMs.p99), ms(r.agentMs?.add.p50), ms(r.delMs.p50),
          ms(r.delMs.p99), ms(r.agentMs?.del.p50)]));
      console.log("(agent's: from the agent reading the front end's request to its reply handed to the kernel)");
      console.log(`\nweft ADD p50 / bridge + host-local ADD p50: ${result.addRatioService} (service)` +
        (result.addRatioFrontEnd !== undefined ? `, ${result.addRatioFrontEnd} (through the front end)` : ""));
    }
    const file = writeResult("cni", result, opts.outDir);
    log(`wrote ${file}`);
    return result;
  } finally {
    await Promise.all(services.map((s) => s.close()));
    await api?.close();
    ns.cleanup();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const pods = Number(process.argv[2] ?? 200);
  runCniBench({ pods }).catch((err: Error) => {
    console.error(`weft CNI bench: ${err.message}`);
    process.exitCode = 1;
  });
}
