// `weft demo`: until the agent runs a real overlay, the demo proves the packet core end to end in one process: two cores
// stand for two nodes and exchange ICMP, UDP and a 64 KiB TCP burst (TSO split, UDP_SEGMENT grouping, UDP_GRO split, GRO).
import { Core, type Counters } from "../core/index.js";
import { icmpEcho4, tcpSuper4, udp4 } from "../core/synth.js";
import { runCoreBench } from "../../bench/core.js";

interface Node {
  core: Core;
  underlay: string;
  vtepMAC: string;
}

/** Node n: subnet 10.244.n.0/24, underlay 192.168.0.n, VtepMAC 02:5e:00:00:00:0n. */
function makeNode(n: number, vnetHdr: boolean): Node {
  const core = Core.load({ txSlots: 8, rxSlots: 8 });
  const vtepMAC = `02:5e:00:00:00:0${n}`;
  core.configure({ vni: 1, mtu: 1450, vtepMAC, vnetHdr, subnet4: `10.244.${n}.0/24`, icmpSource4: `10.244.${n}.0` });
  return { core, underlay: `192.168.0.${n}`, vtepMAC };
}

function connect(a: Node, b: Node, bSubnet: string): void {
  a.core.setPeer(0, { address: b.underlay, vtepMAC: b.vtepMAC });
  a.core.routes4.insert(bSubnet, 0);
}

/** Sends packets from a to b through both cores; returns what b would write to its TUN device. */
function send(a: Node, b: Node, packets: Uint8Array[]): Uint8Array[] {
  return b.core.rxPackets(a.core.forwardTo(b.core, a.core.encapPackets(packets), a.underlay));
}

function check(label: string, ok: boolean, detail: string): boolean {
  console.log(`  ${ok ? "ok  " : "FAIL"} ${label.padEnd(44)} ${detail}`);
  return ok;
}

function drops(c: Counters): string {
  const d = Object.entries(c).filter(([k, v]) => k.includes("drop") && v > 0);
  return d.length === 0 ? "no drops" : d.map(([k, v]) => `${k}=${v}`).join(" ");
}

export async function runDemo(opts: { seconds: number }): Promise<number> {
  console.log("weft demo — packet core self-check (two WASM cores standing for node1 and node2)\n");
  const n1 = makeNode(1, false);
  const n2 = makeNode(2, false);
  connect(n1, n2, "10.244.2.0/24");
  connect(n2, n1, "10.244.1.0/24");
  let ok = true;

  const ping = icmpEcho4(n1.core, { src: "10.244.1.10", dst: "10.244.2.20", id: 7, seq: 1, dataLen: 56 });
  const got = send(n1, n2, [ping]);
  ok = check("ICMP echo node1 → node2, byte for byte", got.length === 1 && Buffer.compare(got[0], ping) === 0, `${ping.length} B`) && ok;

  const udps = [64, 512, 1450].map((size) => udp4(n2.core, { src: "10.244.2.20", dst: "10.244.1.10", srcPort: 5353, dstPort: 53, size }));
  const back = send(n2, n1, udps);
  ok = check("UDP 64/512/1450 B node2 → node1", back.length === 3 && back.every((p, i) => Buffer.compare(p, udps[i]) === 0), "3 packets") && ok;

  const spoof = udp4(n1.core, { src: "10.9.9.9", dst: "10.244.2.20", srcPort: 1, dstPort: 2, size: 100 });
  send(n1, n2, [spoof]);
  ok = check("spoofed source dropped and counted", n1.core.counters().tx_drop_spoofed_source === 1, drops(n1.core.counters())) && ok;

  const t1 = makeNode(1, true);
  const t2 = makeNode(2, true);
  connect(t1, t2, "10.244.2.0/24");
  connect(t2, t1, "10.244.1.0/24");
  const burst = tcpSuper4(t1.core, { src: "10.244.1.10", dst: "10.244.2.20", srcPort: 40000, dstPort: 5201, seq: 1, ack: 1, payloadLen: 65495, mss: 1410 });
  const merged = send(t1, t2, [burst]);
  const c1 = t1.core.counters();
  const c2 = t2.core.counters();
  ok = check("64 KiB TCP: TSO split on node1", c1.tx_datagrams_out === 47, `${c1.tx_datagrams_out} VXLAN datagrams`) && ok;
  const samePayload = merged.length === 1 && Buffer.compare(merged[0].subarray(50), burst.subarray(50)) === 0;
  ok = check("GRO on node2 rebuilds one super-packet", samePayload, `${c2.rx_coalesced + 1} segments → ${merged.length} TUN write`) && ok;

  console.log("\nmicro-benchmarks (one thread):");
  runCoreBench({ seconds: opts.seconds });
  console.log("\nComing next: `weft agent` on a real TUN device with UDP_SEGMENT/UDP_GRO sockets, the CNI plugin, and a");
  console.log("two-node iperf3 demo comparing weft with kernel VXLAN and routed networking.");
  return ok ? 0 : 1;
}
