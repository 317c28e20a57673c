// The peer table: index → underlay address + VtepMAC, and underlay address → index for the ingress filter.
// Indexes are chosen by the control side (they are the values stored in the route tables).
import { bytesEqual } from "../wire/bytes";
import { Ethernet } from "../wire/ethernet";
import { C, peerCountersPtr } from "./counters";
import { mix64 } from "./mix";

export namespace Peer {
  export const STATE: usize = 0;
  export const MAC: usize = 2;
  export const ADDR: usize = 8;
  export const STRIDE: usize = 32;

  export const FREE: u8 = 0;
  export const IN_USE: u8 = 1;
}

/**
 * One staged change for peersApply, written by the control side: set (address, MAC; optionally zero the counters, for a
 * node new at this index) or remove.
 */
export namespace PeerOp {
  export const INDEX: usize = 0;
  export const KIND: usize = 4;
  export const RESET_COUNTERS: usize = 5;
  export const ADDR: usize = 8;
  export const MAC: usize = 24;
  export const STRIDE: usize = 32;

  export const SET: u8 = 1;
  export const REMOVE: u8 = 2;
}

let table: usize = 0;
let maxPeers: u32 = 0;
/** Room for one op per peer: an update never holds more than one per index. */
let ops: usize = 0;
// Open addressing, linear probing; slots hold index + 1 (0 = empty). Twice the peers, a power of two.
let hash: usize = 0;
let hashMask: u32 = 0;

export function peersAlloc(max: u32): void {
  maxPeers = max;
  table = heap.alloc(<usize>max * Peer.STRIDE);
  memory.fill(table, 0, <usize>max * Peer.STRIDE);
  let cap: u32 = 16;
  while (cap < max * 2) cap <<= 1;
  hashMask = cap - 1;
  hash = heap.alloc(<usize>cap << 2);
  memory.fill(hash, 0, <usize>cap << 2);
  // Not cleared: ops are written before they are read, and untouched pages cost no memory.
  ops = heap.alloc(<usize>max * PeerOp.STRIDE);
}

export function peerOpsAt(): usize {
  return ops;
}

@inline export function peerRecord(index: i32): usize {
  return table + <usize>index * Peer.STRIDE;
}

/** True for an index that names a configured peer. */
@inline export function peerValid(index: i32): bool {
  return <u32>index < maxPeers && load<u8>(peerRecord(index) + Peer.STATE) == Peer.IN_USE;
}

@inline export function peerMac(index: i32): u64 {
  return Ethernet.loadMac(peerRecord(index) + Peer.MAC);
}

/**
 * Every bit of the address reaches the low bits the table is indexed by (mix64). IPv4 peers differ only in
 * the last four bytes, often only in the last two: a plain multiply left those in the high bits, and with thousands of
 * peers every address probed through all the others.
 */
@inline function addrHash(p: usize): u32 {
  return mix64(load<u64>(p) * 0x9e3779b97f4a7c15 ^ load<u64>(p + 8));
}

/** The peer whose underlay address is the 16 bytes (IPv4 as ::ffff:a.b.c.d) at p, or -1. */
export function peerByAddress(p: usize): i32 {
  let slot = addrHash(p) & hashMask;
  for (let probes: u32 = 0; probes <= hashMask; probes++) {
    const v = load<u32>(hash + (<usize>slot << 2));
    if (v == 0) return -1;
    const index = <i32>(v - 1);
    if (bytesEqual(peerRecord(index) + Peer.ADDR, p, 16)) return index;
    slot = (slot + 1) & hashMask;
  }
  return -1;
}

/**
 * Re-indexes every peer by address. A peer whose address a lower index already has is left out of the index (datagrams
 * from that address count as the lower index's) until an update gives it its own; returns how many were left out.
 */
function rebuildHash(): u32 {
  memory.fill(hash, 0, (<usize>hashMask + 1) << 2);
  let clashes: u32 = 0;
  for (let i: i32 = 0; i < <i32>maxPeers; i++) {
    if (!peerValid(i)) continue;
    const addr = peerRecord(i) + Peer.ADDR;
    let slot = addrHash(addr) & hashMask;
    let v = load<u32>(hash + (<usize>slot << 2));
    while (v != 0 && !bytesEqual(peerRecord(<i32>(v - 1)) + Peer.ADDR, addr, 16)) {
      slot = (slot + 1) & hashMask;
      v = load<u32>(hash + (<usize>slot << 2));
    }
    if (v != 0) {
      clashes++;
      continue;
    }
    store<u32>(hash + (<usize>slot << 2), <u32>(i + 1));
  }
  return clashes;
}

/**
 * Applies `n` staged ops (see PeerOp) at peerOpsAt() and re-indexes addresses once, so an update of thousands of peers
 * costs one pass. Returns the number of ops ignored (bad index or kind) plus the peers left out of the address index for
 * sharing an address (the control side checks records before they get here: between the chunks of one big update, a
 * swap of two peers' addresses may show up here for a moment, never after the update's last chunk).
 */
export function peersApply(n: u32): u32 {
  let ignored: u32 = 0;
  if (n > maxPeers) return n;
  for (let k: u32 = 0; k < n; k++) {
    const op = ops + <usize>k * PeerOp.STRIDE;
    const index = load<u32>(op + PeerOp.INDEX);
    const kind = load<u8>(op + PeerOp.KIND);
    if (index >= maxPeers || (kind != PeerOp.SET && kind != PeerOp.REMOVE)) {
      ignored++;
      continue;
    }
    const rec = peerRecord(<i32>index);
    if (kind == PeerOp.REMOVE || load<u8>(op + PeerOp.RESET_COUNTERS) != 0) {
      memory.fill(peerCountersPtr + (<usize>index * <usize>C.PEER_FIELDS << 3), 0, <usize>C.PEER_FIELDS << 3);
    }
    if (kind == PeerOp.REMOVE) {
      memory.fill(rec, 0, Peer.STRIDE);
      continue;
    }
    memory.copy(rec + Peer.ADDR, op + PeerOp.ADDR, 16);
    memory.copy(rec + Peer.MAC, op + PeerOp.MAC, 6);
    store<u8>(rec + Peer.STATE, Peer.IN_USE);
  }
  return ignored + rebuildHash();
}

/**
 * Sets peer `index` from a record at `src`: 16 address bytes then 6 MAC bytes. Returns 0, or -1 for a bad index,
 * -2 when another index already has that address.
 */
export function peerSet(index: i32, src: usize): i32 {
  if (<u32>index >= maxPeers) return -1;
  const other = peerByAddress(src);
  if (other >= 0 && other != index) return -2;
  const rec = peerRecord(index);
  const changed = load<u8>(rec + Peer.STATE) != Peer.IN_USE || !bytesEqual(rec + Peer.ADDR, src, 16);
  memory.copy(rec + Peer.ADDR, src, 16);
  memory.copy(rec + Peer.MAC, src + 16, 6);
  store<u8>(rec + Peer.STATE, Peer.IN_USE);
  if (changed) {
    memory.fill(peerCountersPtr + (<usize>index * <usize>C.PEER_FIELDS << 3), 0, <usize>C.PEER_FIELDS << 3);
    rebuildHash();
  }
  return 0;
}

export function peerRemove(index: i32): i32 {
  if (!peerValid(index)) return -1;
  memory.fill(peerRecord(index), 0, Peer.STRIDE);
  rebuildHash();
  return 0;
}

export function peerCount(): u32 {
  let n: u32 = 0;
  for (let i: i32 = 0; i < <i32>maxPeers; i++) if (peerValid(i)) n++;
  return n;
}
