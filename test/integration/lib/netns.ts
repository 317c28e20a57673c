// Test sandboxes: network namespaces and veth pairs made with `ip` (tests may shell out; src/ may not), all named with
// one random per-run prefix and all removed by cleanup(), which also runs at process exit if a test forgot.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/** Runs `ip args…` and returns stdout; throws with ip's stderr on failure. */
export function ip(...args: string[]): string {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`ip ${args.join(" ")}: ${stderr.trim() || (err as Error).message}`);
  }
}

/** `ip -j …` parsed; `ns` runs it inside that namespace. */
export function ipJson<T = unknown>(ns: string | null, ...args: string[]): T {
  const out = ns ? ip("-n", ns, "-j", ...args) : ip("-j", ...args);
  return JSON.parse(out.trim() || "[]") as T;
}

/** Runs a command inside namespace `ns`. */
export function nsExec(ns: string, cmd: string, ...args: string[]): string {
  return execFileSync("ip", ["netns", "exec", ns, cmd, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export interface VethEnd {
  ns: string;
  name: string;
  /** Addresses to add ("10.1.0.1/24", "fd00::1/64"; IPv6 ones without DAD). */
  addresses?: string[];
}

export class Sandbox {
  /** "wsy" + 4 hex digits: every namespace and link this run makes starts with it. */
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly exitHook = () => this.cleanup();

  constructor() {
    this.prefix = `wsy${randomBytes(2).toString("hex")}`;
    process.once("exit", this.exitHook);
  }

  /** A fresh namespace `<prefix><suffix>` with loopback up and IPv6 duplicate address detection off (no 1 s waits). */
  netns(suffix: string): string {
    const name = `${this.prefix}${suffix}`;
    ip("netns", "add", name);
    this.namespaces.push(name);
    ip("-n", name, "link", "set", "lo", "up");
    nsExec(name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
    return name;
  }

  /** A veth pair between two namespaces, both ends up, with their addresses. */
  veth(a: VethEnd, b: VethEnd): void {
    ip("-n", a.ns, "link", "add", a.name, "type", "veth", "peer", "name", b.name, "netns", b.ns);
    for (const end of [a, b]) {
      for (const cidr of end.addresses ?? []) {
        ip("-n", end.ns, "addr", "add", cidr, "dev", end.name, ...(cidr.includes(":") ? ["nodad"] : []));
      }
      ip("-n", end.ns, "link", "set", end.name, "up");
    }
  }

  /** Deletes every namespace (and so every link inside) this sandbox made. Safe to call twice. */
  cleanup(): void {
    process.removeListener("exit", this.exitHook);
    for (const name of this.namespaces.splice(0).reverse()) {
      try {
        ip("netns", "del", name);
      } catch (err) {
        console.warn(`sandbox cleanup: ${(err as Error).message}`);
      }
    }
  }
}
