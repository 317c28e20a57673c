// flannel's kube subnet manager format (docs/registry-kube.md): a node's record lives on its Node object, the subnet in
// spec.podCIDRs (assigned by kube-controller-manager), the rest in annotations under flannel.alpha.coreos.com/. weft reads
// and writes exactly these, so flanneld nodes and weft nodes of one cluster are each other's peers.
import { parseCIDR } from "../../net/addr.js";
import type { KubeNode } from "./kube-client.js";
import { type NodeRecord, parseNodeRecord, RecordError } from "./record.js";

const PREFIX = "flannel.alpha.coreos.com/";
export const ANNOTATIONS = {
  kubeSubnetManager: `${PREFIX}kube-subnet-manager`,
  backendType: `${PREFIX}backend-type`,
  backendData: `${PREFIX}backend-data`,
  backendV6Data: `${PREFIX}backend-v6-data`,
  publicIP: `${PREFIX}public-ip`,
  publicIPv6: `${PREFIX}public-ipv6`,
  publicIPOverwrite: `${PREFIX}public-ip-overwrite`,
  publicIPv6Overwrite: `${PREFIX}public-ipv6-overwrite`,
} as const;

/** What flannel's vxlan backend stores in backend-data; older flannel wrote no VNI, meaning its default, 1. */
const FLANNEL_DEFAULT_VNI = 1;

export interface PodCIDRs {
  v4?: string;
  v6?: string;
}

/** The Node's first IPv4 and first IPv6 Pod CIDR: spec.podCIDRs, or spec.podCIDR on servers that set only that. */
export function podCIDRs(node: KubeNode): PodCIDRs {
  const list = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  const out: PodCIDRs = {};
  for (const text of list) {
    let family: 4 | 6;
    try {
      family = parseCIDR(text).family;
    } catch {
      continue;
    }
    if (family === 4) out.v4 ??= text;
    else out.v6 ??= text;
  }
  return out;
}

/**
 * The Node as a peer record: null when it is not managed by a kube subnet manager (no flannel, no weft: not ours to
 * judge), a string saying why when it is but cannot be a vxlan peer, else the record.
 */
export function nodeToRecord(node: KubeNode): NodeRecord | string | null {
  const a = node.metadata.annotations ?? {};
  if (a[ANNOTATIONS.kubeSubnetManager] !== "true") return null;
  if (a[ANNOTATIONS.backendType] !== "vxlan") return `backend-type is ${JSON.stringify(a[ANNOTATIONS.backendType] ?? null)}, not "vxlan"`;
  const cidrs = podCIDRs(node);
  if (!cidrs.v4) return "no IPv4 podCIDR assigned";
  const publicIP = a[ANNOTATIONS.publicIP] ?? a[ANNOTATIONS.publicIPv6];
  if (!publicIP) return "no public-ip annotation";
  const data = backendData(a[ANNOTATIONS.backendData]);
  if (typeof data === "string") return `backend-data ${data}`;
  const raw: Record<string, unknown> = { nodeName: node.metadata.name, publicIP, subnet: cidrs.v4, vtepMAC: data.VtepMAC, vni: data.VNI };
  if (cidrs.v6 && a[ANNOTATIONS.publicIPv6] && a[ANNOTATIONS.backendV6Data] !== undefined) {
    raw.subnetV6 = cidrs.v6;
    raw.publicIPv6 = a[ANNOTATIONS.publicIPv6];
  }
  try {
    return parseNodeRecord(raw);
  } catch (e) {
    if (e instanceof RecordError) return e.message;
    throw e;
  }
}

function backendData(text: string | undefined): { VNI: unknown; VtepMAC: unknown } | string {
  if (text === undefined) return "is missing";
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return `is not JSON: ${JSON.stringify(text)}`;
  }
  if (typeof value !== "object" || value === null) return `is not a JSON object: ${JSON.stringify(text)}`;
  const v = value as Record<string, unknown>;
  return { VNI: v.VNI ?? FLANNEL_DEFAULT_VNI, VtepMAC: v.VtepMAC };
}

/**
 * The annotations that publish `record` on our Node, as flannel's vxlan backend writes them. A public-ip-overwrite set on
 * the Node (by an operator, for a node behind NAT) wins over our address, as in flannel.
 */
export function recordAnnotations(record: NodeRecord, current: Record<string, string>): Record<string, string> {
  const data = (vni: number) => JSON.stringify({ VNI: vni, VtepMAC: record.vtepMAC });
  const out: Record<string, string> = {
    [ANNOTATIONS.kubeSubnetManager]: "true",
    [ANNOTATIONS.backendType]: "vxlan",
    [ANNOTATIONS.backendData]: data(record.vni),
  };
  const v6Underlay = record.publicIP.includes(":");
  if (!v6Underlay) out[ANNOTATIONS.publicIP] = current[ANNOTATIONS.publicIPOverwrite] || record.publicIP;
  const publicIPv6 = v6Underlay ? record.publicIP : record.publicIPv6;
  if (publicIPv6 !== undefined) out[ANNOTATIONS.publicIPv6] = current[ANNOTATIONS.publicIPv6Overwrite] || publicIPv6;
  if (record.subnetV6 !== undefined) out[ANNOTATIONS.backendV6Data] = data(record.vni);
  return out;
}

/** True when every annotation in `wanted` already has that value (null: is absent). */
export function annotationsHold(wanted: Record<string, string | null>, current: Record<string, string>): boolean {
  return Object.entries(wanted).every(([k, v]) => (v === null ? !(k in current) : current[k] === v));
}
