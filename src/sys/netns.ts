// Network namespaces: setns is per thread, and Node runs a thread's JavaScript on that one thread, so withNetns switches
// the calling thread into a namespace, runs a synchronous function there and switches back. Every fd opened meanwhile
// (sockets, netlink, TUN) stays bound to the namespace it was opened in.
import { CLONE_NEWNET, O_RDONLY, SysError, check, closeFd, lastErrno, libc, openPath } from "./libc.js";

/** The calling thread's own network namespace (not the process's: threads may differ). */
export const CURRENT_NETNS = "/proc/thread-self/ns/net";

/** A namespace named by `ip netns add NAME`. */
export function netnsPath(name: string): string {
  return name.includes("/") ? name : `/var/run/netns/${name}`;
}

/** Opens a namespace file (a path, or an `ip netns` name) read-only; the caller closes the fd. */
export function openNetns(pathOrName: string): number {
  return openPath(netnsPath(pathOrName), O_RDONLY);
}

function enter(fd: number, what: string): void {
  check("setns", libc.setns(fd, CLONE_NEWNET), what);
}

/**
 * Runs `fn` with the calling thread in network namespace `target` (a path, an `ip netns` name, or an open fd), then
 * returns to the thread's original namespace, also when fn throws. `fn` must be synchronous: an await would resume
 * after the switch back.
 */
export function withNetns<T>(target: string | number, fn: () => T): T {
  const original = openNetns(CURRENT_NETNS);
  let targetFd = -1;
  try {
    targetFd = typeof target === "number" ? target : openNetns(target);
    enter(targetFd, `into ${typeof target === "number" ? `fd ${target}` : netnsPath(target)}`);
    try {
      const result = fn();
      if (result instanceof Promise) throw new Error("withNetns: fn must be synchronous (it returned a Promise)");
      return result;
    } finally {
      // Staying in the wrong namespace would silently misroute everything this thread does next: fail loudly.
      if (libc.setns(original, CLONE_NEWNET) < 0) throw new SysError("setns", lastErrno(), "back to the original namespace");
    }
  } finally {
    if (typeof target !== "number" && targetFd >= 0) closeFd(targetFd);
    closeFd(original);
  }
}

/**
 * Moves the calling thread into namespace `target` and leaves it there (for a test or bench process that must talk to a
 * server inside a lab namespace over async sockets, which withNetns cannot cover); the returned function moves it back.
 */
export function enterNetns(target: string): () => void {
  const original = openNetns(CURRENT_NETNS);
  const fd = openNetns(target);
  try {
    enter(fd, `into ${netnsPath(target)}`);
  } catch (err) {
    closeFd(original);
    throw err;
  } finally {
    closeFd(fd);
  }
  return () => {
    if (libc.setns(original, CLONE_NEWNET) < 0) throw new SysError("setns", lastErrno(), "back to the original namespace");
    closeFd(original);
  };
}
