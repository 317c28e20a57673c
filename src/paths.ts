// Where weft's own files are, whether running from src/ (tests) or dist/ (the built CLI).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, "utf8")).name === "weft") return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("weft: cannot find the package root (package.json named weft)");
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot();
export const CORE_WASM = join(PACKAGE_ROOT, "build", "weft.wasm");
/** The batched TUN read/write helpers (src/sys/batchio/weftio.c), built by `npm run build`. */
export const WEFTIO_LIB = join(PACKAGE_ROOT, "build", "sys", "libweftio.so");
export const RESULTS_DIR = join(PACKAGE_ROOT, "bench", "results");
