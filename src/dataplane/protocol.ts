// Messages between the agent's main thread and its dataplane workers. Control only: packets never cross threads.
import type { Identity } from "../core/index.js";

/**
 * What a queue worker needs to start: its TUN queue, its own sockets, and how to configure its core. One worker serves one
 * TUN queue in both directions (docs/architecture.md): TUN → UDP and UDP → TUN in one loop, one core.
 */
export interface WorkerInit {
  /** The queue's number, 0 … queues − 1: names the worker in reports and errors. */
  queue: number;
  /** This queue's file descriptor on the multi-queue TUN device. */
  tunFd: number;
  /** This queue's socket in the SO_REUSEPORT group on the VXLAN port: it receives the flows the kernel hashes to it. */
  udpFd: number;
  /**
   * The queue sends from these, bound to consecutive ports from the core's sourcePortBase: the group whose flow hash picked
   * source port base + i goes out of txFds[i], so the outer source port carries the inner flow's entropy (docs/wire.md).
   * Every queue has its own set (SO_REUSEPORT on the same ports), so queues never share a socket.
   */
  txFds: number[];
  /** The UDP sockets' address family (selects the sockaddr layout for sendmmsg/recvmmsg). */
  udpFamily: 4 | 6;
  /** The underlay port peers listen on (destination of every datagram we send). */
  peerPort: number;
  /** virtio_net_hdr on the TUN device; UDP_SEGMENT and UDP_GRO accepted by the socket. */
  gso: boolean;
  gro: boolean;
  identity: Identity;
  maxPeers: number;
  batch: number;
  /** How often the worker reports its counters to the main thread. */
  reportMs: number;
}

/** A peer as the dataplane sees it: an index (the value in the route tables) and where to send. */
export interface PeerEntry {
  index: number;
  nodeName: string;
  address: string;
  vtepMAC: string;
  subnet?: string;
  subnetV6?: string;
}

/**
 * One update of the peer table, applied by a worker between two batches in one go: `set` peers are new or changed (a
 * changed one keeps its index, counters and unchanged routes), `remove` are freed indexes. `seq` grows by one per update;
 * a worker's reports carry the last one it applied.
 */
export interface PeerUpdate {
  seq: number;
  set: PeerEntry[];
  remove: number[];
}

export type ControlMessage =
  | ({ type: "peers" } & PeerUpdate)
  | { type: "stop" };

export type WorkerMessage =
  | { type: "ready"; queue: number }
  | {
    /** `batches` is the batch-size histogram, TX reads then RX messages (BATCH_BUCKETS + 1 buckets each). */
    type: "report"; queue: number; counters: Record<string, number>; batches: { tx: number[]; rx: number[] };
    /**
     * The core's per-peer counters as they sit in its memory (PEER_COUNTER_FIELDS per index, up to the highest index in
     * use): one copy, read only when someone asks, so a report costs the same with 5 peers and with 50,000.
     */
    peerCounters: BigUint64Array;
    /** The last peer update applied. */
    peerSeq: number;
  }
  | { type: "error"; queue: number; message: string }
  /** Something the worker could not do but survived (a route that did not fit); the agent logs it. */
  | { type: "warning"; queue: number; message: string }
  | { type: "stopped"; queue: number };

/** Per-peer counter fields, in the core's order (assembly/engine/counters.ts). */
export const PEER_COUNTER_FIELDS = 4;

export interface PeerTotals {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}
