// Where the agent writes net sysctls (ip_forward, disable_ipv6 on weft0, accept_dad in a Pod). A container that is not
// privileged sees /proc/sys read-only, so the DaemonSet mounts the host's /proc/sys/net writable at /host/proc/sys/net and
// sets WEFT_PROC_SYS=/host/proc/sys (docs/install.md). A net sysctl file resolves in the network namespace of the thread that
// opens it, through either path, so the same file names reach a Pod's namespace after setns.
import { join } from "node:path";

export function sysctlPath(name: string): string {
  return join(process.env.WEFT_PROC_SYS || "/proc/sys", name);
}
