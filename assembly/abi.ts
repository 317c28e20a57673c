// The core's self-description: every constant the TS side needs to drive it — the layout of slots, descriptors and iovecs,
// the staged peer op, the inspect record, the counters in order — as text, one `NAME VALUE` line each. `npm run build` generates
// src/core/abi.ts from it (scripts/gen-abi.mjs), and Core.load compares it with the core it loads: what is written here
// is the only copy.
import { COUNTER_NAMES, C } from "./engine/counters";
import { Iovec, OutPkt, RxMsg, SLOT_SIZE, TX_HEADROOM, TxGroup } from "./engine/layout";
import { Inspect } from "./engine/inspect";
import { PeerOp } from "./engine/peers";
import { VnetHdr } from "./wire/vnet";
import { Vxlan } from "./wire/vxlan";

export const ABI_VERSION: u32 = 2;

let text: string | null = null;

function line(name: string, value: u64): string {
  return name + " " + value.toString() + "\n";
}

function describe(): string {
  let s = line("ABI_VERSION", ABI_VERSION);
  s += line("SLOT_SIZE", SLOT_SIZE) + line("TX_HEADROOM", TX_HEADROOM);
  s += line("VNET_HDR_LEN", VnetHdr.LEN) + line("VXLAN_OVERHEAD", Vxlan.OVERHEAD);
  s += line("IOVEC.BASE", Iovec.BASE) + line("IOVEC.LEN", Iovec.LEN) + line("IOVEC.STRIDE", Iovec.STRIDE) + line("IOVEC.MAX", Iovec.MAX);
  s += line("TX_GROUP.IOV", TxGroup.IOV) + line("TX_GROUP.IOV_COUNT", TxGroup.IOV_COUNT) + line("TX_GROUP.LENGTH", TxGroup.LENGTH);
  s += line("TX_GROUP.SEG_SIZE", TxGroup.SEG_SIZE) + line("TX_GROUP.SEG_COUNT", TxGroup.SEG_COUNT);
  s += line("TX_GROUP.PEER", TxGroup.PEER) + line("TX_GROUP.SPORT", TxGroup.SPORT) + line("TX_GROUP.STRIDE", TxGroup.STRIDE);
  s += line("RX_MSG.LENGTH", RxMsg.LENGTH) + line("RX_MSG.SEG_SIZE", RxMsg.SEG_SIZE) + line("RX_MSG.SRC_ADDR", RxMsg.SRC_ADDR);
  s += line("RX_MSG.STRIDE", RxMsg.STRIDE);
  s += line("OUT_PKT.IOV_COUNT", OutPkt.IOV_COUNT) + line("OUT_PKT.STRIDE", OutPkt.STRIDE);
  s += line("PEER_OP.INDEX", PeerOp.INDEX) + line("PEER_OP.KIND", PeerOp.KIND) + line("PEER_OP.RESET_COUNTERS", PeerOp.RESET_COUNTERS);
  s += line("PEER_OP.ADDR", PeerOp.ADDR) + line("PEER_OP.MAC", PeerOp.MAC) + line("PEER_OP.STRIDE", PeerOp.STRIDE);
  s += line("PEER_OP.SET", PeerOp.SET) + line("PEER_OP.REMOVE", PeerOp.REMOVE);
  s += line("PEER_COUNTERS.TX_PACKETS", C.PEER_TX_PACKETS) + line("PEER_COUNTERS.TX_BYTES", C.PEER_TX_BYTES);
  s += line("PEER_COUNTERS.RX_PACKETS", C.PEER_RX_PACKETS) + line("PEER_COUNTERS.RX_BYTES", C.PEER_RX_BYTES);
  s += line("PEER_COUNTERS.FIELDS", C.PEER_FIELDS);
  s += line("INSPECT.VERSION", Inspect.VERSION) + line("INSPECT.L3_LEN", Inspect.L3_LEN) + line("INSPECT.TOTAL_LEN", Inspect.TOTAL_LEN);
  s += line("INSPECT.L4_PROTO", Inspect.L4_PROTO) + line("INSPECT.FRAGMENT", Inspect.FRAGMENT) + line("INSPECT.SRC_PORT", Inspect.SRC_PORT);
  s += line("INSPECT.DST_PORT", Inspect.DST_PORT) + line("INSPECT.TCP_SEQ", Inspect.TCP_SEQ) + line("INSPECT.TCP_ACK", Inspect.TCP_ACK);
  s += line("INSPECT.TCP_FLAGS", Inspect.TCP_FLAGS) + line("INSPECT.TCP_HDR_LEN", Inspect.TCP_HDR_LEN) + line("INSPECT.UDP_LEN", Inspect.UDP_LEN);
  s += line("INSPECT.IP_CSUM_OK", Inspect.IP_CSUM_OK) + line("INSPECT.VNET_FLAGS", Inspect.VNET_FLAGS);
  s += line("INSPECT.VNET_GSO_TYPE", Inspect.VNET_GSO_TYPE) + line("INSPECT.VNET_GSO_SIZE", Inspect.VNET_GSO_SIZE);
  s += line("INSPECT.VNET_CSUM_START", Inspect.VNET_CSUM_START) + line("INSPECT.VNET_CSUM_OFFSET", Inspect.VNET_CSUM_OFFSET);
  s += line("INSPECT.FIELDS", Inspect.FIELDS);
  s += "COUNTERS " + COUNTER_NAMES.join(",") + "\n";
  return s;
}

/** The description's UTF-16 code units (a static string after the first call). */
function description(): string {
  let t = text;
  if (t == null) {
    t = describe();
    text = t;
  }
  return t;
}

/** The description's UTF-16 code units (built on the first call, then kept). */
export function abiDescription(): usize {
  return changetype<usize>(description());
}

export function abiDescriptionLength(): u32 {
  return <u32>description().length;
}
