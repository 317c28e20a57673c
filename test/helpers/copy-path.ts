// Inputs for the zero-copy checks (test/unit/core-zerocopy.test.ts): super-packets and single packets as a TUN device with
// IFF_VNET_HDR hands them over, and a mixed batch of them. test/fixtures/copy-path.json holds what the core produced for
// them before it stopped copying (datagrams and the packets its peer delivered, by length and SHA-256); the zero-copy
// core must produce the same bytes.
import { createHash } from "node:crypto";
import { concat, buildTCP, buildUDP, onesComplementSum, virtioNetHdr } from "./packets.js";

const pl = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed + (i >> 9)) & 0xff);

/** A packet with its checksum field holding the pseudo-header sum, as a kernel asking for NEEDS_CSUM leaves it. */
function partial(pkt: Uint8Array, l3: number, field: number): Uint8Array {
  const v6 = pkt[0] >> 4 === 6;
  const l4len = pkt.length - l3;
  const pseudo = v6
    ? concat(pkt.subarray(8, 40), Uint8Array.of(0, 0, l4len >> 8, l4len & 0xff, 0, 0, 0, pkt[6]))
    : concat(pkt.subarray(12, 20), Uint8Array.of(0, pkt[9], l4len >> 8, l4len & 0xff));
  const sum = onesComplementSum(pseudo);
  const out = new Uint8Array(pkt);
  out.set([sum >> 8, sum & 0xff], l3 + field);
  return out;
}

const tso = (gsoType: number, l3: number, th: number, gsoSize: number, pkt: Uint8Array) =>
  concat(virtioNetHdr({ flags: 1, gsoType, hdrLen: l3 + th, gsoSize, csumStart: l3, csumOffset: 16 }), partial(pkt, l3, 16));
const uso = (l3: number, gsoSize: number, pkt: Uint8Array) =>
  concat(virtioNetHdr({ flags: 1, gsoType: 5, hdrLen: l3 + 8, gsoSize, csumStart: l3, csumOffset: 6 }), partial(pkt, l3, 6));

const A4 = "10.244.1.5";
const B4 = "10.244.2.7";
const A6 = "fd00:244:1::5";
const B6 = "fd00:244:2::7";
const tsOption = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2);

/** Each input is a list of TUN reads (virtio_net_hdr first) encapsulated as one batch. */
export const COPY_PATH_INPUTS: Record<string, Uint8Array[]> = {
  "tcp4-tso-64k": [tso(1, 20, 20, 1400, buildTCP({ srcPort: 40000, dstPort: 5201, seq: 1000, ack: 7, flags: 0x18, payload: pl(65000, 1) }, A4, B4))],
  "tcp6-tso-options": [tso(4, 40, 32, 1300, buildTCP({ srcPort: 40001, dstPort: 5201, seq: 77, ack: 9, flags: 0x10, options: tsOption, payload: pl(30000, 2) }, A6, B6))],
  "udp6-uso": [uso(40, 1000, buildUDP({ srcPort: 4000, dstPort: 4001, payload: pl(8000, 3) }, A6, B6))],
  "udp4-uso-short-last": [uso(20, 1200, buildUDP({ srcPort: 4002, dstPort: 4003, payload: pl(4500, 4) }, A4, B4))],
  "tcp4-needs-csum": [concat(virtioNetHdr({ flags: 1, csumStart: 20, csumOffset: 16 }),
    partial(buildTCP({ srcPort: 40002, dstPort: 80, seq: 5, ack: 6, flags: 0x18, payload: pl(1000, 5) }, A4, B4), 20, 16))],
  "udp4-plain": [concat(virtioNetHdr(), buildUDP({ srcPort: 5000, dstPort: 5001, payload: pl(100, 6) }, A4, B4))],
};
COPY_PATH_INPUTS.mixed = [
  COPY_PATH_INPUTS["udp4-plain"][0],
  COPY_PATH_INPUTS["tcp4-tso-64k"][0],
  COPY_PATH_INPUTS["tcp4-needs-csum"][0],
  COPY_PATH_INPUTS["udp6-uso"][0],
  COPY_PATH_INPUTS["udp4-plain"][0],
  COPY_PATH_INPUTS["tcp6-tso-options"][0],
];

export interface CopyPathResult {
  groups: { segCount: number; segSize: number; length: number; peer: number; sourcePort: number }[];
  datagrams: string[];
  delivered: string[];
}

/** A packet's length and SHA-256, as the fixture records it. */
export function digest(b: Uint8Array): string {
  return `${b.length}:${createHash("sha256").update(b).digest("hex")}`;
}
