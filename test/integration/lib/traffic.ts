// Traffic for the dataplane integration tests: TCP and UDP senders and receivers as small python3 programs run inside network
// namespaces (so the kernel's own stacks are the endpoints and TSO/GSO happen as they would for a Pod), SHA-256 on both ends,
// ping, raw datagrams for the ingress filter, and polling of an agent's status.
import { spawn, type ChildProcess } from "node:child_process";
import type { AgentStatus } from "../../../src/agent/agent.js";
import { callAgent } from "../../../src/control/api-server.js";
import { sh } from "../../../src/lab/topology.js";

export const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("weft dataplane/agent integration tests need root (namespaces, TUN, veth): skipped");

export const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

// ---- processes in namespaces ---------------------------------------------------------------------------------------------

export interface NsProcess {
  child: ChildProcess;
  /** Resolves with the first stdout line equal to READY (the program is bound and listening). */
  ready: Promise<void>;
  /** Resolves when the program exits (any exit code; inspect `code`). */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(): void;
}

const running = new Set<ChildProcess>();
process.once("exit", () => running.forEach((c) => c.kill("SIGKILL")));

/** Starts `cmd args` inside `ns` without waiting; stdout and stderr are collected. */
export function spawnIn(ns: string, cmd: string, args: string[], input?: string): NsProcess {
  const child = spawn("ip", ["netns", "exec", ns, cmd, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => ((readyResolve = res), (readyReject = rej)));
  ready.catch(() => undefined);
  child.stdout!.on("data", (chunk: string) => {
    stdout += chunk;
    if (/^READY$/m.test(stdout)) readyResolve();
  });
  child.stderr!.on("data", (chunk: string) => (stderr += chunk));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((res) => {
    child.once("close", (code, signal) => {
      running.delete(child);
      readyReject(new Error(`${cmd} in ${ns} exited (${code ?? signal}) before it was ready: ${stderr.trim()}`));
      res({ code, signal, stdout, stderr });
    });
  });
  if (input !== undefined) child.stdin!.end(input);
  else child.stdin!.end();
  return { child, ready, done, kill: () => child.kill("SIGKILL") };
}

/** The last stdout line of a finished program, parsed as JSON; throws with its stderr when it failed. */
async function resultOf<T>(p: NsProcess, what: string): Promise<T> {
  const r = await p.done;
  const lines = r.stdout.trim().split("\n").filter((l) => l.startsWith("{"));
  if (r.code !== 0 || lines.length === 0) {
    throw new Error(`${what} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim() || "no output"}`);
  }
  return JSON.parse(lines[lines.length - 1]) as T;
}

// ---- TCP -----------------------------------------------------------------------------------------------------------------

// Accepts `conns` connections one after the other; for each reads to EOF, hashes what arrived, and answers (on the same
// connection and on stdout) with the peer address it saw, the local address, byte count and SHA-256.
const TCP_SINK = String.raw`
import socket, sys, hashlib, json
port, fam, timeout, conns = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
af = socket.AF_INET6 if fam == "6" else socket.AF_INET
s = socket.socket(af, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if fam == "6" else "0.0.0.0", port))
s.listen(16)
s.settimeout(timeout)
print("READY", flush=True)
for _ in range(conns):
    c, peer = s.accept()
    c.settimeout(timeout)
    h = hashlib.sha256(); n = 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b); n += len(b)
    r = {"peer": peer[0], "peerPort": peer[1], "local": c.getsockname()[0], "localPort": c.getsockname()[1], "bytes": n, "sha256": h.hexdigest()}
    c.sendall((json.dumps(r) + "\n").encode())
    c.close()
    print(json.dumps(r), flush=True)
`;

// Connects, sends `total` random bytes (fresh randomness per MiB, so no repeating pattern can hide a misplaced segment),
// half-closes, and prints what it sent, its own address and the sink's answer.
const TCP_SOURCE = String.raw`
import socket, sys, hashlib, json, os
host, port, total, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = socket.create_connection((host, port), timeout=timeout)
h = hashlib.sha256(); sent = 0
while sent < total:
    chunk = os.urandom(min(1 << 20, total - sent))
    c.sendall(chunk); h.update(chunk); sent += len(chunk)
c.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    reply += b
print(json.dumps({"local": c.getsockname()[0], "bytes": sent, "sha256": h.hexdigest(), "reply": json.loads(reply.decode()) if reply else None}), flush=True)
`;

export interface SinkResult { peer: string; peerPort: number; local: string; localPort: number; bytes: number; sha256: string }
export interface SourceResult { local: string; bytes: number; sha256: string; reply: SinkResult | null }

export interface TcpSink {
  proc: NsProcess;
  /** Every connection's result, once the sink has served them all. */
  results(): Promise<SinkResult[]>;
}

/** A TCP sink listening on `port` in `ns`; resolves once it is listening. */
export async function tcpSink(ns: string, port: number, opts: { family?: 4 | 6; timeoutS?: number; conns?: number } = {}): Promise<TcpSink> {
  const proc = spawnIn(ns, "python3", ["-u", "-c", TCP_SINK, String(port), String(opts.family ?? 4), String(opts.timeoutS ?? 30), String(opts.conns ?? 1)]);
  await proc.ready;
  return {
    proc,
    async results() {
      const r = await proc.done;
      if (r.code !== 0) throw new Error(`TCP sink in ${ns} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim()}`);
      return r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as SinkResult);
    },
  };
}

/** Sends `bytes` random bytes from `ns` to host:port and returns what was sent and what the sink answered. */
export function tcpSend(ns: string, host: string, port: number, bytes: number, timeoutS = 30): Promise<SourceResult> {
  return resultOf<SourceResult>(spawnIn(ns, "python3", ["-u", "-c", TCP_SOURCE, host, String(port), String(bytes), String(timeoutS)]),
    `TCP source ${ns} → ${host}:${port}`);
}

/** One TCP transfer ns → host:port into a fresh sink in `serverNs`; returns both ends' views. */
export async function tcpTransfer(clientNs: string, serverNs: string, host: string, port: number, bytes: number,
  opts: { family?: 4 | 6; timeoutS?: number } = {}): Promise<{ client: SourceResult; server: SinkResult }> {
  const sink = await tcpSink(serverNs, port, { family: opts.family, timeoutS: opts.timeoutS });
  try {
    const client = await tcpSend(clientNs, host, port, bytes, opts.timeoutS);
    const [server] = await sink.results();
    return { client, server };
  } finally {
    sink.proc.kill();
  }
}

// ---- UDP -----------------------------------------------------------------------------------------------------------------

// Datagram i: 4-byte big-endian sequence number, then SHA-256(seq) repeated to the size. Every byte depends on the seq, so a
// datagram that arrives with any byte wrong, or glued to/cut from another, is caught.
const UDP_PAYLOAD = String.raw`
import hashlib
def payload(seq, size):
    head = seq.to_bytes(4, "big")
    d = hashlib.sha256(head).digest()
    return (head + d * (size // 32 + 1))[:size]
`;

const UDP_RECEIVER = UDP_PAYLOAD + String.raw`
import socket, sys, json
port, fam, count, size, first, idle = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
af = socket.AF_INET6 if fam == "6" else socket.AF_INET
s = socket.socket(af, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
s.bind(("::" if fam == "6" else "0.0.0.0", port))
print("READY", flush=True)
seen = set(); received = 0; corrupt = 0; dup = 0; peers = set(); sizes = set()
s.settimeout(first)
while len(seen) < count:
    try:
        b, peer = s.recvfrom(65535)
    except socket.timeout:
        break
    s.settimeout(idle)
    received += 1; peers.add(peer[0])
    seq = int.from_bytes(b[:4], "big") if len(b) >= 4 else -1
    if len(b) != size or seq < 0 or seq >= count or b != payload(seq, size):
        corrupt += 1; sizes.add(len(b))
        continue
    if seq in seen:
        dup += 1
    seen.add(seq)
print(json.dumps({"received": received, "intact": len(seen), "corrupt": corrupt, "duplicates": dup, "peers": sorted(peers), "badSizes": sorted(sizes)}), flush=True)
`;

const UDP_SENDER = UDP_PAYLOAD + String.raw`
import socket, sys, json, time
host, port, count, size, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
af = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(af, socket.SOCK_DGRAM)
start = time.monotonic()
for i in range(count):
    s.sendto(payload(i, size), (host, port))
    if (i + 1) % 20 == 0:
        ahead = start + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
print(json.dumps({"sent": count, "seconds": time.monotonic() - start, "local": s.getsockname()[0]}), flush=True)
`;

export interface UdpReport { received: number; intact: number; corrupt: number; duplicates: number; peers: string[]; badSizes: number[] }

/** Sends `count` sequenced datagrams of `size` bytes at `rate` per second from `clientNs` to a receiver in `serverNs`. */
export async function udpTransfer(clientNs: string, serverNs: string, host: string, port: number,
  opts: { count: number; size: number; rate: number; family?: 4 | 6 }): Promise<{ sent: number; report: UdpReport }> {
  const rx = spawnIn(serverNs, "python3", ["-u", "-c", UDP_RECEIVER, String(port), String(opts.family ?? 4), String(opts.count),
    String(opts.size), "15", "2"]);
  try {
    await rx.ready;
    const tx = await resultOf<{ sent: number }>(spawnIn(clientNs, "python3", ["-u", "-c", UDP_SENDER, host, String(port),
      String(opts.count), String(opts.size), String(opts.rate)]), `UDP sender ${clientNs} → ${host}:${port}`);
    const report = await resultOf<UdpReport>(rx, `UDP receiver in ${serverNs}`);
    return { sent: tx.sent, report };
  } finally {
    rx.kill();
  }
}

// ---- raw datagrams (ingress filter) --------------------------------------------------------------------------------------

// Sends each hex-encoded payload read from stdin (a JSON array) as one UDP datagram from source:any to host:port.
const UDP_RAW = String.raw`
import socket, sys, json
src, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if src:
    s.bind((src, 0))
for h in json.load(sys.stdin):
    s.sendto(bytes.fromhex(h), (host, port))
print(json.dumps({"sent": s.getsockname()[0]}), flush=True)
`;

/** Sends raw datagrams (VXLAN or garbage) from `ns`, optionally from a given source address. */
export function sendDatagrams(ns: string, host: string, port: number, payloads: Uint8Array[], source = ""): string {
  return sh("ip", ["netns", "exec", ns, "python3", "-c", UDP_RAW, source, host, String(port)],
    { input: JSON.stringify(payloads.map((p) => Buffer.from(p).toString("hex"))), timeoutMs: 10_000 });
}

/** A VXLAN datagram carrying Ethernet(dst, src) + an IPv4 ICMP echo request src → dst (checksums correct). */
export function vxlanIcmp(o: { vni: number; dstMAC: string; srcMAC: string; src: string; dst: string; id?: number; flags?: number }): Uint8Array {
  const icmp = Buffer.alloc(8 + 32);
  icmp[0] = 8;
  icmp.writeUInt16BE(o.id ?? 0x5745, 4);
  icmp.writeUInt16BE(1, 6);
  for (let i = 8; i < icmp.length; i++) icmp[i] = i;
  icmp.writeUInt16BE(checksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + icmp.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 1;
  Buffer.from(o.src.split(".").map(Number)).copy(ip, 12);
  Buffer.from(o.dst.split(".").map(Number)).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  const eth = Buffer.concat([mac(o.dstMAC), mac(o.srcMAC), Buffer.from([0x08, 0x00])]);
  const vx = Buffer.alloc(8);
  vx[0] = o.flags ?? 0x08;
  vx.writeUIntBE(o.vni, 4, 3);
  return Buffer.concat([vx, eth, ip, icmp]);
}

const mac = (m: string) => Buffer.from(m.split(":").map((h) => parseInt(h, 16)));

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i] << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

// ---- ping ----------------------------------------------------------------------------------------------------------------

/** Pings `dst` from `ns` `count` times (200 ms apart, 1 s wait for the last); returns how many replies came back. */
export function ping(ns: string, dst: string, count = 3): number {
  const args = ["netns", "exec", ns, "ping", ...(dst.includes(":") ? ["-6"] : []), "-n", "-q", "-c", String(count), "-i", "0.2", "-W", "1", dst];
  let out: string;
  try {
    out = sh("ip", args, { timeoutMs: 5000 + count * 1000 });
  } catch (err) {
    out = (err as Error).message;
  }
  const m = /(\d+) (?:packets )?received/.exec(out);
  return m ? Number(m[1]) : 0;
}

/** Pings until a reply comes back (the first one may wait for ARP or a peer update); throws after `timeoutMs`. */
export async function waitPing(ns: string, dst: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (ping(ns, dst, 1) === 1) return;
    await sleep(100);
  }
  throw new Error(`no ping reply from ${dst} in ${ns} within ${timeoutMs} ms`);
}

// ---- agent status --------------------------------------------------------------------------------------------------------

/** The agent's own status type: the test suite reads what the agent answers, not a copy that could drift from it. */
export type Status = AgentStatus;

export const status = (socket: string) => callAgent(socket, { op: "status" }, 5000) as Promise<Status>;

/**
 * Polls the agent's status until `check` holds. Counters arrive from the workers about once a second, so tests wait for what
 * they expect instead of timing anything; on timeout the error shows the last status.
 */
export async function pollStatus(socket: string, check: (s: Status) => boolean, what: string, timeoutMs = 10_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let last: Status | undefined;
  let lastErr = "";
  while (Date.now() < deadline) {
    try {
      last = await status(socket);
      if (check(last)) return last;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    await sleep(200);
  }
  const shown = last ? JSON.stringify({ peers: last.peers, counters: last.counters }) : lastErr;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last status: ${shown}`);
}

/** The agent's counters with only the non-zero entries, for readable failure messages. */
export const nonZero = (c: Record<string, number>) => Object.fromEntries(Object.entries(c).filter(([, v]) => v !== 0));

/**
 * The agent's status once its counters have stopped moving (two reports in a row show the same rx/tx totals): the baseline
 * for tests that count what their own packets did, after earlier traffic's reports have all arrived.
 */
export async function settledStatus(socket: string, timeoutMs = 8000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  const key = (s: Status) => `${s.counters.rx_datagrams_in}/${s.counters.tx_packets_in}`;
  let prev = await status(socket);
  while (Date.now() < deadline) {
    await sleep(1100);
    const next = await status(socket);
    if (key(next) === key(prev)) return next;
    prev = next;
  }
  throw new Error(`counters of ${socket} kept moving for ${timeoutMs} ms`);
}
