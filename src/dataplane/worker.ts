// A dataplane worker thread: one TUN queue, one WASM core, one loop serving both directions (docs/architecture.md). It
// blocks in poll on its TUN queue and its UDP socket and otherwise runs batches (paths.ts): a request that arrives from the
// underlay and the reply the kernel hands back on the same queue are handled without waking another thread.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { Core, type PeerOpSpec } from "../core/index.js";
import { POLLIN, PollSet } from "../sys/libc.js";
import { sockaddr } from "../sys/sockaddr.js";
import { QueuePaths } from "./paths.js";
import { PEER_COUNTER_FIELDS, type ControlMessage, type PeerEntry, type PeerUpdate, type WorkerInit, type WorkerMessage } from "./protocol.js";

const POLL_MS = 50;
/** Peers applied between two packet batches. */
const APPLY_CHUNK = 1024;

const { init, control } = workerData as { init: WorkerInit; control: MessagePort };
const post = (m: WorkerMessage) => parentPort!.postMessage(m);

const core = Core.load({ txSlots: init.batch, rxSlots: init.batch, maxPeers: init.maxPeers });
core.configure(init.identity);
const peers = new Map<number, { entry: PeerEntry; dest: Uint8Array }>();
/** The peer each route points at. */
const routeOwner = new Map<string, number>();
/** The last peer update applied. */
let peerSeq = 0;
/** Peer updates received and not yet wholly applied, oldest first; `next` is the first of its `set` still to do. */
const backlog: { update: PeerUpdate; next: number }[] = [];
let running = true;
const paths = new QueuePaths(init, core, (index) => peers.get(index)?.dest);

function routesOf(p: PeerEntry): string[] {
  return [p.subnet, p.subnetV6].filter((r): r is string => r !== undefined);
}

function addRoute(cidr: string, index: number): void {
  (cidr.includes(":") ? core.routes6 : core.routes4).insert(cidr, index);
  routeOwner.set(cidr, index);
}

/** Deletes a route only while it still points at `index`: in one update, a subnet may have moved to another peer. */
function dropRoute(cidr: string, index: number): void {
  if (routeOwner.get(cidr) !== index) return;
  (cidr.includes(":") ? core.routes6 : core.routes4).delete(cidr);
  routeOwner.delete(cidr);
}

/**
 * Applies peer updates between packet batches, at most APPLY_CHUNK peers at a time, so that taking thousands of peers
 * never stops forwarding for long. Each peer's change is applied whole: a changed peer keeps its index and counters
 * (unless another node took the index over); its new routes go in before the old ones that differ come out, so
 * destinations it keeps always have a route. An update's removals go first (they may free addresses its new peers use),
 * and the peer table is written in one core call per chunk. An update counts as applied (peerSeq) when all of it is.
 */
function applyPeerChunk(): void {
  const work = backlog[0];
  const ops: PeerOpSpec[] = [];
  if (work.next === 0) {
    for (const index of work.update.remove) {
      const old = peers.get(index);
      if (!old) continue;
      for (const r of routesOf(old.entry)) dropRoute(r, index);
      peers.delete(index);
      ops.push({ op: "remove", index });
    }
  }
  const end = Math.min(work.update.set.length, work.next + APPLY_CHUNK);
  for (; work.next < end; work.next++) {
    const p = work.update.set[work.next];
    const old = peers.get(p.index);
    try {
      const dest = sockaddr(init.udpFamily, p.address, init.peerPort);
      ops.push({ op: "set", index: p.index, peer: { address: p.address, vtepMAC: p.vtepMAC }, resetCounters: old?.entry.nodeName !== p.nodeName });
      const routes = routesOf(p);
      for (const r of routes) addRoute(r, p.index);
      if (old) for (const r of routesOf(old.entry)) if (!routes.includes(r)) dropRoute(r, p.index);
      peers.set(p.index, { entry: p, dest });
    } catch (err) {
      post({ type: "warning", queue: init.queue, message: `peer ${p.nodeName} (index ${p.index}): ${(err as Error).message}` });
    }
  }
  const ignored = core.applyPeers(ops);
  if (work.next >= work.update.set.length) {
    backlog.shift();
    peerSeq = work.update.seq;
    if (ignored > 0) post({ type: "warning", queue: init.queue, message: `the core left out ${ignored} peer changes (a shared address?)` });
  }
}

function handleControl(): void {
  for (let m = receiveMessageOnPort(control); m; m = receiveMessageOnPort(control)) {
    const msg = m.message as ControlMessage;
    if (msg.type === "peers") backlog.push({ update: msg, next: 0 });
    else if (msg.type === "stop") running = false;
  }
  if (backlog.length === 0) return;
  const seq = peerSeq;
  applyPeerChunk();
  paths.refresh();
  // Tell the main thread at once which peers are live here (status waits on it), not at the next periodic report.
  if (peerSeq !== seq && running) report();
}

function report(): void {
  let top = -1;
  for (const index of peers.keys()) if (index > top) top = index;
  const peerCounters = new BigUint64Array(core.memory.buffer, core.at.peerCounters, (top + 1) * PEER_COUNTER_FIELDS).slice();
  const m: WorkerMessage = {
    type: "report", queue: init.queue, counters: { ...core.counters(), ...paths.io },
    batches: { tx: [...paths.histogram.tx], rx: [...paths.histogram.rx] }, peerCounters, peerSeq,
  };
  parentPort!.postMessage(m, [peerCounters.buffer]);
}

// ---- the loop -----------------------------------------------------------------------------------------------------------

const POLL_TUN = 0;
const POLL_UDP = 1;

function run(): void {
  const poll = new PollSet([init.tunFd, init.udpFd], POLLIN);
  post({ type: "ready", queue: init.queue });
  let nextReport = Date.now() + init.reportMs;
  while (running) {
    if (poll.wait(backlog.length > 0 ? 0 : POLL_MS) > 0) {
      let tx = poll.revents(POLL_TUN) !== 0;
      let rx = poll.revents(POLL_UDP) !== 0;
      while (tx || rx) {
        const read = tx ? paths.tx() : 0;
        const received = rx ? paths.rx() : 0;
        // A full batch leaves more behind; what RX wrote into the TUN queue may have been answered at once (the kernel
        // hands a local reply to the queue that delivered the request): look again there before sleeping.
        tx = read === init.batch || received > 0;
        rx = received === init.batch;
      }
    }
    handleControl();
    const now = Date.now();
    if (now >= nextReport) {
      report();
      nextReport = now + init.reportMs;
    }
  }
  report();
  post({ type: "stopped", queue: init.queue });
}

try {
  handleControl();
  run();
} catch (err) {
  post({ type: "error", queue: init.queue, message: err instanceof Error ? err.message : String(err) });
}
