// The main thread's side of the dataplane: starts one TX and one RX worker per TUN queue, tells them about peers, and keeps
// the latest counters they report. Packets never touch this thread.
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { EventEmitter } from "node:events";
import { PEER_COUNTER_FIELDS, type ControlMessage, type PeerEntry, type PeerTotals, type PeerUpdate, type WorkerInit, type WorkerMessage } from "./protocol.js";

const WORKER_URL = new URL("./worker.js", import.meta.url);

interface Running {
  worker: Worker;
  control: MessagePort;
  ready: Promise<void>;
  stopped: Promise<void>;
}

export interface DataplaneStats {
  counters: Record<string, number>;
  peers: Map<number, PeerTotals>;
  /** Packets per batch, recent batches: TX reads per encap, RX messages per decap. */
  batches: { tx: number[]; rx: number[] };
}

export class Dataplane extends EventEmitter {
  private readonly workers: Running[] = [];
  private readonly counters = { tx: {} as Record<string, number>, rx: {} as Record<string, number> };
  private readonly peerCounters: { tx: BigUint64Array; rx: BigUint64Array } = { tx: new BigUint64Array(0), rx: new BigUint64Array(0) };
  private readonly batches = { tx: [] as number[], rx: [] as number[] };
  private readonly peers = new Map<number, PeerEntry>();
  /** The update that last carried each peer, and the last update each worker applied: live = applied by both. */
  private readonly sentIn = new Map<number, number>();
  private readonly appliedSeq = { tx: 0, rx: 0 };
  private seq = 0;

  /** Starts the workers; resolves when both have loaded their cores and begun their loops. */
  async start(common: Omit<WorkerInit, "role">): Promise<void> {
    for (const role of ["tx", "rx"] as const) this.workers.push(this.spawn({ ...common, role }));
    await Promise.all(this.workers.map((w) => w.ready));
  }

  private spawn(init: WorkerInit): Running {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(WORKER_URL, { workerData: { init, control: port2 }, transferList: [port2] });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => ((readyResolve = res), (readyReject = rej)));
    const stopped = new Promise<void>((res) => worker.once("exit", () => res()));
    worker.on("message", (m: WorkerMessage) => {
      if (m.type === "ready") readyResolve();
      else if (m.type === "report") this.absorb(m);
      else if (m.type === "warning") this.emit("warning", new Error(`${m.role} worker: ${m.message}`));
      else if (m.type === "error") {
        readyReject(new Error(`${m.role} worker: ${m.message}`));
        this.emit("error", new Error(`${m.role} worker: ${m.message}`));
      }
    });
    worker.on("error", (err) => {
      readyReject(err);
      this.emit("error", err);
    });
    // Peers known before the worker started are replayed to it.
    if (this.peers.size > 0) port1.postMessage({ type: "peers", seq: this.seq, set: [...this.peers.values()], remove: [] } satisfies ControlMessage);
    return { worker, control: port1, ready, stopped };
  }

  private absorb(m: Extract<WorkerMessage, { type: "report" }>): void {
    this.counters[m.role] = m.counters;
    this.peerCounters[m.role] = m.peerCounters;
    this.batches[m.role] = m.batches;
    this.appliedSeq[m.role] = m.peerSeq;
    this.emit("report", m.role);
  }

  private broadcast(msg: ControlMessage): void {
    for (const w of this.workers) w.control.postMessage(msg);
  }

  /** The peer last sent at `index`. */
  peer(index: number): PeerEntry | undefined {
    return this.peers.get(index);
  }

  /** Sends one update to both workers: peers to set (new or changed, by index) and indexes to free. */
  applyPeers(changes: Omit<PeerUpdate, "seq">): void {
    const seq = ++this.seq;
    for (const index of changes.remove) {
      this.peers.delete(index);
      this.sentIn.delete(index);
    }
    for (const peer of changes.set) {
      this.peers.set(peer.index, peer);
      this.sentIn.set(peer.index, seq);
    }
    this.broadcast({ type: "peers", seq, set: changes.set, remove: changes.remove });
  }

  /** TX counters come from the TX worker's core, RX counters from the RX worker's; per-peer totals when asked for. */
  stats(withPeers = true): DataplaneStats {
    const counters: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.counters.tx)) if (k.startsWith("tx_")) counters[k] = v;
    for (const [k, v] of Object.entries(this.counters.rx)) if (k.startsWith("rx_")) counters[k] = v;
    const peers = new Map<number, PeerTotals>();
    if (withPeers) for (const index of this.peers.keys()) peers.set(index, this.peerTotals(index));
    return { counters, peers, batches: { tx: this.batches.tx, rx: this.batches.rx } };
  }

  /** A peer's traffic: what the TX worker sent to it, what the RX worker took from it (zero before their first report). */
  peerTotals(index: number): PeerTotals {
    const at = index * PEER_COUNTER_FIELDS;
    const tx = this.peerCounters.tx;
    const rx = this.peerCounters.rx;
    const read = (a: BigUint64Array, i: number) => (i < a.length ? Number(a[i]) : 0);
    return { txPackets: read(tx, at), txBytes: read(tx, at + 1), rxPackets: read(rx, at + 2), rxBytes: read(rx, at + 3) };
  }

  /** Whether both workers have applied this peer as last sent. */
  isLive(index: number): boolean {
    const seq = this.sentIn.get(index);
    return seq !== undefined && this.appliedSeq.tx >= seq && this.appliedSeq.rx >= seq;
  }

  async stop(): Promise<void> {
    this.broadcast({ type: "stop" });
    const timeout = new Promise<void>((res) => setTimeout(res, 2000).unref());
    await Promise.race([Promise.all(this.workers.map((w) => w.stopped)), timeout]);
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
