import { it } from "vitest";
import { Lab } from "../../bench/lib/topology.js";
import { status, sleep, tcpSink, tcpSend, nonZero } from "./lib/traffic.js";
for (const mode of ["kernel-vxlan", "weft"] as const)
it("scratch " + mode, async () => {
  const lab = new Lab({ mode });
  await lab.up();
  try {
    const n1 = lab.nodes[0].ns; const p2 = lab.pod(2).ip;
    lab.exec(n1, "ip", ["route", "add", "default", "via", "192.168.200.2"]);
    lab.exec(n1, "iptables", ["-t", "nat", "-A", "OUTPUT", "-d", "10.96.0.10", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", `${p2}:8080`]);
    const sink = await tcpSink(lab.pod(2).ns, 8080, { conns: 2, timeoutS: 8 });
    console.log(mode, await tcpSend(n1, "10.96.0.10", 80, 1000, 3).catch(String));
    lab.exec(n1, "iptables", ["-t", "nat", "-A", "POSTROUTING", "!", "-s", "10.244.0.0/16", "-d", "10.244.0.0/16", "-j", "MASQUERADE"]);
    console.log(mode, await tcpSend(n1, "10.96.0.10", 80, 1000, 3).catch(String));
    if (mode === "weft") console.log(nonZero((await status(lab.nodes[0].socket!)).counters));
  } catch (e) { console.log(String(e)); }
  await lab.down();
});
