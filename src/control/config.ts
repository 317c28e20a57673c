// The agent's configuration (docs/agent.md): a JSON file plus flags, flags win. Everything is checked here, once, so the rest of
// the agent works with a typed, canonical AgentConfig; every refusal names the key, what is wrong and what is expected.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism, hostname } from "node:os";
import { type Cidr, cidrToString, formatMAC } from "../net/addr.js";
import { ConfigError, type Kind, type Raw, checkCIDR, checkDevice, checkKind, checkNodeName, checkPath, checkPublicIP, checkRange,
  checkSubnet, checkSubnetLen, checkVtepMAC, describe, isObject, parseListenAddress } from "./config-checks.js";

export { ConfigError, parseListenAddress } from "./config-checks.js";

export type RegistryConfig =
  | { type: "file"; path: string }
  | EtcdRegistryConfig
  /** No kubeconfig: the in-cluster service account. */
  | { type: "kube"; kubeconfig?: string };

/** registry.type "etcd": flannel's etcd layout (docs/registry-etcd.md). TLS paths are absolute. */
export interface EtcdRegistryConfig {
  type: "etcd";
  endpoints: string[];
  prefix: string;
  /** Seconds the etcd lease our subnet key is bound to lives without a keepalive. */
  leaseTTL: number;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface AgentConfig {
  nodeName: string;
  /** Canonical text, host bits clear. Always IPv4; the IPv6 cluster network is clusterCIDRv6. */
  clusterCIDR: string;
  subnetLen: number;
  /** Configured subnet; when absent the lease picks one. */
  subnet?: string;
  /** Underlay address (IPv4 or IPv6) the other nodes send VXLAN to. Whether this machine has it is checked at start. */
  publicIP: string;
  /** Seconds the start waits for publicIP (and publicIPv6) to appear on an interface. */
  publicIPWait: number;
  clusterCIDRv6?: string;
  /** Present exactly when clusterCIDRv6 is. */
  subnetLenV6?: number;
  subnetV6?: string;
  publicIPv6?: string;
  vni: number;
  port: number;
  /** Lower-case colon form. */
  vtepMAC: string;
  /** True when vtepMAC was derived from nodeName rather than configured. */
  vtepMACDerived: boolean;
  device: string;
  registry: RegistryConfig;
  /** Absolute paths. */
  socket: string;
  stateDir: string;
  /** Where /metrics and /healthz are served; port 0 picks a free port. */
  metrics: { host: string; port: number };
  /** Bound on peers; the dataplane's peer tables are sized from it. */
  maxPeers: number;
  /** TUN queues, each with its own worker thread, core and sockets (docs/agent.md, "Queues"). */
  queues: number;
}

export interface LoadOptions {
  /** Default nodeName. Defaults to os.hostname(). */
  hostname?: () => string;
  /** Where NODE_NAME is read (the kube registry's default nodeName, as a DaemonSet sets it). Defaults to process.env. */
  env?: Record<string, string | undefined>;
}


export const DEFAULTS = {
  subnetLen: 24,
  subnetLenV6: 64,
  vni: 1,
  port: 4789,
  publicIPWait: 60,
  device: "weft0",
  registryPath: "/etc/weft/peers.json",
  etcdPrefix: "/coreos.com/network",
  etcdLeaseTTL: 86400,
  socket: "/run/weft/weft.sock",
  stateDir: "/var/lib/weft",
  metrics: "127.0.0.1:9464",
  maxPeers: 8192,
} as const;

/** The most TUN queues weft opens (the kernel allows 256; one worker thread each). */
export const MAX_QUEUES = 64;

/**
 * One queue per four cores, 1 to 8. Each queue is a worker thread that keeps a core busy under load, and the kernel's half
 * of the path (the Pods' sockets, veths, softirqs) needs about as much again: on 2 cores a second queue carried no more
 * (weft bench --queues 1,2), and each queue costs about 16 MiB of RSS, which a 4-core Raspberry Pi keeps (docs/agent.md,
 * "Queues").
 */
export function defaultQueues(cores = availableParallelism()): number {
  return Math.max(1, Math.min(8, Math.floor(cores / 4)));
}

const KEYS: Record<string, Kind> = {
  nodeName: "string", clusterCIDR: "string", subnetLen: "integer", subnet: "string", publicIP: "string", publicIPWait: "integer",
  clusterCIDRv6: "string", subnetLenV6: "integer", subnetV6: "string", publicIPv6: "string",
  vni: "integer", port: "integer", vtepMAC: "string", device: "string", registry: "object",
  socket: "string", stateDir: "string", metrics: "string", maxPeers: "integer", queues: "integer",
};
const REGISTRY_KEYS: Record<RegistryConfig["type"], string[]> = {
  file: ["type", "path"],
  etcd: ["type", "endpoints", "prefix", "leaseTTL", "caFile", "certFile", "keyFile"],
  kube: ["type", "kubeconfig"],
};
const MAX_VNI = 0xffffff;
/** Peer indexes are 16-bit route values. */
const MAX_PEERS = 65536;

/** Reads `file` (if given), overlays `flags` (undefined values ignored) and validates the result. */
export function loadAgentConfig(file?: string, flags: Record<string, string | undefined> = {}, options: LoadOptions = {}): AgentConfig {
  const raw = file === undefined ? {} : readConfigFile(file);
  return validateAgentConfig(mergeFlags(raw, flags), options);
}

/** A stable VtepMAC for a node: the first six bytes of sha256(nodeName), locally administered, unicast. */
export function deriveVtepMAC(nodeName: string): string {
  const bytes = createHash("sha256").update(nodeName).digest().subarray(0, 6);
  bytes[0] = (bytes[0] & 0xfe) | 0x02;
  return formatMAC(bytes);
}

function readConfigFile(file: string): Raw {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError("config", `cannot read ${file}: ${(e as Error).message}`, "a readable JSON file");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("config", `${file} is not valid JSON: ${(e as Error).message}`, "a JSON object");
  }
  if (!isObject(parsed)) throw new ConfigError("config", `${file} does not hold a JSON object`, "a JSON object of agent keys");
  return parsed;
}

const squash = (name: string) => name.replace(/[-_]/g, "").toLowerCase();
const KEY_BY_SQUASHED = new Map(Object.keys(KEYS).map((k) => [squash(k), k]));
const REGISTRY_FLAGS = new Map([
  ["registrytype", "type"], ["registrypath", "path"], ["registryendpoints", "endpoints"], ["registryprefix", "prefix"],
  ["registryleasettl", "leaseTTL"], ["registrycafile", "caFile"], ["registrycertfile", "certFile"], ["registrykeyfile", "keyFile"],
  ["registrykubeconfig", "kubeconfig"],
]);
/** etcd's own ceiling on a lease's TTL. */
const MAX_LEASE_TTL = 9_000_000_000;

/** Flag names are the keys in camelCase or kebab-case (`--node-name`, `--cluster-cidr`); registry keys are `--registry-*`. */
function mergeFlags(fileRaw: Raw, flags: Record<string, string | undefined>): Raw {
  const out: Raw = { ...fileRaw };
  const registryFlags: Raw = {};
  for (const [flag, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const squashed = squash(flag.replace(/^-+/, ""));
    const registryKey = REGISTRY_FLAGS.get(squashed);
    if (registryKey) {
      registryFlags[registryKey] = registryKey === "endpoints" ? value.split(",").map((s) => s.trim()).filter(Boolean)
        : registryKey === "leaseTTL" ? integerFlag(registryKey, value) : value;
      continue;
    }
    const key = KEY_BY_SQUASHED.get(squashed);
    if (!key) throw new ConfigError(flag, "unknown flag", `one of ${flagList()}`);
    if (KEYS[key] === "object") {
      throw new ConfigError(flag, "registry cannot be given as one flag", registryFlagList());
    }
    out[key] = KEYS[key] === "integer" ? integerFlag(key, value) : value;
  }
  if (Object.keys(registryFlags).length > 0) {
    const fileRegistry = isObject(fileRaw.registry) ? fileRaw.registry : {};
    // A flag that switches the registry type starts from a fresh object: the file's keys belong to the other type.
    const base = registryFlags.type !== undefined && registryFlags.type !== (fileRegistry.type ?? "file") ? {} : fileRegistry;
    out.registry = { ...base, ...registryFlags };
  }
  return out;
}

function flagList(): string {
  const kebab = (k: string) => "--" + k.replace(/([a-z0-9])([A-Z])/g, "$1-$2").replace(/([A-Z])([A-Z][a-z]{2,})/g, "$1-$2").toLowerCase().replace(/([a-z])v6$/, "$1-v6");
  return [...Object.keys(KEYS).filter((k) => k !== "registry").map(kebab), registryFlagList()].join(", ");
}

function registryFlagList(): string {
  return ["type", "path", "endpoints", "prefix", "lease-ttl", "ca-file", "cert-file", "key-file", "kubeconfig"].map((k) => `--registry-${k}`).join(", ");
}

function integerFlag(key: string, value: string): number | string {
  return /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
}

export function validateAgentConfig(raw: Raw, options: LoadOptions = {}): AgentConfig {
  for (const [key, value] of Object.entries(raw)) {
    const kind = KEYS[key];
    if (!kind) throw new ConfigError(key, "unknown key", `one of ${Object.keys(KEYS).join(", ")}`);
    checkKind(key, value, kind);
  }
  const str = (key: string) => raw[key] as string | undefined;
  const int = (key: string) => raw[key] as number | undefined;

  const registry = checkRegistry(raw.registry as Raw | undefined);
  // A kube node is named by its Node object; a DaemonSet passes that name as NODE_NAME.
  const nodeNameFromEnv = registry.type === "kube" ? (options.env ?? process.env).NODE_NAME || undefined : undefined;
  const nodeName = checkNodeName(str("nodeName") ?? nodeNameFromEnv ?? (options.hostname ?? hostname)());

  if (str("clusterCIDR") === undefined) throw new ConfigError("clusterCIDR", "missing", "the cluster's IPv4 Pod network, e.g. 10.244.0.0/16");
  const cluster = checkCIDR("clusterCIDR", str("clusterCIDR")!, 4);
  const subnetLen = checkSubnetLen("subnetLen", int("subnetLen") ?? DEFAULTS.subnetLen, cluster, 30);
  const subnet = str("subnet") === undefined ? undefined : checkSubnet("subnet", str("subnet")!, cluster, subnetLen, "clusterCIDR");

  let cluster6: Cidr | undefined;
  let subnetLenV6: number | undefined;
  let subnetV6: string | undefined;
  if (str("clusterCIDRv6") !== undefined) {
    cluster6 = checkCIDR("clusterCIDRv6", str("clusterCIDRv6")!, 6);
    subnetLenV6 = checkSubnetLen("subnetLenV6", int("subnetLenV6") ?? DEFAULTS.subnetLenV6, cluster6, 126);
    if (str("subnetV6") !== undefined) subnetV6 = checkSubnet("subnetV6", str("subnetV6")!, cluster6, subnetLenV6, "clusterCIDRv6");
  } else {
    for (const key of ["subnetLenV6", "subnetV6"]) {
      if (raw[key] !== undefined) throw new ConfigError(key, "given without clusterCIDRv6", "clusterCIDRv6 set as well (dual-stack)");
    }
  }

  const clusters = [cluster, ...(cluster6 ? [cluster6] : [])];
  if (str("publicIP") === undefined) throw new ConfigError("publicIP", "missing", "this node's underlay address (IPv4 or IPv6) that peers send VXLAN to");
  const publicIP = checkPublicIP("publicIP", str("publicIP")!, undefined, clusters);
  // The etcd registry stores flannel's leases, whose PublicIP is IPv4 (docs/registry-etcd.md).
  if (registry.type === "etcd" && publicIP.includes(":")) {
    throw new ConfigError("publicIP", `${publicIP} is IPv6, but registry.type "etcd" stores flannel's leases, whose PublicIP is IPv4`, "an IPv4 underlay address");
  }
  const publicIPv6 = str("publicIPv6") === undefined ? undefined : checkPublicIP("publicIPv6", str("publicIPv6")!, 6, clusters);
  const publicIPWait = checkRange("publicIPWait", int("publicIPWait") ?? DEFAULTS.publicIPWait, 0, 3600, "seconds to wait for publicIP");

  const vni = checkRange("vni", int("vni") ?? DEFAULTS.vni, 0, MAX_VNI, "a VXLAN network identifier");
  const port = checkRange("port", int("port") ?? DEFAULTS.port, 1, 65535, "a UDP port");
  const vtepMAC = str("vtepMAC") === undefined ? deriveVtepMAC(nodeName) : checkVtepMAC(str("vtepMAC")!);

  return {
    nodeName,
    clusterCIDR: cidrToString(cluster),
    subnetLen,
    ...(subnet !== undefined && { subnet }),
    publicIP,
    publicIPWait,
    ...(cluster6 && { clusterCIDRv6: cidrToString(cluster6), subnetLenV6 }),
    ...(subnetV6 !== undefined && { subnetV6 }),
    ...(publicIPv6 !== undefined && { publicIPv6 }),
    vni,
    port,
    vtepMAC,
    vtepMACDerived: str("vtepMAC") === undefined,
    device: checkDevice(str("device") ?? DEFAULTS.device),
    registry,
    socket: checkPath("socket", str("socket") ?? DEFAULTS.socket),
    stateDir: checkPath("stateDir", str("stateDir") ?? DEFAULTS.stateDir),
    metrics: parseListenAddress("metrics", str("metrics") ?? DEFAULTS.metrics),
    maxPeers: checkRange("maxPeers", int("maxPeers") ?? DEFAULTS.maxPeers, 1, MAX_PEERS, "the most peers this node keeps"),
    queues: checkRange("queues", int("queues") ?? defaultQueues(), 1, MAX_QUEUES, "the number of TUN queues (worker threads)"),
  };
}


function checkRegistry(raw: Raw | undefined): RegistryConfig {
  const r: Raw = raw ?? {};
  const type = r.type ?? "file";
  if (typeof type !== "string" || !(type in REGISTRY_KEYS)) {
    throw new ConfigError("registry.type", `unknown registry type ${JSON.stringify(type)}`, `one of ${Object.keys(REGISTRY_KEYS).join(", ")}`);
  }
  const allowed = REGISTRY_KEYS[type as RegistryConfig["type"]];
  for (const key of Object.keys(r)) {
    if (!allowed.includes(key)) throw new ConfigError(`registry.${key}`, `not a key of the ${type} registry`, `only ${allowed.join(", ")}`);
  }
  if (type === "file") {
    if (r.path !== undefined && typeof r.path !== "string") throw new ConfigError("registry.path", `got ${describe(r.path)}`, "a string");
    return { type, path: checkPath("registry.path", (r.path as string | undefined) ?? DEFAULTS.registryPath) };
  }
  if (type === "etcd") return checkEtcdRegistry(r);
  if (r.kubeconfig === undefined) return { type: "kube" };
  if (typeof r.kubeconfig !== "string") throw new ConfigError("registry.kubeconfig", `got ${describe(r.kubeconfig)}`, "the path of a kubeconfig file");
  const kubeconfig = checkPath("registry.kubeconfig", r.kubeconfig);
  try {
    readFileSync(kubeconfig);
  } catch (e) {
    throw new ConfigError("registry.kubeconfig", `cannot read ${kubeconfig}: ${(e as Error).message}`, "a readable kubeconfig file (or no key: the in-cluster service account)");
  }
  return { type: "kube", kubeconfig };
}

function checkEtcdRegistry(r: Raw): EtcdRegistryConfig {
  const endpoints = r.endpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new ConfigError("registry.endpoints", `got ${endpoints === undefined ? "nothing" : describe(endpoints)}`, 'a non-empty list of URLs, e.g. ["http://127.0.0.1:2379"]');
  }
  for (const e of endpoints) {
    if (typeof e !== "string" || !/^https?:\/\/[^/\s]+\/?$/.test(e)) {
      throw new ConfigError("registry.endpoints", `${describe(e)} is not an endpoint URL`, "http://host:port or https://host:port");
    }
  }
  const prefix = r.prefix ?? DEFAULTS.etcdPrefix;
  if (typeof prefix !== "string" || !/^\/[^\s]*[^/\s]$/.test(prefix)) {
    throw new ConfigError("registry.prefix", `got ${describe(prefix)}`, 'a key prefix starting with "/" and not ending with one, e.g. /coreos.com/network');
  }
  const leaseTTL = r.leaseTTL ?? DEFAULTS.etcdLeaseTTL;
  if (typeof leaseTTL !== "number" || !Number.isInteger(leaseTTL) || leaseTTL < 2 || leaseTTL > MAX_LEASE_TTL) {
    throw new ConfigError("registry.leaseTTL", `got ${describe(leaseTTL)}`, `whole seconds from 2 to ${MAX_LEASE_TTL} (flannel uses 86400)`);
  }
  const config: EtcdRegistryConfig = { type: "etcd", endpoints: endpoints as string[], prefix, leaseTTL };
  for (const key of ["caFile", "certFile", "keyFile"] as const) {
    const value = r[key];
    if (value === undefined) continue;
    if (typeof value !== "string") throw new ConfigError(`registry.${key}`, `got ${describe(value)}`, "a path to a PEM file");
    const path = checkPath(`registry.${key}`, value);
    try {
      readFileSync(path);
    } catch (e) {
      throw new ConfigError(`registry.${key}`, `cannot read ${path}: ${(e as Error).message}`, "a readable PEM file");
    }
    config[key] = path;
  }
  if ((config.certFile === undefined) !== (config.keyFile === undefined)) {
    const missing = config.certFile === undefined ? "certFile" : "keyFile";
    throw new ConfigError(`registry.${missing}`, "missing", "a client certificate and its key together (certFile and keyFile)");
  }
  const plain = config.endpoints.find((e) => e.startsWith("http://"));
  if (plain && (config.caFile !== undefined || config.certFile !== undefined)) {
    throw new ConfigError("registry.endpoints", `${plain} is plain http, but TLS files are configured`, "https:// endpoints");
  }
  return config;
}
