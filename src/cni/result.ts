// CNI results: one model inside (the 1.1.0 superset), shaped on the way out for the version the runtime asked for, and
// read back from any supported version on the way in (an IPAM plugin's answer, a prevResult).
//   0.3.0, 0.3.1, 0.4.0: ips[] carry "version": "4" | "6"
//   1.0.0:               no ips[].version
//   1.1.0:               interfaces[] may carry "mtu"
// Keys come out in the order the reference Go types print them, so results compare byte for byte with theirs.
import { parseCIDR } from "../net/addr.js";
import { type CniVersion, type Dns, compareVersions } from "./config.js";
import { CniError, ERR } from "./errors.js";

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  /** The netns path for a container interface; absent for a host interface. */
  sandbox?: string;
}

export interface CniIp {
  /** "address/prefix". */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: Dns;
}

export const ipFamily = (address: string): 4 | 6 => (address.includes(":") ? 6 : 4);

/** The result as the runtime of `version` reads it. */
export function shapeResult(result: CniResult, version: CniVersion): Record<string, unknown> {
  const legacy = compareVersions(version, "1.0.0") < 0;
  const withMtu = compareVersions(version, "1.1.0") >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces.length > 0) {
    out.interfaces = result.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (withMtu && i.mtu) o.mtu = i.mtu;
      if (i.sandbox) o.sandbox = i.sandbox;
      return o;
    });
  }
  if (result.ips.length > 0) {
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = legacy ? { version: String(ipFamily(ip.address)) } : {};
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (result.routes.length > 0) out.routes = result.routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
  out.dns = shapeDns(result.dns);
  return out;
}

function shapeDns(dns: Dns): Dns {
  const out: Dns = {};
  if (dns.nameservers?.length) out.nameservers = dns.nameservers;
  if (dns.domain) out.domain = dns.domain;
  if (dns.search?.length) out.search = dns.search;
  if (dns.options?.length) out.options = dns.options;
  return out;
}

// ---- reading results --------------------------------------------------------------------------------------------------

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isPrefix(v: unknown): v is string {
  try {
    return typeof v === "string" && parseCIDR(v) !== undefined;
  } catch {
    return false;
  }
}

const isAddress = (v: unknown): v is string => typeof v === "string" && !v.includes("/") && isPrefix(`${v}/${ipFamily(v) === 4 ? 32 : 128}`);

/**
 * A result of any supported version (0.3.0 to 1.1.0) as the model: an IPAM plugin's reply or a runtime's prevResult.
 * `what` names the source in errors, which are decode errors (code 6).
 */
export function parseResult(value: unknown, what: string): CniResult {
  const bad = (why: string): never => {
    throw new CniError(ERR.DECODE, `${what}: ${why}`);
  };
  if (!isObject(value)) return bad("not a JSON object");
  const list = (key: string): unknown[] => {
    const v = value[key];
    if (v === undefined || v === null) return [];
    return Array.isArray(v) ? v : bad(`"${key}" is not a list`);
  };
  const interfaces = list("interfaces").map((i, n): CniInterface => {
    if (!isObject(i) || typeof i.name !== "string") return bad(`interfaces[${n}] has no name`);
    const o: CniInterface = { name: i.name };
    if (typeof i.mac === "string" && i.mac !== "") o.mac = i.mac;
    if (typeof i.mtu === "number") o.mtu = i.mtu;
    if (typeof i.sandbox === "string" && i.sandbox !== "") o.sandbox = i.sandbox;
    return o;
  });
  const ips = list("ips").map((ip, n): CniIp => {
    if (!isObject(ip) || !isPrefix(ip.address)) return bad(`ips[${n}].address is not address/prefix`);
    if (ip.version !== undefined && ip.version !== String(ipFamily(ip.address))) {
      return bad(`ips[${n}].version ${JSON.stringify(ip.version)} does not match ${ip.address}`);
    }
    const o: CniIp = { address: ip.address };
    if (ip.gateway !== undefined && ip.gateway !== "") {
      if (!isAddress(ip.gateway)) return bad(`ips[${n}].gateway is not an address`);
      o.gateway = ip.gateway;
    }
    if (ip.interface !== undefined && ip.interface !== null) {
      if (!Number.isInteger(ip.interface)) return bad(`ips[${n}].interface is not an index`);
      o.interface = ip.interface as number;
    }
    return o;
  });
  const routes = list("routes").map((r, n): CniRoute => {
    if (!isObject(r) || !isPrefix(r.dst)) return bad(`routes[${n}].dst is not a prefix`);
    if (r.gw !== undefined && r.gw !== "" && !isAddress(r.gw)) return bad(`routes[${n}].gw is not an address`);
    return typeof r.gw === "string" && r.gw !== "" ? { dst: r.dst, gw: r.gw } : { dst: r.dst };
  });
  const dns = isObject(value.dns) ? (value.dns as Dns) : {};
  return { interfaces, ips, routes, dns };
}
