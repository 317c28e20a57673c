// The local checks of the agent's start (docs/agent.md, "Start-up"): everything here happens before the node's record is
// published, and every refusal is a ConfigError naming the key whose value does not work on this machine.
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type AgentConfig, ConfigError } from "../control/config.js";
import { makeDirectories } from "../control/directories.js";
import { writeFileAtomic } from "../control/atomic-file.js";
import type { Logger } from "../control/log.js";
import { listAddresses, listLinks, rtnl, type Underlay, underlayFor } from "../sys/netlink.js";

const ADDRESS_POLL_MS = 500;

/** Runs `fn`; any failure that is not already a ConfigError becomes one naming `key`. */
export async function naming<T>(key: string, what: string, expected: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(key, `${what}: ${(e as Error).message}`, expected);
  }
}

/** Creates stateDir when absent (returning what it made) and proves a file can be created in it. */
export function checkStateDir(dir: string): string[] {
  const refuse = (problem: string) => new ConfigError("stateDir", problem, "a writable directory");
  let made: string[];
  try {
    made = makeDirectories(dir);
  } catch (e) {
    throw refuse(`cannot create ${dir}: ${(e as Error).message}`);
  }
  if (!statSync(dir).isDirectory()) throw refuse(`${dir} is not a directory`);
  const probe = join(dir, `.weft-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    closeSync(openSync(probe, "wx", 0o600));
    unlinkSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw refuse(code === "EROFS" ? `${dir} is on a read-only file system` : `cannot write in ${dir}: ${(e as Error).message}`);
  }
  return made;
}

/**
 * The underlay interface holding publicIP (and publicIPv6), read over rtnetlink: an address counts as soon as the kernel
 * has it, whether or not its link has carrier yet. An address that is not there yet (the NIC comes up after the agent, DHCP
 * is slow) is waited for, up to publicIPWait seconds, with a log line saying so; then the refusal names the key.
 */
export async function awaitUnderlay(config: AgentConfig, log: Logger, signal: AbortSignal): Promise<Underlay> {
  const wanted: [key: "publicIP" | "publicIPv6", address: string][] = [["publicIP", config.publicIP]];
  if (config.publicIPv6 !== undefined) wanted.push(["publicIPv6", config.publicIPv6]);
  const deadline = Date.now() + config.publicIPWait * 1000;
  let logged = false;
  for (;;) {
    const missing = wanted.filter(([, address]) => underlayFor(address) === null);
    if (missing.length === 0) {
      if (logged) log.info({ publicIP: config.publicIP }, "publicIP is present");
      return underlayFor(config.publicIP)!;
    }
    const [key, address] = missing[0];
    if (Date.now() >= deadline) {
      const waited = config.publicIPWait > 0 ? ` (waited ${config.publicIPWait} s, publicIPWait)` : "";
      throw new ConfigError(key, `${address} is not an address of this machine${waited}`, `one of ${machineAddresses().join(", ") || "(no addresses found)"}`);
    }
    if (!logged) {
      log.info({ [key]: address, waitSeconds: config.publicIPWait }, `waiting for ${key} to appear on an interface`);
      logged = true;
    }
    await sleep(Math.min(ADDRESS_POLL_MS, Math.max(1, deadline - Date.now())), undefined, { signal });
  }
}

/** Every usable address in this network namespace with its link, for the refusal's "expected" list. */
function machineAddresses(): string[] {
  return rtnl((nl) => {
    const names = new Map(listLinks(nl).map((l) => [l.index, l.name]));
    return listAddresses(nl).filter((a) => a.usable).map((a) => `${a.address} (${names.get(a.index) ?? a.index})`);
  });
}

/** A file's content before this start touched it, and a way to put that back. */
export function preserveFile(path: string): () => void {
  let before: string | null;
  try {
    before = readFileSync(path, "utf8");
  } catch {
    before = null;
  }
  return () => {
    try {
      if (before === null) unlinkSync(path);
      else if (readFileSync(path, "utf8") !== before) writeFileAtomic(path, before);
    } catch {
      // nothing to undo
    }
  };
}

