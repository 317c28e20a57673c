// registry.type "kube": the node records of a Kubernetes cluster whose flannel uses the kube subnet manager
// (docs/registry-kube.md). Our subnet is the podCIDR kube-controller-manager gave our Node; our record is flannel's
// annotations on it, written through nodes/status; the peers are every Node that carries such annotations, kept current
// by a list-and-watch. While the API server is away the last known peers stay, and the watch catches up when it returns.
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { cidrContains, cidrOverlaps, cidrToString, parseCIDR } from "../../net/addr.js";
import { ConfigError } from "../config.js";
import { ANNOTATIONS, annotationsHold, nodeToRecord, podCIDRs, recordAnnotations } from "./kube-annotations.js";
import { connectKube, type KubeClient, KubeApiError, type KubeNode } from "./kube-client.js";
import { INFORMER_DEFAULTS, NodeInformer, type InformerOptions } from "./kube-informer.js";
import { type NodeRecord, type Registry, type RegistryEvents, parseNodeRecord, sameRecord } from "./record.js";

export interface KubeRegistryOptions {
  nodeName: string;
  /** Undefined: the in-cluster service account. */
  kubeconfig?: string;
  clusterCIDR: string;
  subnetLen: number;
  clusterCIDRv6?: string;
  subnetLenV6?: number;
  /** Our record's other fields, as configured: what `decide` sees for us before anything is published. */
  self: Pick<NodeRecord, "publicIP" | "vtepMAC" | "vni" | "publicIPv6">;
  log: Logger;
  informer?: Partial<InformerOptions>;
  /** How often the wait for our Node's podCIDR is logged. */
  waitLogMs?: number;
}

/** What NetworkUnavailable=False says on a weft node (flannel says FlannelIsUp). */
export const CONDITION_REASON = "WeftIsUp";
const PATCH_RETRY_MS = 60_000;

export class KubeRegistry extends EventEmitter<RegistryEvents> implements Registry {
  private client?: KubeClient;
  private informer?: NodeInformer;
  private readonly records = new Map<string, NodeRecord>();
  /** Why a flannel-managed Node is not a peer, as last logged. */
  private readonly problems = new Map<string, string>();
  /** The resourceVersion of every Node last applied: a Node seen again at the same version has not changed. */
  private readonly versions = new Map<string, string>();
  private ownNode?: KubeNode;
  private ownNodeChanged: (() => void)[] = [];
  /** Events start after the first list: start() reads the current records without events, as the interface says. */
  private synced = false;
  private closed = false;

  constructor(private readonly options: KubeRegistryOptions) {
    super();
  }

  async start(): Promise<void> {
    const o = this.options;
    this.client = await connectKube(o.kubeconfig);
    o.log.info({ server: this.client.server, node: o.nodeName }, "kube registry: listing and watching Nodes");
    this.informer = new NodeInformer(this.client, {
      replace: (nodes) => this.replace(nodes),
      upsert: (node) => this.apply([node], false),
      remove: (node) => this.apply([node], true),
    }, o.log, { ...INFORMER_DEFAULTS, ...o.informer });
    await this.informer.start();
    this.synced = true;
  }

  list(): NodeRecord[] {
    return [...this.records.values()];
  }

  /**
   * The subnet is not ours to pick: the controller assigned it to our Node. So this waits for that podCIDR, lets `decide`
   * fill in the record (it must keep that subnet), and publishes it as flannel's annotations plus NetworkUnavailable=False.
   */
  async claimSelf(decide: (records: readonly NodeRecord[]) => NodeRecord | Promise<NodeRecord>): Promise<NodeRecord> {
    const o = this.options;
    const node = await this.waitForPodCIDR();
    const subnets = this.checkPodCIDRs(node);
    for (const other of this.records.values()) {
      if (other.nodeName !== o.nodeName && cidrOverlaps(parseCIDR(other.subnet), parseCIDR(subnets.v4))) {
        throw new Error(`Node ${o.nodeName}'s podCIDR ${subnets.v4} overlaps node ${other.nodeName}'s subnet ${other.subnet} in its flannel annotations`);
      }
    }
    const others = [...this.records.values()].filter((r) => r.nodeName !== o.nodeName);
    const own: NodeRecord = { ...o.self, ...this.records.get(o.nodeName), nodeName: o.nodeName, subnet: subnets.v4 };
    if (subnets.v6 !== undefined) own.subnetV6 = subnets.v6;
    const mine = parseNodeRecord(await decide([...others, own]));
    if (mine.subnet !== subnets.v4) {
      throw new ConfigError("subnet", `${mine.subnet} differs from ${subnets.v4}, the podCIDR of Node ${o.nodeName}`,
        "no subnet key: with registry.type kube the subnet is the Node's podCIDR");
    }
    if (subnets.v6 !== undefined && mine.subnetV6 !== subnets.v6) {
      throw new ConfigError("subnetV6", `${mine.subnetV6} differs from ${subnets.v6}, the IPv6 podCIDR of Node ${o.nodeName}`,
        "no subnetV6 key: with registry.type kube the subnet is the Node's podCIDR");
    }
    const published = await this.publish(mine);
    await this.markNetworkAvailable();
    return published;
  }

  async upsertSelf(record: NodeRecord): Promise<void> {
    await this.publish(parseNodeRecord(record));
  }

  /** Takes our annotations off the Node; flanneld peers keep us until the Node is deleted (docs/registry-kube.md). */
  async removeSelf(): Promise<void> {
    const current = this.ownNode?.metadata.annotations ?? {};
    const ours = [ANNOTATIONS.kubeSubnetManager, ANNOTATIONS.backendType, ANNOTATIONS.backendData, ANNOTATIONS.backendV6Data,
      ANNOTATIONS.publicIP, ANNOTATIONS.publicIPv6].filter((k) => k in current);
    if (ours.length === 0) return;
    const node = await this.patch({ metadata: { annotations: Object.fromEntries(ours.map((k) => [k, null])) } });
    this.apply([node], false);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.informer?.stop();
    this.ownNodeChanged.splice(0).forEach((wake) => wake());
  }

  private async waitForPodCIDR(): Promise<KubeNode> {
    const o = this.options;
    const since = Date.now();
    for (;;) {
      if (this.closed) throw new Error("kube registry closed while waiting for the Node's podCIDR");
      const node = this.ownNode;
      const cidrs = node ? podCIDRs(node) : {};
      if (node && (cidrs.v4 || cidrs.v6)) return node;
      const waited = Math.round((Date.now() - since) / 1000);
      o.log.info({ node: o.nodeName, waitedSeconds: waited }, node
        ? "waiting for Node's podCIDR (assigned by kube-controller-manager --allocate-node-cidrs)"
        : "waiting for the Node object to exist (registered by the kubelet; nodeName must be the Node's name)");
      await new Promise<void>((res) => {
        const timer = setTimeout(res, o.waitLogMs ?? 10_000);
        this.ownNodeChanged.push(() => {
          clearTimeout(timer);
          res();
        });
      });
    }
  }

  /** The podCIDRs, canonical, checked against the configured cluster networks. */
  private checkPodCIDRs(node: KubeNode): { v4: string; v6?: string } {
    const o = this.options;
    const cidrs = podCIDRs(node);
    const where = `Node ${o.nodeName}'s podCIDRs ${JSON.stringify(node.spec?.podCIDRs ?? [node.spec?.podCIDR])}`;
    if (!cidrs.v4) throw new ConfigError("clusterCIDR", `${where} hold no IPv4 CIDR`, "a Node with an IPv4 podCIDR (weft's Pod network is IPv4, optionally dual-stack)");
    const v4 = checkInside(cidrs.v4, o.clusterCIDR, o.subnetLen, "clusterCIDR", "subnetLen", where);
    if (o.clusterCIDRv6 === undefined) return { v4 };
    if (!cidrs.v6) throw new ConfigError("clusterCIDRv6", `${where} hold no IPv6 CIDR`, "dual-stack podCIDRs (--cluster-cidr with an IPv6 range), or no clusterCIDRv6");
    return { v4, v6: checkInside(cidrs.v6, o.clusterCIDRv6, o.subnetLenV6!, "clusterCIDRv6", "subnetLenV6", where) };
  }

  private async publish(record: NodeRecord): Promise<NodeRecord> {
    const current = this.ownNode?.metadata.annotations ?? {};
    const wanted: Record<string, string | null> = recordAnnotations(record, current);
    for (const key of [ANNOTATIONS.backendV6Data, ANNOTATIONS.publicIPv6]) if (!(key in wanted) && key in current) wanted[key] = null;
    let node = this.ownNode!;
    if (!annotationsHold(wanted, current)) {
      node = await this.patch({ metadata: { annotations: wanted } });
      this.apply([node], false);
      this.options.log.info({ node: record.nodeName, annotations: wanted }, "published our record as flannel annotations on the Node");
    }
    const published = nodeToRecord(node);
    if (published === null || typeof published === "string") {
      throw new Error(`Node ${record.nodeName} does not read back as a peer after publishing: ${published ?? "not kube-subnet-manager"}`);
    }
    return published;
  }

  private async markNetworkAvailable(): Promise<void> {
    const condition = this.ownNode?.status?.conditions?.find((c) => c.type === "NetworkUnavailable");
    if (condition?.status === "False" && condition.reason === CONDITION_REASON) return;
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    await this.patch({ status: { conditions: [{ type: "NetworkUnavailable", status: "False", reason: CONDITION_REASON,
      message: "weft is running on this node", lastTransitionTime: now, lastHeartbeatTime: now }] } });
    this.options.log.info({ node: this.options.nodeName }, "Node condition NetworkUnavailable=False");
  }

  /**
   * A nodes/status patch, retried for a minute while the API server is away or busy (then the caller fails, as flanneld
   * does after 30 s, and the agent's supervisor restarts it); refusals (RBAC, invalid) fail at once.
   */
  private async patch(body: object): Promise<KubeNode> {
    const { initial, max } = { ...INFORMER_DEFAULTS.backoffMs, ...this.options.informer?.backoffMs };
    const deadline = Date.now() + PATCH_RETRY_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.client!.patchNodeStatus(this.options.nodeName, body);
      } catch (err) {
        const e = err as KubeApiError;
        const transient = e.status === 0 || e.status === 409 || e.status === 429 || e.status >= 500;
        if (!transient || this.closed || Date.now() > deadline) {
          const hint = e.status === 403 ? " (weft's credential needs nodes/status patch: see the ClusterRole in docs/registry-kube.md)" : "";
          throw new Error(`kube registry: ${e.message}${hint}`);
        }
        const delay = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20));
        this.options.log.warn({ err: e.message, attempt, retryInMs: delay }, "patching our Node failed; retrying");
        await new Promise((res) => setTimeout(res, delay));
      }
    }
  }

  /** A complete list: applied as a diff, so a list that changes nothing emits nothing (and parses nothing again). */
  private replace(nodes: KubeNode[]): void {
    const seen = new Set(nodes.map((n) => n.metadata.name));
    const gone = [...this.versions.keys()].filter((name) => !seen.has(name));
    this.apply(gone.map((name) => ({ metadata: { name } })), true, nodes);
  }

  /**
   * Applies Node changes (deletions when `deleted`, then `alsoUpserted`) in the order the interface promises: removed,
   * changed, added.
   */
  private apply(nodes: KubeNode[], deleted: boolean, alsoUpserted: KubeNode[] = []): void {
    const removed: NodeRecord[] = [];
    const changed: [NodeRecord, NodeRecord][] = [];
    const added: NodeRecord[] = [];
    const visit = (node: KubeNode, isDeleted: boolean) => {
      const name = node.metadata.name;
      const version = node.metadata.resourceVersion;
      if (!isDeleted && version !== undefined && this.versions.get(name) === version) return;
      if (isDeleted || version === undefined) this.versions.delete(name);
      else this.versions.set(name, version);
      if (name === this.options.nodeName && !isDeleted) this.setOwnNode(node);
      if (name === this.options.nodeName && isDeleted) this.setOwnNode(undefined);
      const parsed = isDeleted ? null : nodeToRecord(node);
      const before = this.records.get(name);
      if (typeof parsed === "string") this.noteProblem(name, parsed);
      else this.problems.delete(name);
      const record = parsed !== null && typeof parsed !== "string" ? parsed : undefined;
      if (record) this.records.set(name, record);
      else this.records.delete(name);
      if (before && !record) removed.push(before);
      else if (before && record && !sameRecord(before, record)) changed.push([record, before]);
      else if (!before && record) added.push(record);
    };
    for (const n of nodes) visit(n, deleted);
    for (const n of alsoUpserted) visit(n, false);
    if (!this.synced) return;
    for (const r of removed) this.emit("removed", r);
    for (const [r, before] of changed) this.emit("changed", r, before);
    for (const r of added) this.emit("added", r);
  }

  private noteProblem(name: string, problem: string): void {
    if (this.problems.get(name) === problem) return;
    this.problems.set(name, problem);
    this.options.log.warn({ node: name, problem }, "Node has flannel annotations but cannot be a vxlan peer; ignoring it");
  }

  private setOwnNode(node: KubeNode | undefined): void {
    this.ownNode = node;
    this.ownNodeChanged.splice(0).forEach((wake) => wake());
  }
}

function checkInside(text: string, clusterText: string, len: number, clusterKey: string, lenKey: string, where: string): string {
  const cidr = parseCIDR(text);
  const cluster = parseCIDR(clusterText);
  if (!cidrContains(cluster, cidr)) {
    throw new ConfigError(clusterKey, `${where}: ${text} is outside ${clusterKey} ${clusterText}`, "the cluster's Pod network, kube-controller-manager's --cluster-cidr");
  }
  if (cidr.len !== len) {
    throw new ConfigError(lenKey, `${where}: ${text} is a /${cidr.len}, not a /${len}`, `${lenKey} ${cidr.len}, kube-controller-manager's --node-cidr-mask-size`);
  }
  return cidrToString(cidr);
}
