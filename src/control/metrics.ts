// Prometheus metrics of the agent (weft_*), fed with plain numbers by the agent, and the small HTTP server that serves them.
// The core's counters are cumulative (they only grow while a core lives), so each update rewrites the Prometheus counters
// to the new totals instead of adding to them; a peer or reason that disappears disappears from the output too.
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { buildInfo } from "./version.js";

/** One peer's traffic, cumulative, as the core counts it (core.peerCounters) plus the peer's nodeName. */
export interface PeerTraffic {
  nodeName: string;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}

export interface NodeInfo {
  node: string;
  subnet: string;
  vtepMAC: string;
  /** Defaults to this build's id, as `weft --version` prints it. */
  version?: string;
}

export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/** From a fraction of a millisecond (an ADD served from memory and one batch per namespace) to a slow delegated IPAM. */
export const CNI_SECONDS_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];
const CNI_COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"] as const;

export class WeftMetrics {
  readonly registry = new Registry();
  private readonly peerTx = this.counter("weft_peer_tx_packets_total", "VXLAN datagrams sent to a peer", ["peer"]);
  private readonly peerTxBytes = this.counter("weft_peer_tx_bytes_total", "Bytes sent to a peer (UDP payload)", ["peer"]);
  private readonly peerRx = this.counter("weft_peer_rx_packets_total", "VXLAN datagrams received from a peer", ["peer"]);
  private readonly peerRxBytes = this.counter("weft_peer_rx_bytes_total", "Bytes received from a peer (UDP payload)", ["peer"]);
  private readonly drops = this.counter("weft_drops_total", "Packets dropped by the packet core, by direction and reason", ["direction", "reason"]);
  private readonly events = this.counter("weft_core_events_total", "The packet core's other counters (packets in/out, GSO splits, GRO merges...)", ["event"]);
  private readonly peers = new Gauge({ name: "weft_peers", help: "Peers known to the dataplane", registers: [this.registry] });
  private readonly queuePackets = this.counter("weft_queue_packets_total",
    "Packets each TUN queue's worker took in: direction tx = read from its TUN queue, rx = datagrams from its UDP socket", ["queue", "direction"]);
  private readonly refusals = this.counter("weft_peer_records_refused_total", "Node records refused as peers, by reason (each refusal counted once, not on every re-list)", ["reason"]);
  private readonly refusedNow = new Gauge({ name: "weft_peer_records_refused_current", help: "Node records refused as peers right now, by reason", labelNames: ["reason"], registers: [this.registry] });
  private readonly offload = new Gauge({ name: "weft_offload", help: "1 when the offload mode is on, 0 when off", labelNames: ["mode"], registers: [this.registry] });
  private readonly info = new Gauge({ name: "weft_info", help: "This node: always 1, the facts are the labels", labelNames: ["node", "subnet", "vtep_mac", "version"], registers: [this.registry] });
  private readonly batches = new Histogram({
    name: "weft_batch_size",
    help: "Packets (TX: TUN reads, RX: UDP datagrams) per core batch",
    labelNames: ["direction"],
    buckets: BATCH_SIZE_BUCKETS,
    registers: [this.registry],
  });

  private readonly cniRequests = new Histogram({
    name: "weft_cni_request_duration_seconds",
    help: "CNI calls the agent served, from the request's first bytes read off the socket to the reply handed to the kernel",
    labelNames: ["command"],
    buckets: CNI_SECONDS_BUCKETS,
    registers: [this.registry],
  });

  private refresh?: () => void;

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "weft_" });
  }

  /**
   * Totals from the core: `counters` is the core's cumulative counter object (summed over workers), `peers` the per-peer
   * totals. Counters named `<dir>_drop_<reason>` become weft_drops_total{direction,reason}; the others
   * weft_core_events_total{event}.
   */
  updateFromCounters(counters: Record<string, number>, peers: readonly PeerTraffic[]): void {
    this.drops.reset();
    this.events.reset();
    for (const [name, value] of Object.entries(counters)) {
      const drop = /^([a-z]+)_drop_(.+)$/.exec(name);
      if (drop) this.drops.inc({ direction: drop[1], reason: drop[2] }, value);
      else this.events.inc({ event: name }, value);
    }
    for (const c of [this.peerTx, this.peerTxBytes, this.peerRx, this.peerRxBytes]) c.reset();
    for (const p of peers) {
      this.peerTx.inc({ peer: p.nodeName }, p.txPackets);
      this.peerTxBytes.inc({ peer: p.nodeName }, p.txBytes);
      this.peerRx.inc({ peer: p.nodeName }, p.rxPackets);
      this.peerRxBytes.inc({ peer: p.nodeName }, p.rxBytes);
    }
    this.peers.set(peers.length);
  }

  /** Each queue's intake, from its worker's counters (queue number = index). */
  updateQueues(queues: readonly Record<string, number>[]): void {
    this.queuePackets.reset();
    queues.forEach((q, queue) => {
      this.queuePackets.inc({ queue: String(queue), direction: "tx" }, q.tx_packets_in ?? 0);
      this.queuePackets.inc({ queue: String(queue), direction: "rx" }, q.rx_datagrams_in ?? 0);
    });
  }

  /** A node record was refused as a peer (docs/agent.md lists the reasons). */
  countRefusal(reason: string): void {
    this.refusals.inc({ reason });
  }

  /** How many records are refused right now, by reason; reasons not named drop out. */
  setRefused(byReason: Record<string, number>): void {
    this.refusedNow.reset();
    for (const [reason, n] of Object.entries(byReason)) this.refusedNow.set({ reason }, n);
  }

  /** Records `times` batches of `size` packets. */
  observeBatch(direction: "tx" | "rx", size: number, times = 1): void {
    for (let i = 0; i < times; i++) this.batches.observe({ direction }, size);
  }

  /** A CNI call served in `seconds`; a command that is none of the spec's counts as "invalid" (the label set stays small). */
  observeCniRequest(command: unknown, seconds: number): void {
    const known = typeof command === "string" && (CNI_COMMANDS as readonly string[]).includes(command);
    this.cniRequests.observe({ command: known ? command : "invalid" }, seconds);
  }

  /** e.g. { vnet_hdr: true, tso: true, udp_segment: true, udp_gro: false }; modes not named are dropped. */
  setOffload(modes: Record<string, boolean>): void {
    this.offload.reset();
    for (const [mode, on] of Object.entries(modes)) this.offload.set({ mode }, on ? 1 : 0);
  }

  setInfo(info: NodeInfo): void {
    this.info.reset();
    this.info.set({ node: info.node, subnet: info.subnet, vtep_mac: info.vtepMAC, version: info.version ?? buildInfo().id }, 1);
  }

  /**
   * `refresh` runs before every exposition: values that cost work per peer (thousands of them) are brought up to date when
   * someone reads them, not on every worker report.
   */
  beforeScrape(refresh: () => void): void {
    this.refresh = refresh;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    this.refresh?.();
    return this.registry.metrics();
  }

  private counter(name: string, help: string, labelNames: string[]): Counter<string> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
}

export interface MetricsServer {
  /** Where it listens (the real port when 0 was asked for). */
  address: { host: string; port: number };
  close(): Promise<void>;
}

/** Serves GET /metrics (Prometheus text) and GET /healthz ("ok", or 503 while `healthy()` says no). */
export async function startMetricsServer(
  metrics: WeftMetrics,
  listen: { host: string; port: number },
  options: { healthy?: () => boolean } = {},
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/healthz") {
      const ok = options.healthy?.() ?? true;
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "not ready\n");
      return;
    }
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics or /healthz\n");
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(body),
      (err: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : listen.port;
  return {
    address: { host: listen.host, port },
    close: () => new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    }),
  };
}
