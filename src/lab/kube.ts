// A real Kubernetes control plane for the lab (tests, bench, demo): etcd, kube-apiserver and kube-controller-manager with
// --allocate-node-cidrs, run inside a lab namespace and listening on a lab address, certificates made with openssl, RBAC on.
// Credentials: an admin (system:masters) for the lab itself and the controller manager, and one per component bound to
// exactly the ClusterRole that component documents (weft's from docs/registry-kube.md, flannel's from its manifest). No
// kubelet runs: the lab registers the Node objects itself, as kubelets would. Binaries come from
// scripts/ensure-cluster-tools.sh (WEFT_K8S_BIN, WEFT_ETCD_BIN, or the default cache paths).
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sh, sleep } from "./topology.js";

const CACHE = process.env.WEFT_TOOLS_CACHE ?? "/var/cache/weft-tools";

export interface ClusterTools {
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  etcd: string;
  /** Absent when flanneld was not built. */
  flanneld?: string;
}

/** The binaries, or a sentence saying what is missing and how to get it. */
export function findClusterTools(): ClusterTools | string {
  const k8s = process.env.WEFT_K8S_BIN ?? join(CACHE, "kubernetes-v1.37.2");
  const etcd = process.env.WEFT_ETCD_BIN ?? join(CACHE, "etcd-v3.6.8");
  const flannel = process.env.WEFT_FLANNEL_BIN ?? join(CACHE, "flannel-v0.28.10");
  const tools = {
    kubeApiserver: join(k8s, "kube-apiserver"),
    kubeControllerManager: join(k8s, "kube-controller-manager"),
    kubectl: join(k8s, "kubectl"),
    etcd: join(etcd, "etcd"),
  };
  const missing = Object.values(tools).filter((p) => !existsSync(p));
  if (missing.length > 0) return `missing ${missing.join(", ")}: run scripts/ensure-cluster-tools.sh (needs Go), or set WEFT_K8S_BIN / WEFT_ETCD_BIN`;
  const flanneld = join(flannel, "flanneld");
  return { ...tools, ...(existsSync(flanneld) && { flanneld }) };
}

/** weft's ClusterRole, as docs/registry-kube.md documents it: nothing more than the registry uses. */
export const WEFT_CLUSTER_ROLE = {
  apiVersion: "rbac.authorization.k8s.io/v1",
  kind: "ClusterRole",
  metadata: { name: "weft" },
  rules: [
    { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
  ],
};

/** flannel's ClusterRole from its kube-flannel.yml. */
const FLANNEL_CLUSTER_ROLE = {
  apiVersion: "rbac.authorization.k8s.io/v1",
  kind: "ClusterRole",
  metadata: { name: "flannel" },
  rules: [
    { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
    { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
  ],
};

export interface ControlPlaneOptions {
  tools: ClusterTools;
  /** The lab namespace everything runs in; the API server listens on `address` there. */
  ns: string;
  address: string;
  dir: string;
  clusterCIDR: string;
  nodeCIDRMaskSize: number;
  log?: (line: string) => void;
}

export interface Credential {
  user: string;
  kubeconfig: string;
}

export class KubeControlPlane {
  readonly port = 6443;
  readonly server: string;
  readonly admin: Credential;
  readonly weft: Credential;
  readonly flannel: Credential;
  private etcd?: ChildProcess;
  private apiserver?: ChildProcess;
  private controllerManager?: ChildProcess;
  private readonly pki: string;

  constructor(private readonly o: ControlPlaneOptions) {
    this.server = `https://${o.address}:${this.port}`;
    this.pki = join(o.dir, "pki");
    this.admin = { user: "weft-lab-admin", kubeconfig: join(o.dir, "admin.kubeconfig") };
    this.weft = { user: "weft-agent", kubeconfig: join(o.dir, "weft.kubeconfig") };
    this.flannel = { user: "flanneld", kubeconfig: join(o.dir, "flannel.kubeconfig") };
  }

  /** Certificates, etcd, kube-apiserver (until ready), the ClusterRoles and bindings, kube-controller-manager. */
  async start(): Promise<void> {
    mkdirSync(this.pki, { recursive: true });
    this.makeCertificates();
    this.startEtcd();
    await this.startApiServer();
    this.applyRbac();
    this.startControllerManager();
  }

  /** Stops kube-apiserver only (etcd and the controller manager stay): the cluster's API is gone, its state is not. */
  async stopApiServer(): Promise<void> {
    await stopProcess(this.apiserver);
    this.apiserver = undefined;
  }

  async startApiServer(): Promise<void> {
    const o = this.o;
    const p = (f: string) => join(this.pki, f);
    this.apiserver = this.spawn("kube-apiserver", o.tools.kubeApiserver, [
      `--etcd-servers=http://127.0.0.1:2379`,
      `--bind-address=${o.address}`, `--advertise-address=${o.address}`, `--secure-port=${this.port}`,
      `--tls-cert-file=${p("apiserver.crt")}`, `--tls-private-key-file=${p("apiserver.key")}`,
      `--client-ca-file=${p("ca.crt")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${p("sa.pub")}`, `--service-account-signing-key-file=${p("sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--authorization-mode=Node,RBAC",
      "--profiling=false",
      `--cert-dir=${join(o.dir, "apiserver-certs")}`,
    ]);
    await this.waitReady();
  }

  /** kubectl with the admin credential, run in the control namespace; stdout. */
  kubectl(args: string[], input?: string): string {
    return sh("ip", ["netns", "exec", this.o.ns, this.o.tools.kubectl, `--kubeconfig=${this.admin.kubeconfig}`, ...args],
      { input, timeoutMs: 300_000 });
  }

  /** kubectl as `credential` (to check what its role allows). */
  kubectlAs(credential: Credential, args: string[]): string {
    return sh("ip", ["netns", "exec", this.o.ns, this.o.tools.kubectl, `--kubeconfig=${credential.kubeconfig}`, ...args]);
  }

  async stop(): Promise<void> {
    await stopProcess(this.controllerManager);
    await stopProcess(this.apiserver);
    await stopProcess(this.etcd);
  }

  private makeCertificates(): void {
    const p = (f: string) => join(this.pki, f);
    const key = (name: string) => sh("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", p(`${name}.key`)]);
    key("ca");
    sh("openssl", ["req", "-x509", "-new", "-key", p("ca.key"), "-subj", "/CN=weft-lab-ca", "-days", "2", "-out", p("ca.crt")]);
    const sign = (name: string, subject: string, ext: string) => {
      key(name);
      sh("openssl", ["req", "-new", "-key", p(`${name}.key`), "-subj", subject, "-out", p(`${name}.csr`)]);
      writeFileSync(p(`${name}.ext`), ext);
      sh("openssl", ["x509", "-req", "-in", p(`${name}.csr`), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial",
        "-days", "2", "-extfile", p(`${name}.ext`), "-out", p(`${name}.crt`)]);
    };
    sign("apiserver", "/CN=kube-apiserver", `subjectAltName=IP:${this.o.address},IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default\n` +
      "extendedKeyUsage=serverAuth\n");
    for (const [name, cred, group] of [["admin", this.admin, "system:masters"], ["weft", this.weft, ""], ["flannel", this.flannel, ""]] as const) {
      sign(name, `/CN=${cred.user}${group ? `/O=${group}` : ""}`, "extendedKeyUsage=clientAuth\n");
      writeFileSync(cred.kubeconfig, this.kubeconfigFor(name, cred.user));
    }
    key("sa");
    sh("openssl", ["pkey", "-in", p("sa.key"), "-pubout", "-out", p("sa.pub")]);
  }

  private kubeconfigFor(certName: string, user: string): string {
    const b64 = (f: string) => readFileSync(join(this.pki, f)).toString("base64");
    return JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "lab", cluster: { server: this.server, "certificate-authority-data": b64("ca.crt") } }],
      users: [{ name: user, user: { "client-certificate-data": b64(`${certName}.crt`), "client-key-data": b64(`${certName}.key`) } }],
      contexts: [{ name: "lab", context: { cluster: "lab", user } }],
      "current-context": "lab",
    }, null, 2);
  }

  private startEtcd(): void {
    const data = join(this.o.dir, "etcd");
    this.etcd = this.spawn("etcd", this.o.tools.etcd, [
      "--name=lab", `--data-dir=${data}`,
      "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
      "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
      "--initial-cluster=lab=http://127.0.0.1:2380", "--log-level=warn",
      // The lab's etcd holds throw-away state: no fsync per write (the 5,000-Node bench would wait on the disk).
      "--unsafe-no-fsync",
    ]);
  }

  private async waitReady(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      if (this.apiserver?.exitCode !== null) {
        throw new Error(`kube-apiserver exited (${this.apiserver?.exitCode}): ${this.logTail("kube-apiserver")}`);
      }
      try {
        if (this.kubectl(["get", "--raw=/readyz"]).trim() === "ok") return;
      } catch (err) {
        last = (err as Error).message.split("\n").slice(-1)[0];
      }
      await sleep(500);
    }
    throw new Error(`kube-apiserver not ready after ${timeoutMs / 1000} s (${last}): ${this.logTail("kube-apiserver")}`);
  }

  /** The last lines a component logged, for an error message (the lab's directory may be gone by the time anyone looks). */
  private logTail(name: string): string {
    try {
      return readFileSync(this.logFile(name), "utf8").trim().split("\n").slice(-5).join("\n");
    } catch {
      return `(no log at ${this.logFile(name)})`;
    }
  }

  private applyRbac(): void {
    const binding = (role: string, user: string) => ({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: role },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
    });
    const items = [WEFT_CLUSTER_ROLE, binding("weft", this.weft.user), FLANNEL_CLUSTER_ROLE, binding("flannel", this.flannel.user)];
    this.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  }

  private startControllerManager(): void {
    const o = this.o;
    this.controllerManager = this.spawn("kube-controller-manager", o.tools.kubeControllerManager, [
      `--kubeconfig=${this.admin.kubeconfig}`,
      "--controllers=nodeipam",
      "--allocate-node-cidrs", `--cluster-cidr=${o.clusterCIDR}`, `--node-cidr-mask-size=${o.nodeCIDRMaskSize}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--leader-elect=false", "--use-service-account-credentials=false",
      "--bind-address=127.0.0.1", "--secure-port=0",
    ]);
  }

  logFile(name: string): string {
    return join(this.o.dir, `${name}.log`);
  }

  private spawn(name: string, binary: string, args: string[]): ChildProcess {
    const out = createWriteStream(this.logFile(name), { flags: "a" });
    const child = spawn("ip", ["netns", "exec", this.o.ns, binary, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    this.o.log?.(`started ${name} in ${this.o.ns} (log ${this.logFile(name)})`);
    return child;
  }
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  child.kill("SIGTERM");
  await Promise.race([exited, sleep(10_000).then(() => child.kill("SIGKILL"))]);
  await exited;
}
