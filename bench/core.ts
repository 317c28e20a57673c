// Micro-benchmarks of the packet core, single thread: encap and decap packets/s at 64, 512 and 1450 bytes, TSO split of a
// 64 KiB super-packet, GRO of the segments back into one. Two cores stand for two nodes; every figure comes from one run.
import { Core, type Identity } from "../src/core/index.js";
import { tcpSuper4, udp4 } from "../src/core/synth.js";
import { fmtRate, measure, printTable } from "./lib/report.js";

const NODE1 = { mac: "02:5e:00:00:00:01", underlay: "192.168.0.1", subnet: "10.244.1.0/24" };
const NODE2 = { mac: "02:5e:00:00:00:02", underlay: "192.168.0.2", subnet: "10.244.2.0/24" };
const BATCH = 64;
const MTU = 1450;

export interface CoreBenchResult {
  packetSizes: { size: number; encapPps: number; decapPps: number; encapDecapPps: number; gbitPerSec: number }[];
  tsoSplit64k: { segments: number; microseconds: number; gbitPerSec: number };
  groCoalesce64k: { segments: number; microseconds: number; gbitPerSec: number };
}

function node(self: typeof NODE1, peer: typeof NODE1, vnetHdr: boolean): Core {
  const core = Core.load({ txSlots: BATCH, rxSlots: BATCH });
  const id: Identity = { vni: 1, mtu: MTU, vtepMAC: self.mac, vnetHdr, subnet4: self.subnet, icmpSource4: self.subnet.replace(/0\/24$/, "0") };
  core.configure(id);
  core.setPeer(0, { address: peer.underlay, vtepMAC: peer.mac });
  core.routes4.insert(peer.subnet, 0);
  return core;
}

export function runCoreBench(opts: { seconds: number; quiet?: boolean }): CoreBenchResult {
  const a = node(NODE1, NODE2, false);
  const b = node(NODE2, NODE1, false);
  const packetSizes: CoreBenchResult["packetSizes"] = [];
  for (const size of [64, 512, 1450]) {
    for (let i = 0; i < BATCH; i++) {
      const pkt = udp4(a, { src: "10.244.1.10", dst: "10.244.2.20", srcPort: 5000 + (i % 4), dstPort: 5201, size });
      a.txSlot(i).set(pkt);
      a.setTxLength(i, pkt.length);
    }
    const encapPps = BATCH * measure(opts.seconds, () => a.exports.encap(BATCH));
    const messages = a.exports.encap(BATCH);
    if (a.forwardTo(b, messages, NODE1.underlay) !== BATCH) throw new Error("decap delivered the wrong number of packets");
    const decapPps = BATCH * measure(opts.seconds, () => b.exports.decap(messages));
    const encapDecapPps = 1 / (1 / encapPps + 1 / decapPps);
    packetSizes.push({ size, encapPps, decapPps, encapDecapPps, gbitPerSec: (encapDecapPps * size * 8) / 1e9 });
  }

  const tx = node(NODE1, NODE2, true);
  const rx = node(NODE2, NODE1, true);
  const payloadLen = 65535 - 40;
  const mss = MTU - 40;
  const sup = tcpSuper4(tx, { src: "10.244.1.10", dst: "10.244.2.20", srcPort: 40000, dstPort: 5201, seq: 1000, ack: 1, payloadLen, mss });
  tx.txSlot(0).set(sup);
  tx.setTxLength(0, sup.length);
  const groups = tx.exports.encap(1);
  const segments = Math.ceil(payloadLen / mss);
  const splitPerSec = measure(opts.seconds, () => tx.exports.encap(1));
  if (tx.forwardTo(rx, groups, NODE1.underlay) !== 1) throw new Error("GRO did not coalesce the split super-packet into one");
  const messages = groups;
  const groPerSec = measure(opts.seconds, () => rx.exports.decap(messages));
  const result: CoreBenchResult = {
    packetSizes,
    tsoSplit64k: { segments, microseconds: 1e6 / splitPerSec, gbitPerSec: (splitPerSec * payloadLen * 8) / 1e9 },
    groCoalesce64k: { segments, microseconds: 1e6 / groPerSec, gbitPerSec: (groPerSec * payloadLen * 8) / 1e9 },
  };
  if (!opts.quiet) printCoreBench(result);
  return result;
}

export function printCoreBench(r: CoreBenchResult): void {
  printTable(
    "packet core, one thread, batches of 64 (packets/s)",
    ["inner size", "encap", "decap", "encap+decap", "Gbit/s (encap+decap)"],
    r.packetSizes.map((p) => [`${p.size} B`, fmtRate(p.encapPps), fmtRate(p.decapPps), fmtRate(p.encapDecapPps), p.gbitPerSec.toFixed(1)]),
  );
  printTable(
    "64 KiB TCP super-packet",
    ["step", "segments", "µs", "Gbit/s"],
    [
      ["TSO split + encap", r.tsoSplit64k.segments, r.tsoSplit64k.microseconds.toFixed(2), r.tsoSplit64k.gbitPerSec.toFixed(1)],
      ["decap + GRO", r.groCoalesce64k.segments, r.groCoalesce64k.microseconds.toFixed(2), r.groCoalesce64k.gbitPerSec.toFixed(1)],
    ],
  );
}
