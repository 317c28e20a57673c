// A mixed cluster (docs/wire.md, interop): node 1 runs the Linux kernel's VXLAN configured exactly as flannel configures it
// (port 8472, neighbour + FDB + onlink route), node 2 runs weft on 8472 with the kernel node listed by hand in the registry.
// Traffic flows both ways, byte for byte, and weft sees the kernel node as a live peer with traffic in both directions.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { isRoot, ping, pollStatus, tcpTransfer, waitPing } from "./lib/traffic.js";

describe.skipIf(!isRoot)("dataplane: mixed cluster (kernel VXLAN node + weft node)", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab({ mode: "mixed" });
    await lab.up();
    // A real NIC fills in the checksums the kernel leaves to it and segments TSO packets; a veth passes both on unfinished
    // (CHECKSUM_PARTIAL, whole GSO skbs). Make node 1's underlay behave like a NIC so this suite sees wire-size, finished
    // packets; the veth case (which weft handles by finishing checksums and passing GSO on) is the separate suite below.
    lab.exec(lab.nodes[0].ns, "ethtool", ["-K", `${lab.prefix}u1`, "tx", "off"]);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("runs on flannel's port with the kernel node as a peer", async () => {
    expect(lab.port).toBe(8472);
    expect(lab.exec(lab.nodes[0].ns, "ip", ["-d", "link", "show", `${lab.prefix}v1`])).toMatch(/vxlan id 1 .*dstport 8472/);
  });

  it("Pods ping each other both ways", async () => {
    const [k, w] = [lab.pod(1), lab.pod(2)];
    await waitPing(k.ns, w.ip);
    expect(ping(k.ns, w.ip, 3)).toBe(3);
    expect(ping(w.ns, k.ip, 3)).toBe(3);
  });

  it("TCP both ways, source Pod IPs preserved", async () => {
    const [k, w] = [lab.pod(1), lab.pod(2)];
    const there = await tcpTransfer(k.ns, w.ns, w.ip, 7101, 64 * 1024);
    expect(there.server.peer).toBe(k.ip);
    expect(there.server.sha256).toBe(there.client.sha256);
    const back = await tcpTransfer(w.ns, k.ns, k.ip, 7102, 64 * 1024);
    expect(back.server.peer).toBe(w.ip);
    expect(back.server.sha256).toBe(back.client.sha256);
  });

  it("20 MB TCP both directions arrives byte for byte", async () => {
    const [k, w] = [lab.pod(1), lab.pod(2)];
    const size = 20 * 1024 * 1024;
    const kw = await tcpTransfer(k.ns, w.ns, w.ip, 7103, size, { timeoutS: 60 });
    expect(kw.server.bytes).toBe(size);
    expect(kw.server.sha256).toBe(kw.client.sha256);
    const wk = await tcpTransfer(w.ns, k.ns, k.ip, 7104, size, { timeoutS: 60 });
    expect(wk.server.bytes).toBe(size);
    expect(wk.server.sha256).toBe(wk.client.sha256);
  }, 120_000);

  it("weft's status shows the kernel node as a live peer with rx and tx packets", async () => {
    // 20 MB each way is at least ~14 000 datagrams each way (counters arrive with the workers' next report).
    const s = await pollStatus(lab.nodes[1].socket!, (st) => st.peers.some((p) => p.nodeName === "kernel-node" && p.live &&
      p.rxPackets > 14_000 && p.txPackets > 14_000), "kernel-node live with > 14 000 packets each way");
    const peer = s.peers.find((p) => p.nodeName === "kernel-node")!;
    expect(peer.address).toBe(lab.nodes[0].underlayIP);
    expect(peer.subnet).toBe(lab.nodes[0].subnet);
    expect(s.counters.rx_drop_unknown_peer ?? 0).toBe(0);
    expect(s.counters.rx_drop_bad_inner_mac ?? 0).toBe(0);
  });
});

// The same mixed cluster with node 1's underlay veth left at its defaults (TX checksum offload on), as kernel nodes joined by
// veths and a bridge are (kind, docker): the kernel's VXLAN sends inner TCP segments whose checksum holds only the
// pseudo-header sum (CHECKSUM_PARTIAL, finished by nobody over a veth). A kernel VXLAN receiver keeps that skb state; weft
// receives bytes, writes them to weft0 as complete packets, and the Pod drops them as corrupt. Ping works (ICMP checksums
// are always computed in software); TCP does not, in either direction (the kernel Pod's SYN or SYN-ACK is the victim).
describe.skipIf(!isRoot)("dataplane: mixed cluster over a checksum-offloading veth underlay (kind-like)", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab({ mode: "mixed" });
    await lab.up();
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("TCP both ways between the kernel node's Pod and the weft node's Pod", async () => {
    const [k, w] = [lab.pod(1), lab.pod(2)];
    expect(lab.exec(lab.nodes[0].ns, "ethtool", ["-k", `${lab.prefix}u1`])).toMatch(/tx-checksumming: on/);
    const there = await tcpTransfer(k.ns, w.ns, w.ip, 7201, 256 * 1024, { timeoutS: 3 });
    expect(there.server.sha256).toBe(there.client.sha256);
    const back = await tcpTransfer(w.ns, k.ns, k.ip, 7202, 256 * 1024, { timeoutS: 3 });
    expect(back.server.sha256).toBe(back.client.sha256);
  });
});
