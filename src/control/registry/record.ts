// The node record, the unit every registry stores (docs/agent.md), and the registry interface the agent talks to. Records come
// from other machines and from people's hands, so each one is checked when read; a bad one is reported and skipped.
import {
  type Cidr, cidrToString, formatIPBytes, formatMAC, parseCIDR, parseIPAny, parseIPv6, parseMAC,
} from "../../net/addr.js";

export interface NodeRecord {
  nodeName: string;
  /** Underlay address, IPv4 or IPv6. */
  publicIP: string;
  /** The node's IPv4 Pod subnet. */
  subnet: string;
  vtepMAC: string;
  vni: number;
  subnetV6?: string;
  publicIPv6?: string;
}

export interface RegistryEvents {
  added: [record: NodeRecord];
  removed: [record: NodeRecord];
  changed: [record: NodeRecord, previous: NodeRecord];
  /** Our own record is gone from the store for good (another node holds our subnet now): the agent must stop. */
  lost: [error: Error];
}

/**
 * A shared set of node records, ours included. Events fire for every record (our own too: consumers skip their nodeName)
 * in the order removed, changed, added, so a subnet that moves between nodes is released before it is claimed.
 */
export interface Registry {
  /** Reads the current records (no events for them) and starts watching. */
  start(): Promise<void>;
  /**
   * Atomically with respect to the other agents: `decide` sees the current records and returns our record, which is then
   * stored. Throwing from `decide` stores nothing. This is how a subnet lease is picked without races.
   */
  claimSelf(decide: (records: readonly NodeRecord[]) => NodeRecord | Promise<NodeRecord>): Promise<NodeRecord>;
  upsertSelf(record: NodeRecord): Promise<void>;
  removeSelf(): Promise<void>;
  /** The valid records as last read. */
  list(): NodeRecord[];
  on<E extends keyof RegistryEvents>(event: E, listener: (...args: RegistryEvents[E]) => void): this;
  off<E extends keyof RegistryEvents>(event: E, listener: (...args: RegistryEvents[E]) => void): this;
  close(): Promise<void>;
}

export class RecordError extends Error {}

const MAX_VNI = 0xffffff;

/** Checks one record and returns it in canonical form (extra fields dropped); throws RecordError saying what is wrong. */
export function parseNodeRecord(value: unknown): NodeRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new RecordError("not a JSON object");
  const v = value as Record<string, unknown>;
  const nodeName = v.nodeName;
  if (typeof nodeName !== "string" || nodeName.length === 0) throw new RecordError("nodeName: missing or not a non-empty string");
  const record: NodeRecord = {
    nodeName,
    publicIP: address("publicIP", v.publicIP, undefined),
    subnet: cidr("subnet", v.subnet, 4),
    vtepMAC: mac(v.vtepMAC),
    vni: vni(v.vni),
  };
  if (v.subnetV6 !== undefined) record.subnetV6 = cidr("subnetV6", v.subnetV6, 6);
  if (v.publicIPv6 !== undefined) record.publicIPv6 = address("publicIPv6", v.publicIPv6, 6);
  return record;
}

/** Checks the record a registry is asked to store as ours: valid, and named as this registry's node. */
export function checkOwnRecord(chosen: NodeRecord, nodeName: string): NodeRecord {
  let mine: NodeRecord;
  try {
    mine = parseNodeRecord(chosen);
  } catch (e) {
    throw new Error(`refusing to store an invalid record for ${nodeName}: ${(e as Error).message}`);
  }
  if (mine.nodeName !== nodeName) throw new Error(`this registry stores ${JSON.stringify(nodeName)}, not ${JSON.stringify(mine.nodeName)}`);
  return mine;
}

/** A short name for a raw entry in warnings: its position and, when it has one, its nodeName. */
export function describeEntry(entry: unknown, index: number): string {
  const name = typeof entry === "object" && entry !== null ? (entry as Record<string, unknown>).nodeName : undefined;
  return `record #${index}${typeof name === "string" ? ` (nodeName ${JSON.stringify(name)})` : ""}`;
}

export function sameRecord(a: NodeRecord, b: NodeRecord): boolean {
  const keys: (keyof NodeRecord)[] = ["nodeName", "publicIP", "subnet", "vtepMAC", "vni", "subnetV6", "publicIPv6"];
  return keys.every((k) => a[k] === b[k]);
}

function address(key: string, value: unknown, family: 6 | undefined): string {
  if (typeof value !== "string") throw new RecordError(`${key}: missing or not a string`);
  try {
    const bytes = family === 6 ? parseIPv6(value) : parseIPAny(value);
    return value.includes(":") ? formatIPBytes(bytes) : formatIPBytes(bytes.subarray(12));
  } catch {
    throw new RecordError(`${key}: ${JSON.stringify(value)} is not an IP${family ? "v6" : ""} address`);
  }
}

function cidr(key: string, value: unknown, family: 4 | 6): string {
  if (typeof value !== "string") throw new RecordError(`${key}: missing or not a string`);
  let c: Cidr;
  try {
    c = parseCIDR(value);
  } catch {
    throw new RecordError(`${key}: ${JSON.stringify(value)} is not a CIDR`);
  }
  if (c.family !== family) throw new RecordError(`${key}: ${value} is not an IPv${family} CIDR`);
  const unmasked = family === 4 ? parseIPAny(value.split("/")[0]).subarray(12) : parseIPv6(value.split("/")[0]);
  if (unmasked.some((b, i) => b !== c.bytes[i])) throw new RecordError(`${key}: ${value} has host bits set`);
  return cidrToString(c);
}

function mac(value: unknown): string {
  if (typeof value !== "string") throw new RecordError("vtepMAC: missing or not a string");
  let bytes: Uint8Array;
  try {
    bytes = parseMAC(value);
  } catch {
    throw new RecordError(`vtepMAC: ${JSON.stringify(value)} is not a MAC address`);
  }
  if (bytes[0] & 1) throw new RecordError(`vtepMAC: ${value} is multicast`);
  return formatMAC(bytes);
}

function vni(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_VNI) {
    throw new RecordError(`vni: ${JSON.stringify(value)} is not an integer from 0 to ${MAX_VNI}`);
  }
  return value;
}
