// The TypeScript face of the WASM packet core: load an instance, configure it, feed it batches, read its counters.
// The dataplane uses the raw regions (slots, descriptors, iovec lists) so syscalls land straight in WASM memory; tests and
// tools use the convenience methods (txDatagrams, rxPackets, counters), which gather the bytes the iovecs point at.
import { instantiateSync } from "@assemblyscript/loader";
import { readFileSync } from "node:fs";
import { parseCIDR, parseIPAny, parseIPv4, parseIPv6, parseMAC } from "../net/addr.js";
import { RouteTable4, RouteTable6 } from "./routes.js";
import { CORE_WASM } from "../paths.js";
import type { CoreExports, CoreOptions, Identity, Inspection, PeerCounters, PeerOpSpec, PeerSpec, Slice, TxGroup } from "./types.js";
import { ABI_LINES, COUNTER_NAMES, INSPECT, IOVEC, OUT_PKT, PEER_COUNTERS, PEER_OP, RX_MSG, SLOT_SIZE, TX_GROUP, TX_HEADROOM } from "./abi.js";

// Layout constants and descriptor offsets come from the core's self-description (src/core/abi.ts, generated at build time).
export { COUNTER_NAMES, IOVEC, OUT_PKT, PEER_COUNTERS, RX_MSG, SLOT_SIZE, TX_GROUP, TX_HEADROOM, VNET_HDR_LEN, VXLAN_OVERHEAD } from "./abi.js";
export type CounterName = (typeof COUNTER_NAMES)[number];
export type Counters = Record<CounterName, number>;

/** What a TUN read may fill in a TX slot: the slot less its headroom. */
export const TX_READ_SIZE = SLOT_SIZE - TX_HEADROOM;

/**
 * Why a core's self-description differs from the one src/core was generated from: the first line that differs, or null
 * when they agree.
 */
export function abiMismatch(core: readonly string[], built: readonly string[]): string | null {
  for (let i = 0; i < Math.max(core.length, built.length); i++) {
    if (core[i] === built[i]) continue;
    const has = (l: string | undefined) => (l === undefined ? "nothing" : `"${l}"`);
    return `line ${i + 1}: the core has ${has(core[i])} where src/core/abi.ts has ${has(built[i])}`;
  }
  return null;
}

export type { CoreExports, CoreOptions, Identity, Inspection, PeerCounters, PeerOpSpec, PeerSpec, Slice, TxGroup } from "./types.js";

export class Core {
  readonly exports: CoreExports;
  readonly memory: WebAssembly.Memory;
  readonly routes4: RouteTable4;
  readonly routes6: RouteTable6;
  readonly maxPeers: number;
  readonly txSlots: number;
  readonly rxSlots: number;
  /** Region offsets in linear memory, fixed after init. */
  readonly at: {
    counters: number; peerCounters: number; txIn: number; txInLen: number; txHdr: number; txIov: number; txGroups: number;
    txReplies: number; txReplyIov: number; txReplyCounts: number; rxIn: number; rxInDesc: number; rxHdr: number;
    rxIov: number; rxOutCounts: number;
  };
  /** What the core adds to the addresses in its iovecs (setNativeBase); 0 until the dataplane sets it. */
  private iovBase = 0;
  private buffer: ArrayBuffer | null = null;
  private u8View = new Uint8Array(0);
  private dv = new DataView(new ArrayBuffer(0));

  private constructor(exports: CoreExports, opts: CoreOptions) {
    this.exports = exports;
    this.memory = exports.memory;
    this.maxPeers = opts.maxPeers ?? 1024;
    this.txSlots = opts.txSlots ?? 64;
    this.rxSlots = opts.rxSlots ?? 64;
    exports.engineInit(this.maxPeers, this.txSlots, this.rxSlots);
    // Bounds, not allocations (chunks and nodes are taken as routes need them): one peer's subnet needs at most two IPv4
    // chunks and one node per 6 bits below /16 of IPv6.
    this.routes4 = new RouteTable4(exports, this.memory, { maxChunks: opts.route4Chunks ?? Math.max(4096, 2 * this.maxPeers + 16) });
    this.routes6 = new RouteTable6(exports, this.memory, { maxNodes: opts.route6Nodes ?? Math.max(65536, 19 * this.maxPeers) });
    this.at = {
      counters: exports.countersAt(), peerCounters: exports.peerCountersAt(), txIn: exports.txInAt(),
      txInLen: exports.txInLenAt(), txHdr: exports.txHdrAt(), txIov: exports.txIovAt(), txGroups: exports.txGroupsAt(),
      txReplies: exports.txRepliesAt(), txReplyIov: exports.txReplyIovAt(), txReplyCounts: exports.txReplyCountsAt(),
      rxIn: exports.rxInAt(), rxInDesc: exports.rxInDescAt(), rxHdr: exports.rxHdrAt(), rxIov: exports.rxIovAt(),
      rxOutCounts: exports.rxOutCountsAt(),
    };
  }

  /**
   * Loads and initialises an instance. Synchronous: worker threads call it at start. Refuses a core whose self-description
   * differs from the one src/core was built against (a stale build/weft.wasm, a core from another version).
   */
  static load(opts: CoreOptions = {}): Core {
    const path = opts.wasm ?? CORE_WASM;
    const { exports } = instantiateSync<Record<string, unknown>>(readFileSync(path), {});
    const e = exports as unknown as CoreExports;
    if (typeof e.abiDescription !== "function") throw new Error(`weft core ${String(path)}: it has no self-description (abiDescription); rebuild it`);
    const units = new Uint16Array(e.memory.buffer, e.abiDescription(), e.abiDescriptionLength());
    const lines = String.fromCharCode(...units).trimEnd().split("\n");
    const why = abiMismatch(lines, ABI_LINES);
    if (why) throw new Error(`weft core ${String(path)} does not match the TypeScript built against it (${why}); run npm run build`);
    return new Core(e, opts);
  }

  /**
   * Has the core write native addresses (`base` + offset) into its iovecs, so they can go to the kernel as they are; call
   * again after memory grows. The convenience methods below read iovecs either way.
   */
  setNativeBase(base: number): void {
    this.iovBase = base;
    this.exports.setNativeBase(base);
  }

  /** Iovec i of the list at `list`, as a range of linear memory. */
  iovec(list: number, i: number): Slice {
    const v = this.view;
    const at = list + i * IOVEC.STRIDE;
    const base = v.getUint32(at + IOVEC.BASE, true) + v.getUint32(at + IOVEC.BASE + 4, true) * 0x1_0000_0000;
    return { offset: base - this.iovBase, length: v.getUint32(at + IOVEC.LEN, true) };
  }

  /** The bytes of some slices of linear memory, joined (a copy). */
  join(slices: readonly Slice[]): Uint8Array {
    const out = new Uint8Array(slices.reduce((n, s) => n + s.length, 0));
    let at = 0;
    for (const s of slices) {
      out.set(this.u8.subarray(s.offset, s.offset + s.length), at);
      at += s.length;
    }
    return out;
  }

  /** The whole of linear memory as bytes. Re-read after anything that may grow memory (route inserts). */
  get u8(): Uint8Array {
    this.refresh();
    return this.u8View;
  }

  get view(): DataView {
    this.refresh();
    return this.dv;
  }

  private refresh(): void {
    if (this.buffer !== this.memory.buffer) {
      this.buffer = this.memory.buffer;
      this.u8View = new Uint8Array(this.buffer);
      this.dv = new DataView(this.buffer);
    }
  }

  private writeScratch(bytes: Uint8Array, at = 0): number {
    const p = this.exports.scratchPtr();
    this.u8.set(bytes, p + at);
    return p;
  }

  configure(id: Identity): void {
    const e = this.exports;
    if (!Number.isInteger(id.vni) || id.vni < 0 || id.vni > 0xffffff) throw new Error(`vni out of range: ${id.vni}`);
    if (!Number.isInteger(id.mtu) || id.mtu < 68 || id.mtu > 65535) throw new Error(`mtu out of range: ${id.mtu}`);
    e.configure(id.vni, id.mtu, (id.vnetHdr ? 1 : 0) | (id.udpSuperPackets ? 2 : 0), id.sourcePortBase ?? 49152, id.sourcePortCount ?? 16384);
    this.writeScratch(parseMAC(id.vtepMAC));
    e.setVtepMac();
    if (id.subnet4) {
      const c = parseCIDR(id.subnet4);
      if (c.family !== 4) throw new Error(`subnet4 is not IPv4: ${id.subnet4}`);
      e.setSubnet4(new DataView(c.bytes.buffer).getUint32(0), c.len);
    } else {
      e.setSubnet4(0, -1);
    }
    if (id.subnet6) {
      const c = parseCIDR(id.subnet6);
      if (c.family !== 6) throw new Error(`subnet6 is not IPv6: ${id.subnet6}`);
      this.writeScratch(c.bytes);
      e.setSubnet6(c.len);
    } else {
      this.writeScratch(new Uint8Array(16));
      e.setSubnet6(-1);
    }
    e.setIcmpSource4(id.icmpSource4 ? parseIPv4(id.icmpSource4) : 0);
    this.writeScratch(id.icmpSource6 ? parseIPv6(id.icmpSource6) : new Uint8Array(16));
    e.setIcmpSource6();
  }

  setPeer(index: number, peer: PeerSpec): void {
    this.writeScratch(parseIPAny(peer.address));
    this.writeScratch(parseMAC(peer.vtepMAC), 16);
    const r = this.exports.peerSet(index, this.exports.scratchPtr());
    if (r === -1) throw new Error(`peer index ${index} out of range (max ${this.maxPeers})`);
    if (r === -2) throw new Error(`another peer already has underlay address ${peer.address}`);
  }

  removePeer(index: number): boolean {
    return this.exports.peerRemove(index) === 0;
  }

  /**
   * Applies many peer changes in one core call (the peer table is re-indexed once, not per peer). Addresses and MACs are
   * parsed first, so a bad one throws before anything changes. Returns how many ops the core ignored plus how many peers
   * share an address with a lower index (those are left out of the address index until they get their own).
   */
  applyPeers(ops: readonly PeerOpSpec[]): number {
    if (ops.length > this.maxPeers) throw new Error(`${ops.length} peer ops exceed the table (${this.maxPeers})`);
    const parsed = ops.map((o) => {
      if (!Number.isInteger(o.index) || o.index < 0 || o.index >= this.maxPeers) throw new Error(`peer index ${o.index} out of range (max ${this.maxPeers})`);
      return o.op === "set" ? { o, addr: parseIPAny(o.peer.address), mac: parseMAC(o.peer.vtepMAC) } : { o };
    });
    const base = this.exports.peerOpsAt();
    const u8 = this.u8;
    const v = this.view;
    parsed.forEach((p, k) => {
      const at = base + k * PEER_OP.STRIDE;
      v.setUint32(at + PEER_OP.INDEX, p.o.index, true);
      if (p.o.op === "set") {
        v.setUint8(at + PEER_OP.KIND, PEER_OP.SET);
        v.setUint8(at + PEER_OP.RESET_COUNTERS, p.o.resetCounters ? 1 : 0);
        u8.set(p.addr!, at + PEER_OP.ADDR);
        u8.set(p.mac!, at + PEER_OP.MAC);
      } else {
        v.setUint8(at + PEER_OP.KIND, PEER_OP.REMOVE);
      }
    });
    return this.exports.peersApply(ops.length);
  }

  // ---- TX: TUN → VXLAN ---------------------------------------------------------------------------------------------------

  /** Where a TUN read into TX slot i lands (after its headroom; virtio_net_hdr first in vnet mode). */
  txSlot(i: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.at.txIn + i * SLOT_SIZE + TX_HEADROOM, TX_READ_SIZE);
  }

  setTxLength(i: number, len: number): void {
    this.view.setUint32(this.at.txInLen + 4 * i, len, true);
  }

  /** Puts packets into TX slots 0..n-1 and encapsulates them; returns the number of send groups. */
  encapPackets(packets: Uint8Array[]): number {
    if (packets.length > this.txSlots) throw new Error(`batch of ${packets.length} exceeds ${this.txSlots} TX slots`);
    packets.forEach((p, i) => {
      if (p.length > TX_READ_SIZE) throw new Error(`packet ${i} is larger than a TX slot`);
      this.u8.set(p, this.at.txIn + i * SLOT_SIZE + TX_HEADROOM);
      this.setTxLength(i, p.length);
    });
    return this.exports.encap(packets.length);
  }

  txGroup(j: number): TxGroup {
    const v = this.view;
    const d = this.at.txGroups + j * TX_GROUP.STRIDE;
    return {
      iov: v.getUint32(d + TX_GROUP.IOV, true),
      iovCount: v.getUint32(d + TX_GROUP.IOV_COUNT, true),
      length: v.getUint32(d + TX_GROUP.LENGTH, true),
      segSize: v.getUint16(d + TX_GROUP.SEG_SIZE, true),
      segCount: v.getUint16(d + TX_GROUP.SEG_COUNT, true),
      peer: v.getUint16(d + TX_GROUP.PEER, true),
      sourcePort: v.getUint16(d + TX_GROUP.SPORT, true),
    };
  }

  /** The memory a group's iovecs point at, in order: what sendmsg gathers. */
  txSlices(group: TxGroup): Slice[] {
    return Array.from({ length: group.iovCount }, (_, k) => this.iovec(this.at.txIov, group.iov + k));
  }

  /** A group's bytes as one buffer (a copy): what the kernel cuts into datagrams of segSize. */
  txBytes(group: TxGroup): Uint8Array {
    return this.join(this.txSlices(group));
  }

  /** The UDP payloads a group stands for, as copies: what the receiver's socket would see one datagram at a time. */
  txDatagrams(group: TxGroup): Uint8Array[] {
    const bytes = this.txBytes(group);
    if (bytes.length !== group.length) throw new Error(`group of ${group.length} bytes has iovecs of ${bytes.length}`);
    const out: Uint8Array[] = [];
    for (let off = 0; off < group.length; off += group.segSize) out.push(bytes.slice(off, Math.min(off + group.segSize, group.length)));
    return out;
  }

  /** Packets the core wants written back into the TUN device (ICMP errors), as copies. */
  txReplies(): Uint8Array[] {
    return this.packets(this.at.txReplyIov, this.at.txReplyCounts, this.exports.txReplyCount());
  }

  /**
   * A wire in memory: copies the groups of the last encap into `rx`'s RX slots, one message per group as UDP_GRO would
   * deliver them, from underlay address `source`, and decapsulates them there. Returns rx's packet count. For the demo,
   * the benchmarks and tests; the dataplane uses sockets.
   */
  forwardTo(rx: Core, groups: number, source: string): number {
    if (groups > rx.rxSlots) throw new Error(`${groups} groups exceed ${rx.rxSlots} RX slots`);
    for (let g = 0; g < groups; g++) {
      const grp = this.txGroup(g);
      rx.u8.set(this.txBytes(grp), rx.at.rxIn + g * SLOT_SIZE);
      rx.setRxMessage(g, grp.length, grp.segCount > 1 ? grp.segSize : 0, source);
    }
    return rx.exports.decap(groups);
  }

  // ---- RX: VXLAN → TUN ---------------------------------------------------------------------------------------------------

  rxSlot(i: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.at.rxIn + i * SLOT_SIZE, SLOT_SIZE);
  }

  /** Describes RX message i: `length` bytes in its slot, `segSize` from UDP_GRO (0 = one datagram), sender's address. */
  setRxMessage(i: number, length: number, segSize: number, source: string | Uint8Array): void {
    const d = this.at.rxInDesc + i * RX_MSG.STRIDE;
    this.view.setUint32(d + RX_MSG.LENGTH, length, true);
    this.view.setUint32(d + RX_MSG.SEG_SIZE, segSize, true);
    this.u8.set(typeof source === "string" ? parseIPAny(source) : source, d + RX_MSG.SRC_ADDR);
  }

  /** Copies received UDP payloads into RX slots and decapsulates them; returns the number of packets for the TUN device. */
  decapMessages(messages: { data: Uint8Array; segSize?: number; source: string }[]): number {
    if (messages.length > this.rxSlots) throw new Error(`batch of ${messages.length} exceeds ${this.rxSlots} RX slots`);
    messages.forEach((m, i) => {
      if (m.data.length > SLOT_SIZE) throw new Error(`message ${i} is larger than a slot`);
      this.u8.set(m.data, this.at.rxIn + i * SLOT_SIZE);
      this.setRxMessage(i, m.data.length, m.segSize ?? 0, m.source);
    });
    return this.exports.decap(messages.length);
  }

  /** The iovecs of each of `n` packets of an output list, in order. */
  private packetSlices(iovList: number, counts: number, n: number): Slice[][] {
    const v = this.view;
    const out: Slice[][] = [];
    let first = 0;
    for (let k = 0; k < n; k++) {
      const c = v.getUint32(counts + k * OUT_PKT.STRIDE + OUT_PKT.IOV_COUNT, true);
      out.push(Array.from({ length: c }, (_, j) => this.iovec(iovList, first + j)));
      first += c;
    }
    return out;
  }

  private packets(iovList: number, counts: number, n: number): Uint8Array[] {
    return this.packetSlices(iovList, counts, n).map((slices) => this.join(slices));
  }

  /** The memory each of the first n output packets of the last decap is gathered from: what writev gets. */
  rxSlices(n: number): Slice[][] {
    return this.packetSlices(this.at.rxIov, this.at.rxOutCounts, n);
  }

  /** Output packet k of the last decap (virtio_net_hdr first in vnet mode), as a copy. */
  rxPacket(k: number): Uint8Array {
    return this.rxPackets(k + 1)[k];
  }

  rxPackets(n: number): Uint8Array[] {
    return this.packets(this.at.rxIov, this.at.rxOutCounts, n);
  }

  // ---- diagnostics -------------------------------------------------------------------------------------------------------

  /** Parses a packet with the core's own wire views; null when the core rejects it. */
  inspect(packet: Uint8Array, withVnet = false): Inspection | null {
    if (packet.length > SLOT_SIZE) return null;
    const probe = this.exports.probeAt();
    this.u8.set(packet, probe);
    if (this.exports.inspectProbe(packet.length, withVnet ? 1 : 0) === 0) return null;
    const v = this.view;
    const f = (field: number) => v.getUint32(probe + SLOT_SIZE + 4 * field, true);
    const I = INSPECT;
    return {
      version: f(I.VERSION), l3Len: f(I.L3_LEN), totalLen: f(I.TOTAL_LEN), l4Proto: f(I.L4_PROTO),
      fragment: f(I.FRAGMENT) as 0 | 1 | 2, srcPort: f(I.SRC_PORT), dstPort: f(I.DST_PORT), tcpSeq: f(I.TCP_SEQ),
      tcpAck: f(I.TCP_ACK), tcpFlags: f(I.TCP_FLAGS), tcpHdrLen: f(I.TCP_HDR_LEN), udpLen: f(I.UDP_LEN),
      ipChecksumOk: f(I.IP_CSUM_OK) === 1,
      vnet: { flags: f(I.VNET_FLAGS), gsoType: f(I.VNET_GSO_TYPE), gsoSize: f(I.VNET_GSO_SIZE), csumStart: f(I.VNET_CSUM_START), csumOffset: f(I.VNET_CSUM_OFFSET) },
    };
  }

  /** The core's Internet checksum of some bytes: the value a checksum field would hold, read big-endian. */
  checksum(bytes: Uint8Array): number {
    if (bytes.length > SLOT_SIZE) throw new Error("checksum input larger than a slot");
    const probe = this.exports.probeAt();
    this.u8.set(bytes, probe);
    const asStored = this.exports.internetChecksum(probe, bytes.length);
    return ((asStored & 0xff) << 8) | (asStored >>> 8);
  }

  // ---- counters ----------------------------------------------------------------------------------------------------------

  counters(): Counters {
    const v = this.view;
    const out = {} as Counters;
    COUNTER_NAMES.forEach((name, i) => {
      out[name] = Number(v.getBigUint64(this.at.counters + 8 * i, true));
    });
    return out;
  }

  peerCounters(index: number): PeerCounters {
    const v = this.view;
    const p = this.at.peerCounters + index * PEER_COUNTERS.FIELDS * 8;
    const n = (k: number) => Number(v.getBigUint64(p + 8 * k, true));
    return { txPackets: n(PEER_COUNTERS.TX_PACKETS), txBytes: n(PEER_COUNTERS.TX_BYTES), rxPackets: n(PEER_COUNTERS.RX_PACKETS), rxBytes: n(PEER_COUNTERS.RX_BYTES) };
  }
}
