// Host veths are deleted in batches. Deleting a veth costs the kernel an RCU grace period (~20 ms here) whether one device
// goes or fifty, and it blocks the thread that asks. So the DELs, GC sweeps and ADD undos that reach this point in one turn
// of the event loop put their veths in weft's device group, and one group deletion right after the turn removes them all:
// 200 Pods deleted at once cost a few grace periods instead of 200 (seconds of an event loop that also serves the agent).
import { deleteDoomed, deleteHostVeth, markDoomed } from "./wiring.js";

export class VethReaper {
  private batch: { names: string[]; done: Promise<void> } | null = null;

  /** Deletes host veth `name` along with the others going now; false when it was not there. */
  async delete(name: string): Promise<boolean> {
    if (!markDoomed(name)) return false;
    await this.join(name);
    return true;
  }

  private join(name: string): Promise<void> {
    if (!this.batch) {
      const names: string[] = [];
      const done = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          this.batch = null;
          try {
            this.flush(names);
            resolve();
          } catch (err) {
            reject(err);
          }
        });
      });
      this.batch = { names, done };
    }
    this.batch.names.push(name);
    return this.batch.done;
  }

  private flush(names: string[]): void {
    try {
      deleteDoomed();
    } catch {
      // Something in the group the kernel will not delete along (not ours): one by one, then.
      for (const name of names) deleteHostVeth(name);
    }
  }
}
