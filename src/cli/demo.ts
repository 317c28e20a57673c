// `weft demo`: a weft cluster in network namespaces (src/lab/demo-cluster.ts). Before it, and alone when not root, the
// packet core's self-check: two cores exchange ICMP, UDP and a 64 KiB TCP burst (TSO split, UDP_SEGMENT grouping,
// UDP_GRO split, GRO) in one process.
import { Core, type Counters } from "../core/index.js";
import { icmpEcho4, tcpSuper4, udp4 } from "../core/synth.js";
import { runClusterDemo } from "../lab/demo-cluster.js";
import { LAB_REGISTRIES, Lab, type LabRegistry } from "../lab/topology.js";

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

function coreSelfCheck(): boolean {
  console.log("packet core self-check (two WASM cores standing for node1 and node2)\n");
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
  return ok;
}

export interface DemoOptions {
  nodes: number;
  pods: number;
  registry: string;
  seconds: number;
  keep: boolean;
  down?: string;
}

export async function runDemo(o: DemoOptions): Promise<number> {
  if (o.down !== undefined) {
    const gone = Lab.teardown(o.down);
    console.log(gone.length ? `took down ${gone.join(" ")}` : `no namespaces start with ${o.down}`);
    return 0;
  }
  const bad = optionError(o);
  if (bad) {
    console.error(`weft demo: ${bad}`);
    return 2;
  }
  console.log("weft demo\n");
  let ok = coreSelfCheck();
  if (process.getuid?.() !== 0) {
    console.log("\nThe cluster demo builds network namespaces and TUN devices: run as root (sudo npm run demo).");
    return ok ? 0 : 1;
  }
  ok = (await runClusterDemo({ nodes: o.nodes, pods: o.pods, registry: o.registry as LabRegistry, seconds: o.seconds, keep: o.keep,
    weftBin: process.argv[1] })) && ok;
  return ok ? 0 : 1;
}

function optionError(o: DemoOptions): string | undefined {
  if (!Number.isInteger(o.nodes) || o.nodes < 2 || o.nodes > 16) return "--nodes must be a whole number from 2 to 16";
  if (!Number.isInteger(o.pods) || o.pods < 1 || o.pods > 8) return "--pods must be a whole number from 1 to 8";
  if (!LAB_REGISTRIES.includes(o.registry as LabRegistry)) return `--registry must be one of ${LAB_REGISTRIES.join(", ")}`;
  if (!(o.seconds > 0)) return "--seconds must be a positive number";
  return undefined;
}
