// The node's own identity and policy, set by the control side between batches.
import { bytesEqual } from "../wire/bytes";

export namespace Config {
  export let vni: u32 = 1;
  /** Our VtepMAC, low 48 bits as its bytes sit in memory (see Ethernet.loadMac). */
  export let vtepMac: u64 = 0;
  /** Largest inner IP packet (or TSO segment) that fits the underlay: underlay MTU − 50 (IPv4) or − 70 (IPv6). */
  export let mtu: u32 = 1450;
  /** Outer UDP source ports come from a flow hash mapped into [sportBase, sportBase + sportCount). */
  export let sportBase: u32 = 49152;
  export let sportCount: u32 = 16384;
  /** Whether TUN packets carry a virtio_net_hdr (IFF_VNET_HDR): GSO in, GRO out. */
  export let vnetHdr: bool = false;
  /** Whether the TUN device takes UDP super-packets (TUN_F_USO4/6): consecutive datagrams of one UDP flow coalesce too. */
  export let udpGro: bool = false;

  export let subnet4: u32 = 0;
  export let subnet4Mask: u32 = 0;
  export let subnet4Set: bool = false;

  /** IPv6 subnet, 16 bytes network order, and its prefix length; disabled while subnet6Len < 0. */
  export let subnet6Ptr: usize = 0;
  export let subnet6Len: i32 = -1;

  /** Sources of generated ICMP errors: the node's own overlay addresses (network order). */
  export let icmpSource4: u32 = 0;
  export let icmpSource6Ptr: usize = 0;

  export function alloc(): void {
    subnet6Ptr = heap.alloc(16);
    icmpSource6Ptr = heap.alloc(16);
    memory.fill(subnet6Ptr, 0, 16);
    memory.fill(icmpSource6Ptr, 0, 16);
  }
}

/** True when the host-order IPv4 address is inside our Pod subnet. */
@inline export function inSubnet4(addr: u32): bool {
  return Config.subnet4Set && (addr & Config.subnet4Mask) == Config.subnet4;
}

/** True when the 16 network-order bytes at p are inside our IPv6 Pod subnet. */
export function inSubnet6(p: usize): bool {
  const len = Config.subnet6Len;
  if (len < 0) return false;
  const full = <usize>(len >> 3);
  if (!bytesEqual(p, Config.subnet6Ptr, full)) return false;
  const rest = len & 7;
  if (rest == 0) return true;
  const mask = <u32>(0xff00 >> rest) & 0xff;
  return (<u32>load<u8>(p + full) & mask) == (<u32>load<u8>(Config.subnet6Ptr + full) & mask);
}
