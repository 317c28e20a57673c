// One queue's two packet paths, each one batch per call, syscalls reading and writing WASM linear memory directly:
//   tx: TUN queue → one batched read until empty (≤ batch) → core.encap → one sendmmsg per source-port socket
//       (UDP_SEGMENT per group) → ICMP errors back to the TUN queue in one batched write
//   rx: UDP socket → one recvmmsg (UDP_GRO) → core.decap → one batched writev per (super-)packet to the TUN queue
// Nothing is copied: TUN reads leave headroom for the headers, and sends and writes gather from the iovecs the core
// writes (docs/architecture.md, zero copy). JS touches only descriptors, once per message or group.
import { Core, IOVEC, RX_MSG, SLOT_SIZE, TX_GROUP, TX_HEADROOM } from "../core/index.js";
import { readPackets, writeFailures, writePackets } from "../sys/batchio.js";
import { MSG_DONTWAIT, nativeBase } from "../sys/libc.js";
import { type IovecList, MsgBatch } from "../sys/msgbatch.js";
import { BATCH_BUCKETS } from "./buckets.js";
import type { WorkerInit } from "./protocol.js";

/** Failures of the syscalls around the core, reported with its counters. */
export interface IoCounters {
  tx_send_errors: number;
  tx_send_stalls: number;
  tx_tun_write_errors: number;
  rx_tun_write_errors: number;
}

interface SendQueue {
  fd: number;
  batch: MsgBatch;
}

export class QueuePaths {
  readonly io: IoCounters = { tx_send_errors: 0, tx_send_stalls: 0, tx_tun_write_errors: 0, rx_tun_write_errors: 0 };
  /** Batch sizes seen, in BATCH_BUCKETS (+ one overflow bucket). */
  readonly histogram = { tx: new Array<number>(BATCH_BUCKETS.length + 1).fill(0), rx: new Array<number>(BATCH_BUCKETS.length + 1).fill(0) };
  /** RX: one entry per slot. */
  private readonly msgs: MsgBatch;
  /** TX: one batch per source-port socket, each with room for the groups of a full batch (two per 64 KiB super-packet). */
  private readonly sends: SendQueue[];
  private readonly sportBase: number;
  /** Names the queue in a read error (made once: the packet loop builds no strings). */
  private readonly tunName: string;
  private buffer: ArrayBuffer | null = null;
  private base = 0;
  /** The iovecs of the group being queued (one object, rewritten per group). */
  private readonly groupIovs: IovecList = { address: 0, view: new DataView(new ArrayBuffer(0)), at: 0, count: 0 };

  /** `destination(index)` is the sockaddr of the peer at that index, or undefined when it is gone. */
  constructor(private readonly init: WorkerInit, private readonly core: Core,
    private readonly destination: (index: number) => Uint8Array | undefined) {
    this.msgs = new MsgBatch({ capacity: init.batch, expandSegments: false });
    this.sends = init.txFds.map((fd) => ({ fd, batch: new MsgBatch({ capacity: init.batch * 4, expandSegments: !init.gso }) }));
    this.sportBase = init.identity.sourcePortBase ?? 0;
    this.tunName = `TUN queue ${init.queue}`;
    this.refresh();
  }

  /** Route inserts may grow WASM memory, which moves it: re-derive native addresses and re-arm the receive slots. */
  refresh(): void {
    const buffer = this.core.memory.buffer;
    if (buffer === this.buffer) return;
    this.buffer = buffer;
    this.base = nativeBase(buffer);
    this.core.setNativeBase(this.base);
    for (let i = 0; i < this.init.batch; i++) this.msgs.setBuffer(i, this.base + this.core.at.rxIn + i * SLOT_SIZE, SLOT_SIZE);
  }

  /** TUN → UDP: one batch; returns the packets read. */
  tx(): number {
    const { core, init, base, groupIovs } = this;
    const n = readPackets(init.tunFd, base + core.at.txIn, SLOT_SIZE, TX_HEADROOM, base + core.at.txInLen, init.batch, this.tunName);
    if (n === 0) return 0;
    record(this.histogram.tx, n);
    const groups = core.exports.encap(n);
    const view = core.view;
    groupIovs.view = view;
    for (let g = 0; g < groups; g++) {
      const d = core.at.txGroups + g * TX_GROUP.STRIDE;
      const dest = this.destination(view.getUint16(d + TX_GROUP.PEER, true));
      if (!dest) continue;
      groupIovs.at = core.at.txIov + view.getUint32(d + TX_GROUP.IOV, true) * IOVEC.STRIDE;
      groupIovs.address = base + groupIovs.at;
      groupIovs.count = view.getUint32(d + TX_GROUP.IOV_COUNT, true);
      const segSize = view.getUint16(d + TX_GROUP.SEG_COUNT, true) > 1 ? view.getUint16(d + TX_GROUP.SEG_SIZE, true) : 0;
      const out = this.sends[(view.getUint16(d + TX_GROUP.SPORT, true) - this.sportBase) % this.sends.length];
      // A batch of 64 super-packets makes ~128 groups: send each full sendmmsg and go on.
      if (!out.batch.addIov(dest, groupIovs, segSize)) {
        this.send(out);
        out.batch.addIov(dest, groupIovs, segSize);
      }
    }
    for (const out of this.sends) this.send(out);
    const replies = core.exports.txReplyCount();
    if (replies > 0) {
      writePackets(init.tunFd, base + core.at.txReplyIov, base + core.at.txReplyCounts, replies);
      this.io.tx_tun_write_errors += writeFailures.count;
    }
    return n;
  }

  /** One sendmmsg for what a socket's batch holds. */
  private send(out: SendQueue): void {
    const b = out.batch;
    if (b.count === 0) return;
    // A refused entry (EMSGSIZE, ENETUNREACH…) is skipped by sendBatch and counted here; a socket that stays full past the
    // wait drops the rest of the batch, like a full qdisc would.
    if (b.sendBatch(out.fd) < b.count) this.io.tx_send_stalls++;
    this.io.tx_send_errors += b.failed;
    b.clear();
  }

  /** UDP → TUN: one batch; returns the messages received. */
  rx(): number {
    const { core, init, base, msgs } = this;
    const m = msgs.recvBatch(init.udpFd, init.batch, MSG_DONTWAIT);
    if (m === 0) return 0;
    record(this.histogram.rx, m);
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
    this.io.rx_tun_write_errors += writeFailures.count;
    return m;
  }
}

function record(histogram: number[], n: number): void {
  let b = 0;
  while (b < BATCH_BUCKETS.length && n > BATCH_BUCKETS[b]) b++;
  histogram[b]++;
}
