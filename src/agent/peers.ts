// Registry records → dataplane peers: a stable index per node (the value the route tables hold), and the checks that keep
// a bad record from hijacking traffic (our own subnet, another VNI, an underlay family our socket cannot reach).
import type { Logger } from "pino";
import { cidrOverlaps, parseCIDR } from "../net/addr.js";
import type { NodeRecord } from "../control/registry/index.js";
import type { PeerEntry } from "../dataplane/protocol.js";

export class PeerIndex {
  private readonly byName = new Map<string, PeerEntry>();
  private readonly free: number[] = [];
  private next = 0;

  constructor(
    private readonly self: NodeRecord,
    private readonly underlayFamily: 4 | 6,
    private readonly maxPeers: number,
    private readonly log: Logger,
  ) {}

  /** The peer entry for a record, or null (logged) when the record cannot be a peer of ours. */
  admit(rec: NodeRecord): PeerEntry | null {
    if (rec.nodeName === this.self.nodeName) return null;
    const why = this.reject(rec);
    if (why) {
      this.log.warn({ node: rec.nodeName, reason: why }, "ignoring node record");
      return null;
    }
    const known = this.byName.get(rec.nodeName);
    const index = known?.index ?? this.free.pop() ?? this.next++;
    if (index >= this.maxPeers) {
      this.log.error({ node: rec.nodeName, maxPeers: this.maxPeers }, "peer table full; node ignored");
      return null;
    }
    const entry: PeerEntry = { index, nodeName: rec.nodeName, address: rec.publicIP, vtepMAC: rec.vtepMAC, subnet: rec.subnet };
    if (rec.subnetV6) entry.subnetV6 = rec.subnetV6;
    this.byName.set(rec.nodeName, entry);
    return entry;
  }

  /** Forgets a node; returns its entry when it was a peer. */
  release(nodeName: string): PeerEntry | null {
    const entry = this.byName.get(nodeName);
    if (!entry) return null;
    this.byName.delete(nodeName);
    this.free.push(entry.index);
    return entry;
  }

  entries(): PeerEntry[] {
    return [...this.byName.values()];
  }

  private reject(rec: NodeRecord): string | null {
    if (rec.vni !== this.self.vni) return `VNI ${rec.vni} differs from ours (${this.self.vni})`;
    if (this.underlayFamily === 4 && rec.publicIP.includes(":")) return `publicIP ${rec.publicIP} is IPv6 but our underlay socket is IPv4`;
    if (cidrOverlaps(parseCIDR(rec.subnet), parseCIDR(this.self.subnet))) return `subnet ${rec.subnet} overlaps ours (${this.self.subnet})`;
    for (const other of this.byName.values()) {
      if (other.nodeName !== rec.nodeName && other.subnet && cidrOverlaps(parseCIDR(other.subnet), parseCIDR(rec.subnet))) {
        return `subnet ${rec.subnet} overlaps node ${other.nodeName}'s (${other.subnet})`;
      }
    }
    return null;
  }
}
