// How long each step of one CNI call took: the agent's debug line for the call carries it ("CNI call done", docs/cni.md,
// "Timing"), so a slow ADD says which step was slow.
export class Phases {
  private last = performance.now();
  /** Milliseconds per step, in the order the steps ran. */
  readonly ms: Record<string, number> = {};

  /** Ends the step `name` (started where the previous step ended). */
  lap(name: string): void {
    const now = performance.now();
    this.ms[name] = Math.round(((this.ms[name] ?? 0) + now - this.last) * 1000) / 1000;
    this.last = now;
  }
}
