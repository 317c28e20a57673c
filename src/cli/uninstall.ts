// `weft uninstall`: removes what weft leaves on a node on purpose when its agent stops (docs/install.md, "Uninstall"):
// the CNI conflist and plugin, the persistent device weft0 with its routes, weft's blackhole routes, the stale socket and
// subnet.env. An agent stop never does this, so that an upgrade is not an outage; this command is the explicit end.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { removeOverlayDevice } from "../agent/device.js";
import { callAgent } from "../control/api-server.js";
import { subnetEnvPath } from "../control/subnet-env.js";
import { DEFAULT_SOCKET } from "./install-cni.js";

export interface UninstallOptions {
  device?: string;
  socket?: string;
  binDir?: string;
  confDir?: string;
  /** The network name install-cni used (the conflist is 10-<name>.conflist). */
  name?: string;
}

export async function runUninstall({
  device = "weft0",
  socket = DEFAULT_SOCKET,
  binDir = "/opt/cni/bin",
  confDir = "/etc/cni/net.d",
  name = "weft",
}: UninstallOptions = {}): Promise<number> {
  if (await agentAnswers(socket)) {
    console.error(`weft uninstall: an agent is running on ${socket}: stop it first (kubectl delete -f deploy/, or stop its service)`);
    return 1;
  }
  const removed: string[] = [];
  try {
    const conflist = join(confDir, `10-${name}.conflist`);
    if (existsSync(conflist)) {
      if (!isWeftConflist(conflist)) throw new Error(`${conflist} does not start with the weft plugin: left alone`);
      rmSync(conflist);
      removed.push(conflist);
    }
    const plugin = join(binDir, "weft");
    if (existsSync(plugin)) {
      rmSync(plugin);
      removed.push(plugin);
    }
    removed.push(...removeOverlayDevice(device));
    for (const file of [socket, subnetEnvPath(socket)]) {
      if (!existsSync(file)) continue;
      rmSync(file);
      removed.push(file);
    }
  } catch (err) {
    console.error(`weft uninstall: ${(err as Error).message}`);
    removed.forEach((r) => console.log(`removed ${r}`));
    return 1;
  }
  if (removed.length === 0) console.log("weft uninstall: nothing of weft's found on this node");
  removed.forEach((r) => console.log(`removed ${r}`));
  return 0;
}

async function agentAnswers(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false;
  try {
    await callAgent(socket, { op: "status" }, 2000);
    return true;
  } catch {
    return false;
  }
}

function isWeftConflist(path: string): boolean {
  try {
    const list = JSON.parse(readFileSync(path, "utf8")) as { plugins?: { type?: unknown }[] };
    return list.plugins?.[0]?.type === "weft";
  } catch {
    return false;
  }
}
