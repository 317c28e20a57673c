// Longest-prefix-match tables of the WASM core, checked against brute-force references on seeded random tables.
// The module under test is build/weft.wasm when it is newer than assembly/lpm (and exports the tables), else
// assembly/lpm/exports.ts compiled on its own to build/lpm-test.wasm. LPM_WASM=path forces a file.
import { mulberry32 as prng } from "../helpers/packets.js";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import {
  RouteTable4, RouteTable6, formatIPv4, formatIPv6, parseCidr4, parseIPv4, parseIPv6,
} from "../../src/core/routes.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

interface Core {
  memory: WebAssembly.Memory;
  [name: string]: any;
}

function newestSource(dir: string): number {
  return Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs));
}

function wasmPath(): string {
  if (process.env.LPM_WASM) return resolve(process.env.LPM_WASM);
  const weft = join(ROOT, "build/weft.wasm");
  if (existsSync(weft) && statSync(weft).mtimeMs >= newestSource(join(ROOT, "assembly/lpm"))) {
    const exported = WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(weft))).map((e) => e.name);
    if (exported.includes("route4Init") && exported.includes("route6LookupBatch")) return weft;
  }
  const out = join(ROOT, "build/lpm-test.wasm");
  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules/assemblyscript/bin/asc.js"), "assembly/lpm/exports.ts",
      "--runtime", "stub", "--enable", "simd", "-O3", "--noAssert", "-o", out],
    { cwd: ROOT, stdio: "pipe" },
  );
  return out;
}

function instantiate(path: string): Core {
  const module = new WebAssembly.Module(readFileSync(path));
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== "function") continue;
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] = () => {
      throw new Error(`unexpected call to import ${imp.module}.${imp.name}`);
    };
  }
  const instance = new WebAssembly.Instance(module, imports);
  return instance.exports as unknown as Core;
}


function sample<T>(rand: () => number, items: T[], n: number): T[] {
  if (items.length <= n) return items;
  return Array.from({ length: n }, () => items[Math.floor(rand() * items.length)]);
}

const mask4 = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

/** Brute-force IPv4 reference: one map per length, probed from /32 down. */
class Reference4 {
  readonly byLen = Array.from({ length: 33 }, () => new Map<number, number>());
  get size(): number {
    return this.byLen.reduce((n, m) => n + m.size, 0);
  }
  insert(addr: number, len: number, value: number): void {
    this.byLen[len].set((addr & mask4(len)) >>> 0, value);
  }
  delete(addr: number, len: number): boolean {
    return this.byLen[len].delete((addr & mask4(len)) >>> 0);
  }
  lookup(addr: number): number {
    for (let len = 32; len >= 0; len--) {
      const v = this.byLen[len].get((addr & mask4(len)) >>> 0);
      if (v !== undefined) return v;
    }
    return -1;
  }
  prefixes(): Array<[number, number]> {
    return this.byLen.flatMap((m, len) => [...m.keys()].map((a): [number, number] => [a, len]));
  }
}

/** Brute-force IPv6 reference over BigInt addresses. */
class Reference6 {
  readonly byLen = Array.from({ length: 129 }, () => new Map<bigint, number>());
  get size(): number {
    return this.byLen.reduce((n, m) => n + m.size, 0);
  }
  private static key(addr: bigint, len: number): bigint {
    return len === 0 ? 0n : addr >> BigInt(128 - len);
  }
  insert(addr: bigint, len: number, value: number): void {
    this.byLen[len].set(Reference6.key(addr, len), value);
  }
  delete(addr: bigint, len: number): boolean {
    return this.byLen[len].delete(Reference6.key(addr, len));
  }
  lookup(addr: bigint): number {
    for (let len = 128; len >= 0; len--) {
      const m = this.byLen[len];
      if (m.size === 0) continue;
      const v = m.get(Reference6.key(addr, len));
      if (v !== undefined) return v;
    }
    return -1;
  }
  prefixes(): Array<[bigint, number]> {
    return this.byLen.flatMap((m, len) =>
      [...m.keys()].map((k): [bigint, number] => [len === 0 ? 0n : k << BigInt(128 - len), len]));
  }
}

const ALL128 = (1n << 128n) - 1n;
const hostMask6 = (len: number): bigint => (len === 128 ? 0n : ALL128 >> BigInt(len));

function toBytes(addr: bigint): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    b[i] = Number(addr & 0xffn);
    addr >>= 8n;
  }
  return b;
}

let core: Core;
let wasmFile = "";

beforeAll(() => {
  wasmFile = wasmPath();
  core = instantiate(wasmFile);
}, 120_000);

describe("IPv4 table (WASM core)", () => {
  it("finds nothing in an empty table", () => {
    core.route4Init(1024);
    expect(core.route4Count()).toBe(0);
    for (const ip of ["0.0.0.0", "10.1.2.3", "255.255.255.255"]) expect(core.route4Lookup(parseIPv4(ip))).toBe(-1);
  });

  it("handles the default route and host routes", () => {
    core.route4Init(1024);
    expect(core.route4Insert(0, 0, 7)).toBe(0);
    expect(core.route4Insert(parseIPv4("192.168.1.77"), 32, 9)).toBe(0);
    expect(core.route4Insert(0xffffffff, 32, 3)).toBe(0);
    expect(core.route4Lookup(parseIPv4("1.2.3.4"))).toBe(7);
    expect(core.route4Lookup(parseIPv4("192.168.1.77"))).toBe(9);
    expect(core.route4Lookup(parseIPv4("192.168.1.76"))).toBe(7);
    expect(core.route4Lookup(parseIPv4("192.168.1.78"))).toBe(7);
    expect(core.route4Lookup(0xffffffff)).toBe(3);
    expect(core.route4Lookup(0xfffffffe)).toBe(7);
    expect(core.route4Delete(0, 0)).toBe(0);
    expect(core.route4Lookup(parseIPv4("1.2.3.4"))).toBe(-1);
    expect(core.route4Lookup(parseIPv4("192.168.1.77"))).toBe(9);
  });

  it("masks host bits and replaces an existing prefix's value", () => {
    core.route4Init(1024);
    expect(core.route4Insert(parseIPv4("10.1.2.3"), 8, 1)).toBe(0);
    expect(core.route4Lookup(parseIPv4("10.200.0.1"))).toBe(1);
    expect(core.route4Lookup(parseIPv4("11.0.0.0"))).toBe(-1);
    expect(core.route4Insert(parseIPv4("10.0.0.0"), 8, 5)).toBe(0);
    expect(core.route4Count()).toBe(1);
    expect(core.route4Lookup(parseIPv4("10.9.9.9"))).toBe(5);
    expect(core.route4Delete(parseIPv4("10.255.255.255"), 8)).toBe(0);
    expect(core.route4Count()).toBe(0);
    expect(core.route4Lookup(parseIPv4("10.9.9.9"))).toBe(-1);
  });

  it("deletes a covering prefix while longer ones remain", () => {
    core.route4Init(1024);
    const routes: Array<[string, number]> = [
      ["10.0.0.0/8", 1], ["10.1.0.0/16", 2], ["10.1.2.0/24", 3], ["10.1.2.128/25", 4], ["10.1.2.200/32", 5],
    ];
    for (const [cidr, v] of routes) {
      const { addr, len } = parseCidr4(cidr);
      expect(core.route4Insert(addr, len, v)).toBe(0);
    }
    const at = (ip: string) => core.route4Lookup(parseIPv4(ip));
    expect([at("10.9.0.1"), at("10.1.9.1"), at("10.1.2.1"), at("10.1.2.129"), at("10.1.2.200")]).toEqual([1, 2, 3, 4, 5]);
    expect(core.route4Delete(parseIPv4("10.1.0.0"), 16)).toBe(0);
    expect([at("10.9.0.1"), at("10.1.9.1"), at("10.1.2.1"), at("10.1.2.129"), at("10.1.2.200")]).toEqual([1, 1, 3, 4, 5]);
    expect(core.route4Delete(parseIPv4("10.1.2.0"), 24)).toBe(0);
    expect([at("10.1.2.1"), at("10.1.2.127"), at("10.1.2.128"), at("10.1.2.200")]).toEqual([1, 1, 4, 5]);
    expect(core.route4Delete(parseIPv4("10.0.0.0"), 8)).toBe(0);
    expect([at("10.9.0.1"), at("10.1.2.1"), at("10.1.2.255"), at("10.1.2.200")]).toEqual([-1, -1, 4, 5]);
    expect(core.route4Delete(parseIPv4("10.1.2.128"), 25)).toBe(0);
    expect(core.route4Delete(parseIPv4("10.1.2.200"), 32)).toBe(0);
    expect(core.route4Chunks()).toBe(0);
  });

  it("returns error codes for bad lengths and values, and 1 for an absent prefix", () => {
    core.route4Init(1024);
    for (const len of [33, -1, 64, 1000, 0x7fffffff, -0x80000000]) {
      expect(core.route4Insert(0, len, 1)).toBe(-1);
      expect(core.route4Delete(0, len)).toBe(-1);
    }
    for (const value of [65536, -1, 0x7fffffff]) expect(core.route4Insert(0, 8, value)).toBe(-2);
    expect(core.route4Insert(0, 8, 65535)).toBe(0);
    expect(core.route4Lookup(parseIPv4("0.1.2.3"))).toBe(65535);
    expect(core.route4Delete(parseIPv4("1.0.0.0"), 8)).toBe(1);
    expect(core.route4Delete(0, 9)).toBe(1);
    expect(core.route4Count()).toBe(1);
  });

  it("reports a full pool without changing the table, and reuses freed chunks", () => {
    core.route4Init(2);
    expect(core.route4Insert(parseIPv4("10.0.0.0"), 24, 1)).toBe(0);
    expect(core.route4Insert(parseIPv4("10.0.1.0"), 24, 2)).toBe(0);
    expect(core.route4Chunks()).toBe(1);
    expect(core.route4Insert(parseIPv4("10.0.2.7"), 32, 3)).toBe(0);
    expect(core.route4Chunks()).toBe(2);
    expect(core.route4Insert(parseIPv4("10.1.0.0"), 24, 4)).toBe(-3);
    expect(core.route4Insert(parseIPv4("10.0.3.0"), 25, 5)).toBe(-3);
    expect(core.route4Insert(parseIPv4("10.0.0.0"), 24, 6)).toBe(0);
    expect(core.route4Insert(parseIPv4("9.0.0.0"), 8, 7)).toBe(0);
    expect(core.route4Count()).toBe(4);
    expect(core.route4Lookup(parseIPv4("10.1.0.1"))).toBe(-1);
    expect(core.route4Lookup(parseIPv4("10.0.3.1"))).toBe(-1);
    expect(core.route4Lookup(parseIPv4("10.0.0.1"))).toBe(6);
    expect(core.route4Delete(parseIPv4("10.0.2.7"), 32)).toBe(0);
    expect(core.route4Chunks()).toBe(1);
    expect(core.route4Insert(parseIPv4("10.1.0.0"), 24, 4)).toBe(0);
    expect(core.route4Lookup(parseIPv4("10.1.0.1"))).toBe(4);
    expect(core.route4Chunks()).toBe(2);
  });

  it("keeps memory bounded under churn: chunks return to the pool and slabs are reused", () => {
    core.route4Init(8192);
    const rand = prng(11);
    const prefixes: number[] = [];
    for (let i = 0; i < 3000; i++) prefixes.push(((rand() * 0x1000000) >>> 0) << 8);
    let bytes = 0;
    for (let round = 0; round < 3; round++) {
      for (const p of prefixes) expect(core.route4Insert(p, 24, round)).toBe(0);
      for (const p of prefixes) expect(core.route4Insert(p | 0x80, 25, round + 1)).toBe(0);
      if (round === 0) bytes = core.route4MemoryBytes();
      else expect(core.route4MemoryBytes()).toBe(bytes);
      for (const p of prefixes) {
        core.route4Delete(p, 24);
        core.route4Delete(p | 0x80, 25);
      }
      expect(core.route4Count()).toBe(0);
      expect(core.route4Chunks()).toBe(0);
    }
  });

  for (const seed of [1, 2, 3, 4]) {
    it(`matches a brute-force reference on a random table with interleaved inserts, replaces, deletes (seed ${seed})`, () => {
      const rand = prng(seed);
      const ref = new Reference4();
      core.route4Init(1 << 16);
      // Prefixes cluster in a few regions so they overlap at every depth.
      const regions = Array.from({ length: 6 }, () => (rand() * 0x100000000) >>> 0);
      const randomPrefix = (): [number, number] => {
        const r = rand();
        const len = r < 0.05 ? Math.floor(rand() * 8) : r < 0.5 ? 8 + Math.floor(rand() * 17) : 24 + Math.floor(rand() * 9);
        const base = regions[Math.floor(rand() * regions.length)];
        const noise = (rand() * 0x100000000) >>> 0;
        const spread = (0xffffffff >>> Math.floor(rand() * 32)) >>> 0;
        return [((base ^ (noise & spread)) & mask4(len)) >>> 0, len];
      };
      const probes = (): number[] => {
        const keys: number[] = [];
        for (const [a, len] of sample(rand, ref.prefixes(), 400)) {
          const last = (a | (~mask4(len) >>> 0)) >>> 0;
          keys.push(a, last, (a - 1) >>> 0, (last + 1) >>> 0, (a + Math.floor(rand() * (last - a + 1))) >>> 0);
        }
        for (let i = 0; i < 500; i++) keys.push((rand() * 0x100000000) >>> 0);
        return keys;
      };
      const check = (keys: number[]) => {
        for (const k of keys) {
          const got = core.route4Lookup(k);
          if (got !== ref.lookup(k)) expect(`${formatIPv4(k)} → ${got}`).toBe(`${formatIPv4(k)} → ${ref.lookup(k)}`);
        }
      };
      for (let op = 0; op < 4000; op++) {
        const r = rand();
        const existing = ref.prefixes();
        if (r < 0.3 && existing.length > 0) {
          const [a, len] = existing[Math.floor(rand() * existing.length)];
          expect(core.route4Delete(a, len)).toBe(0);
          ref.delete(a, len);
        } else if (r < 0.4 && existing.length > 0) {
          const [a, len] = existing[Math.floor(rand() * existing.length)];
          const v = Math.floor(rand() * 65536);
          expect(core.route4Insert(a | (~mask4(len) >>> 0 & (rand() * 0x100000000)), len, v)).toBe(0);
          ref.insert(a, len, v);
        } else if (r < 0.45) {
          const [a, len] = randomPrefix();
          expect(core.route4Delete(a, len)).toBe(ref.delete(a, len) ? 0 : 1);
        } else {
          const [a, len] = randomPrefix();
          const v = Math.floor(rand() * 65536);
          expect(core.route4Insert(a, len, v)).toBe(0);
          ref.insert(a, len, v);
        }
        if (op % 1000 === 999) core.route4Compact();
        if (op % 500 === 499) {
          check(probes());
          expect(core.route4Count()).toBe(ref.size);
        }
      }
      check(probes());
      for (const [a, len] of ref.prefixes()) expect(core.route4Delete(a, len)).toBe(0);
      expect(core.route4Count()).toBe(0);
      expect(core.route4Chunks()).toBe(0);
      for (let i = 0; i < 2000; i++) expect(core.route4Lookup((rand() * 0x100000000) >>> 0)).toBe(-1);
    });
  }

  it("compaction packs the chunks without changing any answer, and the table keeps working after it", () => {
    const rand = prng(21);
    core.route4Init(1 << 16);
    const live: Array<[number, number]> = [];
    for (let i = 0; i < 20000; i++) {
      const len = 17 + Math.floor(rand() * 16);
      const addr = ((0x0a000000 | ((rand() * 0x400000) >>> 0)) & mask4(len)) >>> 0;
      expect(core.route4Insert(addr, len, i & 0xffff)).toBe(0);
      live.push([addr, len]);
      if (rand() < 0.3) {
        const [a, l] = live.splice(Math.floor(rand() * live.length), 1)[0];
        core.route4Delete(a, l);
      }
    }
    const keys = Array.from({ length: 20000 }, (_, i) => (i % 2 ? (rand() * 0x100000000) >>> 0 : (0x0a000000 | ((rand() * 0x400000) >>> 0)) >>> 0));
    const before = keys.map((k) => core.route4Lookup(k));
    const chunkBytes = core.route4ChunkBytes();
    const chunkCount = core.route4Chunks();
    core.route4Compact();
    expect(keys.map((k) => core.route4Lookup(k))).toEqual(before);
    expect(core.route4ChunkBytes()).toBe(chunkBytes);
    expect(core.route4Chunks()).toBe(chunkCount);
    const reserved = core.route4MemoryBytes();
    core.route4Compact();
    expect(keys.map((k) => core.route4Lookup(k))).toEqual(before);
    expect(core.route4Insert(parseIPv4("10.255.1.0"), 24, 77)).toBe(0);
    expect(core.route4Lookup(parseIPv4("10.255.1.9"))).toBe(77);
    expect(core.route4MemoryBytes()).toBe(reserved);
    core.route4Delete(parseIPv4("10.255.1.0"), 24);
    for (const [a, l] of live) core.route4Delete(a, l);
    expect(core.route4Chunks()).toBe(0);
    expect(core.route4ChunkBytes()).toBe(0);
  });

  it("batch lookup agrees with single lookups, including a tail that is not a multiple of 8", () => {
    const rand = prng(99);
    core.route4Init(1 << 14);
    for (let i = 0; i < 5000; i++) {
      const len = 8 + Math.floor(rand() * 25);
      core.route4Insert((((rand() * 0x100000000) >>> 0) & 0x0fffffff) | 0x0a000000, len, i & 0xffff);
    }
    const n = 1003;
    const keys = core.lpmAlloc(n * 4);
    const out = core.lpmAlloc(n * 4);
    const words = new Uint32Array(core.memory.buffer, keys, n);
    for (let i = 0; i < n; i++) words[i] = i % 2 ? ((rand() * 0x100000000) >>> 0) : (0x0a000000 | ((rand() * 0x1000000) >>> 0));
    core.route4LookupBatch(keys, out, n);
    const results = new Int32Array(core.memory.buffer, out, n);
    let hits = 0;
    for (let i = 0; i < n; i++) {
      expect(results[i]).toBe(core.route4Lookup(words[i]));
      if (results[i] >= 0) hits++;
    }
    expect(hits).toBeGreaterThan(n / 4);
  });

  it("does not trap on batch pointers outside memory", () => {
    const end = core.memory.buffer.byteLength;
    expect(() => core.route4LookupBatch(end - 8, 0, 16)).not.toThrow();
    expect(() => core.route4LookupBatch(0, end, 1)).not.toThrow();
    expect(() => core.route6LookupBatch(end - 16, 0, 2)).not.toThrow();
    expect(core.route6Lookup(end - 8)).toBe(-1);
    expect(core.route6Insert(end, 8, 1)).toBe(-4);
    expect(core.route6Delete(0xfffffff0, 8)).toBe(-4);
    expect(core.lpmAlloc(0xffffffff)).toBe(0);
  });
});

describe("IPv6 table (WASM core)", () => {
  const at = (addr: bigint | string): number => {
    const bytes = typeof addr === "string" ? parseIPv6(addr) : toBytes(addr);
    const p = core.lpmScratch();
    new Uint8Array(core.memory.buffer).set(bytes, p);
    return core.route6Lookup(p);
  };
  const insert = (addr: bigint | string, len: number, value: number): number => {
    const p = core.lpmScratch();
    new Uint8Array(core.memory.buffer).set(typeof addr === "string" ? parseIPv6(addr) : toBytes(addr), p);
    return core.route6Insert(p, len, value);
  };
  const remove = (addr: bigint | string, len: number): number => {
    const p = core.lpmScratch();
    new Uint8Array(core.memory.buffer).set(typeof addr === "string" ? parseIPv6(addr) : toBytes(addr), p);
    return core.route6Delete(p, len);
  };

  it("handles ::/0, host routes and masking", () => {
    core.route6Init(1 << 12);
    expect(at("2001:db8::1")).toBe(-1);
    expect(insert("::", 0, 1)).toBe(0);
    expect(insert("2001:db8::1", 128, 2)).toBe(0);
    expect(insert("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128, 3)).toBe(0);
    expect(insert("2001:db8:ffff:1234::", 32, 4)).toBe(0);
    expect(at("2001:db8::1")).toBe(2);
    expect(at("2001:db8::2")).toBe(4);
    expect(at("2001:db8::")).toBe(4);
    expect(at("2001:db9::")).toBe(1);
    expect(at("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(3);
    expect(at("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")).toBe(1);
    expect(core.route6Count()).toBe(4);
    expect(remove("2001:db8::", 32)).toBe(0);
    expect(at("2001:db8::2")).toBe(1);
    expect(remove("::", 0)).toBe(0);
    expect(at("2001:db8::2")).toBe(-1);
    expect(at("2001:db8::1")).toBe(2);
    expect(remove("2001:db8::1", 128)).toBe(0);
    expect(remove("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128)).toBe(0);
    expect(core.route6Nodes()).toBe(0);
  });

  it("deletes a covering prefix while longer ones remain, at every level boundary", () => {
    core.route6Init(1 << 12);
    const lens = [3, 16, 17, 22, 23, 28, 32, 48, 58, 64, 65, 100, 122, 123, 124, 127, 128];
    const base = parseIPv6("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
    let addr = 0n;
    for (const b of base) addr = (addr << 8n) | BigInt(b);
    lens.forEach((len, i) => expect(insert(addr, len, i + 10)).toBe(0));
    const probe = (len: number) => at(len === 128 ? addr : addr ^ (1n << BigInt(127 - len)));
    // Flipping the bit right after /len leaves only prefixes no longer than len matching.
    lens.forEach((len, i) => expect(probe(len)).toBe(i + 10));
    for (const drop of [32, 3, 128, 64, 22]) {
      expect(remove(addr, drop)).toBe(0);
      const left = lens.filter((l) => l !== drop);
      lens.splice(0, lens.length, ...left);
      for (const len of lens) expect(probe(len)).toBe(10 + [3, 16, 17, 22, 23, 28, 32, 48, 58, 64, 65, 100, 122, 123, 124, 127, 128].indexOf(len));
    }
    expect(at(addr)).toBe(10 + 15);
  });

  it("returns error codes for bad lengths and values", () => {
    core.route6Init(1 << 12);
    for (const len of [129, -1, 256, 0x7fffffff]) {
      expect(insert("2001:db8::", len, 1)).toBe(-1);
      expect(remove("2001:db8::", len)).toBe(-1);
    }
    expect(insert("2001:db8::", 32, 65536)).toBe(-2);
    expect(insert("2001:db8::", 32, -1)).toBe(-2);
    expect(remove("2001:db8::", 32)).toBe(1);
    expect(core.route6Count()).toBe(0);
  });

  it("reports a full node pool without changing the table", () => {
    core.route6Init(4);
    expect(insert("2001:db8::", 32, 1)).toBe(0);
    expect(core.route6Nodes()).toBe(3);
    expect(insert("2001:db9::", 32, 2)).toBe(0); // ends in the same level-2 node
    expect(insert("2001:db8:1::", 48, 3)).toBe(-3); // needs 3 more
    expect(insert("2002::", 17, 3)).toBe(0); // needs 1
    expect(core.route6Nodes()).toBe(4);
    expect(insert("2003::", 17, 3)).toBe(-3);
    expect(insert("2001::", 16, 4)).toBe(0);
    expect(insert("2001:db8::", 32, 5)).toBe(0);
    expect(core.route6Count()).toBe(4);
    expect(at("2001:db7::1")).toBe(4);
    expect(at("2001:db8:1::1")).toBe(5);
    expect(at("2003::")).toBe(-1);
    expect(remove("2001:db8::", 32)).toBe(0);
    expect(remove("2001:db9::", 32)).toBe(0);
    expect(core.route6Nodes()).toBe(1); // 2001::/16 folded back into the direct table; 2002::/17 keeps one
    expect(insert("2001:db8:1::", 48, 3)).toBe(-3); // needs 6
    expect(insert("2001:db8::", 32, 6)).toBe(0); // needs 3
    expect(core.route6Nodes()).toBe(4);
    expect(at("2001:db8:1::1")).toBe(6);
    expect(at("2001:db7::1")).toBe(4);
  });

  for (const seed of [5, 6, 7]) {
    it(`matches a brute-force reference on a random table with interleaved inserts, replaces, deletes (seed ${seed})`, () => {
      const rand = prng(seed);
      const ref = new Reference6();
      core.route6Init(1 << 20);
      const rand128 = (): bigint => {
        let x = 0n;
        for (let i = 0; i < 4; i++) x = (x << 32n) | BigInt((rand() * 0x100000000) >>> 0);
        return x;
      };
      const regions = Array.from({ length: 5 }, rand128);
      const randomPrefix = (): [bigint, number] => {
        const r = rand();
        const len = r < 0.05 ? Math.floor(rand() * 17) : r < 0.75 ? 17 + Math.floor(rand() * 48) : 65 + Math.floor(rand() * 64);
        const spread = ALL128 >> BigInt(Math.floor(rand() * 128));
        const addr = regions[Math.floor(rand() * regions.length)] ^ (rand128() & spread);
        return [addr & ~hostMask6(len) & ALL128, len];
      };
      const probes = (): bigint[] => {
        const keys: bigint[] = [];
        for (const [a, len] of sample(rand, ref.prefixes(), 250)) {
          const last = a | hostMask6(len);
          keys.push(a, last, (a - 1n) & ALL128, (last + 1n) & ALL128, a | (rand128() & hostMask6(len)));
        }
        for (let i = 0; i < 300; i++) keys.push(rand128());
        return keys;
      };
      const check = (keys: bigint[]) => {
        for (const k of keys) {
          const want = ref.lookup(k);
          const got = at(k);
          if (got !== want) expect(`${formatIPv6(toBytes(k))} → ${got}`).toBe(`${formatIPv6(toBytes(k))} → ${want}`);
        }
      };
      for (let op = 0; op < 2500; op++) {
        const r = rand();
        const existing = ref.prefixes();
        if (r < 0.3 && existing.length > 0) {
          const [a, len] = existing[Math.floor(rand() * existing.length)];
          expect(remove(a, len)).toBe(0);
          ref.delete(a, len);
        } else if (r < 0.4 && existing.length > 0) {
          const [a, len] = existing[Math.floor(rand() * existing.length)];
          const v = Math.floor(rand() * 65536);
          expect(insert(a | (rand128() & hostMask6(len)), len, v)).toBe(0);
          ref.insert(a, len, v);
        } else if (r < 0.45) {
          const [a, len] = randomPrefix();
          expect(remove(a, len)).toBe(ref.delete(a, len) ? 0 : 1);
        } else {
          const [a, len] = randomPrefix();
          const v = Math.floor(rand() * 65536);
          expect(insert(a, len, v)).toBe(0);
          ref.insert(a, len, v);
        }
        if (op % 500 === 499) {
          check(probes());
          expect(core.route6Count()).toBe(ref.size);
        }
      }
      check(probes());
      const keys = probes();
      const n = keys.length;
      const keyPtr = core.lpmAlloc(n * 16);
      const outPtr = core.lpmAlloc(n * 4);
      const mem = new Uint8Array(core.memory.buffer);
      keys.forEach((k, i) => mem.set(toBytes(k), keyPtr + i * 16));
      core.route6LookupBatch(keyPtr, outPtr, n);
      const out = new Int32Array(core.memory.buffer, outPtr, n);
      keys.forEach((k, i) => {
        if (out[i] !== ref.lookup(k)) expect(`batch ${formatIPv6(toBytes(k))} → ${out[i]}`).toBe(`→ ${ref.lookup(k)}`);
      });
      for (const [a, len] of ref.prefixes()) expect(remove(a, len)).toBe(0);
      expect(core.route6Count()).toBe(0);
      expect(core.route6Nodes()).toBe(0);
      for (let i = 0; i < 1000; i++) expect(at(rand128())).toBe(-1);
    });
  }
});

describe("RouteTable4 / RouteTable6 (TypeScript face)", () => {
  it("parses CIDR strings, masks host bits, and throws clear errors", () => {
    const t = new RouteTable4(core, core.memory);
    t.insert("10.244.0.0/16", 1);
    t.insert("10.244.7.9/24", 2);
    t.insert({ addr: parseIPv4("10.244.7.200"), len: 32 }, 3);
    t.insert("0.0.0.0/0", 4);
    expect(t.size).toBe(4);
    expect(t.lookup("10.244.1.1")).toBe(1);
    expect(t.lookup("10.244.7.1")).toBe(2);
    expect(t.lookup(parseIPv4("10.244.7.200"))).toBe(3);
    expect(t.lookup("8.8.8.8")).toBe(4);
    expect(t.delete("10.244.7.0/24")).toBe(true);
    expect(t.delete("10.244.7.0/24")).toBe(false);
    expect(t.lookup("10.244.7.1")).toBe(1);
    expect(() => t.insert("10.0.0.0/33", 1)).toThrow(/prefix length.*0\.\.32/);
    expect(() => t.insert("10.0.0/8", 1)).toThrow(/invalid IPv4 address "10.0.0"/);
    expect(() => t.insert("10.0.0.256/8", 1)).toThrow(/octet "256"/);
    expect(() => t.insert("10.0.0.0/8", 70000)).toThrow(/0\.\.65535/);
    expect(() => t.insert({ addr: 1, len: 40 }, 1)).toThrow(/0\.\.32/);
    expect(() => t.lookup("1.2.3")).toThrow(/IPv4/);
    expect(t.memoryBytes).toBeGreaterThan(256 * 1024);
    const live = t.chunkBytes;
    expect(live).toBeGreaterThan(0);
    t.compact();
    expect(t.chunkBytes).toBe(live);
    expect([t.lookup("10.244.1.1"), t.lookup("10.244.7.1"), t.lookup("10.244.7.200"), t.lookup("8.8.8.8")]).toEqual([1, 1, 3, 4]);
  });

  it("reports a full pool as an error", () => {
    const t = new RouteTable4(core, core.memory, { maxChunks: 1 });
    t.insert("10.0.0.0/24", 1);
    expect(() => t.insert("10.1.0.0/24", 1)).toThrow(/insert 10.1.0.0\/24: route table is full/);
  });

  it("batch lookup stages through WASM memory and survives memory growth", () => {
    const rand = prng(3);
    const t = new RouteTable4(core, core.memory);
    for (let i = 0; i < 2000; i++) t.insert({ addr: (0x0a000000 | ((rand() * 0x1000000) >>> 0)) >>> 0, len: 24 }, i);
    const keys = new Uint32Array(10000).map((_, i) => (i % 2 ? rand() * 0x100000000 : 0x0a000000 | (rand() * 0x1000000)) >>> 0);
    const first = t.lookupBatch(keys);
    const before = core.memory.buffer.byteLength;
    core.lpmAlloc(before);
    expect(core.memory.buffer.byteLength).toBeGreaterThan(before);
    const second = t.lookupBatch(keys, new Int32Array(keys.length));
    expect([...second]).toEqual([...first]);
    keys.forEach((k, i) => {
      if (first[i] !== t.lookup(k)) expect(first[i]).toBe(t.lookup(k));
    });
    expect(() => t.lookupBatch(keys, new Int32Array(3))).toThrow(/out holds 3/);
  });

  it("parses IPv6 text forms", () => {
    const hex = (s: string) => Buffer.from(parseIPv6(s)).toString("hex");
    expect(hex("::")).toBe("0".repeat(32));
    expect(hex("::1")).toBe("0".repeat(31) + "1");
    expect(hex("1::")).toBe("0001" + "0".repeat(28));
    expect(hex("2001:DB8::8:800:200C:417A")).toBe("20010db80000000000080800200c417a");
    expect(hex("::ffff:192.0.2.128")).toBe("00000000000000000000ffffc0000280");
    expect(hex("1:2:3:4:5:6:7:8")).toBe("00010002000300040005000600070008");
    expect(hex("1:2:3:4:5:6:1.2.3.4")).toBe("00010002000300040005000601020304");
    expect(formatIPv6(parseIPv6("2001:db8:0:0:1:0:0:1"))).toBe("2001:db8::1:0:0:1");
    for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "1.2.3.4", "::g", ":1::", "1:::2", "1:2:3:4:5:6:7", "1.2.3.4::", "fe80::1%eth0", "1:2:3:4::5:6:7:8"]) {
      expect(() => parseIPv6(bad), bad).toThrow(/invalid IPv6 address/);
    }
  });

  it("RouteTable6 inserts, looks up (single and batch) and deletes by string", () => {
    const t = new RouteTable6(core, core.memory);
    t.insert("2001:db8::/32", 1);
    t.insert("2001:db8:1::/48", 2);
    t.insert({ addr: "2001:db8:1::7", len: 128 }, 3);
    t.insert("2001:db8:ffff::1/16", 4);
    expect(t.size).toBe(4);
    expect(t.lookup("2001:db8:2::1")).toBe(1);
    expect(t.lookup("2001:db8:1::1")).toBe(2);
    expect(t.lookup("2001:db8:1::7")).toBe(3);
    expect(t.lookup("2001:abcd::")).toBe(4);
    expect(t.lookup("2002::")).toBe(-1);
    const ips = ["2001:db8:2::1", "2001:db8:1::1", "2001:db8:1::7", "2001:abcd::", "2002::"];
    const keys = new Uint8Array(16 * 5000);
    for (let i = 0; i < 5000; i++) keys.set(parseIPv6(ips[i % 5]), i * 16);
    const out = t.lookupBatch(keys);
    for (let i = 0; i < 5000; i++) if (out[i] !== [1, 2, 3, 4, -1][i % 5]) expect(out[i]).toBe([1, 2, 3, 4, -1][i % 5]);
    expect(t.delete("2001:db8:1::/48")).toBe(true);
    expect(t.lookup("2001:db8:1::1")).toBe(1);
    expect(() => t.insert("2001:db8::/129", 1)).toThrow(/0\.\.128/);
    expect(() => t.insert("2001:db8::/-1", 1)).toThrow(/prefix length/);
    expect(() => t.lookup(new Uint8Array(4))).toThrow(/16 bytes/);
  });

  it("uses the module chosen for the run", () => {
    expect(wasmFile).toMatch(/\.wasm$/);
  });
});
