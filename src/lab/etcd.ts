// A real etcd for tests and benchmarks: 1 or 3 members, on loopback (free ports) or on an address inside a namespace the test made, each
// with a temporary data dir, optionally with TLS (a throwaway CA, server and client certificates made with openssl). The
// cached 3.6 build is preferred, else Debian's etcd-server. stop() removes everything, and runs at process exit too.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnInNetns } from "./process.js";

const CACHED = process.env.WEFT_ETCD_BIN ?? "/var/cache/weft-tools/etcd-v3.6.8";

/** The etcd and etcdctl binaries, or undefined when neither the cached build nor Debian's package is installed. */
export function etcdBinaries(): { etcd: string; etcdctl: string } | undefined {
  if (existsSync(join(CACHED, "etcd")) && existsSync(join(CACHED, "etcdctl"))) return { etcd: join(CACHED, "etcd"), etcdctl: join(CACHED, "etcdctl") };
  if (existsSync("/usr/bin/etcd") && existsSync("/usr/bin/etcdctl")) return { etcd: "/usr/bin/etcd", etcdctl: "/usr/bin/etcdctl" };
  return undefined;
}

export interface EtcdOptions {
  members?: 1 | 3;
  /** Run inside this namespace, listening on `host` there (default: the root namespace, 127.0.0.1, free ports). */
  netns?: string;
  host?: string;
  tls?: boolean;
  /** Data dirs and logs here (default: a new temporary directory). */
  dir?: string;
}

export interface ClientTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  process?: ChildProcess;
}

export class EtcdCluster {
  readonly dir: string;
  readonly host: string;
  readonly members: Member[] = [];
  tls?: ClientTls;
  private readonly bin: { etcd: string; etcdctl: string };
  private readonly exitHook = () => this.killAll();

  constructor(private readonly options: EtcdOptions = {}) {
    const bin = etcdBinaries();
    if (!bin) throw new Error("no etcd: run scripts/ensure-deps.sh (Debian's etcd-server) or scripts/ensure-cluster-tools.sh");
    this.bin = bin;
    this.host = options.host ?? "127.0.0.1";
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), "weft-etcd-"));
    mkdirSync(this.dir, { recursive: true });
    process.once("exit", this.exitHook);
  }

  get scheme(): string {
    return this.options.tls ? "https" : "http";
  }

  get endpoints(): string[] {
    return this.members.map((m) => this.clientURL(m));
  }

  /** Starts every member and resolves when the cluster answers. */
  async start(): Promise<this> {
    const count = this.options.members ?? 1;
    for (let i = 0; i < count; i++) {
      const [clientPort, peerPort] = this.options.netns ? [2379 + 10 * i, 2380 + 10 * i] : [await freePort(), await freePort()];
      this.members.push({ name: `m${i}`, clientPort, peerPort });
    }
    if (this.options.tls) this.tls = makeCertificates(this.dir, this.host);
    for (let i = 0; i < count; i++) this.startMember(i);
    await this.waitHealthy();
    return this;
  }

  /** Starts member i again (same data dir: it rejoins with its state). */
  startMember(i: number): void {
    const m = this.members[i];
    const peers = this.members.map((p) => `${p.name}=http://${this.host}:${p.peerPort}`).join(",");
    const args = [
      "--name", m.name, "--data-dir", join(this.dir, m.name),
      "--listen-client-urls", this.clientURL(m), "--advertise-client-urls", this.clientURL(m),
      "--listen-peer-urls", `http://${this.host}:${m.peerPort}`, "--initial-advertise-peer-urls", `http://${this.host}:${m.peerPort}`,
      "--initial-cluster", peers, "--initial-cluster-state", "new", "--initial-cluster-token", "weft-test",
      "--log-level", "warn",
      ...(this.tls ? ["--cert-file", join(this.dir, "server.pem"), "--key-file", join(this.dir, "server-key.pem"),
        "--trusted-ca-file", this.tls.caFile, "--client-cert-auth"] : []),
    ];
    const log = join(this.dir, `${m.name}.log`);
    if (this.options.netns) {
      m.process = spawnInNetns(this.options.netns, this.bin.etcd, args, log);
    } else {
      const fd = openSync(log, "a");
      m.process = spawn(this.bin.etcd, args, { stdio: ["ignore", fd, fd] });
      closeSync(fd);
    }
  }

  /** Stops member i with a signal and waits until it is gone. */
  async stopMember(i: number, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.members[i].process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await exited;
  }

  async stopAll(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stopMember(i, signal)));
  }

  /** etcdctl against the running members (inside the namespace when there is one); its stdout. */
  ctl(...args: string[]): string {
    const tls = this.tls ? ["--cacert", this.tls.caFile, "--cert", this.tls.certFile, "--key", this.tls.keyFile] : [];
    const running = this.members.filter((m) => m.process && m.process.exitCode === null && m.process.signalCode === null);
    const argv = [`--endpoints=${running.map((m) => this.clientURL(m)).join(",")}`, "--command-timeout=10s", ...tls, ...args];
    const [cmd, all] = this.options.netns ? ["ip", ["netns", "exec", this.options.netns, this.bin.etcdctl, ...argv]] : [this.bin.etcdctl, argv];
    try {
      return execFileSync(cmd, all, { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      throw new Error(`etcdctl ${args.join(" ")}: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`);
    }
  }

  /** Keys and values under a prefix. */
  getPrefix(prefix: string): Map<string, string> {
    const out = JSON.parse(this.ctl("get", "--prefix", prefix, "-w", "json")) as { kvs?: { key: string; value: string }[] };
    const b64 = (s: string) => Buffer.from(s, "base64").toString();
    return new Map((out.kvs ?? []).map((kv) => [b64(kv.key), b64(kv.value)]));
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      for (const m of this.members) {
        if (m.process && m.process.exitCode !== null) throw new Error(`etcd ${m.name} exited with ${m.process.exitCode}: ${this.memberLog(m.name).slice(-2000)}`);
      }
      try {
        this.ctl("endpoint", "health");
        return;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`etcd not healthy after ${timeoutMs} ms: ${last}`);
  }

  memberLog(name: string): string {
    try {
      return readFileSync(join(this.dir, `${name}.log`), "utf8");
    } catch {
      return "";
    }
  }

  /** Leaves the members running when this process exits (a lab kept up). */
  keep(): void {
    process.removeListener("exit", this.exitHook);
  }

  async stop(): Promise<void> {
    await this.stopAll();
    rmSync(this.dir, { recursive: true, force: true });
    process.removeListener("exit", this.exitHook);
  }

  /** Member i's client address. */
  clientAddress(i: number): { host: string; port: number } {
    return { host: this.host, port: this.members[i].clientPort };
  }

  private clientURL(m: Member): string {
    return `${this.scheme}://${this.host}:${m.clientPort}`;
  }

  private killAll(): void {
    for (const m of this.members) if (m.process && m.process.exitCode === null) m.process.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A TCP relay on loopback in front of one etcd member: a client given `endpoint` instead of the member's can be cut off
 * (every connection dropped, new ones refused) and let back, as a network partition would, while the cluster goes on.
 */
export class TcpRelay {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.port ||= await freePort();
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
        this.sockets.add(a);
        a.on("error", () => b.destroy());
        a.on("close", () => {
          this.sockets.delete(a);
          b.destroy();
        });
        a.pipe(b);
      }
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.server = server;
    return this;
  }

  /** Drops every connection and stops listening. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A port nothing listens on right now, from the kernel. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** A CA, a server certificate for `host` and a client certificate, all throwaway, in `dir`. */
function makeCertificates(dir: string, host: string): ClientTls {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=weft-test-ca", "-keyout", "ca-key.pem", "-out", "ca.pem");
  writeFileSync(join(dir, "server.ext"), `subjectAltName=IP:${host}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, cn] of [["server", "etcd"], ["client", "weft"]]) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}`, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`);
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "1",
      "-extfile", `${name}.ext`, "-out", `${name}.pem`);
  }
  return { caFile: join(dir, "ca.pem"), certFile: join(dir, "client.pem"), keyFile: join(dir, "client-key.pem") };
}
