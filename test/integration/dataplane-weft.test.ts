// The userspace VXLAN dataplane between two weft agents in two network namespaces (src/lab/topology.ts): the Kubernetes
// network model's rules over weft0 (Pod ↔ Pod both ways without NAT, node → local and remote Pods), and large transfers
// checked byte for byte — a 100 MB TCP stream (TSO super-packets through the TX split and the RX coalescing) and paced
// MTU-sized UDP datagrams.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { isRoot, nonZero, ping, pollStatus, settledStatus, sleep, spawnIn, status, tcpTransfer, udpTransfer, waitPing, type Status } from "./lib/traffic.js";

describe.skipIf(!isRoot)("dataplane: two weft nodes", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab({ mode: "weft" });
    await lab.up();
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("Pods ping each other both ways", async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    await waitPing(a.ns, b.ip);
    expect(ping(a.ns, b.ip, 3)).toBe(3);
    expect(ping(b.ns, a.ip, 3)).toBe(3);
  });

  it("TCP works both ways and the server sees the client's Pod IP (no NAT)", async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    const there = await tcpTransfer(a.ns, b.ns, b.ip, 7001, 64 * 1024);
    expect(there.server.peer).toBe(a.ip);
    expect(there.server.local).toBe(b.ip);
    expect(there.client.local).toBe(a.ip);
    expect(there.client.reply?.sha256).toBe(there.client.sha256);
    const back = await tcpTransfer(b.ns, a.ns, a.ip, 7002, 64 * 1024);
    expect(back.server.peer).toBe(b.ip);
    expect(back.server.sha256).toBe(back.client.sha256);
  });

  it("the node reaches its local Pod and the remote Pod (via weft0)", async () => {
    const [n1, n2] = lab.nodes;
    expect(ping(n1.ns, lab.pod(1).ip, 3)).toBe(3);
    await waitPing(n1.ns, lab.pod(2).ip);
    expect(ping(n1.ns, lab.pod(2).ip, 3)).toBe(3);
    expect(ping(n2.ns, lab.pod(1).ip, 3)).toBe(3);
    // The kernel sends node → remote Pod through weft0, with weft0's address (the subnet's .0) as the source...
    expect(lab.exec(n1.ns, "ip", ["route", "get", lab.pod(2).ip])).toMatch(/dev weft0 .*src 10\.244\.1\.0/);
    // ...and that source is preserved at the Pod: a TCP server in Pod 2 sees node 1's weft0 address.
    const t = await tcpTransfer(n1.ns, lab.pod(2).ns, lab.pod(2).ip, 7003, 4096);
    expect(t.server.peer).toBe("10.244.1.0");
    expect(t.server.sha256).toBe(t.client.sha256);
  });

  it("a 100 MB TCP stream Pod 1 → Pod 2 arrives byte for byte (SHA-256 equal on both ends)", async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    // The Pod veths keep their default offloads: TSO on, so the kernel hands weft0 GSO super-packets to split.
    expect(lab.exec(a.ns, "ethtool", ["-k", "eth0"])).toMatch(/tcp-segmentation-offload: on/);
    const [n1, n2] = lab.nodes;
    const [before1, before2] = [await status(n1.socket!), await status(n2.socket!)];
    const { client, server } = await tcpTransfer(a.ns, b.ns, b.ip, 7010, 100 * 1024 * 1024, { timeoutS: 60 });
    expect(server.bytes).toBe(100 * 1024 * 1024);
    expect(server.sha256).toBe(client.sha256);
    expect(server.peer).toBe(a.ip);
    // The stream went through weft's fast paths, so the checksum above covers them: node 1 sent at least one datagram per
    // 1500 bytes to node 2, split TSO super-packets to do so, and node 2 coalesced received segments back (GRO).
    const minDatagrams = Math.floor((100 * 1024 * 1024) / 1500);
    const tx = (s: Status) => s.peers.find((p) => p.nodeName === "node2")?.txPackets ?? 0;
    await pollStatus(n1.socket!, (s) => tx(s) - tx(before1) >= minDatagrams && s.counters.tx_gso_split > before1.counters.tx_gso_split,
      `node1 → node2 txPackets to grow by ≥ ${minDatagrams}, with TSO splits`);
    await pollStatus(n2.socket!, (s) => s.counters.rx_coalesced > before2.counters.rx_coalesced, "node2 to coalesce received segments");
  }, 120_000);

  it("2000 MTU-sized UDP datagrams arrive intact (≥ 99%, every arrived one byte-correct)", async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    // 1400 bytes of payload + 28 of headers fits the Pod MTU (1450). Sent paced at 10 000/s (about 110 Mbit/s, a small
    // fraction of what the path carries) into a 16 MiB receive buffer, so nothing on this private veth underlay should
    // lose a datagram; we still allow 1% for the odd scheduling hiccup of a loaded 2-core VM, but demand that every
    // datagram that arrived is exactly the one sent (size, sequence number and every byte), with no duplicates.
    const { sent, report } = await udpTransfer(a.ns, b.ns, b.ip, 7020, { count: 2000, size: 1400, rate: 10_000 });
    expect(sent).toBe(2000);
    expect(report.corrupt, `corrupt datagrams, bad sizes ${report.badSizes.join(",")}`).toBe(0);
    expect(report.duplicates).toBe(0);
    expect(report.peers).toEqual([a.ip]);
    expect(report.intact).toBeGreaterThanOrEqual(1980);
  });

  it("an unpaced UDP burst is coalesced into UDP super-packets on node 2, and the Pod gets the datagrams as sent", async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    const n2 = lab.nodes[1];
    const before = await settledStatus(n2.socket!);
    const csumErrors = () => Number(/Udp: (?:\S+ ){6}(\d+)/.exec(lab.exec(b.ns, "cat", ["/proc/net/snmp"]).split("\n").filter((l) => l.startsWith("Udp:"))[1])?.[1]);
    const errorsBefore = csumErrors();
    const { sent, report } = await udpTransfer(a.ns, b.ns, b.ip, 7021, { count: 3000, size: 1000, rate: 1e9 });
    expect(sent).toBe(3000);
    // The kernel cut every super-packet back into the datagrams that were sent: no datagram of another size, none changed.
    expect(report.corrupt, `corrupt datagrams, bad sizes ${report.badSizes.join(",")}`).toBe(0);
    expect(report.duplicates).toBe(0);
    expect(report.intact).toBeGreaterThan(0);
    expect(csumErrors()).toBe(errorsBefore);
    const after = await pollStatus(n2.socket!, (s) => s.counters.rx_datagrams_in - before.counters.rx_datagrams_in >= report.intact, "node 2's counters");
    // Only UDP crossed meanwhile, so every merge was a datagram joining a UDP super-packet.
    expect(after.counters.rx_coalesced - before.counters.rx_coalesced).toBeGreaterThan(0);
  });

  it("four parallel streams: every datagram node 1's core produced reaches node 2's core", async () => {
    // Regression: a batch of 64 super-packets makes ~128 UDP_SEGMENT groups, more than one sendmmsg batch held; the
    // surplus was dropped silently and TCP retransmitted ~100k segments. The underlay veth loses nothing, so the two
    // cores' counts must match exactly once the reports have settled.
    const [a, b] = [lab.pod(1), lab.pod(2)];
    const server = spawnIn(b.ns, "iperf3", ["-s", "-1", "-p", "5301"]);
    try {
      await sleep(300);
      const before1 = await settledStatus(lab.nodes[0].socket!);
      const before2 = await settledStatus(lab.nodes[1].socket!);
      const out = JSON.parse(lab.exec(a.ns, "iperf3", ["-c", b.ip, "-p", "5301", "-t", "3", "-P", "4", "-J"], { timeoutMs: 60_000 }));
      expect(out.end.sum_received.bytes).toBeGreaterThan(0);
      const after1 = await settledStatus(lab.nodes[0].socket!);
      const after2 = await settledStatus(lab.nodes[1].socket!);
      const sent = after1.counters.tx_datagrams_out - before1.counters.tx_datagrams_out;
      const received = after2.counters.rx_datagrams_in - before2.counters.rx_datagrams_in;
      expect(sent).toBeGreaterThan(10_000);
      expect(received).toBe(sent);
      expect(after1.counters.tx_send_errors ?? 0).toBe(0);
    } finally {
      server.kill();
    }
  });

  it("outer source ports carry the flows' entropy: several flows leave from several ports of the agent's range", async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    const { sourcePorts } = (await status(lab.nodes[0].socket!)) as Status & { sourcePorts: [number, number] };
    expect(sourcePorts[0]).toBeGreaterThanOrEqual(49152);
    expect(sourcePorts[1]).toBeLessThanOrEqual(65535);
    const server = spawnIn(b.ns, "iperf3", ["-s", "-1", "-p", "5302"]);
    const dump = spawnIn(lab.nodes[1].ns, "tcpdump", ["-n", "-l", "-i", `${lab.prefix}u2`, "-c", "2000", "udp and dst port 4789 and src host 192.168.200.1"]);
    try {
      await sleep(500);
      lab.exec(a.ns, "iperf3", ["-c", b.ip, "-p", "5302", "-t", "2", "-P", "8", "-J"], { timeoutMs: 60_000 });
      await sleep(300);
    } finally {
      dump.kill();
      server.kill();
    }
    const { stdout } = await dump.done;
    const ports = new Set([...stdout.matchAll(/192\.168\.200\.1\.(\d+) >/g)].map((m) => Number(m[1])));
    expect(ports.size).toBeGreaterThan(1);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(sourcePorts[0]);
      expect(port).toBeLessThanOrEqual(sourcePorts[1]);
    }
  });

  it("nothing was dropped for a bad reason along the way", async () => {
    // Spoofed sources included: the agent turns IPv6 off on weft0 when there is no IPv6 Pod subnet, so the kernel's
    // link-local chatter (router solicitations, MLD) never reaches the egress filter.
    for (const n of lab.nodes) {
      const c = (await status(n.socket!)).counters;
      const bad = Object.entries(c).filter(([k, v]) => v > 0 &&
        /_drop_(malformed|bad_|spoofed|wrong_vni|unknown_peer|truncated|not_local|no_space|unsupported|no_route|no_peer|too_big)|l4_checksum_bad/.test(k));
      expect(bad, `node${n.index} counters ${JSON.stringify(nonZero(c))}`).toEqual([]);
    }
  });
});
