// A real kube-apiserver on loopback for tests that need the API's own validation (server-side dry runs): etcd and
// kube-apiserver from scripts/ensure-cluster-tools.sh, on free loopback ports, in a temporary directory, with certificates
// made by openssl and an admin (system:masters) kubeconfig. stop() ends both and removes the directory; it is also run on
// process exit, so a failing test leaves nothing running. Small on purpose: a richer control-plane harness (controller
// manager, per-component credentials) may replace it.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CACHE = process.env.WEFT_TOOLS_CACHE ?? "/var/cache/weft-tools";

export interface ApiServerTools {
  kubeApiserver: string;
  kubectl: string;
  etcd: string;
}

/** The binaries, or a sentence saying which are missing and how to get them. */
export function findApiServerTools(): ApiServerTools | string {
  const k8s = process.env.WEFT_K8S_BIN ?? join(CACHE, "kubernetes-v1.37.2");
  const etcdDir = process.env.WEFT_ETCD_BIN ?? join(CACHE, "etcd-v3.6.8");
  const tools = { kubeApiserver: join(k8s, "kube-apiserver"), kubectl: join(k8s, "kubectl"), etcd: join(etcdDir, "etcd") };
  const missing = Object.values(tools).filter((p) => !existsSync(p));
  if (missing.length) return `missing ${missing.join(", ")}: run scripts/ensure-cluster-tools.sh (needs Go), or set WEFT_K8S_BIN / WEFT_ETCD_BIN`;
  return tools;
}

/** A free TCP port on 127.0.0.1 (the kernel's pick, released again for the server to take). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class LoopbackApiServer {
  readonly dir = mkdtempSync(join(tmpdir(), "weft-apiserver-"));
  readonly kubeconfig = join(this.dir, "admin.kubeconfig");
  private readonly children: ChildProcess[] = [];
  private readonly exitHook = () => this.killNow();
  private apiPort = 0;

  constructor(private readonly tools: ApiServerTools) {
    process.once("exit", this.exitHook);
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  /** Certificates, etcd, kube-apiserver; resolves once the API server answers /readyz. */
  async start(timeoutMs = 180_000): Promise<void> {
    const [etcdClient, etcdPeer, api] = [await freePort(), await freePort(), await freePort()];
    this.apiPort = api;
    this.makeCertificates();
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    this.spawn("etcd", this.tools.etcd, [
      "--name=weft-test", `--data-dir=${join(this.dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=weft-test=http://127.0.0.1:${etcdPeer}`, "--log-level=warn", "--unsafe-no-fsync",
    ]);
    const pki = (f: string) => join(this.dir, "pki", f);
    this.spawn("kube-apiserver", this.tools.kubeApiserver, [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1", `--secure-port=${api}`,
      `--tls-cert-file=${pki("apiserver.crt")}`, `--tls-private-key-file=${pki("apiserver.key")}`,
      `--client-ca-file=${pki("ca.crt")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki("sa.pub")}`, `--service-account-signing-key-file=${pki("sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--authorization-mode=RBAC",
      "--profiling=false",
      `--cert-dir=${join(this.dir, "apiserver-certs")}`,
    ]);
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      const exited = this.children.find((c) => c.exitCode !== null);
      if (exited) throw new Error(`${exited.spawnargs[0]} exited (${exited.exitCode}): ${this.tail(exited)}`);
      const r = this.kubectl(["get", "--raw", "/readyz"]);
      if (r.code === 0 && r.stdout.trim() === "ok") return;
      last = (r.stderr || r.stdout).trim();
      await new Promise((res) => setTimeout(res, 250));
    }
    throw new Error(`kube-apiserver not ready after ${timeoutMs} ms: ${last}`);
  }

  /** kubectl as the admin; never throws (look at `code`). */
  kubectl(args: string[], input?: string): KubectlResult {
    try {
      const stdout = execFileSync(this.tools.kubectl, [`--kubeconfig=${this.kubeconfig}`, ...args],
        { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"], timeout: 120_000 });
      return { code: 0, stdout, stderr: "" };
    } catch (err) {
      const e = err as { status?: number; stdout?: string; stderr?: string; message: string };
      return { code: e.status ?? 1, stdout: e.stdout ?? "", stderr: e.stderr || e.message };
    }
  }

  async stop(): Promise<void> {
    for (const child of this.children.slice().reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise<void>((res) => child.once("exit", () => res()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    this.killNow();
  }

  private killNow(): void {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
    process.removeListener("exit", this.exitHook);
  }

  private spawn(name: string, bin: string, args: string[]): void {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    const log = createWriteStream(join(this.dir, `${name}.log`));
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    this.children.push(child);
  }

  private tail(child: ChildProcess): string {
    const name = child.spawnargs[0].split("/").at(-1);
    const file = join(this.dir, `${name}.log`);
    return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").slice(-5).join("\n") : "(no log)";
  }

  private makeCertificates(): void {
    const dir = join(this.dir, "pki");
    const p = (f: string) => join(dir, f);
    const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
    mkdirSync(dir, { recursive: true });
    const key = (name: string) => openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", p(`${name}.key`));
    key("ca");
    openssl("req", "-x509", "-new", "-key", p("ca.key"), "-subj", "/CN=weft-test-ca", "-days", "1", "-out", p("ca.crt"));
    const sign = (name: string, subject: string, extensions: string) => {
      key(name);
      openssl("req", "-new", "-key", p(`${name}.key`), "-subj", subject, "-out", p(`${name}.csr`));
      writeFileSync(p(`${name}.ext`), extensions);
      openssl("x509", "-req", "-in", p(`${name}.csr`), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "1",
        "-extfile", p(`${name}.ext`), "-out", p(`${name}.crt`));
    };
    sign("apiserver", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    sign("admin", "/CN=weft-test-admin/O=system:masters", "extendedKeyUsage=clientAuth\n");
    key("sa");
    openssl("pkey", "-in", p("sa.key"), "-pubout", "-out", p("sa.pub"));
    const b64 = (f: string) => readFileSync(p(f)).toString("base64");
    writeFileSync(this.kubeconfig, JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server: this.server, "certificate-authority-data": b64("ca.crt") } }],
      users: [{ name: "admin", user: { "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key") } }],
      contexts: [{ name: "test", context: { cluster: "test", user: "admin" } }],
      "current-context": "test",
    }));
  }
}
