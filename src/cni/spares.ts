// Empty files made ahead of need. On ext4, creating a file is most of what writing a small one costs (~0.1 ms of inode and
// journal work, against ~15 µs for a rename or a link), so a call that needs a new file (an attachment's record, an
// address's owner) writes into one made earlier and renames or links it into place; the next one is made once the
// caller's turn of the event loop is over, when nothing waits for it.
//
//   <dir>/<prefix><pid>-<n>   empty until taken; holding what it was taken for when a process died before placing it
//
// A spare belongs to the process named in it: whoever opens the directory next removes those of processes that are gone.
import { closeSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

let counter = 0;

/** A process of that pid exists (EPERM: one we may not signal, alive all the same). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class SpareFiles {
  private ready: string | undefined;
  private refilling = false;

  constructor(readonly dir: string, readonly prefix: string) {
    this.removeAbandoned();
  }

  /**
   * A file of this process in `dir` holding `text`, to be renamed or linked into place in the same file system (and the
   * caller's to remove if it is not).
   */
  fill(text: string): string {
    const spare = this.ready;
    this.ready = undefined;
    this.refill();
    if (spare !== undefined) {
      try {
        const fd = openSync(spare, "r+");
        try {
          writeSync(fd, text, 0);
        } finally {
          closeSync(fd);
        }
        return spare;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err; // removed under us: make one now
      }
    }
    const path = this.newName();
    writeFileSync(path, text, { flag: "wx", mode: 0o600 });
    return path;
  }

  /** Spares of processes that are gone (killed with one in hand, or before taking theirs). */
  removeAbandoned(): void {
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(this.prefix)) continue;
      const pid = Number(name.slice(this.prefix.length).split("-")[0]);
      if (pid !== process.pid && !processAlive(pid)) rmSync(join(this.dir, name), { force: true });
    }
  }

  private newName(): string {
    return join(this.dir, `${this.prefix}${process.pid}-${++counter}`);
  }

  private refill(): void {
    if (this.refilling) return;
    this.refilling = true;
    setImmediate(() => {
      this.refilling = false;
      if (this.ready !== undefined) return;
      const path = this.newName();
      try {
        writeFileSync(path, "", { flag: "wx", mode: 0o600 });
        this.ready = path;
      } catch {
        // The directory is gone (removed with its state): the next fill makes its file itself.
      }
    });
  }
}
