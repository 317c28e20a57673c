// `weft install-cni` into temporary plugin and config directories: the front end lands executable and working, the
// conflist is weft then portmap, and a second install replaces both files by rename (new inodes, no temporaries left).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CNI_FRONTEND, DEBIAN_PLUGINS_DIR, runInstallCni } from "../../src/cli/install-cni.js";
import { PACKAGE_ROOT } from "../../src/paths.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("weft install-cni integration test writes files as root would: skipped (not root)");

describe.skipIf(!isRoot)("weft install-cni (root)", () => {
  let dir: string, binDir: string, confDir: string;

  beforeAll(() => {
    if (!existsSync(CNI_FRONTEND)) execFileSync("npm", ["run", "--silent", "build:cni"], { cwd: PACKAGE_ROOT, stdio: "inherit" });
    dir = mkdtempSync(join(tmpdir(), "weft-install-cni-"));
    binDir = join(dir, "opt", "cni", "bin");
    confDir = join(dir, "etc", "cni", "net.d");
    vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "warn").mockImplementation(() => {});
  });
  afterAll(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it("installs an executable front end and a weft → portmap conflist", async () => {
    expect(await runInstallCni({ binDir, confDir, socket: "/run/weft/test.sock", mtu: 1400 })).toBe(0);
    const plugin = join(binDir, "weft");
    expect(statSync(plugin).mode & 0o777).toBe(0o755);
    expect(readFileSync(plugin).equals(readFileSync(CNI_FRONTEND))).toBe(true);
    const version = execFileSync(plugin, [], { env: { CNI_COMMAND: "VERSION" }, input: '{"cniVersion":"1.0.0"}' }).toString();
    expect(JSON.parse(version)).toMatchObject({ cniVersion: "1.0.0" });
    expect(JSON.parse(readFileSync(join(confDir, "10-weft.conflist"), "utf8"))).toEqual({
      cniVersion: "1.0.0",
      name: "weft",
      plugins: [
        { type: "weft", socket: "/run/weft/test.sock", mtu: 1400 },
        { type: "portmap", capabilities: { portMappings: true }, snat: true },
      ],
    });
  });

  it("a second install replaces both files by rename and leaves no temporaries", async () => {
    const before = [statSync(join(binDir, "weft")).ino, statSync(join(confDir, "10-weft.conflist")).ino];
    expect(await runInstallCni({ binDir, confDir })).toBe(0);
    const after = [statSync(join(binDir, "weft")).ino, statSync(join(confDir, "10-weft.conflist")).ino];
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(readdirSync(binDir).sort()).toEqual(existsSync(join(DEBIAN_PLUGINS_DIR, "portmap")) ? ["portmap", "weft"] : ["weft"]);
    expect(readdirSync(confDir)).toEqual(["10-weft.conflist"]);
    const conf = JSON.parse(readFileSync(join(confDir, "10-weft.conflist"), "utf8"));
    expect(conf.plugins[0]).toEqual({ type: "weft", socket: "/run/weft/weft.sock" });
  });

  it.skipIf(!existsSync(join(DEBIAN_PLUGINS_DIR, "portmap")))("links the distribution's portmap into a bin dir that lacks it, without a warning", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const bin = join(dir, "fresh-bin");
    expect(await runInstallCni({ binDir: bin, confDir: join(dir, "fresh-conf") })).toBe(0);
    expect(readlinkSync(join(bin, "portmap"))).toBe(join(DEBIAN_PLUGINS_DIR, "portmap"));
    expect(warn.mock.calls.flat().join(" ")).not.toContain("portmap");
  });

  it("warns that portmap is missing when neither the bin dir nor the distribution has it", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const bin = join(dir, "bare-bin");
    expect(await runInstallCni({ binDir: bin, confDir: join(dir, "bare-conf"), referencePluginsDir: join(dir, "no-plugins") })).toBe(0);
    expect(readdirSync(bin)).toEqual(["weft"]);
    expect(warn.mock.calls.flat().join(" ")).toContain("portmap is missing");
  });

  it("refuses, saying how to build it, when the front end is not built", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    expect(await runInstallCni({ binDir, confDir, source: join(dir, "missing", "weft") })).toBe(1);
    expect(error.mock.calls.flat().join(" ")).toContain("npm run build");
  });

  it("refuses a relative socket, a bad MTU and a bad network name before writing anything", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const other = join(dir, "untouched");
    expect(await runInstallCni({ binDir: other, confDir: other, socket: "weft.sock" })).toBe(1);
    expect(await runInstallCni({ binDir: other, confDir: other, mtu: 10 })).toBe(1);
    expect(await runInstallCni({ binDir: other, confDir: other, name: "-bad name" })).toBe(1);
    expect(existsSync(other)).toBe(false);
    expect(error.mock.calls.flat().join(" ")).toMatch(/--socket.*--mtu.*network name/s);
  });
});
