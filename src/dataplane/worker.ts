// A dataplane worker thread: one loop, one WASM core, blocking in poll and otherwise running batches.
//   tx: TUN → one batched read until empty (≤ batch) → core.encap → one sendmmsg (UDP_SEGMENT per group) → ICMP errors back
//   rx: UDP → one recvmmsg (UDP_GRO) → core.decap → one batched writev per (super-)packet to TUN
// Syscalls read and write WASM linear memory directly, gathering from the iovecs the core writes (nothing is copied);
// JS touches only descriptors, once per message or group.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { Core, IOVEC, RX_MSG, SLOT_SIZE, TX_GROUP, TX_HEADROOM, type PeerOpSpec } from "../core/index.js";
import { readPackets, writeFailures, writePackets } from "../sys/batchio.js";
import { MSG_DONTWAIT, POLLIN, nativeBase, pollFd } from "../sys/libc.js";
import { MsgBatch, type IovecList } from "../sys/msgbatch.js";
import { sockaddr } from "../sys/sockaddr.js";
import { BATCH_BUCKETS } from "./buckets.js";
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
const batchHistogram = new Array<number>(BATCH_BUCKETS.length + 1).fill(0);
let base = nativeBase(core.memory.buffer);
let buffer = core.memory.buffer;
core.setNativeBase(base);
let running = true;
/** Failures of the syscalls around the core, reported with its counters. */
const io = { tx_send_errors: 0, tx_send_stalls: 0, rx_tun_write_errors: 0, tx_tun_write_errors: 0 };

/** RX: one entry per slot. */
const msgs = new MsgBatch({ capacity: init.batch, expandSegments: false });
/** TX: one batch per source-port socket, each with room for the groups of a full batch (two per 64 KiB super-packet). */
const sends = init.role === "tx" ? init.txFds.map((fd) => ({ fd, batch: new MsgBatch({ capacity: init.batch * 4, expandSegments: !init.gso }) })) : [];
const sportBase = init.identity.sourcePortBase ?? 0;

/** Route inserts may grow WASM memory, which moves it: re-derive native addresses. */
function refreshBase(): void {
  if (core.memory.buffer === buffer) return;
  buffer = core.memory.buffer;
  base = nativeBase(buffer);
  core.setNativeBase(base);
  if (init.role === "rx") armReceive();
}

function armReceive(): void {
  for (let i = 0; i < init.batch; i++) msgs.setBuffer(i, base + core.at.rxIn + i * SLOT_SIZE, SLOT_SIZE);
}

function recordBatch(n: number): void {
  let b = 0;
  while (b < BATCH_BUCKETS.length && n > BATCH_BUCKETS[b]) b++;
  batchHistogram[b]++;
}

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
      post({ type: "warning", role: init.role, message: `peer ${p.nodeName} (index ${p.index}): ${(err as Error).message}` });
    }
  }
  const ignored = core.applyPeers(ops);
  if (work.next >= work.update.set.length) {
    backlog.shift();
    peerSeq = work.update.seq;
    if (ignored > 0) post({ type: "warning", role: init.role, message: `the core left out ${ignored} peer changes (a shared address?)` });
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
  refreshBase();
  // Tell the main thread at once which peers are live here (status waits on it), not at the next periodic report.
  if (peerSeq !== seq && running) report();
}

function report(): void {
  let top = -1;
  for (const index of peers.keys()) if (index > top) top = index;
  const peerCounters = new BigUint64Array(core.memory.buffer, core.at.peerCounters, (top + 1) * PEER_COUNTER_FIELDS).slice();
  const m: WorkerMessage = { type: "report", role: init.role, counters: { ...core.counters(), ...io }, batches: [...batchHistogram], peerCounters, peerSeq };
  parentPort!.postMessage(m, [peerCounters.buffer]);
}

// ---- TX -----------------------------------------------------------------------------------------------------------------

/** The iovecs of the group being queued (one object, rewritten per group). */
const groupIovs: IovecList = { address: 0, view: core.view, at: 0, count: 0 };

function txBatch(): void {
  const n = readPackets(init.tunFd, base + core.at.txIn, SLOT_SIZE, TX_HEADROOM, base + core.at.txInLen, init.batch);
  if (n === 0) return;
  recordBatch(n);
  const groups = core.exports.encap(n);
  const view = core.view;
  groupIovs.view = view;
  for (let g = 0; g < groups; g++) {
    const d = core.at.txGroups + g * TX_GROUP.STRIDE;
    const peer = peers.get(view.getUint16(d + TX_GROUP.PEER, true));
    if (!peer) continue;
    groupIovs.at = core.at.txIov + view.getUint32(d + TX_GROUP.IOV, true) * IOVEC.STRIDE;
    groupIovs.address = base + groupIovs.at;
    groupIovs.count = view.getUint32(d + TX_GROUP.IOV_COUNT, true);
    const segSize = view.getUint16(d + TX_GROUP.SEG_COUNT, true) > 1 ? view.getUint16(d + TX_GROUP.SEG_SIZE, true) : 0;
    const out = sends[(view.getUint16(d + TX_GROUP.SPORT, true) - sportBase) % sends.length];
    // A batch of 64 super-packets makes ~128 groups: send each full sendmmsg and go on.
    if (!out.batch.addIov(peer.dest, groupIovs, segSize)) {
      send(out);
      out.batch.addIov(peer.dest, groupIovs, segSize);
    }
  }
  for (const out of sends) send(out);
  const replies = core.exports.txReplyCount();
  if (replies > 0) {
    writePackets(init.tunFd, base + core.at.txReplyIov, base + core.at.txReplyCounts, replies);
    io.tx_tun_write_errors += writeFailures.count;
  }
}

/** One sendmmsg for what a socket's batch holds. */
function send(out: { fd: number; batch: MsgBatch }): void {
  const b = out.batch;
  if (b.count === 0) return;
  // A refused entry (EMSGSIZE, ENETUNREACH…) is skipped by sendBatch and counted here; a socket that stays full past the
  // wait drops the rest of the batch, like a full qdisc would.
  if (b.sendBatch(out.fd) < b.count) io.tx_send_stalls++;
  io.tx_send_errors += b.failed;
  b.clear();
}

// ---- RX -----------------------------------------------------------------------------------------------------------------

function rxBatch(): void {
  const m = msgs.recvBatch(init.udpFd, init.batch, MSG_DONTWAIT);
  if (m === 0) return;
  recordBatch(m);
  const view = core.view;
  const u8 = core.u8;
  for (let i = 0; i < m; i++) {
    const d = core.at.rxInDesc + i * RX_MSG.STRIDE;
    view.setUint32(d + RX_MSG.LENGTH, msgs.length(i), true);
    view.setUint32(d + RX_MSG.SEG_SIZE, init.gro ? msgs.segmentSize(i) : 0, true);
    msgs.copySource(i, u8, d + RX_MSG.SRC_ADDR);
  }
  const out = core.exports.decap(m);
  writePackets(init.tunFd, base + core.at.rxIov, base + core.at.rxOutCounts, out);
  io.rx_tun_write_errors += writeFailures.count;
}

// ---- the loop -----------------------------------------------------------------------------------------------------------

function run(): void {
  if (init.role === "rx") armReceive();
  const fd = init.role === "tx" ? init.tunFd : init.udpFd;
  const step = init.role === "tx" ? txBatch : rxBatch;
  post({ type: "ready", role: init.role });
  let nextReport = Date.now() + init.reportMs;
  while (running) {
    if (pollFd(fd, POLLIN, backlog.length > 0 ? 0 : POLL_MS) !== 0) step();
    handleControl();
    const now = Date.now();
    if (now >= nextReport) {
      report();
      nextReport = now + init.reportMs;
    }
  }
  report();
  post({ type: "stopped", role: init.role });
}

try {
  handleControl();
  run();
} catch (err) {
  post({ type: "error", role: init.role, message: err instanceof Error ? err.message : String(err) });
}
