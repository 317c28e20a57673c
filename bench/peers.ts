// The peer-table benchmark (`weft bench --peers`): how fast a real agent takes a cluster of thousands of nodes from its file
// registry, what a re-list that changes nothing costs it, and its memory with one peer and with all of them.
//   1. the two-node lab, its cluster network widened to 10.0.0.0/8 so thousands of /24s fit, maxPeers raised to fit N;
//      RSS of node 1's agent.
//   2. N more records written into the registry file at once (addresses in 198.18.0.0/15, the benchmarking range; nothing
//      is ever sent to them); time until node 1's status shows all N + 1 peers live (applied by both workers), while
//      Pod 1 pings Pod 2 every 10 ms.
//   3. the same records written again in another layout (so the file is read and every record compared): the agent's CPU
//      time for it above idle, whether any peer update reached the workers, and the pings lost meanwhile.
//   4. in-process, CPU time of the parts alone: parsing and checking the N records as the file registry does, the peer index
//      taking them, and the peer index taking them all again unchanged (a re-list from etcd or kube after a watch gap).
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { PeerIndex } from "../src/agent/peers.js";
import { callAgent } from "../src/control/api-server.js";
import { FileRegistry, type NodeRecord } from "../src/control/registry/index.js";
import { Lab, sleep, type LabNode } from "../src/lab/topology.js";
import { printTable, writeResult } from "./lib/report.js";

export interface PeersBenchResult {
  date: string;
  peers: number;
  machine: { cores: number; load1: number; node: string };
  rssMiB: { onePeer: number; allPeers: number; allPeersLater: number };
  initialSync: {
    ms: number; agentDispatchMs: number | null; statusCallMs: number; pingsSent: number; pingsLost: number;
    /** The agent's CPU time from the write until all peers were live (its own cost, whatever else the machine runs). */
    agentCpuMs: number; busiestThreadsCpuMs: Record<string, number>;
  };
  noopRelist: { agentCpuMs: number; idleCpuMs: number; peerUpdatesSent: number; pingsSent: number; pingsLost: number; countersKept: boolean };
  /** CPU time of each part alone, in this process. */
  inProcess: { parseMs: number; admitMs: number; relistMs: number };
}

interface Status { ready: boolean; peers: { nodeName: string; live: boolean; txPackets: number }[] }
interface Summary { peers: number; live: number; refused: number }

const CLUSTER = "10.0.0.0/8";
const TICK_MS = 20;

function fakeRecord(n: number): NodeRecord {
  const hex = (v: number) => v.toString(16).padStart(2, "0");
  return {
    nodeName: `bench-${n}`,
    publicIP: `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`,
    subnet: `10.${100 + (n >> 8)}.${n & 255}.0/24`,
    vtepMAC: `02:b0:00:${hex(n >> 16)}:${hex((n >> 8) & 255)}:${hex(n & 255)}`,
    vni: 1,
  };
}

function writeRegistry(path: string, records: unknown[], indent: number): void {
  writeFileSync(`${path}.bench-tmp`, JSON.stringify(records, null, indent));
  renameSync(`${path}.bench-tmp`, path);
}

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
  return Math.round(kb / 102.4) / 10;
}

/** User + system CPU time of a process (or one of its threads: /proc/pid/task/tid), in ms. */
function cpuMs(proc: number | string): number {
  const fields = readFileSync(`/proc/${proc}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** CPU ms of each thread of `pid`, by thread id. */
function threadCpu(pid: number): Map<string, number> {
  return new Map(readdirSync(`/proc/${pid}/task`).map((tid) => [tid, cpuMs(`${pid}/task/${tid}`)]));
}

/** The threads that used the most CPU between two threadCpu snapshots, with their names: where the time went. */
function busiest(pid: number, before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const used = [...after].map(([tid, ms]) => [tid, ms - (before.get(tid) ?? 0)] as const).filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]);
  return Object.fromEntries(used.slice(0, 5).map(([tid, ms]) => [`${readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim()} (${tid})`, Math.round(ms)]));
}

/** Pings `count` times, 10 ms apart, from Pod 1 to Pod 2 in the background; resolves with the replies. */
function pingFlow(lab: Lab, count: number): Promise<number> {
  const p = spawn("ip", ["netns", "exec", lab.pod(1).ns, "ping", "-n", "-q", "-c", String(count), "-i", "0.01", "-W", "1", lab.pod(2).ip], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  p.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((res) => p.once("close", () => res(Number(/(\d+) received/.exec(out)?.[1] ?? 0))));
}

const status = (n: LabNode) => callAgent(n.socket!, { op: "status" }, 30_000) as Promise<Status>;
const summary = (n: LabNode) => callAgent(n.socket!, { op: "peers" }, 30_000) as Promise<Summary>;

/** Polls the agent's peer summary until `check` holds; returns ms since `since` at the first one that passed. */
async function until(n: LabNode, check: (s: Summary) => boolean, since: number, timeoutMs: number): Promise<number> {
  while (performance.now() - since < timeoutMs) {
    if (check(await summary(n))) return performance.now() - since;
    await sleep(TICK_MS);
  }
  throw new Error(`node ${n.index}: condition not met within ${timeoutMs} ms`);
}

function logLines(n: LabNode, text: string): { time: number; line: Record<string, unknown> }[] {
  return readFileSync(n.logFile!, "utf8").split("\n").filter((l) => l.includes(text)).map((l) => {
    const line = JSON.parse(l) as Record<string, unknown>;
    return { time: Date.parse(String(line.time)), line };
  });
}

/** CPU ms this process used since `start`: steadier than wall time on a machine others are using too. */
function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

function inProcess(records: NodeRecord[]): PeersBenchResult["inProcess"] {
  const dir = mkdtempSync(join(tmpdir(), "weft-bench-peers-"));
  const quiet = pino({ level: "silent" });
  try {
    const path = join(dir, "peers.json");
    writeFileSync(path, JSON.stringify(records, null, 2));
    let t = process.cpuUsage();
    const registry = new FileRegistry({ path, nodeName: "node1", log: quiet, pollMs: 3_600_000 });
    void registry.start();
    const listed = registry.list();
    const parseMs = cpuSince(t);
    void registry.close();
    const self = { nodeName: "node1", publicIP: "192.168.200.1", subnet: "10.244.1.0/24", vtepMAC: "02:5e:00:00:00:01", vni: 1 };
    const index = new PeerIndex({ self, underlayFamily: 4, maxPeers: 65536, log: quiet });
    t = process.cpuUsage();
    for (const r of listed) index.upsert(r);
    index.takeChanges();
    const admitMs = cpuSince(t);
    t = process.cpuUsage();
    for (const r of listed) index.upsert({ ...r });
    const relistMs = cpuSince(t);
    if (index.takeChanges() !== null) throw new Error("an unchanged re-list produced peer changes");
    return { parseMs, admitMs, relistMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runPeersBench(opts: { peers: number; out: string }): Promise<PeersBenchResult> {
  const say = (s: string) => console.log(s);
  const fakes = Array.from({ length: opts.peers }, (_, n) => fakeRecord(n));
  say(`[peers] building the two-node lab (cluster ${CLUSTER})`);
  const lab = await new Lab({ mode: "weft", agentConfig: { clusterCIDR: CLUSTER, maxPeers: Math.max(8192, opts.peers + 2) } }).up();
  try {
    const n1 = lab.nodes[0];
    const pid = n1.agent!.pid!;
    await sleep(2000);
    const rssOne = rssMiB(pid);
    const own = JSON.parse(readFileSync(lab.registryFile, "utf8")) as NodeRecord[];
    const all = [...own, ...fakes];
    const total = all.length - 1;

    say(`[peers] writing ${opts.peers} more records`);
    const syncPings = pingFlow(lab, 500);
    await sleep(200);
    const threadsBefore = threadCpu(pid);
    const cpuBefore = cpuMs(pid);
    const t0 = performance.now();
    const wroteAt = Date.now();
    writeRegistry(lab.registryFile, all, 2);
    const syncMs = await until(n1, (s) => s.live === total, t0, 120_000);
    const syncCpuMs = cpuMs(pid) - cpuBefore;
    const syncThreads = busiest(pid, threadsBefore, threadCpu(pid));
    const dispatched = logLines(n1, '"peers updated"').find((l) => Number(l.line.set) >= opts.peers);
    const callStart = performance.now();
    await summary(n1);
    const statusCallMs = performance.now() - callStart;
    const syncReplies = await syncPings;
    await sleep(3000);
    const rssAll = rssMiB(pid);

    say("[peers] re-listing the same records");
    const updatesBefore = logLines(n1, '"peers updated"').length + logLines(n1, '"peer set"').length + logLines(n1, '"peer changed"').length;
    const txBefore = (await status(n1)).peers.find((p) => p.nodeName === "node2")!.txPackets;
    let c0 = cpuMs(pid);
    await sleep(3000);
    const idleCpuMs = cpuMs(pid) - c0;
    const relistPings = pingFlow(lab, 300);
    await sleep(200);
    c0 = cpuMs(pid);
    writeRegistry(lab.registryFile, all, 1);
    await sleep(3000);
    const relistCpuMs = cpuMs(pid) - c0;
    const relistReplies = await relistPings;
    const after = await status(n1);
    await sleep(10_000);
    const rssLater = rssMiB(pid);
    const updatesAfter = logLines(n1, '"peers updated"').length + logLines(n1, '"peer set"').length + logLines(n1, '"peer changed"').length;

    const result: PeersBenchResult = {
      date: new Date().toISOString(),
      peers: opts.peers,
      machine: { cores: cpus().length, load1: loadavg()[0], node: process.version },
      rssMiB: { onePeer: rssOne, allPeers: rssAll, allPeersLater: rssLater },
      initialSync: {
        ms: Math.round(syncMs), agentDispatchMs: dispatched ? dispatched.time - wroteAt : null, statusCallMs: Math.round(statusCallMs),
        pingsSent: 500, pingsLost: 500 - syncReplies, agentCpuMs: Math.round(syncCpuMs), busiestThreadsCpuMs: syncThreads,
      },
      noopRelist: {
        agentCpuMs: Math.round(relistCpuMs - idleCpuMs), idleCpuMs: Math.round(idleCpuMs), peerUpdatesSent: updatesAfter - updatesBefore,
        pingsSent: 300, pingsLost: 300 - relistReplies,
        countersKept: after.peers.filter((p) => p.live).length === total && after.peers.find((p) => p.nodeName === "node2")!.txPackets >= txBefore,
      },
      inProcess: inProcess(all),
    };
    printTable(`peer tables: ${opts.peers} + 1 peers (load average ${result.machine.load1.toFixed(1)} on ${result.machine.cores} cores)`, ["measure", "value"], [
      ["initial sync: file written → all peers live in both workers", `${result.initialSync.ms} ms`],
      ["  of which: file written → update sent to the workers", `${result.initialSync.agentDispatchMs ?? "?"} ms`],
      ["  agent CPU time for it (all threads)", `${result.initialSync.agentCpuMs} ms`],
      ...Object.entries(result.initialSync.busiestThreadsCpuMs).map(([t, ms]) => [`    thread ${t}`, `${ms} ms`]),
      ["  one summary call (bounds the polling error)", `${result.initialSync.statusCallMs} ms`],
      ["  pings Pod 1 → Pod 2 lost meanwhile", `${result.initialSync.pingsLost} of 500`],
      ["no-op re-list: agent CPU above idle", `${result.noopRelist.agentCpuMs} ms`],
      ["  peer updates sent to the workers", String(result.noopRelist.peerUpdatesSent)],
      ["  pings lost meanwhile", `${result.noopRelist.pingsLost} of 300`],
      ["  all peers live, counters kept", String(result.noopRelist.countersKept)],
      ["in-process CPU: parse + check the records (file registry)", `${result.inProcess.parseMs.toFixed(0)} ms`],
      ["in-process CPU: peer index admits them", `${result.inProcess.admitMs.toFixed(0)} ms`],
      ["in-process CPU: peer index, all listed again unchanged", `${result.inProcess.relistMs.toFixed(0)} ms`],
      ["agent RSS, 1 peer", `${result.rssMiB.onePeer} MiB`],
      [`agent RSS, ${total} peers`, `${result.rssMiB.allPeers} MiB`],
      [`agent RSS, ${total} peers, 15 s later`, `${result.rssMiB.allPeersLater} MiB`],
    ]);
    console.log(`\nwrote ${writeResult("peers", result, opts.out)}`);
    return result;
  } finally {
    await lab.down();
  }
}
