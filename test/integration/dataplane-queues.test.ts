// Two weft nodes with two TUN queues each: flows are spread over the queues (the kernel picks a TUN queue by flow hash on
// the sending node, and a socket of the SO_REUSEPORT group by the outer 4-tuple on the receiving one), and every datagram
// is accounted for — the per-queue counters add up to what was sent, and the receiving Pod gets all of it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab } from "../../src/lab/topology.js";
import { isRoot, pollStatus, settledStatus, spawnIn, type Status } from "./lib/traffic.js";

// Counts datagrams per source port until `total` arrived or the timeout; prints READY once bound, then the counts.
const COUNTER = String.raw`
import socket, sys, json
port, total, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("0.0.0.0", port))
s.settimeout(timeout)
print("READY", flush=True)
counts = {}
n = 0
try:
    while n < total:
        data, peer = s.recvfrom(2048)
        counts[str(peer[1])] = counts.get(str(peer[1]), 0) + 1
        n += 1
except socket.timeout:
    pass
print(json.dumps(counts), flush=True)
`;

// `flows` sockets (one source port each) take turns sending `per` datagrams of 200 bytes, paced so no queue overflows.
const SENDER = String.raw`
import socket, sys, time, json
host, port, flows, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
for s in socks:
    s.bind(("0.0.0.0", 0))
for i in range(per):
    for s in socks:
        s.sendto(b"q" * 200, (host, port))
    time.sleep(0.002)
print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
`;

const FLOWS = 8;
const PER_FLOW = 100;

const queueTotals = (s: Status, field: "txPacketsIn" | "rxDatagramsIn") => s.queues.map((q) => q[field]);
const delta = (after: number[], before: number[]) => after.map((v, i) => v - (before[i] ?? 0));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe.skipIf(!isRoot)("dataplane: two TUN queues per node", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab({ mode: "weft", agentConfig: { queues: 2 } });
    await lab.up();
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("each agent runs two queues", async () => {
    for (const n of lab.nodes) {
      const s = await pollStatus(n.socket!, (st) => st.ready, "the agent to be ready");
      expect(s.queues.map((q) => q.queue)).toEqual([0, 1]);
      // weft0 has two queues attached: the kernel lists them under the device.
      expect(lab.exec(n.ns, "ls", [`/sys/class/net/weft0/queues`]).split(/\s+/).filter((q) => q.startsWith("tx-"))).toHaveLength(2);
    }
  });

  it(`${FLOWS} UDP flows spread over both queues on both nodes, every datagram accounted for`, async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    const [n1, n2] = lab.nodes;
    // The kernel hashes with a per-boot key, so which queue a flow lands on cannot be chosen: 8 flows all landing on one
    // queue happens with probability 1/128 per node, so a spread that did not happen is retried with 8 new source ports.
    let spread = false;
    for (let attempt = 0; attempt < 4 && !spread; attempt++) {
      const [before1, before2] = [await settledStatus(n1.socket!), await settledStatus(n2.socket!)];
      const port = 7300 + attempt;
      const rx = spawnIn(b.ns, "python3", ["-u", "-c", COUNTER, String(port), String(FLOWS * PER_FLOW), "10"]);
      await rx.ready;
      const tx = await spawnIn(a.ns, "python3", ["-u", "-c", SENDER, b.ip, String(port), String(FLOWS), String(PER_FLOW)]).done;
      expect(tx.code).toBe(0);
      const got = JSON.parse((await rx.done).stdout.trim().split("\n").pop()!) as Record<string, number>;
      // The Pod got every datagram of every flow.
      const sourcePorts = JSON.parse(tx.stdout.trim()) as number[];
      expect(Object.keys(got).map(Number).sort()).toEqual([...sourcePorts].sort());
      for (const p of sourcePorts) expect(got[String(p)]).toBe(PER_FLOW);

      const total = FLOWS * PER_FLOW;
      const s1 = await pollStatus(n1.socket!, (s) => s.counters.tx_packets_in - before1.counters.tx_packets_in >= total, "node 1 to report the flows");
      const s2 = await pollStatus(n2.socket!, (s) => s.counters.rx_datagrams_in - before2.counters.rx_datagrams_in >= total, "node 2 to report the flows");
      const sent = delta(queueTotals(s1, "txPacketsIn"), queueTotals(before1, "txPacketsIn"));
      const received = delta(queueTotals(s2, "rxDatagramsIn"), queueTotals(before2, "rxDatagramsIn"));
      // Per-queue counters add up to exactly what was sent: nothing else crossed, nothing was counted twice.
      expect(sum(sent)).toBe(total);
      expect(sum(received)).toBe(total);
      expect(s1.counters.tx_datagrams_out - before1.counters.tx_datagrams_out).toBe(total);
      expect(s2.counters.rx_packets_out - before2.counters.rx_packets_out).toBe(total);
      // Flows are whole on a queue: each queue's share is a multiple of one flow's datagrams.
      for (const share of [...sent, ...received]) expect(share % PER_FLOW).toBe(0);
      spread = sent.every((n) => n > 0) && received.every((n) => n > 0);
    }
    expect(spread).toBe(true);
  });

  it("the reply leaves through the queue that delivered the request (one thread, no hand-off)", async () => {
    const [a, b] = [lab.pod(1), lab.pod(2)];
    const n2 = lab.nodes[1];
    // The kernel learns a flow's queue when that queue writes a packet of it, just after delivering the packet: the reply
    // to the very first request can be produced before that and take the hashed queue. One ping first, then count.
    expect(lab.exec(a.ns, "ping", ["-c", "1", "-W", "2", b.ip])).toMatch(/1 received/);
    const before = await settledStatus(n2.socket!);
    const out = lab.exec(a.ns, "ping", ["-c", "5", "-i", "0.05", "-W", "2", b.ip]);
    expect(out).toMatch(/5 received/);
    const after = await pollStatus(n2.socket!, (s) => s.counters.tx_packets_in - before.counters.tx_packets_in >= 5, "node 2 to report the replies");
    // The kernel steers a reply to the TUN queue that wrote its request (it learns the flow from the write), so on node 2
    // each queue sent exactly as many replies as it delivered requests.
    const requests = delta(queueTotals(after, "rxDatagramsIn"), queueTotals(before, "rxDatagramsIn"));
    const replies = delta(queueTotals(after, "txPacketsIn"), queueTotals(before, "txPacketsIn"));
    expect(sum(requests)).toBe(5);
    expect(replies).toEqual(requests);
  });
});
