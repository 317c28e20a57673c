// The etcd registry at scale (docs/registry-etcd.md): 5,000 flannel leases in a real 3-member etcd on loopback, then
//  - initial sync: from EtcdRegistry.start() until it has listed every lease,
//  - a claim among them: list, pick the first free subnet, create-if-absent,
//  - watch: 500 leases added by others until the last `added` event,
//  - a re-list that changes nothing (forced the way etcd forces it: the watch's revision compacted away while the
//    registry was cut off): how long from reconnecting until it has listed again, and how many events it emitted (0).
// Not a timed test: numbers for the README and the issue, written to bench/results/registry-etcd.json.
import { cpus } from "node:os";
import { pathToFileURL } from "node:url";
import { Etcd3 } from "etcd3";
import { pino } from "pino";
import { acquireLease } from "../src/control/lease.js";
import { EtcdRegistry } from "../src/control/registry/etcd.js";
import { leaseValueFor } from "../src/control/registry/flannel.js";
import { EtcdCluster, etcdBinaries, TcpRelay } from "../src/lab/etcd.js";
import { printTable, writeResult } from "./lib/report.js";

const PREFIX = "/coreos.com/network";
const NETWORK = { clusterCIDR: "10.0.0.0/8", subnetLen: 24, vni: 1, port: 8472 };

export interface EtcdRegistryBenchResult {
  date: string;
  machine: { cpu?: string; cores: number; node: string; etcd: string };
  leases: number;
  initialSyncMs: number;
  claimMs: number;
  watch: { leases: number; ms: number };
  relist: { ms: number; events: number };
}

/** The n-th lease's subnet: 10.<hi>.<lo>.0/24, skipping 10.0.0.0/24 as flannel does. */
function subnetOf(n: number): string {
  const i = n + 1;
  return `10.${i >> 8}.${i & 255}.0/24`;
}

async function writeLeases(client: Etcd3, from: number, count: number): Promise<void> {
  const lease = await client.leaseClient.leaseGrant({ TTL: 3600 });
  for (let start = from; start < from + count; start += 100) {
    const puts = [];
    for (let n = start; n < Math.min(from + count, start + 100); n++) {
      const record = { nodeName: `peer${n}`, publicIP: `192.0.${(n >> 8) & 255}.${n & 255}`, subnet: subnetOf(n), vtepMAC: `02:00:00:00:${((n >> 8) & 255).toString(16).padStart(2, "0")}:${(n & 255).toString(16).padStart(2, "0")}`, vni: 1 };
      puts.push(client.put(`${PREFIX}/subnets/${record.subnet.replace("/", "-")}`).value(leaseValueFor(record)).lease(lease.ID));
    }
    await Promise.all(puts);
  }
}

/** A registry whose log lines are handed to `onLine` (the bench waits for "listed the leases again"). */
function registry(endpoints: string[], onLine: (msg: string) => void = () => undefined): EtcdRegistry {
  const log = pino({ level: "info" }, { write: (line: string) => onLine(JSON.parse(line).msg) });
  return new EtcdRegistry({
    config: { type: "etcd", endpoints, prefix: PREFIX, leaseTTL: 3600 },
    nodeName: "bench", publicIP: "198.51.100.1", network: NETWORK, log,
  });
}

export async function runEtcdRegistryBench(opts: { leases?: number; outDir?: string } = {}): Promise<EtcdRegistryBenchResult> {
  const bin = etcdBinaries();
  if (!bin) throw new Error("no etcd binary: run scripts/ensure-deps.sh");
  const leases = opts.leases ?? 5000;
  const etcd = await new EtcdCluster({ members: 3 }).start();
  const client = new Etcd3({ hosts: etcd.endpoints, grpcOptions: { "grpc.max_receive_message_length": 256 * 1024 * 1024 } });
  const open: EtcdRegistry[] = [];
  try {
    console.log(`etcd registry bench: writing ${leases} leases into a 3-member etcd (${bin.etcd})`);
    await writeLeases(client, 0, leases);
    console.log("etcd registry bench: initial sync, claim, watch");

    const t0 = performance.now();
    const synced = registry(etcd.endpoints);
    open.push(synced);
    await synced.start();
    const initialSyncMs = performance.now() - t0;
    if (synced.list().length !== leases) throw new Error(`listed ${synced.list().length} of ${leases} leases`);

    const t1 = performance.now();
    await acquireLease({ ...NETWORK, nodeName: "bench", publicIP: "198.51.100.1", vtepMAC: "02:5e:00:00:00:01", stateDir: etcd.dir }, synced);
    const claimMs = performance.now() - t1;

    const more = 500;
    let added = 0;
    const allAdded = new Promise<void>((resolve) => synced.on("added", () => ++added === more && resolve()));
    const t2 = performance.now();
    await writeLeases(client, leases + 1, more);
    await allAdded;
    const watchMs = performance.now() - t2;

    console.log("etcd registry bench: re-list after a compacted watch");
    // A second registry behind a relay; cut off, it misses changes that a compaction then erases from etcd's history.
    let listedAgain: () => void = () => undefined;
    const relisted = new Promise<number>((resolve) => (listedAgain = () => resolve(performance.now())));
    const relay = await new TcpRelay(etcd.clientAddress(0)).start();
    const watcher = registry([relay.endpoint], (msg) => msg === "listed the leases again" && listedAgain());
    open.push(watcher);
    await watcher.start();
    let events = 0;
    for (const e of ["added", "removed", "changed"] as const) watcher.on(e, () => events++);
    await relay.cut();
    // Two writes outside the leases, so the compaction reaches past the revision the watch resumes from.
    etcd.ctl("put", "/bench/unrelated", "x");
    etcd.ctl("put", "/bench/unrelated", "y");
    etcd.ctl("compact", /"revision":(\d+)/.exec(etcd.ctl("get", "/bench/unrelated", "-w", "json"))![1]);
    const t3 = performance.now();
    await relay.start();
    const relistMs = (await relisted) - t3;
    await relay.cut();

    const result: EtcdRegistryBenchResult = {
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, etcd: bin.etcd },
      leases,
      initialSyncMs: Math.round(initialSyncMs),
      claimMs: Math.round(claimMs),
      watch: { leases: more, ms: Math.round(watchMs) },
      relist: { ms: Math.round(relistMs), events },
    };
    printTable(`etcd registry, ${leases} leases in a 3-member etcd on loopback`, ["measure", "value"], [
      ["initial sync (start → all listed)", `${result.initialSyncMs} ms`],
      ["claim a subnet among them", `${result.claimMs} ms`],
      [`watch: ${more} leases added → last event`, `${result.watch.ms} ms`],
      ["re-list after a compacted watch (reconnect → listed)", `${result.relist.ms} ms`],
      ["events emitted by that re-list", String(result.relist.events)],
    ]);
    console.log(`\nwrote ${writeResult("registry-etcd", result, opts.outDir)}`);
    return result;
  } finally {
    await Promise.all(open.map((r) => r.close()));
    client.close();
    await etcd.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runEtcdRegistryBench({ leases: Number(process.argv[2] ?? 5000) });
}
