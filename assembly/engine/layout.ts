// Batch regions in linear memory, laid out once by engineInit. The TS side reads and writes these directly (syscalls go
// straight into them); the core is called once per batch with a count. Nothing is copied on the way through: a TUN read
// leaves headroom for the VXLAN and Ethernet headers, and every output (a send group, a packet for the TUN device) is a
// list of struct iovec pointing into the slots and into small header areas (docs/architecture.md, zero copy).

/** A TUN read (headroom + virtio_net_hdr (10) + up to 64 KiB of IP packet, rounded up), or one UDP_GRO receive. */
export const SLOT_SIZE: usize = 65600;
/** Where a TUN read lands in its TX slot: VXLAN + inner Ethernet fit in front of the IP packet once the vnet header is read. */
export const TX_HEADROOM: usize = 22;

export namespace Iovec {
  // struct iovec (x86_64): a native address and a length, both 64-bit.
  export const BASE: usize = 0;
  export const LEN: usize = 8;
  export const STRIDE: usize = 16;
  /** writev's and sendmsg's limit per call (UIO_MAXIOV). */
  export const MAX: u32 = 1024;
}

export namespace TxGroup {
  // One UDP_SEGMENT send to one peer: `segCount` datagrams of `segSize` bytes (the last may be shorter), `length` bytes in
  // all, made of `iovCount` iovecs from index `iov` of the TX iovec list. A datagram never straddles an iovec.
  export const IOV: usize = 0;
  export const IOV_COUNT: usize = 4;
  export const LENGTH: usize = 8;
  export const SEG_SIZE: usize = 12;
  export const SEG_COUNT: usize = 14;
  export const PEER: usize = 16;
  export const SPORT: usize = 18;
  export const STRIDE: usize = 20;
  /** Kernel limits for one UDP_SEGMENT send (UDP_MAX_SEGMENTS; 65535 − IPv4 − UDP headers). */
  export const MAX_SEGMENTS: u32 = 64;
  export const MAX_BYTES: u32 = 65507;
}

export namespace RxMsg {
  // One received message: `length` bytes in its slot; `segSize` > 0 when UDP_GRO glued equal-size datagrams; the sender's
  // underlay address (IPv4 as ::ffff:a.b.c.d).
  export const LENGTH: usize = 0;
  export const SEG_SIZE: usize = 4;
  export const SRC_ADDR: usize = 8;
  export const STRIDE: usize = 24;
}

export namespace OutPkt {
  // One packet for the TUN device (virtio_net_hdr first in vnet mode): the next `iovCount` iovecs of its list.
  export const IOV_COUNT: usize = 0;
  export const STRIDE: usize = 4;
}

export namespace Layout {
  /** Native address of linear memory's byte 0, so the iovecs the core writes can go straight to the kernel (0 in tests). */
  export let nativeBase: u64 = 0;

  export let txSlots: u32 = 0;
  export let txIn: usize = 0;
  export let txInLen: usize = 0;
  export let txHdr: usize = 0;
  export let txHdrCap: u32 = 0;
  export let txIov: usize = 0;
  export let txIovCap: u32 = 0;
  export let txGroups: usize = 0;
  export let txGroupsCap: u32 = 0;
  export let txReplies: usize = 0;
  export let txRepliesCap: u32 = 0;
  export let txReplyIov: usize = 0;
  export let txReplyCounts: usize = 0;
  export let txReplyCap: u32 = 0;

  export let rxSlots: u32 = 0;
  export let rxIn: usize = 0;
  export let rxInDesc: usize = 0;
  export let rxHdr: usize = 0;
  export let rxHdrCap: u32 = 0;
  export let rxIov: usize = 0;
  export let rxIovCap: u32 = 0;
  export let rxOutCounts: usize = 0;
  export let rxOutCap: u32 = 0;

  // Batch regions are not cleared: engineInit runs once, on memory the module has just grown (zero, and untouched, so it
  // costs no RSS until packets use it), and every byte the core reads from them was written by a read or by the core.
  function region(bytes: usize): usize {
    return heap.alloc(bytes);
  }

  /** Writes iovec `i` of the list at `list`: `len` bytes at linear-memory address p. */
  @inline export function setIov(list: usize, i: u32, p: usize, len: u32): void {
    const v = list + <usize>i * Iovec.STRIDE;
    store<u64>(v + Iovec.BASE, nativeBase + <u64>p);
    store<u64>(v + Iovec.LEN, <u64>len);
  }

  export function alloc(tx: u32, rx: u32): void {
    txSlots = tx;
    txIn = region(<usize>tx * SLOT_SIZE);
    txInLen = region(<usize>tx << 2);
    // A 64 KiB TSO read makes ~45 datagrams; every datagram counts against the group budget, so that bounds them all.
    txGroupsCap = tx * 48 + 64;
    txGroups = region(<usize>txGroupsCap * TxGroup.STRIDE);
    // A single packet is one iovec (encapsulated in place); a segment of a super-packet is two (its headers, its payload).
    txIovCap = txGroupsCap * 2;
    txIov = region(<usize>txIovCap * Iovec.STRIDE);
    // Segment headers: VXLAN + Ethernet + IP + TCP with options, ~100 bytes; 128 per datagram is ample.
    txHdrCap = txGroupsCap * 128;
    txHdr = region(txHdrCap);
    txReplyCap = tx;
    txRepliesCap = tx * 1400;
    txReplies = region(txRepliesCap);
    txReplyIov = region(<usize>txReplyCap * Iovec.STRIDE);
    txReplyCounts = region(<usize>txReplyCap * OutPkt.STRIDE);

    rxSlots = rx;
    rxIn = region(<usize>rx * SLOT_SIZE);
    rxInDesc = region(<usize>rx * RxMsg.STRIDE);
    // Up to 64 datagrams per message, each delivered alone or appended to a super-packet as one more iovec.
    rxOutCap = rx * 64 + 64;
    rxOutCounts = region(<usize>rxOutCap * OutPkt.STRIDE);
    // A super-packet is its headers (copied here) and one iovec per segment payload, left where it arrived.
    rxIovCap = rxOutCap * 2;
    rxIov = region(<usize>rxIovCap * Iovec.STRIDE);
    rxHdrCap = rxOutCap * 64;
    rxHdr = region(rxHdrCap);
  }
}
