// Batch regions in linear memory, laid out once by engineInit. The TS side reads and writes these directly (syscalls go
// straight into them); the core is called once per batch with a count.

/** A TUN read: virtio_net_hdr (10) + up to 64 KiB of IP packet, rounded up. Also one UDP_GRO receive. */
export const SLOT_SIZE: usize = 65600;

export namespace TxGroup {
  // One UDP_SEGMENT send: `segCount` datagrams of `segSize` bytes (the last may be shorter) at `offset`, to one peer.
  export const OFFSET: usize = 0;
  export const LENGTH: usize = 4;
  export const SEG_SIZE: usize = 8;
  export const SEG_COUNT: usize = 10;
  export const PEER: usize = 12;
  export const SPORT: usize = 14;
  export const STRIDE: usize = 16;
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
  // One packet to write to the TUN device: its address in linear memory and length (virtio_net_hdr first in vnet mode).
  export const OFFSET: usize = 0;
  export const LENGTH: usize = 4;
  export const STRIDE: usize = 8;
}

export namespace Layout {
  export let txSlots: u32 = 0;
  export let txIn: usize = 0;
  export let txInLen: usize = 0;
  export let txOut: usize = 0;
  export let txOutCap: u32 = 0;
  export let txGroups: usize = 0;
  export let txGroupsCap: u32 = 0;
  export let txReplies: usize = 0;
  export let txRepliesCap: u32 = 0;
  export let txReplyDesc: usize = 0;
  export let txReplyDescCap: u32 = 0;

  export let rxSlots: u32 = 0;
  export let rxIn: usize = 0;
  export let rxInDesc: usize = 0;
  export let rxOut: usize = 0;
  export let rxOutCap: u32 = 0;
  export let rxOutDesc: usize = 0;
  export let rxOutDescCap: u32 = 0;

  // Batch regions are not cleared: engineInit runs once, on memory the module has just grown (zero, and untouched, so it
  // costs no RSS until packets use it), and every byte the core reads from them was written by a read or by the core.
  function region(bytes: usize): usize {
    return heap.alloc(bytes);
  }

  export function alloc(tx: u32, rx: u32): void {
    txSlots = tx;
    txIn = region(<usize>tx * SLOT_SIZE);
    txInLen = region(<usize>tx << 2);
    // A 64 KiB TSO packet cut into ~45 segments gains ~45 × (22 + headers) bytes: 1.5× the input is ample.
    txOutCap = tx * <u32>SLOT_SIZE * 3 / 2 + 65536;
    txOut = region(txOutCap);
    txGroupsCap = tx * 48 + 64;
    txGroups = region(<usize>txGroupsCap * TxGroup.STRIDE);
    txReplyDescCap = tx;
    txRepliesCap = tx * 1400;
    txReplies = region(txRepliesCap);
    txReplyDesc = region(<usize>txReplyDescCap * OutPkt.STRIDE);

    rxSlots = rx;
    rxIn = region(<usize>rx * SLOT_SIZE);
    rxInDesc = region(<usize>rx * RxMsg.STRIDE);
    // Only super-packets are copied out; the rest are delivered in place. Up to 64 datagrams per message.
    rxOutCap = rx * <u32>SLOT_SIZE + 65536;
    rxOut = region(rxOutCap);
    rxOutDescCap = rx * 64 + 64;
    rxOutDesc = region(<usize>rxOutDescCap * OutPkt.STRIDE);
  }
}
