// Directories the agent creates for its files, remembered so that a failed start can remove exactly those again and never
// touches (or chmods) a directory it did not make.
import { chmodSync, lstatSync, mkdirSync, rmdirSync } from "node:fs";
import { dirname } from "node:path";

/** Directories `mkdir -p` made for `path`, outermost first; `mode` applies to `path` itself, the parents get the default. */
export function makeDirectories(path: string, mode?: number): string[] {
  const missing: string[] = [];
  for (let dir = path; !exists(dir); dir = dirname(dir)) missing.unshift(dir);
  const made: string[] = [];
  for (const dir of missing) {
    try {
      mkdirSync(dir, dir === path && mode !== undefined ? { mode } : {});
    } catch (e) {
      // Another process made it in the meantime: it is not ours to chmod or remove.
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw e;
    }
    made.push(dir);
    // mkdir's mode passes through the umask; a directory we made ourselves gets exactly the mode we asked for.
    if (dir === path && mode !== undefined) chmodSync(dir, mode);
  }
  return made;
}

/** Removes the directories makeDirectories made, innermost first, stopping at one that is no longer empty. */
export function removeDirectories(made: string[]): void {
  for (const dir of [...made].reverse()) {
    try {
      rmdirSync(dir);
    } catch {
      return;
    }
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}
