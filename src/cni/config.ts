// What a CNI call brings: the network configuration on stdin and the CNI_* environment. Everything is checked here,
// once, and every refusal names the field or variable to fix, with the spec's error code.
import { statSync, statfsSync } from "node:fs";
import { CniError, ERR } from "./errors.js";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = "1.1.0";

/** Semantic-version order of two "x.y.z" strings: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export const isSupportedVersion = (v: unknown): v is CniVersion =>
  typeof v === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(v);

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface IpamConf {
  type: string;
  [key: string]: unknown;
}

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** Pod MTU asked by the config; the agent's MTU wins when it is smaller. */
  mtu?: number;
  /** A delegated IPAM plugin; absent: weft's own allocator over the agent's subnet. */
  ipam?: IpamConf;
  dns?: Dns;
  prevResult?: unknown;
  /** Every key, as the runtime sent them (GC reads the attachment lists from here). */
  raw: Record<string, unknown>;
  /** stdin as received: what a delegated IPAM plugin gets. */
  text: string;
}

// Network names, container ids and plugin names: an alphanumeric first, then alphanumerics, '_', '.' or '-' (spec 1.1.0).
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The cniVersion of a config text, when it has a supported one (error replies are labelled with it). */
export function peekVersion(stdin: string): CniVersion | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return isSupportedVersion(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function parseNetConf(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(ERR.DECODE, `network config on stdin is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError(ERR.DECODE, "network config on stdin must be a JSON object");
  const version = raw.cniVersion;
  if (!isSupportedVersion(version)) {
    throw new CniError(ERR.INCOMPATIBLE_VERSION,
      `cniVersion ${JSON.stringify(version ?? null)} is not supported; use one of ${SUPPORTED_VERSIONS.join(", ")}`);
  }
  if (typeof raw.name !== "string" || !IDENTIFIER.test(raw.name)) {
    throw new CniError(ERR.INVALID_CONFIG,
      `network config: "name" must be a network name (alphanumerics, '_', '.', '-'), got ${JSON.stringify(raw.name ?? null)}`);
  }
  if (typeof raw.type !== "string" || raw.type === "") {
    throw new CniError(ERR.INVALID_CONFIG, `network config: "type" must name the plugin ("weft"), got ${JSON.stringify(raw.type ?? null)}`);
  }
  if (raw.ipMasq === true) {
    throw new CniError(ERR.UNSUPPORTED_FIELD, 'network config: "ipMasq": true is not supported: weft routes Pod traffic without NAT');
  }
  return {
    cniVersion: version,
    name: raw.name,
    type: raw.type,
    mtu: parseMtu(raw.mtu),
    ipam: parseIpam(raw.ipam),
    dns: parseDns(raw.dns),
    prevResult: raw.prevResult,
    raw,
    text: stdin,
  };
}

function parseMtu(mtu: unknown): number | undefined {
  if (mtu === undefined || mtu === null) return undefined;
  if (!Number.isInteger(mtu) || (mtu as number) < 68 || (mtu as number) > 65535) {
    throw new CniError(ERR.INVALID_CONFIG, `network config: "mtu" must be an integer from 68 to 65535, got ${JSON.stringify(mtu)}`);
  }
  return mtu as number;
}

function parseIpam(ipam: unknown): IpamConf | undefined {
  if (ipam === undefined || ipam === null) return undefined;
  if (!isObject(ipam)) throw new CniError(ERR.INVALID_CONFIG, 'network config: "ipam" must be an object');
  // An empty "ipam" section (some generators always write one) means weft's own allocator.
  if (ipam.type === undefined && Object.keys(ipam).length === 0) return undefined;
  // The type names an executable looked up in CNI_PATH: nothing that could climb out of those directories.
  if (typeof ipam.type !== "string" || !IDENTIFIER.test(ipam.type)) {
    throw new CniError(ERR.INVALID_CONFIG,
      `network config: "ipam.type" must name an IPAM plugin in CNI_PATH (e.g. "host-local"), got ${JSON.stringify(ipam.type ?? null)}`);
  }
  return ipam as IpamConf;
}

function parseDns(dns: unknown): Dns | undefined {
  if (dns === undefined || dns === null) return undefined;
  if (!isObject(dns)) throw new CniError(ERR.INVALID_CONFIG, 'network config: "dns" must be an object');
  const strings = (key: string): string[] | undefined => {
    const v = dns[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
      throw new CniError(ERR.INVALID_CONFIG, `network config: "dns.${key}" must be a list of strings`);
    }
    return v as string[];
  };
  if (dns.domain !== undefined && typeof dns.domain !== "string") {
    throw new CniError(ERR.INVALID_CONFIG, 'network config: "dns.domain" must be a string');
  }
  const out: Dns = {};
  const nameservers = strings("nameservers");
  const search = strings("search");
  const options = strings("options");
  if (nameservers) out.nameservers = nameservers;
  if (dns.domain !== undefined) out.domain = dns.domain as string;
  if (search) out.search = search;
  if (options) out.options = options;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Whether a config asks for a result field (ptp's rule: config DNS replaces the IPAM's only when it says something). */
export const hasDns = (dns: Dns | undefined): dns is Dns => dns !== undefined && Object.keys(dns).length > 0;

// ---- environment ----------------------------------------------------------------------------------------------------

export type Env = Record<string, string | undefined>;

export function containerIdFrom(env: Env): string {
  const id = env.CNI_CONTAINERID;
  if (!id) throw new CniError(ERR.INVALID_ENV, "CNI_CONTAINERID is missing: the runtime must name the container");
  if (!IDENTIFIER.test(id)) {
    throw new CniError(ERR.INVALID_ENV,
      `CNI_CONTAINERID ${JSON.stringify(id)} is invalid: it must start with an alphanumeric, then alphanumerics, '_', '.' or '-'`);
  }
  return id;
}

const MAX_IFNAME_BYTES = 15;

export function ifnameFrom(env: Env): string {
  const name = env.CNI_IFNAME;
  if (!name) throw new CniError(ERR.INVALID_ENV, "CNI_IFNAME is missing: the runtime must name the interface to create (e.g. eth0)");
  // The kernel counts bytes (IFNAMSIZ 16 with the NUL), not characters.
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_IFNAME_BYTES) {
    throw new CniError(ERR.INVALID_ENV,
      `CNI_IFNAME ${JSON.stringify(name)} is ${bytes} bytes long in UTF-8; Linux allows interface names of at most ${MAX_IFNAME_BYTES} bytes`);
  }
  if (name === "." || name === ".." || /[/:\s]/.test(name)) {
    throw new CniError(ERR.INVALID_ENV, `CNI_IFNAME ${JSON.stringify(name)} is not a valid interface name (no '/', ':', whitespace, "." or "..")`);
  }
  return name;
}

const NSFS_MAGIC = 0x6e736673;

/** A namespace's identity: the nsfs device and inode behind any path that names it. */
export interface NetnsId {
  dev: number;
  ino: number;
}

export function netnsIdOf(path: string): NetnsId {
  const st = statSync(path);
  return { dev: st.dev, ino: st.ino };
}

/**
 * CNI_NETNS for ADD and CHECK: set, present (else the container is unknown), a namespace file, and not the namespace the
 * agent itself runs in (both veth ends, the Pod's address and its routes would land in the host's namespace).
 */
export function netnsFrom(env: Env, own: NetnsId): string {
  const path = env.CNI_NETNS;
  if (!path) throw new CniError(ERR.INVALID_ENV, "CNI_NETNS is missing: the runtime must pass the Pod's network namespace path");
  let type: number;
  let id: NetnsId;
  try {
    type = Number(statfsSync(path).type);
    id = netnsIdOf(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CniError(ERR.UNKNOWN_CONTAINER, `CNI_NETNS ${path} does not exist: the Pod's network namespace is gone`);
    throw new CniError(ERR.INVALID_ENV, `CNI_NETNS ${path}: ${(err as Error).message}`);
  }
  if (type !== NSFS_MAGIC) throw new CniError(ERR.INVALID_ENV, `CNI_NETNS ${path} is not a network namespace (not on nsfs)`);
  if (id.dev === own.dev && id.ino === own.ino) {
    throw new CniError(ERR.INVALID_ENV,
      `CNI_NETNS ${path} is the weft agent's own network namespace (the node's), not a Pod's: weft attaches Pods in namespaces of their own`);
  }
  return path;
}

/** CNI_PATH: the directories delegated plugins are looked up in. */
export function pluginDirsFrom(env: Env): string[] {
  const dirs = (env.CNI_PATH ?? "").split(":").filter((d) => d !== "");
  if (dirs.length === 0) {
    throw new CniError(ERR.INVALID_ENV, "CNI_PATH is missing: it must list the directories holding the IPAM plugin (e.g. /opt/cni/bin)");
  }
  return dirs;
}

export interface PodArgs {
  K8S_POD_NAME?: string;
  K8S_POD_NAMESPACE?: string;
  K8S_POD_INFRA_CONTAINER_ID?: string;
  K8S_POD_UID?: string;
}

const KNOWN_ARGS = new Set(["K8S_POD_NAME", "K8S_POD_NAMESPACE", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IgnoreUnknown"]);

/** CNI_ARGS "K=V;K=V" in any order. Unknown keys are refused unless IgnoreUnknown is 1 or true (as the reference plugins do). */
export function parseCniArgs(text: string | undefined): PodArgs {
  const pairs: [string, string][] = [];
  for (const part of (text ?? "").split(";")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw new CniError(ERR.INVALID_ENV, `CNI_ARGS: ${JSON.stringify(part)} is not KEY=VALUE`);
    pairs.push([part.slice(0, eq), part.slice(eq + 1)]);
  }
  const ignoreUnknown = pairs.some(([k, v]) => k === "IgnoreUnknown" && /^(1|true)$/i.test(v));
  const out: Record<string, string> = {};
  for (const [key, value] of pairs) {
    if (KNOWN_ARGS.has(key)) {
      if (key !== "IgnoreUnknown") out[key] = value;
    } else if (!ignoreUnknown) {
      throw new CniError(ERR.UNSUPPORTED_FIELD, `CNI_ARGS: unknown key ${key}=${value} (add IgnoreUnknown=1 to pass keys weft does not use)`);
    }
  }
  return out as PodArgs;
}
