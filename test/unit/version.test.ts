// Which weft this is: build/version.json written at build time (commit from WEFT_COMMIT or git), `weft --version`
// printing it as one token (control-metrics.test.ts checks weft_info carries the same).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildInfo } from "../../src/control/version.js";
import { PACKAGE_ROOT } from "../../src/paths.js";

const pkgVersion = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).version as string;
const script = join(PACKAGE_ROOT, "scripts", "write-version.mjs");

describe("weft's version and build", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-version-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the build writes the package version and the commit it was given (an image build has no .git)", () => {
    const out = join(dir, "given.json");
    execFileSync(process.execPath, [script, out], { env: { ...process.env, WEFT_COMMIT: "1a2b3c4" } });
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual({ version: pkgVersion, commit: "1a2b3c4" });
  });

  it("a WEFT_COMMIT that is not a commit hash is refused and nothing is written", () => {
    const out = join(dir, "bad.json");
    const r = spawnSync(process.execPath, [script, out], { env: { ...process.env, WEFT_COMMIT: "main; rm -rf /" }, encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("WEFT_COMMIT");
    expect(() => readFileSync(out)).toThrow();
  });

  it("without WEFT_COMMIT the commit is git's HEAD (this is a checkout)", () => {
    const out = join(dir, "git.json");
    execFileSync(process.execPath, [script, out], { env: { ...process.env, WEFT_COMMIT: "" } });
    const head = execFileSync("git", ["-C", PACKAGE_ROOT, "rev-parse", "--short=7", "HEAD"], { encoding: "utf8" }).trim();
    expect(JSON.parse(readFileSync(out, "utf8")).commit).toMatch(new RegExp(`^${head}(-dirty)?$`));
  });

  it("`weft --version` prints version-commit, one token usable as an image tag", () => {
    const printed = execFileSync(process.execPath, [join(PACKAGE_ROOT, "bin", "weft"), "--version"], { encoding: "utf8" }).trim();
    expect(printed).toBe(buildInfo().id);
    expect(printed.startsWith(`${pkgVersion}-`)).toBe(true);
    expect(printed).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/);
  });
});
