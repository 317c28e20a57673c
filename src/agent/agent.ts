// `weft agent`: the node's overlay. Reads the config, leases a subnet, creates the TUN device and the underlay socket,
// starts the dataplane workers, keeps peers in sync with the registry, and serves status and metrics.
import { readFileSync, writeFileSync } from "node:fs";
import { nthAddress, parseCIDR } from "../net/addr.js";
import { type AgentConfig, ConfigError, loadAgentConfig } from "../control/config.js";
import { acquireLease, leaseFile } from "../control/lease.js";
import { createLogger, type Logger } from "../control/log.js";
import { WeftMetrics, startMetricsServer, type MetricsServer } from "../control/metrics.js";
import { createRegistry, type NodeRecord, type Registry } from "../control/registry/index.js";
import { ApiError, type ApiServer, startApiServer } from "../control/api-server.js";
import { removeDirectories } from "../control/directories.js";
import { subnetEnvPath, writeSubnetEnv } from "../control/subnet-env.js";
import { buildInfo } from "../control/version.js";
import { Dataplane } from "../dataplane/manager.js";
import type { PeerEntry } from "../dataplane/protocol.js";
import { BATCH_BUCKETS } from "../dataplane/buckets.js";
import { sysctlPath } from "../sys/sysctl.js";
import type { TunDevice } from "../sys/tun.js";
import type { UdpSocket } from "../sys/udp.js";
import { type OverlayTun, configureOverlayDevice, openOverlayTun, removeOverlayDevice } from "./device.js";
import { PeerIndex, type Refusal } from "./peers.js";
import { type QueueSockets, closeQueueSockets, openQueueSockets } from "./sockets.js";
import { awaitUnderlay, checkStateDir, naming, preserveFile } from "./startup.js";
import { createCniService } from "../cni/service.js";

const BATCH = 64;
const REPORT_MS = 1000;
/** Updates with more peer changes than this are logged as one line (each peer at debug level). */
const VERBOSE_UPDATE = 32;
/** CNI error codes for calls that arrive while the agent is starting: "try again later", and STATUS's "not available". */
const CODE_TRY_AGAIN = 11;
const CODE_NOT_AVAILABLE = 50;

/** Thrown out of start() when a stop was asked for meanwhile. */
class StartAborted extends Error {
  constructor() {
    super("stopped while starting");
  }
}

export interface AgentStatus {
  ready: boolean;
  nodeName: string;
  subnet: string;
  subnetV6?: string;
  publicIP: string;
  port: number;
  vni: number;
  vtepMAC: string;
  device: string;
  mtu: number;
  offloads: { tun: string; udpSegment: boolean; udpGro: boolean };
  /** Outer UDP source ports flows are spread over (first, last). */
  sourcePorts: [number, number];
  /** What each TUN queue's worker has taken in: how the kernel spread the flows over the queues. */
  queues: { queue: number; txPacketsIn: number; rxDatagramsIn: number }[];
  /** `live`: both dataplane workers have the peer's routes and address. */
  peers: (PeerEntry & { live: boolean; txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; lastSeen: string | null })[];
  /** Node records that are not peers, and why. */
  refused: Refusal[];
  counters: Record<string, number>;
}

/** Everything the agent opened, so shutdown can undo it in reverse. */
class Agent {
  private registry?: Registry;
  private record?: NodeRecord;
  private tun?: TunDevice;
  /** weft0 as openDevice() found it: configureDevice() adopts it, abandon() removes it when this start created it. */
  private overlay?: OverlayTun;
  /** Queue 0's socket on the VXLAN port (what status reports about the underlay socket). */
  private udp?: UdpSocket;
  private sockets?: QueueSockets;
  private dataplane?: Dataplane;
  private peers?: PeerIndex;
  private api?: ApiServer;
  private cni?: ReturnType<typeof createCniService>;
  private metricsServer?: MetricsServer;
  private readonly metrics = new WeftMetrics();
  private readonly lastSeen = new Map<number, { rx: number; at: number }>();
  private readonly seenBatches = { tx: [] as number[], rx: [] as number[] };
  private mtu = 0;
  private ready = false;
  /** What start() is doing, for calls that arrive before it is done. */
  private phase = "checking local resources";
  private readonly aborted = new AbortController();
  /** What start() published, as undo steps for abandon(); emptied once the agent is ready. */
  private unpublish: (() => void | Promise<void>)[] = [];
  /** Directories start() created, for abandon() to remove again. */
  private readonly madeDirectories: string[][] = [];

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly onFatal: (err: Error) => void,
  ) {}

  /**
   * Local resources first, each checked or bound before anything is published, so a refusal (naming its key) leaves the
   * registry and the files as they were; then the record is published and the device configured. A failure after the
   * record went out is rolled back by abandon(). The order is docs/agent.md's "Start-up".
   */
  async start(): Promise<void> {
    const c = this.config;
    this.madeDirectories.push(checkStateDir(c.stateDir));
    this.api = await startApiServer(c.socket, {
      status: () => this.status(),
      peers: () => this.peerSummary(),
      cni: (req) => this.handleCni(req),
    }, {}, (req, seconds) => {
      if (req.op === "cni") this.metrics.observeCniRequest((req.env as Record<string, unknown> | undefined)?.CNI_COMMAND, seconds);
    });
    this.checkpoint();
    this.metricsServer = await naming("metrics", `cannot listen on ${c.metrics.host}:${c.metrics.port}`, "a free host:port for /metrics",
      () => startMetricsServer(this.metrics, c.metrics, { healthy: () => this.ready }));
    this.checkpoint();
    this.phase = `waiting for publicIP ${c.publicIP}`;
    const underlay = await awaitUnderlay(c, this.log, this.aborted.signal);
    this.checkpoint();
    this.mtu = underlay.overlayMtu;
    this.sockets = await openQueueSockets(c, this.log);
    this.udp = this.sockets.rx[0];
    await this.openDevice();

    this.phase = "publishing the node record";
    this.registry = await createRegistry(c, this.log);
    // Another node holds our subnet now: forwarding on would put two nodes on one subnet.
    this.registry.on("lost", (err) => this.onFatal(err));
    await this.registry.start();
    this.checkpoint();
    const registry = this.registry;
    const previous = registry.list().find((r) => r.nodeName === c.nodeName);
    this.unpublish.push(preserveFile(leaseFile(c.stateDir)));
    this.unpublish.push(() => (previous ? registry.upsertSelf(previous) : registry.removeSelf()));
    this.record = await acquireLease(c, registry, this.log);
    this.checkpoint();
    this.log.info({ subnet: this.record.subnet, subnetV6: this.record.subnetV6, vtepMAC: c.vtepMAC }, "subnet leased");

    this.phase = "starting the dataplane";
    this.configureDevice();
    this.dataplane = new Dataplane();
    // A worker that stopped leaves the node without an overlay: exit non-zero so the supervisor restarts the agent.
    this.dataplane.on("error", (err: Error) => {
      this.log.error({ err: err.message }, "dataplane worker failed");
      this.onFatal(new Error(`dataplane failed: ${err.message}`));
    });
    this.dataplane.on("report", () => this.absorbReport());
    this.metrics.beforeScrape(() => this.refreshMetrics());
    this.dataplane.on("warning", (err: Error) => this.log.warn({ err: err.message }, "dataplane worker"));
    const identity = {
      vni: c.vni,
      mtu: this.mtu,
      vtepMAC: c.vtepMAC,
      vnetHdr: this.tun!.vnetHdr,
      udpSuperPackets: this.tun!.offloads.uso4 && this.tun!.offloads.uso6,
      subnet4: this.record.subnet,
      subnet6: this.record.subnetV6,
      icmpSource4: nthAddress(parseCIDR(this.record.subnet), 0),
      icmpSource6: this.record.subnetV6 ? nthAddress(parseCIDR(this.record.subnetV6), 0) : undefined,
      sourcePortBase: this.sockets!.sourcePortBase,
      sourcePortCount: this.sockets!.tx[0].length,
    };
    const sockets = this.sockets!;
    await this.dataplane.start(this.tun!.queueFds.map((tunFd, queue) => ({
      queue,
      tunFd,
      udpFd: sockets.rx[queue].fd,
      txFds: sockets.tx[queue].map((u) => u.fd),
      udpFamily: this.udp!.family,
      peerPort: c.port,
      gso: sockets.tx[queue][0].gso,
      gro: sockets.rx[queue].gro,
      identity,
      maxPeers: c.maxPeers,
      batch: BATCH,
      reportMs: REPORT_MS,
    })));
    this.checkpoint();
    this.followRegistry();
    this.unpublish.push(preserveFile(subnetEnvPath(c.socket)));
    writeSubnetEnv(c, this.record, this.mtu);
    this.metrics.setInfo({ node: c.nodeName, subnet: this.record.subnet, vtepMAC: c.vtepMAC, version: buildInfo().id });
    this.metrics.setOffload({ [this.tun!.mode]: true, udp_segment: this.udp!.gso, udp_gro: this.udp!.gro });
    this.cni = createCniService({
      subnet: this.record.subnet,
      subnetV6: this.record.subnetV6,
      mtu: this.mtu,
      stateDir: c.stateDir,
      log: this.log.child({ part: "cni" }),
      ready: () => this.ready,
    });
    this.ready = true;
    this.unpublish = [];
    this.log.info({ device: this.tun!.name, queues: this.tun!.queueFds.length, mode: this.tun!.mode, udpSegment: this.udp!.gso, udpGro: this.udp!.gro, mtu: this.mtu,
      underlay: underlay.name, metrics: this.metricsServer.address, socket: c.socket }, "weft agent ready");
  }

  get stopRequested(): boolean {
    return this.aborted.signal.aborted;
  }

  /** A stop asked for while start() waits: start goes no further than the step it is in. */
  private checkpoint(): void {
    if (this.aborted.signal.aborted) throw new StartAborted();
  }

  /** Undoes a start that failed: the record and files it published put back as they were, then everything closed. */
  async abandon(): Promise<void> {
    for (const undo of this.unpublish.reverse()) {
      try {
        await undo();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "rolling back a failed start");
      }
    }
    this.unpublish = [];
    await this.stop();
    // A weft0 this start created goes with it; one it adopted stays for the Pods and the next agent.
    if (this.overlay && !this.overlay.existing) {
      try {
        removeOverlayDevice(this.config.device);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "removing the device of a failed start");
      }
    }
    for (const made of this.madeDirectories.reverse()) removeDirectories(made);
  }

  private handleCni(req: Record<string, unknown>): Promise<unknown> {
    if (!this.cni) {
      const status = (req.env as Record<string, unknown> | undefined)?.CNI_COMMAND === "STATUS";
      throw new ApiError(status ? CODE_NOT_AVAILABLE : CODE_TRY_AGAIN, `weft agent is starting (${this.phase})`);
    }
    return this.cni.handle(cniRequest(req));
  }

  /**
   * The TUN device, attached before the record goes out: a name the kernel refuses (or another process holds) names
   * `device`. It is persistent: a previous agent's weft0 is re-attached to (docs/restarts.md).
   */
  private async openDevice(): Promise<void> {
    const c = this.config;
    this.overlay = await naming("device", `cannot create TUN device ${JSON.stringify(c.device)}`,
      "a free interface name, or a TUN device no other process holds",
      () => openOverlayTun(c.device, c.queues));
    this.tun = this.overlay.tun;
    this.tun.setNonBlocking(true);
    if (this.overlay.recreated) this.log.warn({ device: c.device }, "the existing device was single-queue: made it again as a multi-queue device");
    if (this.tun.mode !== "vnet+tso+uso") this.log.warn({ mode: this.tun.mode }, "TUN offloads refused by the kernel; running with fewer");
  }

  /** weft0's MTU, address <subnet>.0, the cluster route and its blackhole, forwarding: what needs the leased subnet. */
  private configureDevice(): void {
    configureOverlayDevice(this.overlay!, this.config, this.record!, this.mtu, this.log);
    enableForwarding(this.log, !!this.config.clusterCIDRv6);
  }

  /**
   * Registry events go through the peer index (which checks every record) and reach the workers as one update per burst:
   * a file re-read, an etcd watch response or a re-list after a watch gap all arrive as synchronous runs of events.
   */
  private followRegistry(): void {
    const registry = this.registry!;
    const peers = new PeerIndex({
      self: this.record!,
      underlayFamily: this.udp!.family,
      maxPeers: this.config.maxPeers,
      log: this.log,
      onRefused: (r) => this.metrics.countRefusal(r.reason),
    });
    this.peers = peers;
    let scheduled = false;
    const changed = () => {
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(() => {
        scheduled = false;
        this.applyPeerChanges();
      });
    };
    registry.on("added", (rec) => (peers.upsert(rec), changed()));
    registry.on("changed", (rec) => (peers.upsert(rec), changed()));
    registry.on("removed", (rec) => (peers.remove(rec.nodeName), changed()));
    for (const rec of registry.list()) peers.upsert(rec);
    this.applyPeerChanges();
  }

  private applyPeerChanges(): void {
    const changes = this.peers!.takeChanges();
    if (!changes) return;
    const dataplane = this.dataplane!;
    const level = changes.set.length + changes.remove.length <= VERBOSE_UPDATE ? "info" : "debug";
    for (const index of changes.remove) {
      this.log[level]({ peer: dataplane.peer(index)?.nodeName, index }, "peer removed");
      this.lastSeen.delete(index);
    }
    for (const p of changes.set) {
      const before = dataplane.peer(p.index);
      if (before?.nodeName !== p.nodeName) this.lastSeen.delete(p.index);
      this.log[level]({ peer: p.nodeName, publicIP: p.address, subnet: p.subnet, index: p.index }, before?.nodeName === p.nodeName ? "peer changed" : "peer set");
    }
    if (level === "debug") this.log.info({ set: changes.set.length, removed: changes.remove.length, peers: this.peers!.entries().length }, "peers updated");
    dataplane.applyPeers(changes);
  }

  /** A worker reported: note which peers were heard from, and the batch sizes. Per-peer metrics wait for a scrape. */
  private absorbReport(): void {
    const dataplane = this.dataplane!;
    const stats = dataplane.stats(false);
    const now = Date.now();
    for (const p of this.peers!.entries()) {
      const rx = dataplane.peerTotals(p.index).rxPackets;
      const seen = this.lastSeen.get(p.index);
      if (!seen || rx > seen.rx) this.lastSeen.set(p.index, { rx, at: rx > 0 ? now : 0 });
    }
    for (const dir of ["tx", "rx"] as const) {
      const now = stats.batches[dir];
      const before = this.seenBatches[dir];
      now.forEach((count, b) => {
        const delta = count - (before[b] ?? 0);
        if (delta > 0) this.metrics.observeBatch(dir, BATCH_BUCKETS[Math.min(b, BATCH_BUCKETS.length - 1)], delta);
      });
      this.seenBatches[dir] = now;
    }
  }

  /** Brings the per-peer and refusal metrics up to date; runs when /metrics is scraped. */
  private refreshMetrics(): void {
    const dataplane = this.dataplane;
    const peers = this.peers;
    if (!dataplane || !peers) return;
    const stats = dataplane.stats(true);
    const traffic = peers.entries().map((p) => ({ nodeName: p.nodeName, ...(stats.peers.get(p.index) ?? dataplane.peerTotals(p.index)) }));
    this.metrics.updateFromCounters(stats.counters, traffic);
    this.metrics.updateQueues(stats.queues);
    const refused: Record<string, number> = {};
    for (const r of peers.refusals()) refused[r.reason] = (refused[r.reason] ?? 0) + 1;
    this.metrics.setRefused(refused);
  }

  status(): AgentStatus {
    const c = this.config;
    if (!this.record || !this.tun || !this.udp) throw new ApiError(CODE_TRY_AGAIN, `weft agent is starting (${this.phase})`);
    const stats = this.dataplane?.stats();
    return {
      ready: this.ready,
      nodeName: c.nodeName,
      subnet: this.record.subnet,
      subnetV6: this.record.subnetV6,
      publicIP: c.publicIP,
      port: c.port,
      vni: c.vni,
      vtepMAC: c.vtepMAC,
      device: this.tun.name,
      mtu: this.mtu,
      offloads: { tun: this.tun.mode, udpSegment: this.sockets?.tx[0][0].gso ?? false, udpGro: this.udp.gro },
      sourcePorts: [this.sockets?.sourcePortBase ?? 0, (this.sockets?.sourcePortBase ?? 0) + (this.sockets?.tx[0].length ?? 1) - 1],
      queues: (stats?.queues ?? []).map((q, queue) => ({ queue, txPacketsIn: q.tx_packets_in ?? 0, rxDatagramsIn: q.rx_datagrams_in ?? 0 })),
      peers: (this.peers?.entries() ?? []).map((p) => {
        const t = stats?.peers.get(p.index) ?? { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
        const seen = this.lastSeen.get(p.index)?.at;
        return { ...p, live: this.dataplane?.isLive(p.index) ?? false, ...t, lastSeen: seen ? new Date(seen).toISOString() : null };
      }),
      refused: this.peers?.refusals() ?? [],
      counters: stats?.counters ?? {},
    };
  }

  /** How many peers there are, how many both workers have applied, and how many records are refused: cheap to poll. */
  peerSummary(): { peers: number; live: number; refused: number } {
    const entries = this.peers?.entries() ?? [];
    return { peers: entries.length, live: entries.filter((p) => this.dataplane?.isLive(p.index)).length, refused: this.peers?.refusals().length ?? 0 };
  }

  /**
   * Undo in reverse, except weft0: it is persistent and keeps its address and routes, so Pods keep their wiring and the
   * next agent adopts the device (docs/restarts.md); `weft uninstall` removes it.
   */
  async stop(): Promise<void> {
    this.ready = false;
    this.aborted.abort();
    await this.cni?.close();
    await this.dataplane?.stop();
    this.tun?.close();
    if (this.sockets) closeQueueSockets(this.sockets);
    await this.api?.close();
    await this.metricsServer?.close();
    await this.registry?.close();
  }
}

/** The front end's request: `env` (the CNI_* variables that were set) and `stdin`, both checked to be strings. */
function cniRequest(req: Record<string, unknown>): { env: Record<string, string>; stdin: string } {
  const env: Record<string, string> = {};
  if (typeof req.env === "object" && req.env !== null) {
    for (const [k, v] of Object.entries(req.env)) if (k.startsWith("CNI_") && typeof v === "string") env[k] = v;
  }
  return { env, stdin: typeof req.stdin === "string" ? req.stdin : "" };
}

/** Pods are routed by this node: forwarding must be on (flannel leaves it to the operator; we say what we change). */
function enableForwarding(log: Logger, v6: boolean): void {
  const knobs = [sysctlPath("net/ipv4/ip_forward"), ...(v6 ? [sysctlPath("net/ipv6/conf/all/forwarding")] : [])];
  for (const knob of knobs) {
    if (readFileSync(knob, "utf8").trim() === "1") continue;
    writeFileSync(knob, "1");
    log.info({ knob }, "enabled IP forwarding");
  }
}

export async function runAgent(file: string | undefined, flags: Record<string, string | undefined>): Promise<number> {
  const log = createLogger({ name: "weft-agent", level: (process.env.WEFT_LOG_LEVEL ?? "info") as "info" });
  let config: AgentConfig;
  try {
    config = loadAgentConfig(file, flags);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  log.info({ version: buildInfo().id, node: config.nodeName }, "weft agent starting");
  let fatal: (err: Error) => void = () => undefined;
  const agent = new Agent(config, log, (err) => fatal(err));
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (reason: string, code: number) => {
      if (stopping) return;
      stopping = true;
      log.info({ reason }, "shutting down");
      agent.stop().then(() => resolve(code), (err) => {
        log.error({ err: (err as Error).message }, "shutdown failed");
        resolve(1);
      });
    };
    process.on("SIGTERM", () => stop("SIGTERM", 0));
    process.on("SIGINT", () => stop("SIGINT", 0));
    fatal = (err) => stop(err.message, 1);
  });
  try {
    await agent.start();
  } catch (err) {
    // A signal during start: the stop it triggered decides the exit code.
    if (agent.stopRequested) return stopped;
    const message = (err as Error).message;
    log.error({ err: message }, "agent failed to start");
    console.error(`weft agent: ${message}`);
    await agent.abandon().catch((e) => log.error({ err: (e as Error).message }, "cleaning up after a failed start failed"));
    return err instanceof ConfigError ? 2 : 1;
  }
  return stopped;
}
