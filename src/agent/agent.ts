// `weft agent`: the node's overlay. Reads the config, leases a subnet, creates the TUN device and the underlay socket,
// starts the dataplane workers, keeps peers in sync with the registry, and serves status and metrics.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { nthAddress, parseCIDR } from "../net/addr.js";
import { type AgentConfig, ConfigError, loadAgentConfig } from "../control/config.js";
import { acquireLease } from "../control/lease.js";
import { createLogger, type Logger } from "../control/log.js";
import { WeftMetrics, packageVersion, startMetricsServer, type MetricsServer } from "../control/metrics.js";
import { createRegistry, type NodeRecord, type Registry } from "../control/registry/index.js";
import { startApiServer } from "../control/api-server.js";
import { writeSubnetEnv } from "../control/subnet-env.js";
import { Dataplane } from "../dataplane/manager.js";
import type { PeerEntry } from "../dataplane/protocol.js";
import { BATCH_BUCKETS } from "../dataplane/buckets.js";
import { addrAdd, linkSetMtu, linkSetUp, routeAdd, underlayFor } from "../sys/netlink.js";
import { openTun, type TunDevice } from "../sys/tun.js";
import { openUdp, type UdpSocket } from "../sys/udp.js";
import { PeerIndex } from "./peers.js";
import { createCniService } from "../cni/service.js";

const MAX_PEERS = 4096;
/** Sockets (and so outer source ports) flows are spread over; docs/wire.md wants the inner flow's entropy in the source port. */
const SOURCE_PORTS = 8;
const BATCH = 64;
const REPORT_MS = 1000;

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
  /** `live`: both dataplane workers have the peer's routes and address. */
  peers: (PeerEntry & { live: boolean; txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; lastSeen: string | null })[];
  counters: Record<string, number>;
}

/** Everything the agent opened, so shutdown can undo it in reverse. */
class Agent {
  private registry?: Registry;
  private record?: NodeRecord;
  private tun?: TunDevice;
  private udp?: UdpSocket;
  /** TX sockets bound to sourcePortBase + i. */
  private txPool: UdpSocket[] = [];
  private sourcePortBase = 0;
  private dataplane?: Dataplane;
  private peers?: PeerIndex;
  private api?: Server;
  private cni?: ReturnType<typeof createCniService>;
  private metricsServer?: MetricsServer;
  private readonly metrics = new WeftMetrics();
  private readonly lastSeen = new Map<number, { rx: number; at: number }>();
  private readonly seenBatches = { tx: [] as number[], rx: [] as number[] };
  private mtu = 0;
  private ready = false;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly onFatal: (err: Error) => void,
  ) {}

  async start(): Promise<void> {
    const c = this.config;
    this.registry = createRegistry(c, this.log);
    // Another node holds our subnet now: forwarding on would put two nodes on one subnet.
    this.registry.on("lost", (err) => this.onFatal(err));
    await this.registry.start();
    this.record = await acquireLease(c, this.registry, this.log);
    this.log.info({ subnet: this.record.subnet, subnetV6: this.record.subnetV6, vtepMAC: c.vtepMAC }, "subnet leased");

    const underlay = underlayFor(c.publicIP);
    if (!underlay) throw new ConfigError("publicIP", `no interface on this machine has address ${c.publicIP}`, "an address of this node");
    this.mtu = underlay.overlayMtu;
    this.openDevices(underlay.name);
    this.dataplane = new Dataplane();
    // A worker that stopped leaves the node without an overlay: exit non-zero so the supervisor restarts the agent.
    this.dataplane.on("error", (err: Error) => {
      this.log.error({ err: err.message }, "dataplane worker failed");
      this.onFatal(new Error(`dataplane failed: ${err.message}`));
    });
    this.dataplane.on("report", () => this.absorbReport());
    await this.dataplane.start({
      tunFd: this.tun!.fd,
      udpFd: this.udp!.fd,
      txFds: this.txPool.map((u) => u.fd),
      udpFamily: this.udp!.family,
      peerPort: c.port,
      gso: this.txPool[0].gso,
      gro: this.udp!.gro,
      identity: {
        vni: c.vni,
        mtu: this.mtu,
        vtepMAC: c.vtepMAC,
        vnetHdr: this.tun!.vnetHdr,
        subnet4: this.record.subnet,
        subnet6: this.record.subnetV6,
        icmpSource4: nthAddress(parseCIDR(this.record.subnet), 0),
        icmpSource6: this.record.subnetV6 ? nthAddress(parseCIDR(this.record.subnetV6), 0) : undefined,
        sourcePortBase: this.sourcePortBase,
        sourcePortCount: this.txPool.length,
      },
      maxPeers: MAX_PEERS,
      batch: BATCH,
      reportMs: REPORT_MS,
    });
    this.followRegistry();
    writeSubnetEnv(c, this.record, this.mtu);
    this.metrics.setInfo({ node: c.nodeName, subnet: this.record.subnet, vtepMAC: c.vtepMAC, version: packageVersion() });
    this.metrics.setOffload({ [this.tun!.mode]: true, udp_segment: this.udp!.gso, udp_gro: this.udp!.gro });
    this.metricsServer = await startMetricsServer(this.metrics, c.metrics, { healthy: () => this.ready });
    this.cni = createCniService({
      subnet: this.record.subnet,
      subnetV6: this.record.subnetV6,
      mtu: this.mtu,
      stateDir: c.stateDir,
      log: this.log.child({ part: "cni" }),
      ready: () => this.ready,
    });
    this.api = await startApiServer(c.socket, {
      status: () => this.status(),
      cni: (req) => this.cni!.handle(cniRequest(req)),
    });
    this.ready = true;
    this.log.info({ device: this.tun!.name, mode: this.tun!.mode, udpSegment: this.udp!.gso, udpGro: this.udp!.gro, mtu: this.mtu,
      underlay: underlay.name, metrics: this.metricsServer.address, socket: c.socket }, "weft agent ready");
  }

  /** TUN weft0 (address <subnet>.0, the cluster route) and the underlay socket; offloads fall back as the kernel allows. */
  private openDevices(underlayName: string): void {
    const c = this.config;
    const rec = this.record!;
    this.tun = openTun({ name: c.device, vnetHdr: true });
    this.tun.setNonBlocking(true);
    if (this.tun.mode !== "vnet+tso+uso") this.log.warn({ mode: this.tun.mode }, "TUN offloads refused by the kernel; running with fewer");
    linkSetMtu(this.tun.name, this.mtu);
    // Without an IPv6 Pod subnet, IPv6 on weft0 would only send link-local chatter (router solicitations, MLD) that the
    // core must drop as spoofed.
    const ipv6Knob = `/proc/sys/net/ipv6/conf/${this.tun.name}/disable_ipv6`;
    if (!rec.subnetV6 && existsSync(ipv6Knob)) writeFileSync(ipv6Knob, "1");
    addrAdd(this.tun.name, `${nthAddress(parseCIDR(rec.subnet), 0)}/32`);
    if (rec.subnetV6) addrAdd(this.tun.name, `${nthAddress(parseCIDR(rec.subnetV6), 0)}/128`, { nodad: true });
    linkSetUp(this.tun.name);
    routeAdd({ dst: c.clusterCIDR, dev: this.tun.name });
    if (c.clusterCIDRv6) routeAdd({ dst: c.clusterCIDRv6, dev: this.tun.name });
    enableForwarding(this.log, !!c.clusterCIDRv6);
    this.udp = openUdp({ family: c.publicIP.includes(":") ? 6 : 4, address: c.publicIP, port: c.port, gro: true });
    if (!this.udp.gso) this.log.warn("UDP_SEGMENT refused by the kernel: one datagram per message in each sendmmsg");
    if (!this.udp.gro) this.log.warn("UDP_GRO refused by the kernel: one datagram per receive");
    this.log.debug({ underlay: underlayName, sendBuffer: this.udp.sendBufferBytes, recvBuffer: this.udp.recvBufferBytes }, "underlay socket");
    this.openSourcePorts();
  }

  /**
   * SOURCE_PORTS sending sockets on consecutive ports in 49152–65535, starting where a hash of the node name points
   * (stable across restarts), moving on when a port is taken. When no run of free ports is found, everything leaves from
   * the VXLAN port, as flannel's UDP backend does, and the log says so.
   */
  private openSourcePorts(): void {
    const c = this.config;
    const family = this.udp!.family;
    const span = 65536 - 49152 - SOURCE_PORTS;
    const start = createHash("sha256").update(c.nodeName).digest().readUInt32BE(0) % span;
    for (let attempt = 0; attempt < 16; attempt++) {
      const base = 49152 + ((start + attempt * 997) % span);
      const pool: UdpSocket[] = [];
      try {
        for (let i = 0; i < SOURCE_PORTS; i++) pool.push(openUdp({ family, address: c.publicIP, port: base + i, gro: false }));
        this.txPool = pool;
        this.sourcePortBase = base;
        return;
      } catch {
        pool.forEach((u) => u.close());
      }
    }
    this.log.warn({ port: c.port }, "no free run of source ports in 49152-65535: sending every flow from the VXLAN port");
    this.txPool = [this.udp!];
    this.sourcePortBase = c.port;
  }

  private followRegistry(): void {
    const registry = this.registry!;
    this.peers = new PeerIndex(this.record!, this.udp!.family, MAX_PEERS, this.log);
    const add = (rec: NodeRecord) => {
      const entry = this.peers!.admit(rec);
      if (!entry) return;
      this.dataplane!.setPeer(entry);
      this.log.info({ peer: rec.nodeName, publicIP: rec.publicIP, subnet: rec.subnet, index: entry.index }, "peer set");
    };
    const remove = (rec: NodeRecord) => {
      const entry = this.peers!.release(rec.nodeName);
      if (!entry) return;
      this.dataplane!.removePeer(entry);
      this.lastSeen.delete(entry.index);
      this.log.info({ peer: rec.nodeName }, "peer removed");
    };
    registry.on("added", add);
    registry.on("changed", (rec, prev) => {
      remove(prev);
      add(rec);
    });
    registry.on("removed", remove);
    for (const rec of registry.list()) add(rec);
  }

  private absorbReport(): void {
    const stats = this.dataplane!.stats();
    const now = Date.now();
    const traffic = this.peers!.entries().map((p) => {
      const t = stats.peers.get(p.index) ?? { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
      const seen = this.lastSeen.get(p.index);
      if (!seen || t.rxPackets > seen.rx) this.lastSeen.set(p.index, { rx: t.rxPackets, at: t.rxPackets > 0 ? now : 0 });
      return { nodeName: p.nodeName, ...t };
    });
    this.metrics.updateFromCounters(stats.counters, traffic);
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

  status(): AgentStatus {
    const c = this.config;
    const stats = this.dataplane?.stats();
    return {
      ready: this.ready,
      nodeName: c.nodeName,
      subnet: this.record!.subnet,
      subnetV6: this.record!.subnetV6,
      publicIP: c.publicIP,
      port: c.port,
      vni: c.vni,
      vtepMAC: c.vtepMAC,
      device: this.tun!.name,
      mtu: this.mtu,
      offloads: { tun: this.tun!.mode, udpSegment: this.txPool[0]?.gso ?? false, udpGro: this.udp!.gro },
      sourcePorts: [this.sourcePortBase, this.sourcePortBase + this.txPool.length - 1],
      peers: (this.peers?.entries() ?? []).map((p) => {
        const t = stats?.peers.get(p.index) ?? { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
        const seen = this.lastSeen.get(p.index)?.at;
        return { ...p, live: this.dataplane?.isLive(p.index) ?? false, ...t, lastSeen: seen ? new Date(seen).toISOString() : null };
      }),
      counters: stats?.counters ?? {},
    };
  }

  /** Undo in reverse. Closing the TUN fd removes weft0 and, with it, its address and routes. */
  async stop(): Promise<void> {
    this.ready = false;
    await this.cni?.close();
    await this.dataplane?.stop();
    this.tun?.close();
    for (const u of this.txPool) if (u !== this.udp) u.close();
    this.udp?.close();
    await new Promise<void>((res) => (this.api ? this.api.close(() => res()) : res()));
    rmSync(this.config.socket, { force: true });
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
  const knobs = ["/proc/sys/net/ipv4/ip_forward", ...(v6 ? ["/proc/sys/net/ipv6/conf/all/forwarding"] : [])];
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
    const message = (err as Error).message;
    log.error({ err: message }, "agent failed to start");
    console.error(`weft agent: ${message}`);
    await agent.stop().catch(() => undefined);
    return err instanceof ConfigError ? 2 : 1;
  }
  return stopped;
}
