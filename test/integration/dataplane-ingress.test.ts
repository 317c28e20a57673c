// The ingress filter (docs/wire.md) on a running agent: datagrams that reach node 1's VXLAN port but are garbage, carry the
// wrong VNI, are cut short, are empty, or come from an address that is no peer are dropped and counted, and never reach a
// Pod; the agent keeps forwarding afterwards. A damaged over-MTU TCP packet reaches the Pod only as one its kernel rejects.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { buildTCP, buildVXLAN, mulberry32, randomBytes } from "../helpers/packets.js";
import { isRoot, nonZero, ping, pollStatus, sendDatagrams, settledStatus, sleep, vxlanIcmp, waitPing } from "./lib/traffic.js";

const STRANGER = "192.168.200.9";

describe.skipIf(!isRoot)("dataplane: ingress filter on a live agent", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab({ mode: "weft" });
    await lab.up();
    // A third underlay address on node 2's side of the wire: reachable, but no node record names it.
    lab.exec(lab.nodes[1].ns, "ip", ["addr", "add", `${STRANGER}/24`, "dev", `${lab.prefix}u2`]);
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("counts garbage, wrong-VNI, truncated and stranger datagrams as drops, passes none, and keeps forwarding", async () => {
    const [n1, n2] = lab.nodes;
    const [pod1, pod2] = [lab.pod(1), lab.pod(2)];
    const good = (o: { vni?: number; id?: number } = {}) =>
      vxlanIcmp({ vni: o.vni ?? 1, dstMAC: n1.vtepMAC, srcMAC: n2.vtepMAC, src: pod2.ip, dst: pod1.ip, id: o.id });

    // Counters once the warm-up ping's reports are in, so the deltas below are our packets' alone.
    const c0 = (await settledStatus(n1.socket!)).counters;

    // From node 2 (a known peer): 5 random-byte datagrams (first byte never 0x08, so never a valid VXLAN flags word), 2 VXLAN
    // headers without the I flag, 5 well-formed VXLAN packets with VNI 2, 5 datagrams shorter than VXLAN + Ethernet + IPv4.
    const rng = mulberry32(0x77ef7);
    const garbage = Array.from({ length: 5 }, (_, i) => {
      const b = randomBytes(rng, 60 + i * 37);
      b[0] |= 0x01;
      return b;
    });
    const noIFlag = [good({ id: 1 }), good({ id: 2 })].map((p) => {
      p[0] = 0x00;
      return p;
    });
    const wrongVni = Array.from({ length: 5 }, (_, i) => good({ vni: 2, id: 10 + i }));
    const truncated = Array.from({ length: 5 }, (_, i) => good({ id: 20 + i }).subarray(0, 8 + 14 + 5 + i));
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, [...garbage, ...noIFlag], n2.underlayIP);
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, wrongVni, n2.underlayIP);
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, truncated, n2.underlayIP);
    // From the stranger: well-formed VXLAN, right VNI, right inner MAC, inner destination Pod 1 — everything right but who sent it.
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, Array.from({ length: 4 }, (_, i) => good({ id: 30 + i })), STRANGER);

    const delta = (s: { counters: Record<string, number> }, k: string) => (s.counters[k] ?? 0) - (c0[k] ?? 0);
    const after = await pollStatus(n1.socket!, (s) =>
      delta(s, "rx_drop_bad_vxlan") >= 7 && delta(s, "rx_drop_wrong_vni") >= 5 && delta(s, "rx_drop_truncated") >= 5 &&
      delta(s, "rx_drop_unknown_peer") >= 4, "node1's drop counters to show the bad input");
    expect({
      bad_vxlan: delta(after, "rx_drop_bad_vxlan"),
      wrong_vni: delta(after, "rx_drop_wrong_vni"),
      truncated: delta(after, "rx_drop_truncated"),
      unknown_peer: delta(after, "rx_drop_unknown_peer"),
      datagrams_in: delta(after, "rx_datagrams_in"),
      passed: delta(after, "rx_passed"),
    }, JSON.stringify(nonZero(after.counters))).toEqual({
      bad_vxlan: 7, wrong_vni: 5, truncated: 5, unknown_peer: 4, datagrams_in: 21, passed: 0,
    });
    // The stranger's source was not learned as a peer.
    expect(after.peers.map((p) => p.address)).toEqual([n2.underlayIP]);

    // Control: the very same well-formed packet from node 2's own address passes the filter (so the drops above were for
    // the reasons counted, not a broken test packet), and Pod 1 answers it.
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, [good({ id: 40 })], n2.underlayIP);
    await pollStatus(n1.socket!, (s) => delta(s, "rx_passed") >= 1, "node1 to pass the well-formed packet from node 2");

    // The agent keeps forwarding both ways.
    expect(ping(pod1.ns, pod2.ip, 3)).toBe(3);
    expect(ping(pod2.ns, pod1.ip, 3)).toBe(3);
  });

  it("hands an unsegmented over-MTU TCP packet with a bad checksum to the kernel unvouched, and the Pod's kernel drops it", async () => {
    const [n1, n2] = lab.nodes;
    const [pod1, pod2] = [lab.pod(1), lab.pod(2)];
    /** The Pod's kernel's count of TCP segments it dropped for a bad checksum (Tcp InCsumErrors in /proc/net/snmp). */
    const csumErrors = () => {
      const tcp = lab.exec(pod1.ns, "cat", ["/proc/net/snmp"]).split("\n").filter((l) => l.startsWith("Tcp:"));
      const [names, values] = tcp.map((l) => l.trim().split(/\s+/));
      return Number(values[names.indexOf("InCsumErrors")]);
    };
    // One datagram carrying a 4000-byte TCP segment, as a kernel VXLAN sender over a veth underlay passes a GSO packet on
    // (the underlay fragments and reassembles the datagram; weft receives it whole). DF is clear, so the node forwards the
    // oversized packet to the Pod in fragments and the Pod's own TCP checks the checksum.
    const superPacket = (corrupt: boolean) => {
      const inner = buildTCP({ srcPort: 40123, dstPort: 9, seq: 1000, ack: 1, flags: 0x10, payload: new Uint8Array(4000).fill(0x5a) },
        pod2.ip, pod1.ip, { df: false });
      if (corrupt) inner[2000] ^= 0x01;
      return buildVXLAN({ vni: 1, innerDstMac: n1.vtepMAC, innerSrcMac: n2.vtepMAC, inner });
    };
    const c0 = (await settledStatus(n1.socket!)).counters;
    const delta = (s: { counters: Record<string, number> }, k: string) => (s.counters[k] ?? 0) - (c0[k] ?? 0);
    const errors0 = csumErrors();

    sendDatagrams(n2.ns, n1.underlayIP, lab.port, [superPacket(true)], n2.underlayIP);
    const after = await pollStatus(n1.socket!, (s) => delta(s, "rx_passed") >= 1, "node1 to pass the damaged packet on");
    expect({ bad: delta(after, "rx_l4_checksum_bad"), super: delta(after, "rx_tcp_super_in"), passed: delta(after, "rx_passed") },
      JSON.stringify(nonZero(after.counters))).toEqual({ bad: 1, super: 0, passed: 1 });
    for (let i = 0; i < 50 && csumErrors() === errors0; i++) await sleep(100);
    expect(csumErrors() - errors0).toBe(1);

    // Control: the same packet undamaged takes the GSO path and the Pod's kernel finds nothing wrong with it.
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, [superPacket(false)], n2.underlayIP);
    const good = await pollStatus(n1.socket!, (s) => delta(s, "rx_tcp_super_in") >= 1, "node1 to pass the good packet as GSO");
    expect(delta(good, "rx_l4_checksum_bad")).toBe(1);
    expect(csumErrors() - errors0).toBe(1);
  });

  it("counts zero-length datagrams as received and dropped, so passed + dropped = received", async () => {
    const [n1, n2] = lab.nodes;
    const [pod1, pod2] = [lab.pod(1), lab.pod(2)];
    const c0 = (await settledStatus(n1.socket!)).counters;
    const good = vxlanIcmp({ vni: 1, dstMAC: n1.vtepMAC, srcMAC: n2.vtepMAC, src: pod2.ip, dst: pod1.ip, id: 50 });
    const empty = new Uint8Array(0);
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, [empty, empty, good, empty], n2.underlayIP);
    sendDatagrams(n2.ns, n1.underlayIP, lab.port, [empty, empty], STRANGER);

    const delta = (s: { counters: Record<string, number> }, k: string) => (s.counters[k] ?? 0) - (c0[k] ?? 0);
    const dropKeys = (c: Record<string, number>) => Object.keys(c).filter((k) => k.startsWith("rx_drop_"));
    const after = await pollStatus(n1.socket!, (s) => delta(s, "rx_drop_empty") >= 5 && delta(s, "rx_passed") >= 1,
      "node1 to count the empty datagrams");
    expect({
      datagrams_in: delta(after, "rx_datagrams_in"),
      empty: delta(after, "rx_drop_empty"),
      passed: delta(after, "rx_passed"),
      dropped: dropKeys(after.counters).reduce((sum, k) => sum + delta(after, k), 0),
    }, JSON.stringify(nonZero(after.counters))).toEqual({ datagrams_in: 6, empty: 5, passed: 1, dropped: 5 });
    // And over the agent's whole life, not only our packets.
    const c = after.counters;
    expect(c.rx_datagrams_in).toBe(c.rx_passed + dropKeys(c).reduce((sum, k) => sum + c[k], 0));
  });
});
