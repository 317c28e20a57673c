// The node namespace a CNI test's thread lives in (so host veths, gateway addresses and /32 routes land there, not in the
// machine's namespace), and the Pod namespaces; everything is named wcn<4 hex>… and removed by cleanup().
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { CLONE_NEWNET, CURRENT_NETNS, closeFd, libc, openNetns } from "../../../src/sys/index.js";
import { ip } from "./netns.js";

/** The node namespace the test thread lives in, and the Pod namespaces; all gone after cleanup(). */
export class NodeLab {
  readonly prefix = `wcn${randomBytes(2).toString("hex")}`;
  readonly node = `${this.prefix}node`;
  private readonly pods: string[] = [];
  private original = -1;

  enter(): void {
    ip("netns", "add", this.node);
    this.original = openNetns(CURRENT_NETNS);
    const fd = openNetns(this.node);
    if (libc.setns(fd, CLONE_NEWNET) < 0) throw new Error("setns into the node namespace failed");
    closeFd(fd);
    ip("link", "set", "lo", "up");
    execFileSync("sysctl", ["-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  }

  /** A Pod namespace; returns its path. */
  pod(suffix: string): string {
    const name = `${this.prefix}${suffix}`;
    ip("netns", "add", name);
    this.pods.push(name);
    return `/var/run/netns/${name}`;
  }

  removePod(path: string): void {
    const name = path.split("/").pop()!;
    ip("netns", "del", name);
    this.pods.splice(this.pods.indexOf(name), 1);
  }

  cleanup(): void {
    if (this.original >= 0) {
      libc.setns(this.original, CLONE_NEWNET);
      closeFd(this.original);
      this.original = -1;
    }
    for (const name of [...this.pods.splice(0), this.node]) {
      try {
        ip("netns", "del", name);
      } catch {
        // already gone
      }
    }
  }
}

