// `weft demo`: two weft nodes in network namespaces with a Pod each — Pods ping and talk TCP across the overlay, the agents
// show their status — then the benchmark against kernel VXLAN and routed networking. Before that, and alone when not root,
// the packet core's self-check: two cores exchange ICMP, UDP and a 64 KiB TCP burst (TSO split, UDP_SEGMENT grouping,
// UDP_GRO split, GRO) in one process.
import { Core, type Counters } from "../core/index.js";
import { icmpEcho4, tcpSuper4, udp4 } from "../core/synth.js";
import { runCoreBench } from "../../bench/core.js";
import { runOverlayBench } from "../../bench/overlay.js";
import { Lab } from "../lab/topology.js";

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

/** Two weft nodes in namespaces: Pods talk across the overlay; the agents' status is shown. */
async function twoNodeDemo(): Promise<boolean> {
  console.log("\ntwo weft nodes in network namespaces (node1 10.244.1.0/24, node2 10.244.2.0/24), one Pod each, made by each");
  console.log("node's agent through the CNI front end (build/cni/weft), as a container runtime would call it\n");
  const lab = new Lab({ mode: "weft", podsVia: "cni" });
  let ok = true;
  try {
    await lab.up();
    const [p1, p2] = [lab.pod(1), lab.pod(2)];
    const ping = (from: typeof p1, to: typeof p1) => {
      try {
        const out = lab.exec(from.ns, "ping", ["-c", "3", "-i", "0.2", "-W", "2", to.ip]);
        return /3 received/.test(out) ? out.split("\n").find((l) => l.startsWith("rtt")) ?? "" : "";
      } catch {
        return "";
      }
    };
    const a = ping(p1, p2);
    ok = check(`Pod ${p1.ip} (node1) → Pod ${p2.ip} (node2): ping`, a !== "", a) && ok;
    const b = ping(p2, p1);
    ok = check(`Pod ${p2.ip} (node2) → Pod ${p1.ip} (node1): ping`, b !== "", b) && ok;
    const script = "import socket,sys\ns=socket.socket();s.bind(('0.0.0.0',7000));s.listen(1);c,a=s.accept();n=0\nwhile True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\nprint(a[0],n)";
    const { spawn } = await import("node:child_process");
    const server = spawn("ip", ["netns", "exec", p2.ns, "python3", "-c", script], { stdio: ["ignore", "pipe", "ignore"] });
    let heard = "";
    server.stdout.on("data", (d: Buffer) => (heard += d.toString()));
    await new Promise((r) => setTimeout(r, 300));
    lab.exec(p1.ns, "python3", ["-c", `import socket;s=socket.create_connection(('${p2.ip}',7000));s.sendall(b'w'*50_000_000);s.close()`]);
    await new Promise((r) => server.once("exit", r));
    const [src, bytes] = heard.trim().split(" ");
    ok = check("TCP 50 MB Pod → Pod, source address kept (no NAT)", src === p1.ip && Number(bytes) === 50_000_000, `server saw ${src}, ${bytes} bytes`) && ok;
    await new Promise((r) => setTimeout(r, 1500)); // the workers report their counters every second
    console.log("\n$ weft status   (on node1)");
    const { execFileSync } = await import("node:child_process");
    console.log(execFileSync("ip", ["netns", "exec", lab.nodes[0].ns, process.execPath, process.argv[1], "status", "--socket", lab.nodes[0].socket!], { encoding: "utf8" }));
  } catch (err) {
    ok = check("two-node lab", false, (err as Error).message);
  } finally {
    await lab.down();
  }
  return ok;
}

export async function runDemo(opts: { seconds: number }): Promise<number> {
  console.log("weft demo\n");
  let ok = coreSelfCheck();
  if (process.getuid?.() !== 0) {
    console.log("\nThe two-node demo and the benchmark build network namespaces and TUN devices: run as root (sudo npm run demo).");
    return ok ? 0 : 1;
  }
  ok = (await twoNodeDemo()) && ok;
  console.log("\nbenchmark: the same two nodes as routed (host-gw), kernel VXLAN (flannel-style) and weft\n");
  await runOverlayBench({ seconds: opts.seconds });
  console.log("\npacket core micro-benchmarks (one thread):");
  runCoreBench({ seconds: 0.5 });
  return ok ? 0 : 1;
}
