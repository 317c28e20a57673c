// Which weft this is: the package version and the commit it was built from (build/version.json, written by
// `npm run build`), as one token, e.g. "0.1.0-1a2b3c4". `weft --version`, the agent's start line, weft_info{version} and
// the image tag all show this same string, so during a rolling upgrade each node says which weft it runs.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../paths.js";

export interface BuildInfo {
  /** package.json's version. */
  version: string;
  /** Short commit hash ("-dirty" when tracked files had changes), null when built outside a git checkout without one. */
  commit: string | null;
  /** `version-commit`, or the version alone without a commit. */
  id: string;
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const file = join(PACKAGE_ROOT, "build", "version.json");
  const built = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { version?: unknown; commit?: unknown }) : {};
  const version = typeof built.version === "string"
    ? built.version
    : String(JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).version);
  const commit = typeof built.commit === "string" ? built.commit : null;
  cached = { version, commit, id: commit ? `${version}-${commit}` : version };
  return cached;
}
