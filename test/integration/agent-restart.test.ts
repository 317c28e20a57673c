// A restart of the agent is a non-event for running Pods (docs/restarts.md). On two weft nodes whose Pods were
// made through the CNI front end, an iperf3 TCP stream of a fixed byte count runs Pod to Pod while one agent is restarted
// — SIGTERM then start, SIGKILL then start, on the sending and on the receiving node — and completes, on the connection
// it started on. iperf3's receiver stops counting at the test's end message (bytes still queued at the receiver are not
// counted, with or without a restart), so beside it a paced stream of random bytes, hashed at both ends and read to EOF,
// proves that every byte arrived, in order. While no agent runs, nothing bound for another node's Pods leaves the node
// unencapsulated, even with a default route to the underlay. Afterwards the Pods made before the restarts still work and
// their DELs succeed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, type LabNode } from "../../src/lab/topology.js";
import { isRoot, ping, spawnIn, tcpSink, waitPing } from "./lib/traffic.js";

const CLUSTER = "10.244.0.0/16";
/** The stream: BYTES at RATE take ~12 s, long enough for a restart in the middle on a loaded 2-core machine. */
const BYTES = 150 * 1024 * 1024;
const RATE = "100M";
const INTERVAL_S = 0.5;
/** The hashed stream beside it: HASHED_BYTES at HASHED_RATE bytes/s, over the same ~12 s. */
const HASHED_BYTES = 48 * 1024 * 1024;
const HASHED_RATE = 4 * 1024 * 1024;

// Sends `total` random bytes at `rate` bytes/s in 64 KiB writes, half-closes, and prints what it sent with its SHA-256
// and the sink's answer (tcpSink's: bytes read to EOF and their SHA-256).
const PACED_SOURCE = String.raw`
import socket, sys, hashlib, json, os, time
host, port, total, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = socket.create_connection((host, port), timeout=120)
h = hashlib.sha256(); sent = 0; start = time.monotonic()
while sent < total:
    chunk = os.urandom(min(1 << 16, total - sent))
    c.sendall(chunk); h.update(chunk); sent += len(chunk)
    ahead = start + sent / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
c.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    reply += b
print(json.dumps({"bytes": sent, "sha256": h.hexdigest(), "reply": json.loads(reply.decode())}), flush=True)
`;

interface Iperf3Result {
  end: { sum_sent: { bytes: number; retransmits: number }; sum_received: { bytes: number; bits_per_second: number } };
  intervals: { sum: { bytes: number; start: number; end: number } }[];
  error?: string;
}

/** tcpdump on `iface` in `ns`: resolves `ready` once it listens; stop() ends it and returns the packets it printed. */
function capture(ns: string, iface: string, filter: string) {
  const p = spawnIn(ns, "tcpdump", ["-n", "-l", "-i", iface, filter]);
  const ready = new Promise<void>((res, rej) => {
    p.child.stderr!.on("data", (chunk: Buffer | string) => {
      if (String(chunk).includes("listening on")) res();
    });
    p.done.then((r) => rej(new Error(`tcpdump exited early: ${r.stderr}`)), rej);
  });
  return {
    ready,
    async stop(): Promise<string[]> {
      p.child.kill("SIGINT");
      const r = await p.done;
      return r.stdout.split("\n").filter(Boolean);
    },
  };
}

describe.skipIf(!isRoot)("agent restart: traffic survives, nothing leaks, Pods stay manageable", () => {
  let lab: Lab;
  let port = 5401;
  const measured: string[] = [];

  beforeAll(async () => {
    lab = new Lab({ mode: "weft", podsVia: "cni" });
    await lab.up();
    // Default routes out of the underlay, as real nodes have: the way a Pod packet would leave unencapsulated.
    for (const [n, other] of [[lab.nodes[0], lab.nodes[1]], [lab.nodes[1], lab.nodes[0]]]) {
      lab.exec(n.ns, "ip", ["route", "add", "default", "via", other.underlayIP]);
    }
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });
  afterAll(async () => {
    if (measured.length) console.log(`agent restart during an iperf3 stream (${BYTES} bytes at ${RATE}bit/s):\n  ${measured.join("\n  ")}`);
    await lab?.down();
  });

  async function restartDuring(node: LabNode, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const iperfPort = ++port;
    const hashedPort = ++port;
    const server = spawnIn(lab.pod(2).ns, "iperf3", ["-s", "-1", "-p", String(iperfPort)]);
    const sink = await tcpSink(lab.pod(2).ns, hashedPort, { timeoutS: 120 });
    await waitForListen(lab.pod(2).ns, iperfPort);
    const client = spawnIn(lab.pod(1).ns, "iperf3", ["-c", lab.pod(2).ip, "-p", String(iperfPort), "-n", String(BYTES), "-b", RATE,
      "-i", String(INTERVAL_S), "--json"]);
    const hashed = spawnIn(lab.pod(1).ns, "python3", ["-u", "-c", PACED_SOURCE, lab.pod(2).ip, String(hashedPort), String(HASHED_BYTES),
      String(HASHED_RATE)]);
    const dumps = lab.nodes.map((n) => capture(n.ns, `${lab.prefix}u${n.index}`, `ip and net ${CLUSTER}`));
    try {
      await Promise.all(dumps.map((d) => d.ready));
      await untilBytesFlow(client);
      const down = Date.now();
      const code = await lab.stopAgent(node, signal);
      expect(code).toBe(signal === "SIGTERM" ? 0 : null);
      lab.startAgent(node);
      await lab.waitReady(node, 60_000);
      const downMs = Date.now() - down;
      const r = await client.done;
      expect(r.code, r.stderr || r.stdout).toBe(0);
      const result = JSON.parse(r.stdout) as Iperf3Result;
      expect(result.error).toBeUndefined();
      expect(result.end.sum_sent.bytes).toBe(BYTES);
      const h = await hashed.done;
      expect(h.code, h.stderr).toBe(0);
      const sent = JSON.parse(h.stdout.trim().split("\n").at(-1)!) as { bytes: number; sha256: string; reply: { bytes: number; sha256: string } };
      expect(sent.bytes).toBe(HASHED_BYTES);
      expect(sent.reply).toMatchObject({ bytes: HASHED_BYTES, sha256: sent.sha256 });
      // Not one Pod packet crossed the underlay unencapsulated, on either node, at any point of the restart.
      for (const d of dumps) expect(await d.stop()).toEqual([]);
      measured.push(`node${node.index} ${signal}: agent back after ${downMs} ms; ${describeStream(result)}`);
    } finally {
      await Promise.all(dumps.map((d) => d.stop()));
      client.kill();
      hashed.kill();
      server.kill();
      sink.proc.kill();
    }
  }

  it("SIGTERM then start on the sending node: the streams complete, every byte arrives", async () => {
    await restartDuring(lab.nodes[0], "SIGTERM");
  });

  it("SIGTERM then start on the receiving node: the streams complete, every byte arrives", async () => {
    await restartDuring(lab.nodes[1], "SIGTERM");
  });

  it("SIGKILL then start on the sending node: the streams complete, every byte arrives", async () => {
    await restartDuring(lab.nodes[0], "SIGKILL");
  });

  it("SIGKILL then start on the receiving node: the streams complete, every byte arrives", async () => {
    await restartDuring(lab.nodes[1], "SIGKILL");
  });

  it("no agent running: Pod traffic for another node never leaves unencapsulated, even with a default route to the underlay", async () => {
    const n1 = lab.nodes[0];
    const underlay = `${lab.prefix}u1`;
    const leaked = async () => {
      const dump = capture(n1.ns, underlay, `ip and dst net ${CLUSTER}`);
      await dump.ready;
      const answered = ping(lab.pod(1).ns, lab.pod(2).ip, 3);
      return { answered, packets: await dump.stop() };
    };
    try {
      await lab.stopAgent(n1, "SIGKILL");
      // weft0 is still there without a reader: the kernel drops what it routes into it.
      expect(await leaked()).toEqual({ answered: 0, packets: [] });
      // weft0 gone as well: the blackhole below its route holds the cluster network.
      lab.exec(n1.ns, "ip", ["link", "del", "weft0"]);
      expect(await leaked()).toEqual({ answered: 0, packets: [] });
      // Control: without the blackhole the same pings do leave in the clear (what happened when a stop removed weft0),
      // so the capture above would have seen them.
      lab.exec(n1.ns, "ip", ["route", "del", "blackhole", CLUSTER]);
      const control = await leaked();
      expect(control.packets.length).toBeGreaterThan(0);
      expect(control.packets[0]).toContain(`> ${lab.pod(2).ip}: ICMP echo request`);
    } finally {
      lab.startAgent(n1);
      await lab.waitReady(n1, 60_000);
    }
    await waitPing(lab.pod(1).ns, lab.pod(2).ip);
  });

  it("Pods made before the restarts still work, and their DELs succeed after them", () => {
    expect(ping(lab.pod(1).ns, lab.pod(2).ip, 3)).toBe(3);
    expect(ping(lab.pod(2).ns, lab.pod(1).ip, 3)).toBe(3);
    for (const pod of [lab.pod(1), lab.pod(2)]) {
      const node = lab.nodes[pod.node - 1];
      lab.cni(node, "DEL", pod.ns);
      const links = JSON.parse(lab.exec(node.ns, "ip", ["-j", "link", "show"])) as { ifname: string }[];
      expect(links.map((l) => l.ifname)).not.toContain(pod.hostVeth);
      const podLinks = JSON.parse(lab.exec(pod.ns, "ip", ["-j", "link", "show"])) as { ifname: string }[];
      expect(podLinks.map((l) => l.ifname)).toEqual(["lo"]);
      // A second DEL of the same Pod is a success too (already gone).
      lab.cni(node, "DEL", pod.ns);
    }
  });
});

/** Polls until a TCP listener on `port` exists in `ns` (iperf3 prints nothing reliable before it listens). */
async function waitForListen(ns: string, port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const out = spawnIn(ns, "ss", ["-Htln", `sport = :${port}`]);
    if ((await out.done).stdout.trim()) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`nothing listens on port ${port} in ${ns}`);
}

/** Resolves once the client has run for a few intervals (its JSON comes only at the end, so give it time to start). */
async function untilBytesFlow(client: ReturnType<typeof spawnIn>): Promise<void> {
  await Promise.race([
    new Promise((res) => setTimeout(res, 3000)),
    client.done.then((r) => {
      throw new Error(`iperf3 client ended before the restart: ${r.stderr || r.stdout}`);
    }),
  ]);
}

/** Throughput, retransmits, and the longest run of empty intervals (the gap the restart made). */
function describeStream(r: Iperf3Result): string {
  let gap = 0;
  let run = 0;
  for (const i of r.intervals) {
    run = i.sum.bytes === 0 ? run + (i.sum.end - i.sum.start) : 0;
    gap = Math.max(gap, run);
  }
  const seconds = r.intervals.at(-1)?.sum.end ?? 0;
  return `${(r.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s over ${seconds.toFixed(1)} s, ` +
    `${r.end.sum_sent.retransmits} retransmits, longest gap ${gap.toFixed(1)} s with no bytes sent`;
}
