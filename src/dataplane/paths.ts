// One queue's two packet paths, each one batch per call, syscalls reading and writing WASM linear memory directly:
//   tx: TUN queue → read until empty (≤ batch) → core.encap → one sendmmsg per source-port socket (UDP_SEGMENT per group)
//       → ICMP errors back to the TUN queue
//   rx: UDP socket → one recvmmsg (UDP_GRO) → core.decap → one write per (super-)packet to the TUN queue
// JS touches only descriptors, once per message or group.
import { Core, OUT_PKT, RX_MSG, SLOT_SIZE, TX_GROUP } from "../core/index.js";
import { EAGAIN, MSG_DONTWAIT, SysError, lastErrno, libc, nativeBase } from "../sys/libc.js";
import { MsgBatch } from "../sys/msgbatch.js";
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
  private buffer: ArrayBuffer | null = null;
  private base = 0;

  /** `destination(index)` is the sockaddr of the peer at that index, or undefined when it is gone. */
  constructor(private readonly init: WorkerInit, private readonly core: Core,
    private readonly destination: (index: number) => Uint8Array | undefined) {
    this.msgs = new MsgBatch({ capacity: init.batch, expandSegments: false });
    this.sends = init.txFds.map((fd) => ({ fd, batch: new MsgBatch({ capacity: init.batch * 4, expandSegments: !init.gso }) }));
    this.sportBase = init.identity.sourcePortBase ?? 0;
    this.refresh();
  }

  /** Route inserts may grow WASM memory, which moves it: re-derive native addresses and re-arm the receive slots. */
  refresh(): void {
    const buffer = this.core.memory.buffer;
    if (buffer === this.buffer) return;
    this.buffer = buffer;
    this.base = nativeBase(buffer);
    for (let i = 0; i < this.init.batch; i++) this.msgs.setBuffer(i, this.base + this.core.at.rxIn + i * SLOT_SIZE, SLOT_SIZE);
  }

  /** TUN → UDP: one batch; returns the packets read. */
  tx(): number {
    const { core, init, base } = this;
    const view = core.view;
    let n = 0;
    while (n < init.batch) {
      const r = libc.read(init.tunFd, base + core.at.txIn + n * SLOT_SIZE, SLOT_SIZE);
      if (r <= 0) {
        if (r < 0 && lastErrno() !== EAGAIN) throw new SysError("read", lastErrno(), `TUN queue ${init.queue}`);
        break;
      }
      view.setUint32(core.at.txInLen + 4 * n, r, true);
      n++;
    }
    if (n === 0) return 0;
    record(this.histogram.tx, n);
    const groups = core.exports.encap(n);
    for (let g = 0; g < groups; g++) {
      const d = core.at.txGroups + g * TX_GROUP.STRIDE;
      const dest = this.destination(view.getUint16(d + TX_GROUP.PEER, true));
      if (!dest) continue;
      const segCount = view.getUint16(d + TX_GROUP.SEG_COUNT, true);
      const address = base + core.at.txOut + view.getUint32(d + TX_GROUP.OFFSET, true);
      const length = view.getUint32(d + TX_GROUP.LENGTH, true);
      const segSize = segCount > 1 ? view.getUint16(d + TX_GROUP.SEG_SIZE, true) : 0;
      const out = this.sends[(view.getUint16(d + TX_GROUP.SPORT, true) - this.sportBase) % this.sends.length];
      // A batch of 64 super-packets makes ~128 groups: send each full sendmmsg and go on.
      if (!out.batch.add(dest, address, length, segSize)) {
        this.send(out);
        out.batch.add(dest, address, length, segSize);
      }
    }
    for (const out of this.sends) this.send(out);
    const replies = core.exports.txReplyCount();
    for (let k = 0; k < replies; k++) {
      const d = core.at.txReplyDesc + k * OUT_PKT.STRIDE;
      if (libc.write(init.tunFd, base + view.getUint32(d + OUT_PKT.OFFSET, true), view.getUint32(d + OUT_PKT.LENGTH, true)) < 0) {
        this.io.tx_tun_write_errors++;
      }
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
    for (let k = 0; k < out; k++) {
      const d = core.at.rxOutDesc + k * OUT_PKT.STRIDE;
      if (libc.write(init.tunFd, base + view.getUint32(d + OUT_PKT.OFFSET, true), view.getUint32(d + OUT_PKT.LENGTH, true)) < 0) {
        this.io.rx_tun_write_errors++;
      }
    }
    return m;
  }
}

function record(histogram: number[], n: number): void {
  let b = 0;
  while (b < BATCH_BUCKETS.length && n > BATCH_BUCKETS[b]) b++;
  histogram[b]++;
}
