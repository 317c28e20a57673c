// An exclusive lock between the agents of one machine: a lock file created with O_EXCL holding who took it. A lock is stale
// when its holder is a dead process on this host, or when it is older than `staleMs` (holders keep it for milliseconds;
// the age rule also covers holders in another PID namespace, whose PIDs mean nothing here).
import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

export interface LockOptions {
  /** Give up waiting after this long. */
  timeoutMs?: number;
  /** A lock older than this is stale whoever holds it. */
  staleMs?: number;
}

interface Holder {
  pid: number;
  host: string;
  token: string;
}

export class FileLock {
  private constructor(readonly path: string, private readonly token: string) {}

  /** Waits for the lock; throws, naming the holder, after timeoutMs. */
  static async acquire(path: string, options: LockOptions = {}): Promise<FileLock> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    const staleMs = options.staleMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const token = randomBytes(8).toString("hex");
    const content = JSON.stringify({ pid: process.pid, host: hostname(), token } satisfies Holder);
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(path, "wx", 0o644);
        try {
          writeSync(fd, content);
        } finally {
          closeSync(fd);
        }
        return new FileLock(path, token);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      if (breakIfStale(path, staleMs)) continue;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for lock ${path} (held by ${describeHolder(path)})`);
      }
      await sleep(Math.min(50, 2 + attempt) * (0.5 + Math.random()));
    }
  }

  /** True while the lock file is still ours (it was not broken as stale behind our back). */
  held(): boolean {
    return readHolder(this.path)?.token === this.token;
  }

  release(): void {
    if (!this.held()) return;
    try {
      unlinkSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
}

export async function withFileLock<T>(path: string, options: LockOptions, fn: (lock: FileLock) => Promise<T> | T): Promise<T> {
  const lock = await FileLock.acquire(path, options);
  try {
    return await fn(lock);
  } finally {
    lock.release();
  }
}

function readHolder(path: string): Holder | undefined {
  try {
    return parseHolder(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** The holder a lock file names; undefined while it is still empty (created, not yet written) or garbled. */
function parseHolder(text: string): Holder | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<Holder>;
    if (typeof parsed.pid === "number" && typeof parsed.host === "string" && typeof parsed.token === "string") {
      return parsed as Holder;
    }
  } catch {
    // fall through
  }
  return undefined;
}

function describeHolder(path: string): string {
  const h = readHolder(path);
  return h ? `pid ${h.pid} on ${h.host}` : "an unknown holder";
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes a stale lock; true when the caller should retry at once (lock gone or removed). */
function breakIfStale(path: string, staleMs: number): boolean {
  let content: string;
  let ageMs: number;
  try {
    content = readFileSync(path, "utf8");
    ageMs = Date.now() - statSync(path).mtimeMs;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw e;
  }
  const holder = parseHolder(content);
  const deadHere = holder !== undefined && holder.host === hostname() && !processAlive(holder.pid);
  if (!deadHere && ageMs < staleMs) return false;
  // Move the stale file aside rather than unlinking it: only one waiter wins the rename, and the winner can check that it
  // moved the lock it judged (not a fresh one taken in between) and put a fresh one back.
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw e;
  }
  const moved = readFileSync(aside, "utf8");
  if (moved !== content) {
    try {
      linkSync(aside, path);
    } catch {
      // someone took the lock meanwhile; the fresh holder we moved will find it is no longer held
    }
  }
  unlinkSync(aside);
  return moved === content;
}
