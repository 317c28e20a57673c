// `weft demo` as a user runs it: a three-node cluster on etcd, every Pod reaching every Pod with its source address kept,
// the headline benchmark, and nothing left behind; a step that fails is named and leaves nothing behind either; --keep
// leaves a working cluster that --down takes away.
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { isRoot } from "./lib/traffic.js";

const WEFT = join(PACKAGE_ROOT, "bin", "weft");

function demo(args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [WEFT, "demo", ...args], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 300_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Namespaces and temporary lab directories of demo clusters (prefix "wl" + 4 hex digits). */
function leftovers(): string[] {
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").map((l) => l.split(" ")[0]);
  const dirs = readdirSync(tmpdir()).filter((d) => /^wl[0-9a-f]{4}-/.test(d));
  return [...namespaces.filter((n) => /^wl[0-9a-f]{4}/.test(n)), ...dirs].sort();
}

describe.skipIf(!isRoot)("weft demo", () => {
  it("three nodes on etcd, two Pods each: every Pod reaches every Pod with its own address, then the headline benchmark; nothing left", () => {
    const before = leftovers();
    const { status, out } = demo(["--seconds", "1"]);
    expect(out).toContain('registry "etcd"');
    expect(out).not.toContain("demo failed");
    const rows = out.split("\n").filter((l) => /^ {2}n\d:10\.244\./.test(l));
    expect(rows).toHaveLength(6);
    for (const row of rows) expect(row.match(/✓/g)).toHaveLength(5);
    expect(out).toMatch(/weft {11}[\d.]+ Gbit\/s \([\d.]+×\)/);
    expect(out).toMatch(/kernel VXLAN {3}[\d.]+ Gbit\/s/);
    expect(status).toBe(0);
    expect(leftovers()).toEqual(before);
  });

  it("a step that fails is named, exits 1 and leaves nothing behind", () => {
    const before = leftovers();
    const { status, out } = demo(["--registry", "kube", "--nodes", "2", "--pods", "1"], { WEFT_K8S_BIN: "/nonexistent" });
    expect(out).toMatch(/demo failed: step "cluster up: 2 nodes, [^"]+" failed: registry "kube": missing \/nonexistent\/kube-apiserver/);
    expect(status).toBe(1);
    expect(leftovers()).toEqual(before);
  });

  it("--keep leaves a working cluster on the file registry, and --down takes it away", () => {
    const before = leftovers();
    const { status, out } = demo(["--registry", "file", "--nodes", "2", "--pods", "1", "--seconds", "1", "--keep"]);
    expect(status).toBe(0);
    const prefix = /prefix (wl[0-9a-f]{4})/.exec(out)?.[1];
    expect(prefix, out).toBeDefined();
    try {
      const ping = /ip netns exec (\S+) ping (\S+)/.exec(out)!;
      expect(execFileSync("ip", ["netns", "exec", ping[1], "ping", "-c", "2", "-W", "2", ping[2]], { encoding: "utf8" })).toContain("2 received");
    } finally {
      expect(demo(["--down", prefix!]).status).toBe(0);
    }
    expect(leftovers()).toEqual(before);
  });
});
