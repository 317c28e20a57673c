// A lab in network namespaces, for the demo, the benchmark and the integration tests: "nodes" joined by an underlay (two
// by a veth pair; more, or a control namespace, by a bridge), one or more "Pods" per node wired like the CNI plugin wires
// them (ptp style), and the cross-node network in one of these ways per node: a weft agent, the kernel's VXLAN configured
// as flannel configures it, plain routes (host-gw), or a real flanneld. The registry is a shared file, or a real
// Kubernetes control plane in the control namespace (src/lab/kube.ts) where every node is a Node object.
// Everything is named with one prefix and removed by down(), also when a step failed half-way. Tooling may shell out to
// `ip`; the agent never does.
import { execFileSync, type ChildProcess } from "node:child_process";
import { spawnInNetns } from "./process.js";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { callAgent } from "../control/api-server.js";
import { nthAddress, parseCIDR } from "../net/addr.js";
import { PACKAGE_ROOT } from "../paths.js";
import { startFlanneld } from "./flannel.js";
import { findClusterTools, KubeControlPlane } from "./kube.js";
import { EtcdCluster } from "./etcd.js";
import { annotateAsFlannel, kernelPeersFromKube, registerNodes } from "./kube-nodes.js";

export type Mode = "weft" | "kernel-vxlan" | "routed" | "mixed";
/** Where weft nodes keep their records: the shared file, or a real store in the control namespace. */
export type LabRegistry = "file" | "kube" | "etcd";
export const LAB_REGISTRIES: LabRegistry[] = ["etcd", "kube", "file"];
/** How one node joins the Pod network; "flanneld" needs registry "kube". */
export type NodeKind = "weft" | "kernel-vxlan" | "routed" | "flanneld";

const MODE_KINDS: Record<Mode, NodeKind[]> = {
  weft: ["weft", "weft"],
  "kernel-vxlan": ["kernel-vxlan", "kernel-vxlan"],
  routed: ["routed", "routed"],
  mixed: ["kernel-vxlan", "weft"],
};

export interface LabOptions {
  mode: Mode;
  /** One kind per node, instead of `mode`'s two nodes (VXLAN on flannel's port 8472 when weft meets kernel nodes). */
  nodes?: NodeKind[];
  /** "kube": a real kube-apiserver and kube-controller-manager in the control namespace; Node subnets are their podCIDRs. */
  registry?: LabRegistry;
  /** Nodes on a bridge in the control namespace even when there are only two. */
  bridged?: boolean;
  /** Pods per node (default 1). */
  pods?: number;
  /** VXLAN port (default 4789; "mixed" uses 8472, flannel's). */
  port?: number;
  /** Underlay MTU (default 1500). */
  underlayMtu?: number;
  /** Names start with this (default "wl" + 4 random hex digits). */
  prefix?: string;
  /** Extra agent config keys. */
  agentConfig?: Record<string, unknown>;
  /**
   * How Pods on weft nodes are made: "hand" wires them here (ptp style, like the CNI plugin), "cni" asks the node's agent
   * through the real front end (build/cni/weft) exactly as a runtime would. Kernel and routed nodes are always wired here.
   */
  podsVia?: "hand" | "cni";
  /** Agents lease their subnets from their registry (etcd, say) instead of being given 10.244.<index>.0/24; their Pods are wired after. */
  leased?: boolean;
  /** Runs after the underlay is up and before the agents start: a store in the control namespace, say. */
  beforeAgents?: (lab: Lab) => Promise<void>;
  log?: (line: string) => void;
}

export interface LabNode {
  index: number;
  kind: NodeKind;
  /** The Node's name (nodeName of its agent). */
  name: string;
  ns: string;
  underlayIP: string;
  subnet: string;
  vtepMAC: string;
  /** weft nodes: the agent's socket, config file and log. */
  socket?: string;
  configFile?: string;
  logFile?: string;
  agent?: ChildProcess;
}

/** Where the control namespace sits on the underlay: the API server's address. */
export const CONTROL_ADDRESS_INDEX = 254;

export interface LabPod {
  ns: string;
  node: number;
  ip: string;
  hostVeth: string;
}

export const CLUSTER = "10.244.0.0/16";
const UNDERLAY_NET = "192.168.200";
/** The control namespace's address on the underlay, where a store the agents share (etcd) listens. */
export const CONTROL_ADDRESS = `${UNDERLAY_NET}.${CONTROL_ADDRESS_INDEX}`;

export function sh(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", input: opts.input, timeout: opts.timeoutMs ?? 60_000, stdio: ["pipe", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")}: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

export const ip = (...args: string[]) => sh("ip", args);

export class Lab {
  readonly prefix: string;
  readonly mode: Mode;
  readonly port: number;
  readonly nodes: LabNode[] = [];
  readonly pods: LabPod[] = [];
  readonly dir: string;
  readonly registryFile: string;
  readonly kinds: NodeKind[];
  /** The namespace that bridges the underlay and hosts the control plane, when there is one. */
  control?: string;
  kube?: KubeControlPlane;
  /** The etcd in the control namespace of a lab with registry "etcd". */
  etcd?: EtcdCluster;
  private readonly namespaces: string[] = [];
  private readonly log: (line: string) => void;
  private readonly exitHook = () => this.downSync();

  constructor(private readonly opts: LabOptions) {
    this.prefix = opts.prefix ?? `wl${randomBytes(2).toString("hex")}`;
    this.mode = opts.mode;
    this.kinds = opts.nodes ?? MODE_KINDS[opts.mode];
    const withKernelPeers = this.kinds.includes("weft") && this.kinds.some((k) => k === "kernel-vxlan" || k === "flanneld");
    this.port = opts.port ?? (withKernelPeers ? 8472 : 4789);
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    this.registryFile = join(this.dir, "peers.json");
    this.log = opts.log ?? (() => undefined);
    process.once("exit", this.exitHook);
  }

  /** Builds the namespaces, links and the chosen cross-node network; resolves when Pods can reach each other. */
  async up(): Promise<this> {
    try {
      this.buildUnderlay();
      if (this.opts.registry === "kube") await this.startKube();
      if (this.opts.registry === "etcd") {
        this.etcd = await new EtcdCluster({ netns: this.control, host: CONTROL_ADDRESS, dir: join(this.dir, "etcd") }).start();
      }
      const viaCni = (n: LabNode) => this.opts.podsVia === "cni" && this.isWeft(n);
      const leasedByHand = (n: LabNode) => this.leased && this.isWeft(n) && !viaCni(n);
      for (const node of this.nodes.filter((n) => !viaCni(n) && !leasedByHand(n))) for (let p = 0; p < (this.opts.pods ?? 1); p++) this.addPod(node, p);
      await this.opts.beforeAgents?.(this);
      if (this.nodes.some((n) => n.kind === "routed")) this.routeHostGw();
      this.nodes.filter((n) => n.kind === "kernel-vxlan").forEach((n) => this.kernelVxlan(n));
      if (this.nodes.some((n) => n.kind === "weft" || n.kind === "flanneld")) await this.startAgents();
      for (const node of this.nodes.filter(viaCni)) for (let p = 0; p < (this.opts.pods ?? 1); p++) this.addPodViaCni(node, p);
      for (const node of this.nodes.filter(leasedByHand)) for (let p = 0; p < (this.opts.pods ?? 1); p++) this.addPod(node, p);
      this.pods.sort((a, b) => a.node - b.node);
      return this;
    } catch (err) {
      await this.down();
      throw err;
    }
  }

  private addNamespace(name: string): string {
    ip("netns", "add", name);
    this.namespaces.push(name);
    ip("-n", name, "link", "set", "lo", "up");
    return name;
  }

  get controlAddress(): string {
    return `${UNDERLAY_NET}.${CONTROL_ADDRESS_INDEX}`;
  }

  /** Two nodes alone: one veth pair. Otherwise every node's veth ends on a bridge in the control namespace. */
  private buildUnderlay(): void {
    const mtu = String(this.opts.underlayMtu ?? 1500);
    const nodes = this.kinds.map((kind, i) => {
      const name = this.mode === "mixed" && !this.opts.nodes && kind === "kernel-vxlan" ? "kernel-node" : `node${i + 1}`;
      return this.namespaceNode(i + 1, kind, name);
    });
    this.nodes.push(...nodes);
    if (this.nodes.length === 2 && this.opts.registry !== "kube" && this.opts.registry !== "etcd" && !this.opts.bridged) {
      const [a, b] = this.nodes;
      ip("link", "add", `${this.prefix}u1`, "netns", a.ns, "mtu", mtu, "type", "veth", "peer", "name", `${this.prefix}u2`, "netns", b.ns, "mtu", mtu);
    } else {
      const control = this.addNamespace(`${this.prefix}c`);
      this.control = control;
      const bridge = `${this.prefix}br`;
      ip("-n", control, "link", "add", bridge, "mtu", mtu, "type", "bridge");
      ip("-n", control, "addr", "add", `${this.controlAddress}/24`, "dev", bridge);
      ip("-n", control, "link", "set", bridge, "up");
      for (const n of this.nodes) this.bridgePort(n);
    }
    for (const n of this.nodes) this.underlayUp(n);
  }

  /**
   * One more node namespace on the bridge, with its underlay address and nothing else (no Node object, no agent): for tests
   * that start an agent by hand. Not listed in `nodes`; removed by down().
   */
  addBareNode(index: number, name: string): LabNode {
    if (!this.control || this.nodes.some((n) => n.index === index)) throw new Error(`addBareNode: needs a bridged lab and a free index (${index})`);
    const n = this.namespaceNode(index, "routed", name);
    this.bridgePort(n);
    this.underlayUp(n);
    return n;
  }

  private namespaceNode(index: number, kind: NodeKind, name: string): LabNode {
    const ns = this.addNamespace(`${this.prefix}n${index}`);
    sh("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    return { index, kind, name, ns, underlayIP: `${UNDERLAY_NET}.${index}`, subnet: `10.244.${index}.0/24`,
      vtepMAC: `02:5e:00:00:00:${index.toString(16).padStart(2, "0")}` };
  }

  private bridgePort(n: LabNode): void {
    const mtu = String(this.opts.underlayMtu ?? 1500);
    const port = `${this.prefix}b${n.index}`;
    ip("link", "add", `${this.prefix}u${n.index}`, "netns", n.ns, "mtu", mtu, "type", "veth", "peer", "name", port, "netns", this.control!, "mtu", mtu);
    ip("-n", this.control!, "link", "set", port, "master", `${this.prefix}br`, "up");
  }

  private underlayUp(n: LabNode): void {
    ip("-n", n.ns, "addr", "add", `${n.underlayIP}/24`, "dev", `${this.prefix}u${n.index}`);
    ip("-n", n.ns, "link", "set", `${this.prefix}u${n.index}`, "up");
    waitFor(() => ip("-n", n.ns, "-br", "link", "show", `${this.prefix}u${n.index}`).includes("UP"), 5000, "underlay link up");
  }

  isWeft(n: LabNode): boolean {
    return n.kind === "weft";
  }

  /** The control plane in the control namespace, a Node per lab node (kernel nodes annotated as flannel would). */
  private async startKube(): Promise<void> {
    const tools = findClusterTools();
    if (typeof tools === "string") throw new Error(`registry "kube": ${tools}`);
    this.kube = new KubeControlPlane({ tools, ns: this.control!, address: this.controlAddress, dir: join(this.dir, "kube"),
      clusterCIDR: CLUSTER, nodeCIDRMaskSize: 24, log: this.log });
    await this.kube.start();
    await registerNodes(this.kube, this.nodes);
    for (const n of this.nodes.filter((x) => x.kind === "kernel-vxlan")) annotateAsFlannel(this.kube, n);
  }

  /** Pod MTU: what flannel (and weft's agent) give Pods on an overlay, the underlay's on routed nodes. */
  private podMtu(): number {
    const underlay = this.opts.underlayMtu ?? 1500;
    return this.mode === "routed" ? underlay : underlay - 50;
  }

  /** A Pod wired as the CNI plugin wires it: address /24, gw/32 scope link + default via gw; host side gw/32 + pod/32. */
  addPod(node: LabNode, p: number): void {
    const ns = this.addNamespace(`${this.prefix}p${node.index}${String.fromCharCode(97 + p)}`);
    const subnet = parseCIDR(node.subnet);
    const podIP = nthAddress(subnet, 10 + p);
    const gw = nthAddress(subnet, 1);
    const hostVeth = `${this.prefix}h${node.index}${String.fromCharCode(97 + p)}`;
    const mtu = String(this.podMtu());
    ip("link", "add", hostVeth, "netns", node.ns, "mtu", mtu, "type", "veth", "peer", "name", "eth0", "netns", ns, "mtu", mtu);
    ip("-n", ns, "addr", "add", `${podIP}/24`, "dev", "eth0");
    ip("-n", ns, "link", "set", "eth0", "up");
    ip("-n", ns, "route", "add", `${gw}/32`, "dev", "eth0", "scope", "link");
    ip("-n", ns, "route", "add", "default", "via", gw, "dev", "eth0");
    ip("-n", node.ns, "link", "set", hostVeth, "up");
    ip("-n", node.ns, "addr", "add", `${gw}/32`, "dev", hostVeth);
    ip("-n", node.ns, "route", "add", `${podIP}/32`, "dev", hostVeth);
    this.pods.push({ ns, node: node.index, ip: podIP, hostVeth });
  }

  /** A Pod made by the node's agent through the real CNI front end, as a runtime calls it. */
  private addPodViaCni(node: LabNode, p: number): void {
    const ns = this.addNamespace(`${this.prefix}p${node.index}${String.fromCharCode(97 + p)}`);
    const result = JSON.parse(this.cni(node, "ADD", ns)) as { interfaces: { name: string; sandbox?: string }[]; ips: { address: string }[] };
    const hostVeth = result.interfaces.find((i) => !i.sandbox)?.name ?? "";
    this.pods.push({ ns, node: node.index, ip: result.ips[0].address.split("/")[0], hostVeth });
  }

  /** Runs the CNI front end for Pod namespace `ns` on `node` (CNI_CONTAINERID = ns, CNI_IFNAME = eth0); its stdout. */
  cni(node: LabNode, command: "ADD" | "DEL" | "CHECK", ns: string): string {
    const config = { cniVersion: "1.0.0", name: "weft", type: "weft", socket: node.socket };
    return sh("ip", ["netns", "exec", node.ns, "env", "-i", `CNI_COMMAND=${command}`, `CNI_CONTAINERID=${ns}`, `CNI_NETNS=/run/netns/${ns}`,
      "CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni:/opt/cni/bin", join(PACKAGE_ROOT, "build", "cni", "weft")], { input: JSON.stringify(config) });
  }

  private routeHostGw(): void {
    for (const n of this.nodes) {
      const other = this.nodes.find((o) => o !== n)!;
      ip("-n", n.ns, "route", "add", other.subnet, "via", other.underlayIP);
    }
  }

  /** The kernel's VXLAN exactly as flannel's vxlan backend sets it up (docs/wire.md). */
  kernelVxlan(n: LabNode): void {
    const dev = `${this.prefix}v${n.index}`;
    const mtu = (this.opts.underlayMtu ?? 1500) - 50;
    ip("-n", n.ns, "link", "add", dev, "type", "vxlan", "id", "1", "dstport", String(this.port), "nolearning", "local", n.underlayIP,
      "dev", `${this.prefix}u${n.index}`);
    ip("-n", n.ns, "link", "set", dev, "address", n.vtepMAC, "mtu", String(mtu), "up");
    ip("-n", n.ns, "addr", "add", `${nthAddress(parseCIDR(n.subnet), 0)}/32`, "dev", dev);
    // With a kube registry a kernel node learns its peers from their Nodes' annotations, once they have published them.
    if (this.opts.registry !== "kube") for (const other of this.nodes.filter((o) => o !== n)) this.kernelPeer(n, other);
  }

  /** neighbour <peer subnet .0> lladdr <peer VtepMAC>, FDB <peer VtepMAC> dst <peer publicIP>, route via .0 onlink. */
  kernelPeer(n: LabNode, peer: Pick<LabNode, "subnet" | "vtepMAC" | "underlayIP">): void {
    const dev = `${this.prefix}v${n.index}`;
    const gw = nthAddress(parseCIDR(peer.subnet), 0);
    ip("-n", n.ns, "neigh", "replace", gw, "lladdr", peer.vtepMAC, "dev", dev, "nud", "permanent");
    sh("bridge", ["-n", n.ns, "fdb", "append", peer.vtepMAC, "dev", dev, "dst", peer.underlayIP]);
    ip("-n", n.ns, "route", "replace", peer.subnet, "via", gw, "dev", dev, "onlink");
  }

  private async startAgents(): Promise<void> {
    const weftNodes = this.nodes.filter((n) => n.kind === "weft");
    const kernelNodes = this.nodes.filter((n) => n.kind === "kernel-vxlan");
    if (this.opts.registry !== "kube") {
      const records = kernelNodes.map((k) => ({ nodeName: k.name, publicIP: k.underlayIP, subnet: k.subnet, vtepMAC: k.vtepMAC, vni: 1 }));
      writeFileSync(this.registryFile, JSON.stringify(records, null, 2));
    }
    for (const n of weftNodes) this.startAgent(n);
    for (const n of this.nodes.filter((x) => x.kind === "flanneld")) {
      n.agent = startFlanneld(this, n);
      this.log(`started flanneld on ${n.ns} (log ${n.logFile})`);
    }
    await Promise.all(weftNodes.map((n) => this.waitReady(n)));
    if (this.leased) {
      for (const n of weftNodes) n.subnet = ((await callAgent(n.socket!, { op: "status" })) as { subnet: string }).subnet;
    }
    if (this.kube) {
      for (const k of kernelNodes) await kernelPeersFromKube(this, k);
      return;
    }
    // The kernel node learns the weft node's VtepMAC the way flannel would: from its record.
    for (const weft of weftNodes) {
      const status = (await callAgent(weft.socket!, { op: "status" })) as { vtepMAC: string };
      weft.vtepMAC = status.vtepMAC;
      for (const k of kernelNodes) this.kernelPeer(k, weft);
    }
  }

  /** Starts node n's agent; `extra` keys go over the lab's config for this start only. */
  startAgent(n: LabNode, extra: Record<string, unknown> = {}): void {
    const dir = join(this.dir, `node${n.index}`);
    mkdirSync(dir, { recursive: true });
    n.socket = join(dir, "weft.sock");
    n.configFile = join(dir, "agent.json");
    n.logFile = join(dir, "agent.log");
    const config = {
      nodeName: n.name,
      clusterCIDR: CLUSTER,
      ...(this.kube || this.leased ? {} : { subnet: n.subnet }),
      publicIP: n.underlayIP,
      port: this.port,
      vtepMAC: n.vtepMAC,
      registry: this.registryConfig(),
      socket: n.socket,
      stateDir: join(dir, "state"),
      metrics: "127.0.0.1:0",
      // `npm test` runs the dataplane tests once with the agents' default and once more with WEFT_LAB_QUEUES=2.
      ...(process.env.WEFT_LAB_QUEUES ? { queues: Number(process.env.WEFT_LAB_QUEUES) } : {}),
      ...this.opts.agentConfig,
      ...extra,
    };
    writeFileSync(n.configFile, JSON.stringify(config, null, 2));
    // bin/weft itself, as an installed agent starts (its shebang carries the agent's V8 flags).
    n.agent = spawnInNetns(n.ns, join(PACKAGE_ROOT, "bin", "weft"), ["agent", "--config", n.configFile], n.logFile);
    this.log(`started weft agent on ${n.ns} (log ${n.logFile})`);
  }

  private registryConfig(): Record<string, unknown> {
    if (this.kube) return { type: "kube", kubeconfig: this.kube.weft.kubeconfig };
    if (this.etcd) return { type: "etcd", endpoints: this.etcd.endpoints, prefix: "/coreos.com/network" };
    return { type: "file", path: this.registryFile };
  }

  /** Agents lease their subnets: asked for, or because the registry is etcd. */
  private get leased(): boolean {
    return this.opts.leased === true || this.opts.registry === "etcd";
  }

  /** Resolves when the agent answers status as ready and knows every other node as a peer. */
  async waitReady(n: LabNode, timeoutMs = this.kube ? 90_000 : 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      if (n.agent && n.agent.exitCode !== null) throw new Error(`weft agent on ${n.ns} exited with ${n.agent.exitCode}; see ${n.logFile}`);
      try {
        const s = (await callAgent(n.socket!, { op: "status" }, 2000)) as { ready: boolean; peers: { live: boolean }[] };
        const live = s.peers.filter((p) => p.live).length;
        if (s.ready && live >= this.nodes.length - 1) return;
        last = `ready=${s.ready} live peers=${live}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(100);
    }
    // The lab's directory is gone by the time anyone reads this: the error carries the tails of the logs that explain it.
    const flanneld = this.nodes.filter((x) => x.kind === "flanneld").map((x) => `\nflanneld on ${x.ns}:\n${logTail(x.logFile)}`).join("");
    throw new Error(`weft agent on ${n.ns} not ready after ${timeoutMs} ms (${last}):\n${logTail(n.logFile)}${flanneld}`);
  }

  /** Stops an agent with a signal and waits for it to exit. */
  async stopAgent(n: LabNode, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const child = n.agent;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    // `ip netns exec` execs node in place, so the child's pid is the agent's.
    const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
    child.kill(signal);
    return Promise.race([exited, sleep(10_000).then(() => {
      child.kill("SIGKILL");
      return null;
    })]);
  }

  exec(ns: string, cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
    return sh("ip", ["netns", "exec", ns, cmd, ...args], opts);
  }

  pod(node: number, p = 0): LabPod {
    return this.pods.filter((x) => x.node === node)[p];
  }

  async down(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.stopAgent(n)));
    await this.kube?.stop();
    await this.etcd?.stop();
    this.downSync();
  }

  /** Leaves everything up when this process exits: `Lab.teardown(prefix)` takes it down later. */
  keep(): void {
    process.removeListener("exit", this.exitHook);
    this.etcd?.keep();
  }

  /** Takes down a lab left up by keep(): kills what runs in its namespaces, deletes them and its files. */
  static teardown(prefix: string): string[] {
    if (!/^[a-z][a-z0-9]{1,11}$/.test(prefix)) throw new Error(`not a lab prefix: ${JSON.stringify(prefix)}`);
    const namespaces = sh("ip", ["netns", "list"]).split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(prefix));
    for (const ns of namespaces.reverse()) killAndDelete(ns);
    for (const d of readdirSync(tmpdir()).filter((d) => d.startsWith(`${prefix}-`))) rmSync(join(tmpdir(), d), { recursive: true, force: true });
    return namespaces;
  }

  private downSync(): void {
    for (const n of this.nodes) if (n.agent && n.agent.exitCode === null) n.agent.kill("SIGKILL");
    for (const ns of this.namespaces.splice(0).reverse()) killAndDelete(ns);
    rmSync(this.dir, { recursive: true, force: true });
    process.removeListener("exit", this.exitHook);
  }
}

/** Kills every process in namespace `ns` and deletes it; quiet when it is already gone. */
function killAndDelete(ns: string): void {
  try {
    sh("ip", ["netns", "pids", ns]).split(/\s+/).filter(Boolean).forEach((pid) => {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // already gone
      }
    });
    ip("netns", "del", ns);
  } catch {
    // already gone
  }
}

function logTail(file: string | undefined, lines = 8): string {
  try {
    return readFileSync(file!, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return `(no log at ${file})`;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

export function waitFor(check: () => boolean, timeoutMs: number, what: string): void {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    execFileSync("sleep", ["0.05"]);
  }
}
