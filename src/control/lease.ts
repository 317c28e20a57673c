// The node's Pod subnet lease. A configured subnet is checked against every other record; otherwise we keep what we had
// (our record in the registry, else stateDir/lease.json) when it is still valid and free, and only then pick the first free
// subnetLen-sized subnet of the cluster CIDR. Like flannel (SubnetMin = network + one subnet), the first subnet is never
// picked: its .0 address is the cluster network address, which kernel peers would otherwise use as our VTEP neighbour.
// The last subnet is leasable, as in flannel. The pick and the store happen in one registry claim, under the registry's
// lock, so agents starting together cannot take the same subnet.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  type Cidr, bytesToBigInt, cidrContains, cidrOverlaps, cidrToString, nthSubnet, parseCIDR, subnetCount,
} from "../net/addr.js";
import { writeFileAtomic } from "./atomic-file.js";
import type { AgentConfig } from "./config.js";
import type { NodeRecord, Registry } from "./registry/record.js";

export class LeaseError extends Error {
  constructor(message: string) {
    super(`weft lease: ${message}`);
    this.name = "LeaseError";
  }
}

export interface PersistedLease {
  nodeName: string;
  clusterCIDR: string;
  subnet: string;
  clusterCIDRv6?: string;
  subnetV6?: string;
}

type LeaseConfig = Pick<
  AgentConfig,
  "nodeName" | "clusterCIDR" | "subnetLen" | "subnet" | "publicIP" | "clusterCIDRv6" | "subnetLenV6" | "subnetV6" |
  "publicIPv6" | "vni" | "vtepMAC" | "stateDir"
>;

export function leaseFile(stateDir: string): string {
  return join(stateDir, "lease.json");
}

/** Claims our subnet(s) in the registry, stores our record there and in stateDir/lease.json, and returns the record. */
export async function acquireLease(config: LeaseConfig, registry: Registry, log?: Logger): Promise<NodeRecord> {
  const persisted = readPersistedLease(config.stateDir, config.nodeName, log);
  const record = await registry.claimSelf((records) => {
    const own = records.find((r) => r.nodeName === config.nodeName);
    const others = records.filter((r) => r.nodeName !== config.nodeName);
    const subnet = chooseSubnet({
      key: "subnet",
      clusterKey: "clusterCIDR",
      cluster: parseCIDR(config.clusterCIDR),
      len: config.subnetLen,
      configured: config.subnet,
      previous: [own?.subnet, persisted?.subnet],
      used: others.map((r) => ({ nodeName: r.nodeName, text: r.subnet })),
    });
    const mine: NodeRecord = { nodeName: config.nodeName, publicIP: config.publicIP, subnet, vtepMAC: config.vtepMAC, vni: config.vni };
    if (config.clusterCIDRv6 !== undefined && config.subnetLenV6 !== undefined) {
      mine.subnetV6 = chooseSubnet({
        key: "subnetV6",
        clusterKey: "clusterCIDRv6",
        cluster: parseCIDR(config.clusterCIDRv6),
        len: config.subnetLenV6,
        configured: config.subnetV6,
        previous: [own?.subnetV6, persisted?.subnetV6],
        used: others.flatMap((r) => (r.subnetV6 ? [{ nodeName: r.nodeName, text: r.subnetV6 }] : [])),
      });
    }
    if (config.publicIPv6 !== undefined) mine.publicIPv6 = config.publicIPv6;
    return mine;
  });
  const lease: PersistedLease = {
    nodeName: record.nodeName,
    clusterCIDR: config.clusterCIDR,
    subnet: record.subnet,
    ...(record.subnetV6 !== undefined && { clusterCIDRv6: config.clusterCIDRv6, subnetV6: record.subnetV6 }),
  };
  writeFileAtomic(leaseFile(config.stateDir), JSON.stringify(lease, null, 2) + "\n");
  log?.info({ subnet: record.subnet, subnetV6: record.subnetV6 }, "subnet lease acquired");
  return record;
}

export function readPersistedLease(stateDir: string, nodeName: string, log?: Logger): PersistedLease | undefined {
  const file = leaseFile(stateDir);
  let parsed: Partial<PersistedLease>;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") log?.warn({ file, err: (e as Error).message }, "ignoring unreadable lease file");
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || typeof parsed.subnet !== "string" || parsed.nodeName !== nodeName) {
    log?.warn({ file, nodeName }, "ignoring lease file that is not this node's lease");
    return undefined;
  }
  return parsed as PersistedLease;
}

interface SubnetChoice {
  key: string;
  clusterKey: string;
  cluster: Cidr;
  len: number;
  configured: string | undefined;
  /** Subnets we held before, most authoritative first. */
  previous: (string | undefined)[];
  /** Subnets of the other nodes (text as stored; unparsable ones cannot block anything). */
  used: { nodeName: string; text: string }[];
}

function chooseSubnet(c: SubnetChoice): string {
  const used = c.used.flatMap((u) => {
    try {
      return [{ nodeName: u.nodeName, cidr: parseCIDR(u.text) }];
    } catch {
      return [];
    }
  });
  const holder = (s: Cidr) => used.find((u) => cidrOverlaps(u.cidr, s));
  if (c.configured !== undefined) {
    const wanted = parseCIDR(c.configured);
    const other = holder(wanted);
    if (other) {
      throw new LeaseError(`${c.key} ${c.configured} overlaps ${cidrToString(other.cidr)} already leased by node ${JSON.stringify(other.nodeName)}`);
    }
    return cidrToString(wanted);
  }
  for (const text of c.previous) {
    if (text === undefined) continue;
    let s: Cidr;
    try {
      s = parseCIDR(text);
    } catch {
      continue;
    }
    if (s.family === c.cluster.family && s.len === c.len && cidrContains(c.cluster, s) && !holder(s)) return cidrToString(s);
  }
  const free = firstFreeSubnet(c.cluster, c.len, used.map((u) => u.cidr));
  if (!free) {
    const leasable = subnetCount(c.cluster, c.len) - 1n;
    throw new LeaseError(
      `${c.clusterKey} ${cidrToString(c.cluster)} has no free /${c.len} left: its ${leasable} leasable subnets ` +
        `(the first is never leased) are all taken by other nodes (${used.length} records); use a larger ${c.clusterKey} or a longer subnet length`,
    );
  }
  return cidrToString(free);
}

/** The lowest /len subnet of `cluster` after the first that overlaps none of `used`, or undefined when there is none. */
export function firstFreeSubnet(cluster: Cidr, len: number, used: Cidr[]): Cidr | undefined {
  const width = cluster.family === 4 ? 32 : 128;
  const shift = BigInt(width - len);
  const base = bytesToBigInt(cluster.bytes);
  const blocked: [bigint, bigint][] = [];
  for (const u of used) {
    if (!cidrOverlaps(cluster, u)) continue;
    if (u.len <= cluster.len) return undefined;
    const first = (bytesToBigInt(u.bytes) - base) >> shift;
    const span = u.len >= len ? 1n : 1n << BigInt(len - u.len);
    blocked.push([first, first + span - 1n]);
  }
  blocked.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let candidate = 1n;
  for (const [lo, hi] of blocked) {
    if (lo > candidate) break;
    if (hi >= candidate) candidate = hi + 1n;
  }
  return candidate < subnetCount(cluster, len) ? nthSubnet(cluster, len, candidate) : undefined;
}
