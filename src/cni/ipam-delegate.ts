// IPAM delegated to another plugin (config "ipam": {"type": "host-local", …}), the way the reference plugins do it: find
// the executable in CNI_PATH, run it with our own CNI_* environment (CNI_COMMAND set to the operation) and our stdin,
// and read its result or its CNI error.
// One liberty: when the plugin refuses the config's cniVersion (code 1) we ask it for its versions and call again with
// the newest one it shares with us, so a 1.1.0 network can still use plugins released before 1.1.0.
import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { join } from "node:path";
import { type Env, type NetConf, SUPPORTED_VERSIONS, compareVersions, pluginDirsFrom } from "./config.js";
import { CniError, ERR } from "./errors.js";
import type { IpamResult } from "./ipam.js";
import { parseResult } from "./result.js";

const TIMEOUT_MS = 30_000;
const MAX_OUTPUT = 1 << 20;

export type DelegateCommand = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";

/** The executable `type` in the CNI_PATH directories, first match wins. */
export function findPlugin(type: string, dirs: string[]): string {
  for (const dir of dirs) {
    const path = join(dir, type);
    try {
      if (statSync(path).isFile()) {
        accessSync(path, constants.X_OK);
        return path;
      }
    } catch {
      // not in this directory
    }
  }
  throw new CniError(ERR.INVALID_CONFIG, `IPAM plugin "${type}" not found in CNI_PATH (${dirs.join(":")})`);
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(path: string, env: Env, stdin: string): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], { env: env as NodeJS.ProcessEnv, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout = (stdout + d).slice(0, MAX_OUTPUT)));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-MAX_OUTPUT)));
    child.stdin.on("error", () => undefined);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (signal === "SIGKILL" && code === null) {
        reject(new CniError(ERR.TRY_AGAIN_LATER, `${path} did not answer within ${TIMEOUT_MS / 1000} s`, stderr.trim() || undefined));
      } else {
        resolve({ code, signal, stdout, stderr });
      }
    });
    child.stdin.end(stdin);
  });
}

/** The plugin's CNI error (its own code, msg and details), or an I/O failure when it printed none. */
function failure(type: string, command: DelegateCommand, exit: Exit): CniError {
  try {
    const e = JSON.parse(exit.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === "number" && typeof e.msg === "string") {
      return new CniError(e.code, `IPAM plugin ${type} (${command}): ${e.msg}`, typeof e.details === "string" ? e.details : undefined);
    }
  } catch {
    // not a CNI error
  }
  const how = exit.code !== null ? `exited with ${exit.code}` : `was killed by ${exit.signal}`;
  return new CniError(ERR.IO, `IPAM plugin ${type} (${command}) ${how}`, (exit.stderr || exit.stdout).trim() || undefined);
}

// What each plugin executable (path and modification time: an upgrade is a new plugin) said VERSION supports.
const supportedVersions = new Map<string, string[]>();

export class DelegatedIpam {
  private readonly path: string;
  private readonly identity: string;

  constructor(private readonly conf: NetConf & { ipam: NonNullable<NetConf["ipam"]> }, private readonly env: Env) {
    this.path = findPlugin(conf.ipam.type, pluginDirsFrom(env));
    this.identity = `${this.path}@${statSync(this.path).mtimeMs}`;
  }

  get type(): string {
    return this.conf.ipam.type;
  }

  private envFor(command: DelegateCommand): Env {
    const out: Env = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(this.env)) if (k.startsWith("CNI_") && v !== undefined) out[k] = v;
    out.CNI_COMMAND = command;
    return out;
  }

  private stdinFor(version: string): string {
    return version === this.conf.cniVersion ? this.conf.text : JSON.stringify({ ...this.conf.raw, cniVersion: version });
  }

  /**
   * Runs the plugin; returns its stdout. Tried with the config's version first; VERSION is asked only after a refusal
   * for the version (code 1), and from then on the shared version is used straight away.
   */
  async call(command: DelegateCommand): Promise<string> {
    const known = supportedVersions.get(this.identity);
    const version = known && !known.includes(this.conf.cniVersion) ? (this.sharedVersion(known) ?? this.conf.cniVersion) : this.conf.cniVersion;
    const exit = await run(this.path, this.envFor(command), this.stdinFor(version));
    if (exit.code === 0) return exit.stdout;
    const err = failure(this.type, command, exit);
    if (err.code === ERR.INCOMPATIBLE_VERSION && known === undefined && !(await this.versions()).includes(this.conf.cniVersion)) {
      return this.call(command);
    }
    throw err;
  }

  private async versions(): Promise<string[]> {
    const known = supportedVersions.get(this.identity);
    if (known) return known;
    const exit = await run(this.path, this.envFor("VERSION"), JSON.stringify({ cniVersion: this.conf.cniVersion }));
    let theirs: unknown;
    try {
      theirs = (JSON.parse(exit.stdout) as { supportedVersions?: unknown }).supportedVersions;
    } catch {
      theirs = undefined;
    }
    const list = Array.isArray(theirs) ? theirs.filter((v): v is string => typeof v === "string") : [];
    supportedVersions.set(this.identity, list);
    return list;
  }

  /** The newest version below the config's that the plugin and weft both support. */
  private sharedVersion(theirs: string[]): string | undefined {
    return [...SUPPORTED_VERSIONS]
      .filter((v) => theirs.includes(v) && compareVersions(v, this.conf.cniVersion) < 0)
      .sort(compareVersions)
      .pop();
  }

  async add(): Promise<IpamResult> {
    const stdout = await this.call("ADD");
    let value: unknown;
    try {
      value = JSON.parse(stdout);
    } catch {
      throw new CniError(ERR.DECODE, `IPAM plugin ${this.type} (ADD) printed something that is not JSON`, stdout.slice(0, 500));
    }
    const r = parseResult(value, `IPAM plugin ${this.type} result`);
    if (r.ips.length === 0) throw new CniError(ERR.INVALID_CONFIG, `IPAM plugin ${this.type} returned no address`);
    const dns = Object.keys(r.dns).length > 0 ? r.dns : undefined;
    return { ips: r.ips.map((ip) => ({ address: ip.address, gateway: ip.gateway })), routes: r.routes, dns };
  }

  async del(): Promise<void> {
    await this.call("DEL");
  }

  async check(): Promise<void> {
    await this.call("CHECK");
  }

  /** GC and STATUS are 1.1.0 verbs: a plugin that does not speak 1.1.0 has nothing to say about them, which is no failure. */
  async optional(command: "GC" | "STATUS"): Promise<void> {
    if (!(await this.versions()).includes(this.conf.cniVersion)) return;
    await this.call(command);
  }
}
