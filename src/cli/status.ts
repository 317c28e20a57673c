// `weft status`: asks the local agent over its socket and prints what it knows.
import { callAgent } from "../control/api-server.js";
import type { AgentStatus } from "../agent/agent.js";

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export async function runStatus(opts: { socket: string; json: boolean }): Promise<number> {
  let s: AgentStatus;
  try {
    s = (await callAgent(opts.socket, { op: "status" })) as AgentStatus;
  } catch (err) {
    console.error(`weft status: ${(err as Error).message}`);
    return 1;
  }
  if (opts.json) {
    console.log(JSON.stringify(s, null, 2));
    return 0;
  }
  console.log(`node      ${s.nodeName} (${s.ready ? "ready" : "starting"})`);
  console.log(`subnet    ${s.subnet}${s.subnetV6 ? `, ${s.subnetV6}` : ""}`);
  console.log(`underlay  ${s.publicIP}:${s.port}  VNI ${s.vni}  VtepMAC ${s.vtepMAC}  source ports ${s.sourcePorts[0]}-${s.sourcePorts[1]}`);
  console.log(`device    ${s.device}  MTU ${s.mtu}  TUN ${s.offloads.tun}  UDP_SEGMENT ${s.offloads.udpSegment ? "on" : "off"}  UDP_GRO ${s.offloads.udpGro ? "on" : "off"}`);
  console.log(`\npeers (${s.peers.length})`);
  for (const p of s.peers) {
    console.log(`  ${p.nodeName.padEnd(16)} ${p.address.padEnd(16)} ${(p.subnet ?? "").padEnd(18)} tx ${String(p.txPackets).padStart(9)} pkts ${bytes(p.txBytes).padStart(10)}  rx ${String(p.rxPackets).padStart(9)} pkts ${bytes(p.rxBytes).padStart(10)}  last seen ${p.lastSeen ?? "never"}`);
  }
  if (s.refused.length > 0) {
    console.log(`\nrefused node records (${s.refused.length})`);
    for (const r of s.refused) console.log(`  ${r.nodeName.padEnd(16)} ${r.reason.padEnd(22)} ${r.message}`);
  }
  const drops = Object.entries(s.counters).filter(([k, v]) => k.includes("_drop_") && v > 0);
  console.log(`\ncounters  tx ${s.counters.tx_passed ?? 0} packets in → ${s.counters.tx_datagrams_out ?? 0} datagrams; rx ${s.counters.rx_datagrams_in ?? 0} datagrams → ${s.counters.rx_packets_out ?? 0} packets (${s.counters.rx_coalesced ?? 0} coalesced)`);
  console.log(`queues    ${s.queues.map((q) => `#${q.queue} tx ${q.txPacketsIn} rx ${q.rxDatagramsIn}`).join("  ")}`);
  console.log(`drops     ${drops.length ? drops.map(([k, v]) => `${k}=${v}`).join(" ") : "none"}`);
  return 0;
}
