// One source for the ABI between the core and its TypeScript face: the core describes itself (assembly/abi.ts), the build
// generates src/core/abi.ts from that, and Core.load refuses a core whose description differs, naming the first difference.
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ABI_LINES, IOVEC, OUT_PKT } from "../../src/core/abi.js";
import { COUNTER_NAMES, Core, abiMismatch } from "../../src/core/index.js";

const root = new URL("../../", import.meta.url).pathname;
const asc = join(root, "node_modules", ".bin", "asc");

/** Builds the core from a copy of assembly/ with `edit` applied to one of its files; returns the .wasm path. */
function buildVariant(dir: string, file: string, edit: (src: string) => string): string {
  const src = join(dir, "assembly");
  cpSync(join(root, "assembly"), src, { recursive: true });
  const path = join(src, file);
  const before = readFileSync(path, "utf8");
  const after = edit(before);
  expect(after).not.toBe(before);
  writeFileSync(path, after);
  const out = join(dir, "variant.wasm");
  execFileSync(asc, [join(src, "index.ts"), "--outFile", out, "--runtime", "stub", "--enable", "simd", "--noAssert"], { stdio: "pipe" });
  return out;
}

describe("the core's ABI", () => {
  it("names each counter after its constant in assembly/engine/counters.ts, in index order", () => {
    const src = readFileSync(join(root, "assembly", "engine", "counters.ts"), "utf8");
    const constants = [...src.slice(0, src.indexOf("COUNT: i32")).matchAll(/export const ([A-Z0-9_]+): i32 = (\d+);/g)];
    expect(constants.map((m) => Number(m[2]))).toEqual(constants.map((_, i) => i));
    expect(COUNTER_NAMES).toEqual(constants.map((m) => m[1].toLowerCase()));
  });

  it("loads a core that describes itself as src/core/abi.ts says", () => {
    const core = Core.load({ txSlots: 1, rxSlots: 1, maxPeers: 1 });
    expect(Object.keys(core.counters())).toEqual([...COUNTER_NAMES]);
    expect(ABI_LINES[0]).toMatch(/^ABI_VERSION \d+$/);
  });

  it("lays out iovecs and output counts as the kernel and src/sys/batchio/weftio.c read them (x86_64)", () => {
    expect(IOVEC).toMatchObject({ BASE: 0, LEN: 8, STRIDE: 16 });
    expect(OUT_PKT).toEqual({ IOV_COUNT: 0, STRIDE: 4 });
  });

  it("names the first line that differs", () => {
    expect(abiMismatch(["A 1", "B 2"], ["A 1", "B 2"])).toBeNull();
    expect(abiMismatch(["A 1", "B 3", "C 4"], ["A 1", "B 2", "C 5"])).toBe('line 2: the core has "B 3" where src/core/abi.ts has "B 2"');
    expect(abiMismatch(["A 1"], ["A 1", "B 2"])).toBe('line 2: the core has nothing where src/core/abi.ts has "B 2"');
  });

  it("refuses a module that does not describe itself", () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-abi-"));
    try {
      // The smallest module with a memory: a "core" from before the self-description, as far as Core.load can tell.
      const bare = Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, ...Buffer.from("memory"), 2, 0);
      writeFileSync(join(dir, "bare.wasm"), bare);
      expect(() => Core.load({ wasm: join(dir, "bare.wasm") })).toThrowError(/bare.wasm: it has no self-description \(abiDescription\); rebuild it/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a core with another layout or another counter list, naming the first difference", { timeout: 120_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-abi-"));
    try {
      const stride = buildVariant(join(dir, "stride"), "engine/layout.ts", (s) =>
        s.replace(/(namespace TxGroup \{[^}]*STRIDE: usize = )20;/s, "$124;"));
      expect(() => Core.load({ wasm: stride })).toThrowError(
        /does not match the TypeScript built against it \(line \d+: the core has "TX_GROUP.STRIDE 24" where src\/core\/abi.ts has "TX_GROUP.STRIDE 20"\); run npm run build/);
      const counters = buildVariant(join(dir, "counters"), "engine/counters.ts", (s) =>
        s.replace('"tx_passed",\n', '"tx_passed",\n  "tx_new_reason",\n'));
      expect(() => Core.load({ wasm: counters })).toThrowError(/the core has "COUNTERS tx_packets_in,tx_passed,tx_new_reason,/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
