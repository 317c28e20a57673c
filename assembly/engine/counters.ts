// Per-reason counters, u64 each, in one array of linear memory the TS side reads directly.
// Invariants the tests rely on:
//   TX_PACKETS_IN     == TX_PASSED + (every TX_DROP_*)
//   RX_DATAGRAMS_IN   == RX_PASSED + (every RX_DROP_*)

export namespace C {
  export const TX_PACKETS_IN: i32 = 0;
  export const TX_PASSED: i32 = 1;
  export const TX_DATAGRAMS_OUT: i32 = 2;
  export const TX_BYTES_OUT: i32 = 3;
  export const TX_GSO_SPLIT: i32 = 4;
  export const TX_ICMP_GENERATED: i32 = 5;
  export const TX_DROP_MALFORMED: i32 = 6;
  export const TX_DROP_BAD_VNET_HDR: i32 = 7;
  export const TX_DROP_SPOOFED_SOURCE: i32 = 8;
  export const TX_DROP_NO_ROUTE: i32 = 9;
  export const TX_DROP_NO_PEER: i32 = 10;
  export const TX_DROP_TOO_BIG: i32 = 11;
  export const TX_DROP_UNSUPPORTED_GSO: i32 = 12;
  export const TX_DROP_NO_SPACE: i32 = 13;

  export const RX_DATAGRAMS_IN: i32 = 14;
  export const RX_PASSED: i32 = 15;
  export const RX_PACKETS_OUT: i32 = 16;
  export const RX_BYTES_OUT: i32 = 17;
  export const RX_COALESCED: i32 = 18;
  export const RX_L4_CHECKSUM_BAD: i32 = 19;
  export const RX_DROP_TRUNCATED: i32 = 20;
  export const RX_DROP_BAD_VXLAN: i32 = 21;
  export const RX_DROP_WRONG_VNI: i32 = 22;
  export const RX_DROP_UNKNOWN_PEER: i32 = 23;
  export const RX_DROP_BAD_INNER_MAC: i32 = 24;
  export const RX_DROP_BAD_ETHERTYPE: i32 = 25;
  export const RX_DROP_MALFORMED_INNER: i32 = 26;
  export const RX_DROP_BAD_IP_CHECKSUM: i32 = 27;
  export const RX_DROP_NOT_LOCAL: i32 = 28;
  export const RX_DROP_NO_SPACE: i32 = 29;
  /** Not a drop: an unfinished (CHECKSUM_PARTIAL) inner checksum finished here. */
  export const RX_L4_CHECKSUM_COMPLETED: i32 = 30;
  /** Not a drop: an unsegmented TSO packet (veth underlays pass GSO skbs across) handed on to the kernel as GSO. */
  export const RX_TCP_SUPER_IN: i32 = 31;
  export const RX_DROP_EMPTY: i32 = 32;

  export const COUNT: i32 = 33;

  // Per-peer counters: PEER_FIELDS u64 per peer.
  export const PEER_TX_PACKETS: i32 = 0;
  export const PEER_TX_BYTES: i32 = 1;
  export const PEER_RX_PACKETS: i32 = 2;
  export const PEER_RX_BYTES: i32 = 3;
  export const PEER_FIELDS: i32 = 4;
}

/**
 * The counters' names in index order: each is its constant's name in lower case (a unit test holds them to that). The TS
 * side and the metrics take them from the core's self-description (assembly/abi.ts).
 */
export const COUNTER_NAMES: StaticArray<string> = [
  "tx_packets_in",
  "tx_passed",
  "tx_datagrams_out",
  "tx_bytes_out",
  "tx_gso_split",
  "tx_icmp_generated",
  "tx_drop_malformed",
  "tx_drop_bad_vnet_hdr",
  "tx_drop_spoofed_source",
  "tx_drop_no_route",
  "tx_drop_no_peer",
  "tx_drop_too_big",
  "tx_drop_unsupported_gso",
  "tx_drop_no_space",
  "rx_datagrams_in",
  "rx_passed",
  "rx_packets_out",
  "rx_bytes_out",
  "rx_coalesced",
  "rx_l4_checksum_bad",
  "rx_drop_truncated",
  "rx_drop_bad_vxlan",
  "rx_drop_wrong_vni",
  "rx_drop_unknown_peer",
  "rx_drop_bad_inner_mac",
  "rx_drop_bad_ethertype",
  "rx_drop_malformed_inner",
  "rx_drop_bad_ip_checksum",
  "rx_drop_not_local",
  "rx_drop_no_space",
  "rx_l4_checksum_completed",
  "rx_tcp_super_in",
  "rx_drop_empty",
];

export let countersPtr: usize = 0;
export let peerCountersPtr: usize = 0;

@inline export function bump(c: i32): void {
  const p = countersPtr + (<usize>c << 3);
  store<u64>(p, load<u64>(p) + 1);
}

@inline export function add(c: i32, n: u64): void {
  const p = countersPtr + (<usize>c << 3);
  store<u64>(p, load<u64>(p) + n);
}

@inline export function bumpPeer(peer: i32, field: i32, bytes: u64): void {
  const p = peerCountersPtr + ((<usize>peer * <usize>C.PEER_FIELDS + <usize>field) << 3);
  store<u64>(p, load<u64>(p) + 1);
  store<u64>(p + 8, load<u64>(p + 8) + bytes);
}

export function allocCounters(maxPeers: u32): void {
  countersPtr = heap.alloc(<usize>C.COUNT << 3);
  memory.fill(countersPtr, 0, <usize>C.COUNT << 3);
  const peerBytes = <usize>maxPeers * <usize>C.PEER_FIELDS << 3;
  peerCountersPtr = heap.alloc(peerBytes);
  memory.fill(peerCountersPtr, 0, peerBytes);
}
