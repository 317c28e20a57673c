// The shapes around the WASM core: its exports as the TS side calls them, and the values Core takes and returns.

/** A byte range of linear memory one iovec points at. */
export interface Slice {
  offset: number;
  length: number;
}

export interface CoreOptions {
  maxPeers?: number;
  /** TUN reads per TX batch. */
  txSlots?: number;
  /** UDP receives (each up to 64 KiB with UDP_GRO) per RX batch. */
  rxSlots?: number;
  /** IPv4 route table chunk pool and IPv6 node pool (bounded memory). */
  route4Chunks?: number;
  route6Nodes?: number;
  wasm?: URL | string;
}

export interface Identity {
  vni: number;
  /** Largest inner packet the underlay carries: underlay MTU − 50 (IPv4) / − 70 (IPv6). */
  mtu: number;
  vtepMAC: string;
  /** TUN packets carry a virtio_net_hdr (GSO in, GRO out). */
  vnetHdr: boolean;
  /** The TUN device takes UDP super-packets (USO): the core coalesces datagrams of one UDP flow as it does TCP segments. */
  udpSuperPackets?: boolean;
  subnet4?: string;
  subnet6?: string;
  /** Sources of the ICMP errors the core generates (the node's own overlay addresses). */
  icmpSource4?: string;
  icmpSource6?: string;
  sourcePortBase?: number;
  sourcePortCount?: number;
}

export interface PeerSpec {
  /** Underlay address (IPv4 or IPv6). */
  address: string;
  vtepMAC: string;
}

/** One change for Core.applyPeers: set a peer (zeroing its counters when it is a new node at that index) or remove it. */
export type PeerOpSpec =
  | { op: "set"; index: number; peer: PeerSpec; resetCounters: boolean }
  | { op: "remove"; index: number };

/** One send group of the last encap (see assembly/engine/layout.ts): iovecs [iov, iov + iovCount) of the TX list. */
export interface TxGroup {
  iov: number;
  iovCount: number;
  length: number;
  segSize: number;
  segCount: number;
  peer: number;
  sourcePort: number;
}

export interface PeerCounters {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}

export interface CoreExports {
  memory: WebAssembly.Memory;
  engineInit(maxPeers: number, tx: number, rx: number): number;
  scratchPtr(): number;
  configure(vni: number, mtu: number, tun: number, sportBase: number, sportCount: number): void;
  setVtepMac(): void;
  setSubnet4(addr: number, len: number): void;
  setSubnet6(len: number): void;
  setIcmpSource4(addr: number): void;
  setIcmpSource6(): void;
  peerSet(index: number, src: number): number;
  peerRemove(index: number): number;
  peerCount(): number;
  peersApply(n: number): number;
  peerOpsAt(): number;
  encap(count: number): number;
  decap(count: number): number;
  countersAt(): number;
  peerCountersAt(): number;
  txInAt(): number;
  txInLenAt(): number;
  txHdrAt(): number;
  txIovAt(): number;
  txGroupsAt(): number;
  txRepliesAt(): number;
  txReplyIovAt(): number;
  txReplyCountsAt(): number;
  txReplyCount(): number;
  rxInAt(): number;
  rxInDescAt(): number;
  rxHdrAt(): number;
  rxIovAt(): number;
  rxOutCountsAt(): number;
  setNativeBase(base: number): void;
  abiDescription(): number;
  abiDescriptionLength(): number;
  probeAt(): number;
  inspectProbe(len: number, withVnet: number): number;
  internetChecksum(p: number, len: number): number;
}

/** What the core's own parser makes of a packet (assembly/engine/inspect.ts). */
export interface Inspection {
  version: number; l3Len: number; totalLen: number; l4Proto: number; fragment: 0 | 1 | 2;
  srcPort: number; dstPort: number; tcpSeq: number; tcpAck: number; tcpFlags: number; tcpHdrLen: number; udpLen: number;
  ipChecksumOk: boolean;
  vnet: { flags: number; gsoType: number; gsoSize: number; csumStart: number; csumOffset: number };
}
