// Which node holds which Pod subnets, to find the one a new subnet would overlap in O(log n). The subnets held never
// overlap each other (that is what this guards), so, sorted by first address, only the two neighbours of a new subnet
// can overlap it: the last one starting at or before it, and the first one starting after it.
import type { Cidr } from "../net/addr.js";

interface Held {
  /** First and last address as fixed-width hex: string order is address order within one family. */
  first: string;
  last: string;
  owner: string;
}

export class PrefixSpace {
  private readonly held: Held[] = [];

  /** The owner of a held subnet that overlaps `c`, or null. */
  overlapping(c: Cidr): string | null {
    const { first, last } = span(c);
    const at = this.firstAfter(first);
    const before = this.held[at - 1];
    if (before && before.last >= first) return before.owner;
    const after = this.held[at];
    if (after && after.first <= last) return after.owner;
    return null;
  }

  /** Records `owner` as holding `c`; the caller has checked that nothing overlaps it. */
  claim(c: Cidr, owner: string): void {
    const s = span(c);
    this.held.splice(this.firstAfter(s.first), 0, { ...s, owner });
  }

  release(c: Cidr, owner: string): void {
    const { first } = span(c);
    const at = this.firstAfter(first) - 1;
    if (at >= 0 && this.held[at].first === first && this.held[at].owner === owner) this.held.splice(at, 1);
  }

  /** Index of the first held subnet starting after `first`. */
  private firstAfter(first: string): number {
    let lo = 0;
    let hi = this.held.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.held[mid].first <= first) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function span(c: Cidr): { first: string; last: string } {
  const last = Uint8Array.from(c.bytes);
  const width = c.bytes.length * 8;
  for (let bit = c.len; bit < width; bit++) last[bit >> 3] |= 0x80 >> (bit & 7);
  const tag = c.family === 4 ? "4" : "6";
  return { first: tag + Buffer.from(c.bytes).toString("hex"), last: tag + Buffer.from(last).toString("hex") };
}
