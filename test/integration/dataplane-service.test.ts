// Kube-proxy compatibility: a Service VIP DNATed by the kernel (iptables nat, as kube-proxy programs it) to a Pod on the other
// node leaves node 1 through weft0 like any Pod traffic, and the replies are un-NATed by conntrack on the way back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { isRoot, pollStatus, settledStatus, tcpSend, tcpSink, waitPing } from "./lib/traffic.js";

const VIP = "10.96.0.10";

describe.skipIf(!isRoot)("dataplane: Service DNAT in the kernel (kube-proxy)", () => {
  let lab: Lab;
  let ipt: (...args: string[]) => string;

  beforeAll(async () => {
    lab = new Lab({ mode: "weft" });
    await lab.up();
    const n1 = lab.nodes[0];
    ipt = (...args: string[]) => lab.exec(n1.ns, "iptables", ["-w", ...args]);
    const dnat = ["-d", VIP, "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", `${lab.pod(2).ip}:8080`];
    // Traffic from Pod 1 is DNATed as it arrives on its host veth; the node's own traffic in OUTPUT.
    ipt("-t", "nat", "-A", "PREROUTING", "-s", lab.pod(1).ip, ...dnat);
    ipt("-t", "nat", "-A", "OUTPUT", ...dnat);
    // Like a real node, node 1 reaches the Service range through its default route (the underlay), not through weft0.
    lab.exec(n1.ns, "ip", ["route", "add", "default", "via", lab.nodes[1].underlayIP]);
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("Pod 1 → VIP:80 reaches the server in Pod 2 on 8080, which sees Pod 1's IP", async () => {
    const sink = await tcpSink(lab.pod(2).ns, 8080, { timeoutS: 15 });
    try {
      const client = await tcpSend(lab.pod(1).ns, VIP, 80, 256 * 1024, 15);
      const [server] = await sink.results();
      expect(server.localPort).toBe(8080);
      expect(server.local).toBe(lab.pod(2).ip);
      expect(server.peer).toBe(lab.pod(1).ip);
      expect(server.sha256).toBe(client.sha256);
      expect(client.reply?.bytes).toBe(256 * 1024);
    } finally {
      sink.proc.kill();
    }
  });

  it("node 1's own traffic sourced from its underlay address is refused by the egress filter (docs/wire.md) and counted", async () => {
    // The node picks its source by the route to the VIP (the underlay, 192.168.200.1); after DNAT the packet leaves by
    // weft0 with a source outside node 1's Pod subnet. The kernel's VXLAN would carry it; weft's anti-spoofing filter drops it.
    const n1 = lab.nodes[0];
    expect(lab.exec(n1.ns, "ip", ["route", "get", VIP])).toContain(`src ${n1.underlayIP}`);
    // (The agent keeps IPv6 off on weft0 without an IPv6 Pod subnet, so no link-local chatter adds to this count.)
    const before = await settledStatus(n1.socket!);
    const sink = await tcpSink(lab.pod(2).ns, 8080, { timeoutS: 5 });
    try {
      await expect(tcpSend(n1.ns, VIP, 80, 1000, 2)).rejects.toThrow(/timed out/);
    } finally {
      sink.proc.kill();
    }
    await pollStatus(n1.socket!, (s) => s.counters.tx_drop_spoofed_source > before.counters.tx_drop_spoofed_source,
      "node1 to count the SYN as spoofed");
  });

  it("node 1 → VIP:80 works with kube-proxy's masquerade for non-Pod sources; the server sees weft0's address", async () => {
    // kube-proxy (with --cluster-cidr) marks Service traffic from outside the Pod network for MASQUERADE; flannel's ip-masq
    // rule does the same for host → Pod network traffic. This is that rule: the source becomes weft0's 10.244.1.0.
    ipt("-t", "nat", "-A", "POSTROUTING", "!", "-s", "10.244.0.0/16", "-d", "10.244.0.0/16", "-j", "MASQUERADE");
    const sink = await tcpSink(lab.pod(2).ns, 8080, { timeoutS: 15 });
    try {
      const client = await tcpSend(lab.nodes[0].ns, VIP, 80, 256 * 1024, 15);
      const [server] = await sink.results();
      expect(server.localPort).toBe(8080);
      expect(server.peer).toBe("10.244.1.0");
      expect(server.sha256).toBe(client.sha256);
    } finally {
      sink.proc.kill();
    }
  });
});
