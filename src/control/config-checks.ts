// The checks of single config values (docs/agent.md, "Configuration"): each takes the key it checks, returns the value in
// canonical form, and refuses with a ConfigError naming the key, what is wrong and what is expected.
import { resolve } from "node:path";
import {
  type Cidr, cidrContains, cidrToString, formatIPBytes, formatMAC, parseCIDR, parseIPAny, parseIPv4, parseIPv6, parseMAC,
} from "../net/addr.js";

export type Kind = "string" | "integer" | "object";
export type Raw = Record<string, unknown>;

export class ConfigError extends Error {
  constructor(readonly key: string, problem: string, expected?: string) {
    super(`weft config: ${key}: ${problem}${expected ? `; expected ${expected}` : ""}`);
    this.name = "ConfigError";
  }
}

export function isObject(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function describe(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : `${typeof v} ${JSON.stringify(v)}`;
}

export function checkKind(key: string, value: unknown, kind: Kind): void {
  const ok = kind === "string" ? typeof value === "string"
    : kind === "integer" ? typeof value === "number" && Number.isInteger(value)
    : isObject(value);
  if (!ok) throw new ConfigError(key, `got ${describe(value)}`, kind === "object" ? "a JSON object" : `a${kind === "integer" ? "n" : ""} ${kind}`);
}

export function checkNodeName(name: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/.test(name)) {
    throw new ConfigError("nodeName", `${JSON.stringify(name)} is not a valid node name`, "letters, digits, '.', '-', '_' (at most 253), starting and ending with a letter or digit");
  }
  return name;
}

export function checkCIDR(key: string, text: string, family: 4 | 6): Cidr {
  const example = family === 4 ? "10.244.0.0/16" : "fd00:10:244::/56";
  let c: Cidr;
  try {
    c = parseCIDR(text);
  } catch (e) {
    throw new ConfigError(key, `${JSON.stringify(text)} is malformed (${(e as Error).message})`, `an IPv${family} CIDR such as ${example}`);
  }
  if (c.family !== family) {
    const hint = family === 4 ? " (put the IPv6 network in clusterCIDRv6)" : "";
    throw new ConfigError(key, `${text} is an IPv${c.family} CIDR${hint}`, `an IPv${family} CIDR such as ${example}`);
  }
  const addr = text.slice(0, text.indexOf("/"));
  const unmasked = family === 4 ? parseIPAny(addr).subarray(12) : parseIPv6(addr);
  if (unmasked.some((b, i) => b !== c.bytes[i])) {
    throw new ConfigError(key, `${text} has host bits set`, `the network address, ${cidrToString(c)}`);
  }
  return c;
}

export function checkSubnetLen(key: string, len: number, cluster: Cidr, max: number): number {
  const clusterKey = cluster.family === 4 ? "clusterCIDR" : "clusterCIDRv6";
  if (len <= cluster.len || len > max) {
    const problem = len <= cluster.len
      ? `${len} is not longer than ${clusterKey}'s prefix /${cluster.len}`
      : `${len} leaves no room for a gateway and Pods`;
    throw new ConfigError(key, problem, `an integer from ${cluster.len + 1} to ${max}`);
  }
  return len;
}

export function checkSubnet(key: string, text: string, cluster: Cidr, len: number, clusterKey: string): string {
  const c = checkCIDR(key, text, cluster.family);
  const want = `a /${len} inside ${clusterKey} ${cidrToString(cluster)}`;
  if (!cidrContains(cluster, c)) throw new ConfigError(key, `${text} is not inside ${clusterKey} ${cidrToString(cluster)}`, want);
  if (c.len !== len) throw new ConfigError(key, `${text} is a /${c.len}, not a /${len} (${clusterKey === "clusterCIDR" ? "subnetLen" : "subnetLenV6"})`, want);
  return cidrToString(c);
}

export function checkPublicIP(key: string, text: string, family: 4 | 6 | undefined, clusters: Cidr[]): string {
  let bytes: Uint8Array;
  try {
    bytes = parseIPAny(text);
  } catch {
    throw new ConfigError(key, `${JSON.stringify(text)} is not an IP address`, family === 6 ? "an IPv6 address" : "an IPv4 or IPv6 address");
  }
  const isV6 = text.includes(":");
  if (family === 6 && !isV6) throw new ConfigError(key, `${text} is an IPv4 address`, "an IPv6 address");
  const asCidr: Cidr = isV6 ? { family: 6, bytes, len: 128 } : { family: 4, bytes: bytes.subarray(12), len: 32 };
  const canonical = formatIPBytes(asCidr.bytes);
  for (const c of clusters) {
    if (cidrContains(c, asCidr)) {
      throw new ConfigError(key, `${text} overlaps the Pod network ${cidrToString(c)}`, "an underlay address outside the cluster CIDRs");
    }
  }
  return canonical;
}

export function checkRange(key: string, v: number, min: number, max: number, what: string): number {
  if (v < min || v > max) throw new ConfigError(key, `${v} is out of range`, `${what}, an integer from ${min} to ${max}`);
  return v;
}

export function checkVtepMAC(text: string): string {
  let bytes: Uint8Array;
  try {
    bytes = parseMAC(text);
  } catch {
    throw new ConfigError("vtepMAC", `${JSON.stringify(text)} is not a MAC address`, "six colon-separated hex bytes, e.g. 02:5e:00:00:00:01");
  }
  if (bytes[0] & 1) throw new ConfigError("vtepMAC", `${text} is a multicast address`, "a unicast MAC (lowest bit of the first byte clear)");
  if (bytes.every((b) => b === 0)) throw new ConfigError("vtepMAC", `${text} is the zero address`, "a unicast MAC such as 02:5e:00:00:00:01");
  return formatMAC(bytes);
}

/** Names the kernel refuses for a new interface: /proc/sys/net/ipv{4,6}/conf/ has entries of these names. */
const RESERVED_DEVICE_NAMES = ["all", "default"];

export function checkDevice(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(name)) {
    throw new ConfigError("device", `${JSON.stringify(name)} is not a valid interface name`, "1 to 15 letters, digits, '_', '.', '-'");
  }
  if (RESERVED_DEVICE_NAMES.includes(name)) {
    throw new ConfigError("device", `${JSON.stringify(name)} is reserved by the kernel`, `an interface name other than ${RESERVED_DEVICE_NAMES.join(" or ")}`);
  }
  return name;
}

export function checkPath(key: string, path: string): string {
  if (path.length === 0 || path.includes("\0")) throw new ConfigError(key, `${JSON.stringify(path)} is not a usable path`, "a file system path");
  return resolve(path);
}

/** `host:port` or `[v6]:port`; port 0 asks the kernel for a free one. */
export function parseListenAddress(key: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const expected = "host:port, e.g. 127.0.0.1:9464 or [::1]:9464";
  if (!m) throw new ConfigError(key, `${JSON.stringify(text)} is not host:port`, expected);
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(key, `port ${port} is out of range`, "a TCP port from 0 to 65535");
  try {
    if (m[1] !== undefined) parseIPv6(host);
    else if (/^[\d.]+$/.test(host)) parseIPv4(host);
  } catch {
    throw new ConfigError(key, `${JSON.stringify(host)} is not a valid host`, expected);
  }
  return { host, port };
}
