// Processes the lab starts inside its namespaces. Their output goes straight to a log file (not through a pipe to this
// process), so they keep running unharmed when the lab is left up after the process that built it has exited.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";

/** `ip netns exec ns command ...args`, stdout and stderr appended to logFile. */
export function spawnInNetns(ns: string, command: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, "a");
  try {
    return spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
}
