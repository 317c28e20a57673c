// flannel's formats in etcd (docs/registry-etcd.md): the subnet key `10.244.3.0-24` (`…&fd00:1::-64` when dual-stack), the
// lease value (flannel's LeaseAttrs JSON, with the vxlan backend's {"VNI","VtepMAC"}), and the network config at
// `<prefix>/config`. flanneld reads these with Go's encoding/json, which matches field names case-insensitively and ignores
// fields it does not know; we read them the same way, and write them in flannel's own spelling.
import { cidrToString, parseCIDR } from "../../net/addr.js";
import { ConfigError } from "../config.js";
import { type NodeRecord, parseNodeRecord, RecordError } from "./record.js";

/** What weft's own lease value holds besides flannel's fields: the node's name, for people reading etcd. */
export const NODE_NAME_FIELD = "NodeName";

const SUBNET_KEY = /^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})(?:&([0-9a-fA-F:]+)-(\d{1,3}))?$/;

/** The last path element of a subnet key for a record: `10.244.3.0-24` or `10.244.3.0-24&fd00:1::-64`. */
export function subnetKeyName(record: Pick<NodeRecord, "subnet" | "subnetV6">): string {
  const v4 = record.subnet.replace("/", "-");
  return record.subnetV6 === undefined ? v4 : `${v4}&${record.subnetV6.replace("/", "-")}`;
}

/** The subnets a key name stands for, canonical; undefined when it is not a subnet key. */
export function parseSubnetKeyName(name: string): { subnet: string; subnetV6?: string } | undefined {
  const m = SUBNET_KEY.exec(name);
  if (!m) return undefined;
  try {
    const subnet = canonicalCidr(`${m[1]}/${m[2]}`, 4);
    const subnets = m[3] === undefined ? { subnet } : { subnet, subnetV6: canonicalCidr(`${m[3]}/${m[4]}`, 6) };
    // Host bits set or a non-canonical IPv6 spelling: not a key flannel (or we) would write for that subnet.
    return subnetKeyName(subnets) === name ? subnets : undefined;
  } catch {
    return undefined;
  }
}

function canonicalCidr(text: string, family: 4 | 6): string {
  const c = parseCIDR(text);
  if (c.family !== family) throw new RecordError(`${text} is not IPv${family}`);
  return cidrToString(c);
}

/** The lease value flanneld writes for a vxlan node, plus our node name. */
export function leaseValueFor(record: NodeRecord): string {
  const backend = { VNI: record.vni, VtepMAC: record.vtepMAC };
  return JSON.stringify({
    PublicIP: record.publicIP,
    PublicIPv6: record.publicIPv6 ?? null,
    BackendType: "vxlan",
    BackendData: backend,
    ...(record.subnetV6 !== undefined && { BackendV6Data: backend }),
    [NODE_NAME_FIELD]: record.nodeName,
  });
}

export interface ParsedLease {
  record: NodeRecord;
  /** The weft node name the value carries, when a weft agent wrote it. */
  weftNodeName?: string;
}

/**
 * A lease (key name + value text) as a node record named `nodeName`. Throws RecordError saying why it cannot be a peer:
 * not a subnet key, not JSON, another backend than vxlan, or bad addresses.
 */
export function parseLease(keyName: string, value: string, nodeName: string): ParsedLease {
  const subnets = parseSubnetKeyName(keyName);
  if (!subnets) throw new RecordError(`${JSON.stringify(keyName)} is not a subnet key (like 10.244.3.0-24)`);
  let attrs: unknown;
  try {
    attrs = JSON.parse(value);
  } catch (e) {
    throw new RecordError(`value is not JSON (${(e as Error).message})`);
  }
  if (!isObject(attrs)) throw new RecordError("value is not a JSON object");
  const backendType = field(attrs, "BackendType");
  if (backendType !== "vxlan") throw new RecordError(`BackendType is ${JSON.stringify(backendType ?? null)}, not "vxlan"`);
  const backend = field(attrs, "BackendData");
  if (!isObject(backend)) throw new RecordError("BackendData is not a JSON object");
  const publicIPv6 = field(attrs, "PublicIPv6");
  const record = parseNodeRecord({
    nodeName,
    publicIP: field(attrs, "PublicIP"),
    subnet: subnets.subnet,
    vtepMAC: field(backend, "VtepMAC"),
    vni: field(backend, "VNI") ?? 0,
    ...(subnets.subnetV6 !== undefined && { subnetV6: subnets.subnetV6 }),
    ...(publicIPv6 !== null && publicIPv6 !== undefined && { publicIPv6 }),
  });
  if (record.publicIP.includes(":")) throw new RecordError(`PublicIP ${record.publicIP} is not IPv4`);
  const weftNodeName = field(attrs, NODE_NAME_FIELD);
  return { record, ...(typeof weftNodeName === "string" && { weftNodeName }) };
}

/** What the agent's config says the network is, in the terms of flannel's network config. */
export interface NetworkWanted {
  clusterCIDR: string;
  subnetLen: number;
  clusterCIDRv6?: string;
  subnetLenV6?: number;
  vni: number;
  port: number;
}

/** The network config weft writes when `<prefix>/config` does not exist yet. */
export function networkConfigFor(want: NetworkWanted): string {
  return JSON.stringify({
    Network: want.clusterCIDR,
    SubnetLen: want.subnetLen,
    ...(want.clusterCIDRv6 !== undefined && { EnableIPv6: true, IPv6Network: want.clusterCIDRv6, IPv6SubnetLen: want.subnetLenV6 }),
    Backend: { Type: "vxlan", VNI: want.vni, Port: want.port },
  });
}

/** flannel's vxlan backend leaves the port to the kernel when it is 0 or absent: Linux's default, 8472. */
const FLANNEL_VXLAN_PORT = 8472;

/**
 * Checks flannel's network config (the text of `key`) against the agent's config, as flanneld would interpret it, and
 * throws a ConfigError naming the agent key and the etcd key and field on the first disagreement. Returns the warnings
 * (settings weft does not act on but that do not split the cluster).
 */
export function checkNetworkConfig(key: string, text: string, want: NetworkWanted): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("registry", `etcd key ${key} is not JSON (${(e as Error).message})`, "flannel's network config");
  }
  if (!isObject(parsed)) throw new ConfigError("registry", `etcd key ${key} is not a JSON object`, "flannel's network config");
  const cfg = parsed;
  const disagree = (agentKey: string, fieldName: string, theirs: unknown, ours: unknown, hint = "") => {
    throw new ConfigError(agentKey, `${JSON.stringify(ours)} disagrees with ${fieldName} ${JSON.stringify(theirs)} in etcd key ${key}${hint}`,
      `the same value on every node of the cluster (change ${agentKey} or the etcd key)`);
  };
  if (field(cfg, "EnableIPv4") === false) disagree("clusterCIDR", "EnableIPv4", false, want.clusterCIDR, " (weft needs an IPv4 Pod network)");
  const network = normalCidr(field(cfg, "Network"));
  if (network !== want.clusterCIDR) disagree("clusterCIDR", "Network", field(cfg, "Network") ?? null, want.clusterCIDR);
  const subnetLen = field(cfg, "SubnetLen") || defaultSubnetLen(network, 22, 24);
  if (subnetLen !== want.subnetLen) disagree("subnetLen", "SubnetLen", subnetLen, want.subnetLen, field(cfg, "SubnetLen") ? "" : " (flannel's default for this Network)");
  for (const bound of ["SubnetMin", "SubnetMax"]) {
    if (field(cfg, bound) !== undefined) {
      throw new ConfigError("registry", `etcd key ${key} sets ${bound}, which weft does not support`, `a network config without SubnetMin/SubnetMax`);
    }
  }
  const v6 = field(cfg, "EnableIPv6") === true;
  if (v6 !== (want.clusterCIDRv6 !== undefined)) {
    disagree("clusterCIDRv6", "EnableIPv6", v6, want.clusterCIDRv6 ?? null);
  }
  if (v6) {
    const network6 = normalCidr(field(cfg, "IPv6Network"));
    if (network6 !== want.clusterCIDRv6) disagree("clusterCIDRv6", "IPv6Network", field(cfg, "IPv6Network") ?? null, want.clusterCIDRv6);
    const len6 = field(cfg, "IPv6SubnetLen") || defaultSubnetLen(network6, 62, 64);
    if (len6 !== want.subnetLenV6) disagree("subnetLenV6", "IPv6SubnetLen", len6, want.subnetLenV6);
    for (const bound of ["IPv6SubnetMin", "IPv6SubnetMax"]) {
      if (field(cfg, bound) !== undefined) throw new ConfigError("registry", `etcd key ${key} sets ${bound}, which weft does not support`, "a network config without it");
    }
  }
  const backend = field(cfg, "Backend");
  const type = isObject(backend) ? field(backend, "Type") : undefined;
  if (type !== "vxlan") disagree("registry", "Backend.Type", type ?? "udp (flannel's default)", "vxlan", " (weft speaks only flannel's vxlan backend)");
  const b = backend as Record<string, unknown>;
  const vni = field(b, "VNI") ?? 1;
  if (vni !== want.vni) disagree("vni", "Backend.VNI", vni, want.vni);
  const port = field(b, "Port") || FLANNEL_VXLAN_PORT;
  if (port !== want.port) disagree("port", "Backend.Port", port, want.port, field(b, "Port") ? "" : " (flannel's default when unset)");
  if (field(b, "GBP") === true) disagree("registry", "Backend.GBP", true, false, " (weft does not send VXLAN group policy)");
  const warnings: string[] = [];
  if (field(b, "DirectRouting") === true) {
    warnings.push(`${key} sets Backend.DirectRouting: flannel nodes on weft's underlay subnet send it plain routed packets, which the kernel forwards; weft itself always encapsulates`);
  }
  return warnings;
}

function defaultSubnetLen(network: string | undefined, bigUpTo: number, big: number): number {
  const len = network === undefined ? 0 : Number(network.split("/")[1]);
  return len <= bigUpTo ? big : len + 2;
}

function normalCidr(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  try {
    return cidrToString(parseCIDR(value));
  } catch {
    return value;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A JSON field as Go's encoding/json finds it: the exact name first, then any spelling that differs only in case. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  const key = Object.keys(obj).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : obj[key];
}
