// Route tables over the WASM core's longest-prefix-match ABI (assembly/lpm/exports.ts): CIDR parsing, error messages,
// and batch staging. Memory growth detaches ArrayBuffer views, so every view is re-derived from `memory.buffer`
// whenever the buffer has changed (after inserts, deletes and allocations).

import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../net/addr.js";

export { formatIPv4, formatIPv6, parseIPv4, parseIPv6 };

/** The subset of the core's exports these tables use. */
export interface LpmExports {
  route4Init(maxChunks: number): void;
  route4Reserve(prefixes: number): void;
  route4Insert(addr: number, len: number, value: number): number;
  route4Delete(addr: number, len: number): number;
  route4Lookup(addr: number): number;
  route4LookupBatch(keys: number, out: number, n: number): void;
  route4Count(): number;
  route4MemoryBytes(): number;
  route4ChunkBytes(): number;
  route4Compact(): void;
  route6Init(maxNodes: number): void;
  route6Reserve(prefixes: number): void;
  route6Insert(addr: number, len: number, value: number): number;
  route6Delete(addr: number, len: number): number;
  route6Lookup(addr: number): number;
  route6LookupBatch(keys: number, out: number, n: number): void;
  route6Count(): number;
  route6MemoryBytes(): number;
  lpmScratch(): number;
  lpmAlloc(bytes: number): number;
}

export interface Prefix4 {
  addr: number;
  len: number;
}

export interface Prefix6 {
  addr: Uint8Array;
  len: number;
}

export interface RouteTable4Options {
  /** Bound on 1 KiB second/third-level chunks (default 131072: at most 128 MiB). */
  maxChunks?: number;
  /** Pre-size the prefix set for this many routes. */
  reservePrefixes?: number;
  /** Clear the core's table on construction (default true). */
  init?: boolean;
}

export interface RouteTable6Options {
  /** Bound on 24-byte trie nodes (default 1048576). */
  maxNodes?: number;
  reservePrefixes?: number;
  init?: boolean;
}

export const NO_ROUTE = -1;
const MAX_VALUE = 0xffff;
const STAGE_KEYS = 4096;

const RESULT_MESSAGES: Record<number, string> = {
  [-1]: "prefix length out of range",
  [-2]: "value must be an integer 0..65535",
  [-3]: "route table is full (pool or prefix limit reached)",
  [-4]: "address outside WASM memory",
};

function fail(what: string, code: number): never {
  throw new Error(`${what}: ${RESULT_MESSAGES[code] ?? `error ${code}`}`);
}

function checkValue(value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_VALUE) {
    throw new RangeError(`route value ${value}: must be an integer 0..${MAX_VALUE}`);
  }
}

function parseLength(text: string, max: number, cidr: string): number {
  if (!/^\d{1,3}$/.test(text) || Number(text) > max) {
    throw new Error(`invalid prefix length in "${cidr}": expected 0..${max}`);
  }
  return Number(text);
}

/** "a.b.c.d/len" (or a bare address, meaning /32) → prefix. Host bits are kept; the table masks them. */
export function parseCidr4(cidr: string): Prefix4 {
  const slash = cidr.indexOf("/");
  if (slash < 0) return { addr: parseIPv4(cidr), len: 32 };
  return { addr: parseIPv4(cidr.slice(0, slash)), len: parseLength(cidr.slice(slash + 1), 32, cidr) };
}

/** "x:y::z/len" (or a bare address, meaning /128) → prefix. */
export function parseCidr6(cidr: string): Prefix6 {
  const slash = cidr.indexOf("/");
  if (slash < 0) return { addr: parseIPv6(cidr), len: 128 };
  return { addr: parseIPv6(cidr.slice(0, slash)), len: parseLength(cidr.slice(slash + 1), 128, cidr) };
}

function prefix4(cidr: string | Prefix4): Prefix4 {
  if (typeof cidr === "string") return parseCidr4(cidr);
  if (!Number.isInteger(cidr.addr) || cidr.addr < 0 || cidr.addr > 0xffffffff) {
    throw new RangeError(`IPv4 address ${cidr.addr}: must be an integer 0..2^32-1`);
  }
  if (!Number.isInteger(cidr.len) || cidr.len < 0 || cidr.len > 32) {
    throw new RangeError(`IPv4 prefix length ${cidr.len}: must be 0..32`);
  }
  return cidr;
}

function prefix6(cidr: string | { addr: string | Uint8Array; len: number }): Prefix6 {
  if (typeof cidr === "string") return parseCidr6(cidr);
  const addr = typeof cidr.addr === "string" ? parseIPv6(cidr.addr) : cidr.addr;
  if (addr.length !== 16) throw new RangeError(`IPv6 address must be 16 bytes, got ${addr.length}`);
  if (!Number.isInteger(cidr.len) || cidr.len < 0 || cidr.len > 128) {
    throw new RangeError(`IPv6 prefix length ${cidr.len}: must be 0..128`);
  }
  return { addr, len: cidr.len };
}

function describe(cidr: unknown): string {
  return typeof cidr === "string" ? cidr : JSON.stringify(cidr, (_k, v) => (v instanceof Uint8Array ? [...v] : v));
}

/** Keeps typed views of WASM memory valid across growth. */
class MemoryViews {
  private u8: Uint8Array;
  private u32: Uint32Array;
  private i32: Int32Array;

  constructor(private readonly memory: WebAssembly.Memory) {
    this.u8 = new Uint8Array(memory.buffer);
    this.u32 = new Uint32Array(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
  }

  private refresh(): void {
    if (this.u8.buffer !== this.memory.buffer) {
      this.u8 = new Uint8Array(this.memory.buffer);
      this.u32 = new Uint32Array(this.memory.buffer);
      this.i32 = new Int32Array(this.memory.buffer);
    }
  }

  bytes(): Uint8Array {
    this.refresh();
    return this.u8;
  }

  words(): Uint32Array {
    this.refresh();
    return this.u32;
  }

  ints(): Int32Array {
    this.refresh();
    return this.i32;
  }
}

/** IPv4 longest-prefix-match table living in one WASM core instance (one table per instance). */
export class RouteTable4 {
  private readonly core: LpmExports;
  private readonly views: MemoryViews;
  private readonly maxChunks: number;
  private stage = 0;

  constructor(exports: any, memory: WebAssembly.Memory, options: RouteTable4Options = {}) {
    this.core = exports as LpmExports;
    this.views = new MemoryViews(memory);
    this.maxChunks = options.maxChunks ?? 131072;
    if (options.init ?? true) this.clear();
    if (options.reservePrefixes) this.core.route4Reserve(options.reservePrefixes);
  }

  /** Removes every route. */
  clear(): void {
    this.core.route4Init(this.maxChunks);
  }

  /** Adds a route, or replaces the value of an existing one. Host bits of the address are ignored. */
  insert(cidr: string | Prefix4, value: number): void {
    const { addr, len } = prefix4(cidr);
    checkValue(value);
    const rc = this.core.route4Insert(addr >>> 0, len, value);
    if (rc < 0) fail(`insert ${describe(cidr)}`, rc);
  }

  /** Removes a route; false when it was not in the table. */
  delete(cidr: string | Prefix4): boolean {
    const { addr, len } = prefix4(cidr);
    const rc = this.core.route4Delete(addr >>> 0, len);
    if (rc < 0) fail(`delete ${describe(cidr)}`, rc);
    return rc === 0;
  }

  /** The value of the longest prefix containing `ip` (dotted text or host-order u32), or -1. */
  lookup(ip: string | number): number {
    return this.core.route4Lookup(typeof ip === "string" ? parseIPv4(ip) : ip >>> 0);
  }

  /** Looks up every host-order address of `keys` into `out` (same length or longer). Returns `out`. */
  lookupBatch(keys: Uint32Array, out: Int32Array = new Int32Array(keys.length)): Int32Array {
    if (out.length < keys.length) throw new RangeError(`out holds ${out.length} results, keys has ${keys.length}`);
    if (this.stage === 0) this.stage = this.core.lpmAlloc(STAGE_KEYS * 8);
    const inWord = this.stage >>> 2;
    const outWord = inWord + STAGE_KEYS;
    for (let at = 0; at < keys.length; at += STAGE_KEYS) {
      const n = Math.min(STAGE_KEYS, keys.length - at);
      this.views.words().set(keys.subarray(at, at + n), inWord);
      this.core.route4LookupBatch(this.stage, this.stage + STAGE_KEYS * 4, n);
      out.set(this.views.ints().subarray(outWord, outWord + n), at);
    }
    return out;
  }

  /** Number of prefixes in the table. */
  get size(): number {
    return this.core.route4Count();
  }

  /**
   * Packs the table's chunks together. Call it after loading many routes or after heavy churn: lookups on big tables
   * are bound by how many pages they touch. Answers do not change.
   */
  compact(): void {
    this.core.route4Compact();
  }

  /** Bytes of WASM memory the table holds (direct table, chunk slabs, prefix set). */
  get memoryBytes(): number {
    return this.core.route4MemoryBytes();
  }

  /** Bytes of chunks in use: with the 256 KiB direct table, what lookups touch. */
  get chunkBytes(): number {
    return this.core.route4ChunkBytes();
  }
}

/** IPv6 longest-prefix-match table living in one WASM core instance. */
export class RouteTable6 {
  private readonly core: LpmExports;
  private readonly views: MemoryViews;
  private readonly maxNodes: number;
  private readonly scratch: number;
  private stage = 0;

  constructor(exports: any, memory: WebAssembly.Memory, options: RouteTable6Options = {}) {
    this.core = exports as LpmExports;
    this.views = new MemoryViews(memory);
    this.maxNodes = options.maxNodes ?? 1048576;
    this.scratch = this.core.lpmScratch();
    if (options.init ?? true) this.clear();
    if (options.reservePrefixes) this.core.route6Reserve(options.reservePrefixes);
  }

  clear(): void {
    this.core.route6Init(this.maxNodes);
  }

  private put(addr: Uint8Array): number {
    this.views.bytes().set(addr, this.scratch);
    return this.scratch;
  }

  insert(cidr: string | { addr: string | Uint8Array; len: number }, value: number): void {
    const { addr, len } = prefix6(cidr);
    checkValue(value);
    const rc = this.core.route6Insert(this.put(addr), len, value);
    if (rc < 0) fail(`insert ${describe(cidr)}`, rc);
  }

  delete(cidr: string | { addr: string | Uint8Array; len: number }): boolean {
    const { addr, len } = prefix6(cidr);
    const rc = this.core.route6Delete(this.put(addr), len);
    if (rc < 0) fail(`delete ${describe(cidr)}`, rc);
    return rc === 0;
  }

  /** The value of the longest prefix containing `ip` (text or 16 network-order bytes), or -1. */
  lookup(ip: string | Uint8Array): number {
    const addr = typeof ip === "string" ? parseIPv6(ip) : ip;
    if (addr.length !== 16) throw new RangeError(`IPv6 address must be 16 bytes, got ${addr.length}`);
    return this.core.route6Lookup(this.put(addr));
  }

  /** Looks up `keys` (16 network-order bytes per address) into `out`. Returns `out`. */
  lookupBatch(keys: Uint8Array, out: Int32Array = new Int32Array(keys.length >>> 4)): Int32Array {
    if (keys.length % 16 !== 0) throw new RangeError(`keys length ${keys.length} is not a multiple of 16`);
    const count = keys.length >>> 4;
    if (out.length < count) throw new RangeError(`out holds ${out.length} results, keys has ${count}`);
    if (this.stage === 0) this.stage = this.core.lpmAlloc(STAGE_KEYS * 20);
    const outPtr = this.stage + STAGE_KEYS * 16;
    for (let at = 0; at < count; at += STAGE_KEYS) {
      const n = Math.min(STAGE_KEYS, count - at);
      this.views.bytes().set(keys.subarray(at * 16, (at + n) * 16), this.stage);
      this.core.route6LookupBatch(this.stage, outPtr, n);
      out.set(this.views.ints().subarray(outPtr >>> 2, (outPtr >>> 2) + n), at);
    }
    return out;
  }

  get size(): number {
    return this.core.route6Count();
  }

  get memoryBytes(): number {
    return this.core.route6MemoryBytes();
  }
}
