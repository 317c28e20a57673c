// scripts/ensure-deps.sh installs only what is missing: with every command and file present (as after `npm test`'s own
// first step), it asks apt-get for nothing.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/paths.js";

describe("ensure-deps.sh", () => {
  it("with nothing missing, calls apt-get not at all and prints nothing", () => {
    const script = join(PACKAGE_ROOT, "scripts", "ensure-deps.sh");
    const out = execFileSync("bash", ["-c", `apt-get() { echo "apt-get $*"; }; export -f apt-get; source "${script}"; ensure_debian_packages`],
      { encoding: "utf8" });
    expect(out).toBe("");
  });
});
