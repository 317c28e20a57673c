// A million random and mutated packets through decap and encap: the core must never trap, and every packet must be
// accounted for as passed or dropped for a reason.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { SLOT_SIZE, RX_MSG, TX_HEADROOM, TX_READ_SIZE } from "../../src/core/index.js";
import { buildIPv4, buildIPv6, buildTCP, buildUDP, mulberry32, virtioNetHdr } from "../helpers/packets.js";
import { NODE1, NODE2, makeCore, sumCounters } from "../helpers/nodes.js";

const TOTAL = 1_000_000;
const BATCH = 64;

function seedCorpus(): { tx: Uint8Array[]; rx: Uint8Array[] } {
  const pl = (n: number) => new Uint8Array(n).map((_, i) => (i * 13) & 0xff);
  const inner = [
    buildUDP({ srcPort: 1, dstPort: 2, payload: pl(100) }, "10.244.1.5", "10.244.2.7"),
    buildTCP({ srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x10, payload: pl(1400) }, "10.244.1.5", "10.244.2.7"),
    buildTCP({ srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x18, payload: pl(60000) }, "10.244.1.5", "10.244.2.7"),
    buildUDP({ srcPort: 1, dstPort: 2, payload: pl(8000) }, "fd00:244:1::5", "fd00:244:2::7"),
    buildTCP({ srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x10, payload: pl(30000) }, "fd00:244:1::5", "fd00:244:2::7"),
    buildIPv4({ src: "10.244.1.5", dst: "10.244.2.7", proto: 1, payload: pl(64), options: new Uint8Array([1, 1, 1, 0]) }),
    buildIPv6({ src: "fd00:244:1::5", dst: "fd00:244:2::7", nextHeader: 58, payload: pl(64), extHeaders: [{ type: 0, data: new Uint8Array(6) }] }),
  ];
  const tsoHdr = (gsoType: number, l3: number, csumOffset: number) =>
    virtioNetHdr({ flags: 1, gsoType, hdrLen: l3 + 20, gsoSize: 1000, csumStart: l3, csumOffset });
  const tx = [
    ...inner.map((p) => Buffer.concat([virtioNetHdr({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 }), p])),
    Buffer.concat([tsoHdr(1, 20, 16), inner[2]]),
    Buffer.concat([tsoHdr(4, 40, 16), inner[4]]),
    Buffer.concat([tsoHdr(5, 40, 6), inner[3]]),
  ];
  // What the peer's core sends, and what the kernel's VXLAN driver sent in the fixtures.
  const peer = makeCore(NODE2, NODE1, { vnetHdr: true });
  const rx: Uint8Array[] = [];
  const back = [
    buildUDP({ srcPort: 1, dstPort: 2, payload: pl(100) }, "10.244.2.7", "10.244.1.5"),
    buildTCP({ srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x10, payload: pl(20000) }, "10.244.2.7", "10.244.1.5"),
    buildTCP({ srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x10, payload: pl(9000) }, "fd00:244:2::7", "fd00:244:1::5"),
  ];
  for (const p of back) {
    const hdr = p[0] >> 4 === 4 ? tsoHdr(1, 20, 16) : tsoHdr(4, 40, 16);
    const groups = peer.encapPackets([Buffer.concat([hdr, p])]);
    for (let g = 0; g < groups; g++) {
      const grp = peer.txGroup(g);
      rx.push(peer.txBytes(grp));
    }
  }
  const fixtures = JSON.parse(readFileSync(new URL("../fixtures/kernel-vxlan.json", import.meta.url), "utf8"));
  for (const f of fixtures.packets) rx.push(Buffer.from(f.hex, "hex").subarray(f.udpPayloadOffset));
  return { tx, rx };
}

function mutate(rand: () => number, seed: Uint8Array): Uint8Array {
  const r = rand();
  if (r < 0.1) return Uint8Array.from({ length: Math.floor(rand() * 200) }, () => (rand() * 256) | 0); // garbage
  let p = new Uint8Array(seed); // a copy: Buffer.slice would alias the seed
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const kind = rand();
    if (kind < 0.45 && p.length > 0) {
      p[Math.floor(rand() * Math.min(p.length, 128))] ^= 1 << Math.floor(rand() * 8); // header bit flip
    } else if (kind < 0.7 && p.length > 0) {
      p[Math.floor(rand() * p.length)] = (rand() * 256) | 0;
    } else if (kind < 0.9) {
      p = p.subarray(0, Math.floor(rand() * (p.length + 1)));
    } else {
      const extra = Uint8Array.from({ length: Math.floor(rand() * 64) }, () => (rand() * 256) | 0);
      p = Buffer.concat([p, extra]);
    }
  }
  return p;
}

describe("fuzz", () => {
  it(`survives ${TOTAL} random and mutated packets through decap and encap, accounting for every one`, () => {
    const rand = mulberry32(20261121);
    const { tx, rx } = seedCorpus();
    const cores = [makeCore(NODE1, NODE2, { vnetHdr: true }), makeCore(NODE1, NODE2, { vnetHdr: false })];
    const expectTx = [0, 0];
    const expectRx = [0, 0];
    let fed = 0;
    for (let round = 0; fed < TOTAL; round++) {
      const which = round & 1;
      const core = cores[which];
      const u8 = core.u8;
      const view = core.view;
      if ((round >> 1) & 1) {
        for (let i = 0; i < BATCH; i++) {
          // The vnet core reads virtio_net_hdr + packet; the plain core reads the bare packet.
          const seed = tx[Math.floor(rand() * tx.length)];
          const p = mutate(rand, which === 0 ? seed : seed.subarray(10));
          u8.set(p.subarray(0, TX_READ_SIZE), core.at.txIn + i * SLOT_SIZE + TX_HEADROOM);
          // Now and then the length lies.
          const len = rand() < 0.02 ? Math.floor(rand() * 2 * SLOT_SIZE) : p.length;
          view.setUint32(core.at.txInLen + 4 * i, len, true);
        }
        core.exports.encap(BATCH);
        expectTx[which] += BATCH;
        fed += BATCH;
      } else {
        for (let m = 0; m < BATCH; m++) {
          // Some messages are several datagrams glued as UDP_GRO does, with a segment size that may be wrong.
          const parts = rand() < 0.3 ? 1 + Math.floor(rand() * 8) : 1;
          const seg = parts > 1 ? Math.floor(rand() * 1600) : rand() < 0.05 ? Math.floor(rand() * 100) : 0;
          let len = 0;
          for (let k = 0; k < parts; k++) {
            const p = mutate(rand, rx[Math.floor(rand() * rx.length)]).subarray(0, parts > 1 ? seg || 1 : undefined);
            if (len + p.length > SLOT_SIZE) break;
            u8.set(p, core.at.rxIn + m * SLOT_SIZE + len);
            len += p.length;
          }
          const d = core.at.rxInDesc + m * RX_MSG.STRIDE;
          view.setUint32(d + RX_MSG.LENGTH, len, true);
          view.setUint32(d + RX_MSG.SEG_SIZE, seg, true);
          const src = rand() < 0.9 ? [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 77, 2] : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 77, 9];
          u8.set(src, d + RX_MSG.SRC_ADDR);
          const effSeg = seg === 0 || seg > len ? len : seg;
          const datagrams = len === 0 ? 1 : Math.ceil(len / effSeg);
          expectRx[which] += datagrams;
          fed += datagrams;
        }
        core.exports.decap(BATCH);
      }
    }
    cores.forEach((core, which) => {
      const c = core.counters();
      if (process.env.WEFT_FUZZ_VERBOSE) console.log(which, Object.entries(c).filter(([, v]) => v > 0));
      expect(c.tx_packets_in).toBe(expectTx[which]);
      expect(c.tx_packets_in).toBe(c.tx_passed + sumCounters(c, /^tx_drop_/));
      expect(c.rx_datagrams_in).toBe(expectRx[which]);
      expect(c.rx_datagrams_in).toBe(c.rx_passed + sumCounters(c, /^rx_drop_/));
      // The corpus is mostly near-valid: a fuzz run that passes nothing, or drops nothing, tests nothing.
      expect(c.tx_passed).toBeGreaterThan(1000);
      expect(c.rx_passed).toBeGreaterThan(1000);
      expect(sumCounters(c, /^rx_drop_/)).toBeGreaterThan(1000);
    });
  }, 300_000);
});
