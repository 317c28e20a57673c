// The main thread's side of the dataplane: starts one worker per TUN queue (each serving both directions), tells them
// about peers, and keeps the latest counters they report. Packets never touch this thread.
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

/** What one queue's worker last reported. */
interface QueueReport {
  counters: Record<string, number>;
  peerCounters: BigUint64Array;
  batches: { tx: number[]; rx: number[] };
  peerSeq: number;
}

export interface DataplaneStats {
  /** Summed over the queues. */
  counters: Record<string, number>;
  /** Each queue's own counters, by queue number: how the kernel spread the flows. */
  queues: Record<string, number>[];
  peers: Map<number, PeerTotals>;
  /** Packets per batch, recent batches, summed over the queues: TX reads per encap, RX messages per decap. */
  batches: { tx: number[]; rx: number[] };
}

export class Dataplane extends EventEmitter {
  private readonly workers: Running[] = [];
  private reports: QueueReport[] = [];
  private readonly peers = new Map<number, PeerEntry>();
  /** The update that last carried each peer: live = applied by every queue. */
  private readonly sentIn = new Map<number, number>();
  private seq = 0;

  /** Starts a worker per queue; resolves when all have loaded their cores and begun their loops. */
  async start(queues: readonly WorkerInit[]): Promise<void> {
    this.reports = queues.map(() => ({ counters: {}, peerCounters: new BigUint64Array(0), batches: { tx: [], rx: [] }, peerSeq: 0 }));
    for (const init of queues) this.workers.push(this.spawn(init));
    await Promise.all(this.workers.map((w) => w.ready));
  }

  get queueCount(): number {
    return this.workers.length;
  }

  private spawn(init: WorkerInit): Running {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(WORKER_URL, { workerData: { init, control: port2 }, transferList: [port2] });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => ((readyResolve = res), (readyReject = rej)));
    const stopped = new Promise<void>((res) => worker.once("exit", () => res()));
    const name = `queue ${init.queue} worker`;
    worker.on("message", (m: WorkerMessage) => {
      if (m.type === "ready") readyResolve();
      else if (m.type === "report") this.absorb(m);
      else if (m.type === "warning") this.emit("warning", new Error(`${name}: ${m.message}`));
      else if (m.type === "error") {
        readyReject(new Error(`${name}: ${m.message}`));
        this.emit("error", new Error(`${name}: ${m.message}`));
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
    this.reports[m.queue] = { counters: m.counters, peerCounters: m.peerCounters, batches: m.batches, peerSeq: m.peerSeq };
    this.emit("report", m.queue);
  }

  private broadcast(msg: ControlMessage): void {
    for (const w of this.workers) w.control.postMessage(msg);
  }

  /** The peer last sent at `index`. */
  peer(index: number): PeerEntry | undefined {
    return this.peers.get(index);
  }

  /** Sends one update to every queue: peers to set (new or changed, by index) and indexes to free. */
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

  /** Counters summed over the queues, each queue's own, and per-peer totals when asked for. */
  stats(withPeers = true): DataplaneStats {
    const counters: Record<string, number> = {};
    const batches = { tx: [] as number[], rx: [] as number[] };
    for (const r of this.reports) {
      for (const [k, v] of Object.entries(r.counters)) counters[k] = (counters[k] ?? 0) + v;
      for (const dir of ["tx", "rx"] as const) r.batches[dir].forEach((n, b) => (batches[dir][b] = (batches[dir][b] ?? 0) + n));
    }
    const peers = new Map<number, PeerTotals>();
    if (withPeers) for (const index of this.peers.keys()) peers.set(index, this.peerTotals(index));
    return { counters, queues: this.reports.map((r) => r.counters), peers, batches };
  }

  /** A peer's traffic over all queues (zero before their first report). */
  peerTotals(index: number): PeerTotals {
    const at = index * PEER_COUNTER_FIELDS;
    const sum = (field: number) => {
      let total = 0;
      for (const r of this.reports) if (at + field < r.peerCounters.length) total += Number(r.peerCounters[at + field]);
      return total;
    };
    return { txPackets: sum(0), txBytes: sum(1), rxPackets: sum(2), rxBytes: sum(3) };
  }

  /** Whether every queue has applied this peer as last sent. */
  isLive(index: number): boolean {
    const seq = this.sentIn.get(index);
    return seq !== undefined && this.reports.length > 0 && this.reports.every((r) => r.peerSeq >= seq);
  }

  async stop(): Promise<void> {
    this.broadcast({ type: "stop" });
    const timeout = new Promise<void>((res) => setTimeout(res, 2000).unref());
    await Promise.race([Promise.all(this.workers.map((w) => w.stopped)), timeout]);
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
