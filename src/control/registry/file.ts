// registry.type "file": a JSON array of node records shared by the agents of one machine (docs/agent.md). Each agent rewrites
// only its own entry, under a lock, by replacing the whole file; every other entry (other agents', hand-written kernel or
// flannel nodes, even entries we cannot parse) is written back untouched. Changes are noticed through fs.watch on the
// directory (renames replace the file, so watching the file itself would lose track) and a slower poll as a fallback.
import { EventEmitter } from "node:events";
import { type FSWatcher, mkdirSync, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import { writeFileAtomic } from "../atomic-file.js";
import { type LockOptions, withFileLock } from "./lock.js";
import {
  type NodeRecord, type Registry, type RegistryEvents, checkOwnRecord, describeEntry, parseNodeRecord, RecordError, sameRecord,
} from "./record.js";

export interface FileRegistryOptions {
  path: string;
  /** Our own record's name: the only entry upsertSelf/removeSelf touch. */
  nodeName: string;
  log: Logger;
  /** Poll interval of the fallback watcher. */
  pollMs?: number;
  /** Changes closer together than this are read once. */
  debounceMs?: number;
  lock?: LockOptions;
}

export class FileRegistry extends EventEmitter<RegistryEvents> implements Registry {
  private records = new Map<string, NodeRecord>();
  /** Text of the last file content acted on; a reload that finds the same text does nothing. */
  private lastText: string | null | undefined;
  private watcher?: FSWatcher;
  private pollTimer?: NodeJS.Timeout;
  private debounceTimer?: NodeJS.Timeout;
  private readonly lockPath: string;

  constructor(private readonly options: FileRegistryOptions) {
    super();
    this.lockPath = `${options.path}.lock`;
  }

  get path(): string {
    return this.options.path;
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    this.reload(false);
    this.watchDirectory();
    this.pollTimer = setInterval(() => this.reload(true), this.options.pollMs ?? 1000);
    this.pollTimer.unref();
  }

  list(): NodeRecord[] {
    return [...this.records.values()];
  }

  async claimSelf(decide: (records: readonly NodeRecord[]) => NodeRecord | Promise<NodeRecord>): Promise<NodeRecord> {
    mkdirSync(dirname(this.path), { recursive: true });
    const record = await withFileLock(this.lockPath, this.options.lock ?? {}, async (lock) => {
      const entries = this.readEntriesForUpdate();
      const chosen = await decide(this.validRecords(entries, false));
      const mine = checkOwnRecord(chosen, this.options.nodeName);
      const at = entries.findIndex((e) => this.isOurs(e));
      const others = entries.filter((e) => !this.isOurs(e));
      const next = at < 0 ? [...others, mine] : [...others.slice(0, at), mine, ...others.slice(at)];
      this.commit(lock.held(), next);
      return mine;
    });
    this.reload(true);
    return record;
  }

  async upsertSelf(record: NodeRecord): Promise<void> {
    await this.claimSelf(() => record);
  }

  async removeSelf(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    await withFileLock(this.lockPath, this.options.lock ?? {}, (lock) => {
      const entries = this.readEntriesForUpdate();
      const rest = entries.filter((e) => !this.isOurs(e));
      if (rest.length !== entries.length) this.commit(lock.held(), rest);
    });
    this.reload(true);
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
  }

  private isOurs(entry: unknown): boolean {
    return typeof entry === "object" && entry !== null && (entry as Record<string, unknown>).nodeName === this.options.nodeName;
  }

  private commit(stillHeld: boolean, entries: unknown[]): void {
    if (!stillHeld) throw new Error(`lost the lock ${this.lockPath} (judged stale while we held it); not writing ${this.path}`);
    writeFileAtomic(this.path, JSON.stringify(entries, null, 2) + "\n");
  }

  /** The raw entries, for a rewrite. A file we cannot parse is an error here: rewriting it would destroy someone's edit. */
  private readEntriesForUpdate(): unknown[] {
    const text = this.readText();
    if (text === null) return [];
    const entries = parseEntries(text);
    if (typeof entries === "string") throw new Error(`cannot update ${this.path}: ${entries}; fix or remove the file`);
    return entries;
  }

  private readText(): string | null {
    try {
      return readFileSync(this.path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  private validRecords(entries: unknown[], warn: boolean): NodeRecord[] {
    const byName = new Map<string, NodeRecord>();
    entries.forEach((entry, i) => {
      try {
        const record = parseNodeRecord(entry);
        if (byName.has(record.nodeName)) throw new RecordError("a record with this nodeName came earlier in the file");
        byName.set(record.nodeName, record);
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        if (warn) this.options.log.warn({ file: this.path, record: describeEntry(entry, i), problem: e.message }, "skipping invalid node record");
      }
    });
    return [...byName.values()];
  }

  private watchDirectory(): void {
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.scheduleReload();
      });
      this.watcher.on("error", (err) => {
        this.options.log.warn({ file: this.path, err: err.message }, "watching the registry directory failed; polling only");
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (e) {
      this.options.log.warn({ file: this.path, err: (e as Error).message }, "cannot watch the registry directory; polling only");
    }
  }

  private scheduleReload(): void {
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => this.reload(true), this.options.debounceMs ?? 50);
    this.debounceTimer.unref();
  }

  /** Reads the file and, when it changed, applies it; a file that does not parse is reported and the last state kept. */
  private reload(emit: boolean): void {
    let text: string | null;
    try {
      text = this.readText();
    } catch (e) {
      this.options.log.warn({ file: this.path, err: (e as Error).message }, "cannot read the registry file; keeping the last records");
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    const entries = text === null ? [] : parseEntries(text);
    if (typeof entries === "string") {
      this.options.log.warn({ file: this.path, problem: entries }, "registry file is not a JSON array of node records; keeping the last records");
      return;
    }
    this.apply(this.validRecords(entries, true), emit);
  }

  private apply(next: NodeRecord[], emit: boolean): void {
    const previous = this.records;
    this.records = new Map(next.map((r) => [r.nodeName, r]));
    if (!emit) return;
    for (const [name, old] of previous) if (!this.records.has(name)) this.emit("removed", old);
    for (const [name, record] of this.records) {
      const old = previous.get(name);
      if (old && !sameRecord(old, record)) this.emit("changed", record, old);
    }
    for (const [name, record] of this.records) if (!previous.has(name)) this.emit("added", record);
  }
}

/** The array in `text`, or a string saying why there is none. Empty or blank text counts as an empty array. */
function parseEntries(text: string): unknown[] | string {
  if (text.trim() === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${(e as Error).message})`;
  }
  return Array.isArray(parsed) ? parsed : "the top level is not a JSON array";
}
