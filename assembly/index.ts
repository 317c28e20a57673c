// The weft packet core: one instance per worker thread. Everything exported here is the module's ABI; the TypeScript face is
// src/core/index.ts. Memory is laid out once by engineInit; the packet path (encap, decap) allocates nothing.
import { Config } from "./engine/config";
import { allocCounters, countersPtr, peerCountersPtr } from "./engine/counters";
import { ABI_VERSION } from "./abi";
import { Layout, SLOT_SIZE } from "./engine/layout";
import { peersAlloc } from "./engine/peers";
import { replyCount } from "./engine/icmp";
import { finish, sumBytes } from "./wire/checksum";
import { inspectPacket } from "./engine/inspect";

export * from "./lpm/exports";
export { encap } from "./engine/encap";
export { decap } from "./engine/decap";
export { peerSet, peerRemove, peerCount, peersApply, peerOpsAt } from "./engine/peers";
export { abiDescription, abiDescriptionLength } from "./abi";

let scratch: usize = 0;
/** A slot for diagnostics: a packet copied in by the TS side, and inspectPacket's fields after it. */
let probe: usize = 0;

/** Lays out memory for `maxPeers` peers and batches of `txSlots` TUN reads and `rxSlots` UDP receives. Call once. */
export function engineInit(maxPeers: u32, txSlots: u32, rxSlots: u32): u32 {
  if (scratch != 0) return 0;
  scratch = heap.alloc(256);
  probe = heap.alloc(SLOT_SIZE + 128);
  Config.alloc();
  allocCounters(maxPeers);
  peersAlloc(maxPeers);
  Layout.alloc(txSlots, rxSlots);
  return ABI_VERSION;
}

/** 256 bytes for passing addresses and MACs from the TS side (peerSet, setSubnet6, setIcmpSource6). */
export function scratchPtr(): usize { return scratch; }

/** `tun`: bit 0 a virtio_net_hdr on TUN packets, bit 1 the device takes UDP super-packets (USO). */
export function configure(vni: u32, mtu: u32, tun: u32, sportBase: u32, sportCount: u32): void {
  Config.vni = vni & 0xffffff;
  Config.mtu = mtu;
  Config.vnetHdr = (tun & 1) != 0;
  Config.udpGro = (tun & 3) == 3;
  Config.sportBase = sportBase;
  Config.sportCount = sportCount;
}

/** Our VtepMAC: the 6 bytes at the start of scratch. */
export function setVtepMac(): void {
  Config.vtepMac = <u64>load<u32>(scratch) | (<u64>load<u16>(scratch + 4) << 32);
}

/** Our IPv4 Pod subnet, host order; len < 0 disables IPv4. */
export function setSubnet4(addr: u32, len: i32): void {
  if (len < 0 || len > 32) {
    Config.subnet4Set = false;
    return;
  }
  Config.subnet4Mask = len == 0 ? 0 : <u32>(0xffffffff << (32 - len));
  Config.subnet4 = addr & Config.subnet4Mask;
  Config.subnet4Set = true;
}

/** Our IPv6 Pod subnet: 16 bytes at scratch; len < 0 disables IPv6. */
export function setSubnet6(len: i32): void {
  memory.copy(Config.subnet6Ptr, scratch, 16);
  Config.subnet6Len = len > 128 ? -1 : len;
}

/** Source of generated ICMPv4 errors (host order; 0 = don't generate). */
export function setIcmpSource4(addr: u32): void {
  Config.icmpSource4 = bswap<u32>(addr);
}

/** Source of generated ICMPv6 errors: 16 bytes at scratch (all zero = don't generate). */
export function setIcmpSource6(): void {
  memory.copy(Config.icmpSource6Ptr, scratch, 16);
}

// ---- where things are ---------------------------------------------------------------------------------------------------
export function countersAt(): usize { return countersPtr; }
export function peerCountersAt(): usize { return peerCountersPtr; }
export function txInAt(): usize { return Layout.txIn; }
export function txInLenAt(): usize { return Layout.txInLen; }
export function txHdrAt(): usize { return Layout.txHdr; }
export function txIovAt(): usize { return Layout.txIov; }
export function txGroupsAt(): usize { return Layout.txGroups; }
export function txRepliesAt(): usize { return Layout.txReplies; }
export function txReplyIovAt(): usize { return Layout.txReplyIov; }
export function txReplyCountsAt(): usize { return Layout.txReplyCounts; }
export function txReplyCount(): u32 { return replyCount; }
export function rxInAt(): usize { return Layout.rxIn; }
export function rxInDescAt(): usize { return Layout.rxInDesc; }
export function rxHdrAt(): usize { return Layout.rxHdr; }
export function rxIovAt(): usize { return Layout.rxIov; }
export function rxOutCountsAt(): usize { return Layout.rxOutCounts; }

/**
 * The native address of linear memory's byte 0, which the iovecs the core writes add to every address so that they can go
 * to the kernel as they are. Set again after memory grows (it may move); 0 leaves them as linear-memory offsets.
 */
export function setNativeBase(base: f64): void { Layout.nativeBase = <u64>base; }

// ---- diagnostics (not on the packet path) ---------------------------------------------------------------------------------
export function probeAt(): usize { return probe; }

/** Parses the `len` bytes at probeAt(); fields land at probeAt() + SLOT_SIZE (see engine/inspect.ts). */
export function inspectProbe(len: u32, withVnet: bool): i32 {
  return inspectPacket(probe, min(len, <u32>SLOT_SIZE), withVnet, probe + SLOT_SIZE);
}

/** The Internet checksum field value for bytes [p, p+len) (RFC 1071), as stored little-endian. */
export function internetChecksum(p: usize, len: u32): u32 {
  return finish(sumBytes(p, len, 0));
}
