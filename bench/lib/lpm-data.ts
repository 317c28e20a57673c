// Seeded route tables and lookup keys for bench/lpm.ts. Every generator takes the PRNG, so one seed gives one data set.

export type Rand = () => number;

/** mulberry32. */
export function prng(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const u32 = (rand: Rand): number => (rand() * 0x100000000) >>> 0;
const mask4 = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

function pick(rand: Rand, weights: Array<[number, number]>): number {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  let r = rand() * total;
  for (const [value, w] of weights) {
    r -= w;
    if (r < 0) return value;
  }
  return weights[weights.length - 1][0];
}

export interface Table4 {
  addrs: Uint32Array;
  lens: Uint8Array;
  values: Uint16Array;
}

export interface Table6 {
  /** 16 network-order bytes per prefix. */
  addrs: Uint8Array;
  lens: Uint8Array;
  values: Uint16Array;
}

function table4(prefixes: Array<[number, number]>): Table4 {
  const t = { addrs: new Uint32Array(prefixes.length), lens: new Uint8Array(prefixes.length), values: new Uint16Array(prefixes.length) };
  prefixes.forEach(([addr, len], i) => {
    t.addrs[i] = addr;
    t.lens[i] = len;
    t.values[i] = i & 0xffff;
  });
  return t;
}

/** `count` distinct /24s inside 10.0.0.0/8: a cluster's Pod subnets, one per node. */
export function clusterTable4(rand: Rand, count: number): Table4 {
  const seen = new Set<number>();
  while (seen.size < count) seen.add((0x0a000000 | (u32(rand) & 0x00ffff00)) >>> 0);
  return table4([...seen].map((addr): [number, number] => [addr, 24]));
}

/** Share of each length in the BGP-like IPv4 mix (sums to 1). */
export const BGP4_MIX: Array<[number, number]> = [
  [24, 0.6],
  [23, 0.1], [22, 0.1],
  [21, 0.0375], [20, 0.0375], [19, 0.025], [18, 0.015], [17, 0.01], [16, 0.025],
  [15, 0.0035], [14, 0.0025], [13, 0.0015], [12, 0.001], [11, 0.0006], [10, 0.0004], [9, 0.0003], [8, 0.0002],
  [25, 0.005], [26, 0.005], [27, 0.005], [28, 0.005], [29, 0.005], [30, 0.005], [31, 0.002], [32, 0.008],
];

/**
 * `count` distinct IPv4 prefixes with the BGP-like length mix above, placed uniformly at random in unicast space
 * (1.0.0.0 - 223.255.255.255). Long prefixes rarely overlap; the 1% of /8../15 cover many of them, as aggregates do.
 */
export function bgpTable4(rand: Rand, count: number): Table4 {
  const seen = new Set<number>();
  const prefixes: Array<[number, number]> = [];
  while (prefixes.length < count) {
    const len = pick(rand, BGP4_MIX);
    const addr = ((0x01000000 + Math.floor(rand() * 0xdf000000)) & mask4(len)) >>> 0;
    const key = addr * 33 + len;
    if (seen.has(key)) continue;
    seen.add(key);
    prefixes.push([addr, len]);
  }
  return table4(prefixes);
}

/** `count` keys: even positions inside a random prefix of `table` (random host bits), odd positions uniform u32. */
export function keys4(rand: Rand, table: Table4, count: number): Uint32Array {
  const keys = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      const p = Math.floor(rand() * table.addrs.length);
      keys[i] = (table.addrs[p] | (u32(rand) & ~mask4(table.lens[p]))) >>> 0;
    } else {
      keys[i] = u32(rand);
    }
  }
  return keys;
}

const RIR_BLOCKS = [0x2001, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c00];

function setBits(bytes: Uint8Array, at: number, from: number, to: number, rand: Rand): void {
  for (let bit = from; bit < to; bit++) {
    if (rand() < 0.5) bytes[at + (bit >>> 3)] |= 0x80 >>> (bit & 7);
  }
}

function clearFrom(bytes: Uint8Array, at: number, len: number): void {
  for (let bit = len; bit < 128; bit++) bytes[at + (bit >>> 3)] &= ~(0x80 >>> (bit & 7));
}

/**
 * `count` distinct IPv6 prefixes shaped like the global table: 20% are LIR allocations (/29../32) inside the RIR blocks
 * 2001::/16, 2400::/12, 2600::/12, 2800::/12, 2a00::/12, 2c00::/12; the rest are more-specifics (/33../64, mostly /48,
 * then /40../47 and /49../64) inside a random allocation.
 */
export function bgpTable6(rand: Rand, count: number): Table6 {
  const t = { addrs: new Uint8Array(count * 16), lens: new Uint8Array(count), values: new Uint16Array(count) };
  const seen = new Set<string>();
  const allocations = Math.floor(count * 0.2);
  let n = 0;
  const add = (len: number): boolean => {
    clearFrom(t.addrs, n * 16, len);
    const key = `${Buffer.from(t.addrs.subarray(n * 16, n * 16 + 16)).toString("hex")}/${len}`;
    if (seen.has(key)) {
      t.addrs.fill(0, n * 16, n * 16 + 16);
      return false;
    }
    seen.add(key);
    t.lens[n] = len;
    t.values[n] = n & 0xffff;
    n++;
    return true;
  };
  while (n < allocations) {
    const block = RIR_BLOCKS[Math.floor(rand() * RIR_BLOCKS.length)];
    const len = pick(rand, [[29, 0.15], [30, 0.03], [31, 0.02], [32, 0.8]]);
    t.addrs[n * 16] = block >>> 8;
    t.addrs[n * 16 + 1] = block & 0xff;
    setBits(t.addrs, n * 16, block === 0x2001 ? 16 : 12, len, rand);
    add(len);
  }
  while (n < count) {
    const parent = Math.floor(rand() * allocations);
    const len = pick(rand, [[48, 0.55], [44, 0.08], [40, 0.06], [46, 0.03], [47, 0.03], [36, 0.04], [33, 0.02],
      [34, 0.02], [35, 0.02], [56, 0.06], [64, 0.05], [52, 0.02], [60, 0.02]]);
    if (len <= t.lens[parent]) continue;
    t.addrs.copyWithin(n * 16, parent * 16, parent * 16 + 16);
    setBits(t.addrs, n * 16, t.lens[parent], len, rand);
    add(len);
  }
  return t;
}

/** `count` keys (16 bytes each): even positions inside a random prefix, odd positions uniform in 2000::/3. */
export function keys6(rand: Rand, table: Table6, count: number): Uint8Array {
  const keys = new Uint8Array(count * 16);
  for (let i = 0; i < count; i++) {
    const at = i * 16;
    if (i % 2 === 0) {
      const p = Math.floor(rand() * table.lens.length);
      keys.set(table.addrs.subarray(p * 16, p * 16 + 16), at);
      setBits(keys, at, table.lens[p], 128, rand);
    } else {
      for (let b = 0; b < 16; b++) keys[at + b] = Math.floor(rand() * 256);
      keys[at] = 0x20 | (keys[at] & 0x1f);
    }
  }
  return keys;
}
