// Registry records → dataplane peers (docs/agent.md). Records come from every other node of the cluster and from people's
// hands, so each one is checked here, before anything reaches a worker: a record that clashes with us (our subnet, our
// underlay address, our VtepMAC) or with a peer already admitted (same underlay address, same VtepMAC, overlapping
// subnet), or that we cannot use (another VNI, an underlay family our socket cannot reach, a full table), is refused,
// logged once, and reported through `onRefused`. The peer admitted first keeps what it holds: a misconfigured node can
// never take traffic away from a working one. A refused record is tried again after an admitted peer let go of
// something, so when one of two nodes claiming one address is fixed, the other becomes a peer.
//
// Each admitted node keeps its index (the value the route tables hold) for as long as it stays admitted, across changes
// of its record; changes are collected per index until `takeChanges`, so a burst of registry events reaches the
// dataplane as one update.
import type { Logger } from "pino";
import { type Cidr, cidrOverlaps, cidrToString, formatIPBytes, formatMAC, parseCIDR, parseIPAny, parseMAC } from "../net/addr.js";
import { type NodeRecord, sameRecord } from "../control/registry/index.js";
import type { PeerEntry } from "../dataplane/protocol.js";
import { PrefixSpace } from "./prefix-space.js";

export const REFUSAL_REASONS = [
  "malformed", "vni", "underlay_family", "own_underlay_address", "own_vtep_mac", "own_subnet",
  "underlay_address", "vtep_mac", "subnet_overlap", "table_full",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface Refusal {
  nodeName: string;
  reason: RefusalReason;
  message: string;
}

/** What the dataplane must do to match the index: peers to set (new or changed) and indexes to free. */
export interface PeerChanges {
  set: PeerEntry[];
  remove: number[];
}

export interface PeerIndexOptions {
  self: NodeRecord;
  underlayFamily: 4 | 6;
  maxPeers: number;
  log: Logger;
  /** Called once per refusal (not again while the same record stays refused for the same reason). */
  onRefused?: (refusal: Refusal) => void;
}

interface Admitted {
  record: NodeRecord;
  entry: PeerEntry;
  subnets: Cidr[];
}

class Refused extends Error {
  constructor(readonly reason: RefusalReason, message: string) {
    super(message);
  }
}

export class PeerIndex {
  private readonly admitted = new Map<string, Admitted>();
  private readonly refused = new Map<string, { record: NodeRecord; refusal: Refusal }>();
  private readonly byAddress = new Map<string, string>();
  private readonly byMAC = new Map<string, string>();
  private readonly subnets = new PrefixSpace();
  private readonly pending = new Map<number, PeerEntry | null>();
  private readonly free: number[] = [];
  private next = 0;
  private retryWanted = false;
  private readonly self: { address: string; vtepMAC: string; subnets: Cidr[] };

  constructor(private readonly options: PeerIndexOptions) {
    const s = options.self;
    this.self = {
      address: canonicalAddress(s.publicIP),
      vtepMAC: formatMAC(parseMAC(s.vtepMAC)),
      subnets: [parseCIDR(s.subnet), ...(s.subnetV6 ? [parseCIDR(s.subnetV6)] : [])],
    };
  }

  /** A record was added or changed in the registry (or listed again): admit it, change its peer in place, or refuse it. */
  upsert(record: NodeRecord): void {
    const name = record.nodeName;
    if (name === this.options.self.nodeName) return;
    const known = this.admitted.get(name);
    if (known && sameRecord(known.record, record)) return;
    const refused = this.refused.get(name);
    if (!known && refused && sameRecord(refused.record, record)) return;
    if (known) this.releaseClaims(known);
    const placed = this.place(record, known?.entry.index);
    if (!placed && known) this.freeIndex(name, known.entry.index);
    if (known) this.retryWanted = true;
  }

  /** A record left the registry. */
  remove(nodeName: string): void {
    this.refused.delete(nodeName);
    const known = this.admitted.get(nodeName);
    if (!known) return;
    this.releaseClaims(known);
    this.freeIndex(nodeName, known.entry.index);
    this.retryWanted = true;
  }

  /** The changes since the last call, one per index, or null when there are none. */
  takeChanges(): PeerChanges | null {
    this.settle();
    if (this.pending.size === 0) return null;
    const changes: PeerChanges = { set: [], remove: [] };
    for (const [index, entry] of this.pending) {
      if (entry) changes.set.push(entry);
      else changes.remove.push(index);
    }
    this.pending.clear();
    return changes;
  }

  entries(): PeerEntry[] {
    this.settle();
    return [...this.admitted.values()].map((a) => a.entry);
  }

  refusals(): Refusal[] {
    this.settle();
    return [...this.refused.values()].map((r) => r.refusal);
  }

  /** Admits `record` (at `index` when it keeps one), or records why not. True when admitted. */
  private place(record: NodeRecord, index: number | undefined): boolean {
    const name = record.nodeName;
    let admitted: Admitted;
    try {
      admitted = this.check(record, index);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      this.refuse(record, err);
      return false;
    }
    const previous = this.admitted.get(name)?.entry;
    this.admitted.set(name, admitted);
    this.byAddress.set(admitted.entry.address, name);
    this.byMAC.set(admitted.entry.vtepMAC, name);
    for (const c of admitted.subnets) this.subnets.claim(c, name);
    if (this.refused.delete(name)) this.options.log.info({ node: name, index: admitted.entry.index }, "node record admitted");
    if (!previous || !sameEntry(previous, admitted.entry)) this.pending.set(admitted.entry.index, admitted.entry);
    return true;
  }

  private check(record: NodeRecord, index: number | undefined): Admitted {
    let address: string;
    let vtepMAC: string;
    let subnets: Cidr[];
    try {
      address = canonicalAddress(record.publicIP);
      const mac = parseMAC(record.vtepMAC);
      if (mac[0] & 1) throw new Error(`vtepMAC ${record.vtepMAC} is multicast`);
      vtepMAC = formatMAC(mac);
      subnets = [cidrOf(record.subnet, 4), ...(record.subnetV6 ? [cidrOf(record.subnetV6, 6)] : [])];
    } catch (err) {
      throw new Refused("malformed", (err as Error).message);
    }
    const self = this.self;
    if (record.vni !== this.options.self.vni) throw new Refused("vni", `VNI ${record.vni} differs from ours (${this.options.self.vni})`);
    const family = address.includes(":") ? 6 : 4;
    if (family !== this.options.underlayFamily) {
      throw new Refused("underlay_family", `publicIP ${address} is IPv${family} but our underlay socket is IPv${this.options.underlayFamily}`);
    }
    if (address === self.address) throw new Refused("own_underlay_address", `publicIP ${address} is ours`);
    if (vtepMAC === self.vtepMAC) throw new Refused("own_vtep_mac", `vtepMAC ${vtepMAC} is ours`);
    for (const c of subnets) {
      const ours = self.subnets.find((s) => cidrOverlaps(s, c));
      if (ours) throw new Refused("own_subnet", `subnet ${cidrToString(c)} overlaps ours (${cidrToString(ours)})`);
    }
    const addressOwner = this.byAddress.get(address);
    if (addressOwner) throw new Refused("underlay_address", `publicIP ${address} is already node ${addressOwner}'s`);
    const macOwner = this.byMAC.get(vtepMAC);
    if (macOwner) throw new Refused("vtep_mac", `vtepMAC ${vtepMAC} is already node ${macOwner}'s`);
    for (const c of subnets) {
      const owner = this.subnets.overlapping(c);
      if (owner) {
        const theirs = this.admitted.get(owner)!.subnets.find((s) => cidrOverlaps(s, c))!;
        throw new Refused("subnet_overlap", `subnet ${cidrToString(c)} overlaps node ${owner}'s (${cidrToString(theirs)})`);
      }
    }
    const at = index ?? this.allocateIndex();
    if (at === undefined) throw new Refused("table_full", `the peer table is full (maxPeers ${this.options.maxPeers})`);
    const entry: PeerEntry = { index: at, nodeName: record.nodeName, address, vtepMAC, subnet: cidrToString(subnets[0]) };
    if (subnets[1]) entry.subnetV6 = cidrToString(subnets[1]);
    return { record, entry, subnets };
  }

  private refuse(record: NodeRecord, err: Refused): void {
    const name = record.nodeName;
    const before = this.refused.get(name)?.refusal;
    const refusal: Refusal = { nodeName: name, reason: err.reason, message: err.message };
    this.refused.set(name, { record, refusal });
    if (before && before.reason === refusal.reason && before.message === refusal.message) return;
    this.options.log.warn({ node: name, reason: refusal.reason, problem: refusal.message }, "refusing node record");
    this.options.onRefused?.(refusal);
  }

  /**
   * Something was let go of since the last look: records refused for a clash or a full table may fit now. Done once per
   * burst of events (when the result is asked for), not once per event: a thousand nodes leaving at once must not cost
   * a thousand passes over the refused records.
   */
  private settle(): void {
    if (!this.retryWanted) return;
    this.retryWanted = false;
    for (const [name, { record, refusal }] of [...this.refused]) {
      if (refusal.reason === "underlay_address" || refusal.reason === "vtep_mac" || refusal.reason === "subnet_overlap" || refusal.reason === "table_full") {
        if (this.refused.has(name)) this.place(record, undefined);
      }
    }
  }

  private releaseClaims(a: Admitted): void {
    const name = a.record.nodeName;
    if (this.byAddress.get(a.entry.address) === name) this.byAddress.delete(a.entry.address);
    if (this.byMAC.get(a.entry.vtepMAC) === name) this.byMAC.delete(a.entry.vtepMAC);
    for (const c of a.subnets) this.subnets.release(c, name);
  }

  private freeIndex(name: string, index: number): void {
    this.admitted.delete(name);
    this.free.push(index);
    this.pending.set(index, null);
  }

  private allocateIndex(): number | undefined {
    if (this.free.length > 0) return this.free.pop();
    return this.next < this.options.maxPeers ? this.next++ : undefined;
  }
}

function canonicalAddress(text: string): string {
  const bytes = parseIPAny(text);
  return formatIPBytes(text.includes(":") ? bytes : bytes.subarray(12));
}

function cidrOf(text: string, family: 4 | 6): Cidr {
  const c = parseCIDR(text);
  if (c.family !== family) throw new Error(`${text} is not an IPv${family} CIDR`);
  return c;
}

function sameEntry(a: PeerEntry, b: PeerEntry): boolean {
  return a.index === b.index && a.nodeName === b.nodeName && a.address === b.address && a.vtepMAC === b.vtepMAC
    && a.subnet === b.subnet && a.subnetV6 === b.subnetV6;
}
