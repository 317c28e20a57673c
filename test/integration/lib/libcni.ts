// A small libcni for the end-to-end CNI tests: it calls plugins the way container runtimes do through
// containernetworking/cni's libcni (libcni/api.go, pkg/invoke), so that weft's front end meets exactly what it will meet on a
// node. Written from libcni's documented behaviour:
//
//  - ADD (AddNetworkList): every plugin of the conflist in order; each one's stdin is its own config with `name` and
//    `cniVersion` of the list injected, `prevResult` = the previous plugin's result, and `runtimeConfig` = those of the
//    runtime's capability arguments the plugin declares in `capabilities`. The final result is cached per
//    (network, containerID, ifname), with the config, netns, CNI_ARGS and capability arguments.
//  - DEL (DelNetworkList): the plugins in reverse order, each with `prevResult` = the cached ADD result (config version
//    ≥ 0.4.0), then the cache entry goes. A second DEL finds no cache entry and sends no prevResult.
//  - CHECK (CheckNetworkList, ≥ 0.4.0): in order, `prevResult` = the cached result.
//  - GC (GCNetworkList): DEL every cached attachment of the network the runtime no longer lists as valid, then (≥ 1.1.0)
//    GC on every plugin, `cni.dev/valid-attachments` injected, CNI_CONTAINERID/NETNS/IFNAME/ARGS empty.
//  - STATUS (GetStatusNetworkList, ≥ 1.1.0): every plugin in order, stopping at the first failure.
//  - VERSION (GetVersionInfo): stdin {"cniVersion":"1.1.0"}, CNI_NETNS/CNI_IFNAME/CNI_PATH = "dummy".
//
// The environment is Args.AsEnv's: the runtime's own (here: `env`, by default a PATH without node in it) plus all six
// CNI_* variables, set even when empty. A plugin that exits non-zero has its stdout read as the spec's error JSON.
// Plugins are found in `binDirs` (CNI_PATH) and run inside the node's namespace (`ip netns exec <node> <plugin>`).
//
// Two runtime quirks on top: `style: "podman"` asks every plugin for VERSION before each ADD and DEL (and refuses a plugin
// that does not support the list's version), `style: "containerd"` follows each DEL with a second one with an empty
// CNI_NETNS (the sandbox's namespace is gone by the time containerd removes the sandbox).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const CURRENT_VERSION = "1.1.0";
const IP_BIN = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].find((p) => existsSync(p)) ?? "ip";
/** A runtime's PATH with iptables (portmap needs it) and without node. */
export const RUNTIME_PATH = "/usr/sbin:/sbin";

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: PluginConf[];
  [key: string]: unknown;
}

export interface RuntimeConf {
  containerID: string;
  /** The Pod's network namespace path; "" when there is none (DEL only). */
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs. */
  args?: [string, string][];
  /** Capability arguments (portMappings, bandwidth, …) offered to plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

export interface GCAttachment {
  containerID: string;
  ifname: string;
}

/** One plugin execution, kept for assertions. */
export interface PluginCall {
  plugin: string;
  command: string;
  env: Record<string, string>;
  stdin: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A plugin failed: the spec's error fields when its stdout had them. */
export class CniPluginError extends Error {
  constructor(
    readonly call: PluginCall,
    readonly code: number | undefined,
    readonly msg: string,
    readonly details?: string,
  ) {
    super(`plugin ${call.plugin} failed (${call.command.toLowerCase()}): ${code !== undefined ? `code ${code}: ` : ""}${msg}` +
      `${details ? ` (${details})` : ""}${call.stderr.trim() ? `; stderr: ${call.stderr.trim()}` : ""}`);
    this.name = "CniPluginError";
  }
}

export type Result = Record<string, unknown> & { cniVersion?: string; interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[] };

export interface LibCniOptions {
  /** Plugin directories, searched in order (and passed as CNI_PATH). */
  binDirs: string[];
  /** Where ADD results are cached (libcni's /var/lib/cni). */
  cacheDir: string;
  /** Run plugins inside this named network namespace (the node's). */
  netns?: string;
  /** The runtime's environment; the CNI_* variables are added. Default: { PATH: RUNTIME_PATH }. */
  env?: Record<string, string>;
  style?: "libcni" | "podman" | "containerd";
  /** Per plugin execution (default 30 s). */
  timeoutMs?: number;
}

interface CachedInfo {
  kind: "cniCacheV1";
  containerId: string;
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Result;
}

// libcni's pkg/utils validation (ADD only).
const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function validateAdd(name: string, rt: RuntimeConf): void {
  if (!rt.containerID) throw new Error("missing containerID");
  if (!ID.test(rt.containerID)) throw new Error(`invalid characters in containerID: ${rt.containerID}`);
  if (!name) throw new Error("missing network name");
  if (!ID.test(name)) throw new Error(`invalid characters found in network name: ${name}`);
  const i = rt.ifname;
  if (!i) throw new Error("interface name is empty");
  if (i.length > 15) throw new Error(`interface name is too long: ${i}`);
  if (i === "." || i === ".." || /[/:\s]/.test(i)) throw new Error(`interface name contains an invalid character: ${i}`);
}

/** libcni's version.GreaterThanOrEqualTo. */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let k = 0; k < 3; k++) if ((a[k] ?? 0) !== (b[k] ?? 0)) return (a[k] ?? 0) > (b[k] ?? 0);
  return true;
}

/** Parses a conflist as libcni's ConfListFromBytes does (name, plugins with a type; cniVersion defaults to 0.1.0). */
export function parseConfList(text: string): NetworkConfigList {
  const raw = JSON.parse(text) as Partial<NetworkConfigList>;
  if (typeof raw.name !== "string" || !raw.name) throw new Error("error parsing configuration list: no name");
  if (!Array.isArray(raw.plugins) || raw.plugins.length === 0) throw new Error(`error parsing configuration list: no 'plugins' key`);
  for (const p of raw.plugins) if (typeof p?.type !== "string" || !p.type) throw new Error("failed to parse plugin config: no type");
  return { ...raw, cniVersion: typeof raw.cniVersion === "string" ? raw.cniVersion : "0.1.0" } as NetworkConfigList;
}

/** The first .conflist of a config directory in lexical order, as runtimes pick their default network. */
export function loadConfList(confDir: string): NetworkConfigList {
  const files = readdirSync(confDir).filter((f) => f.endsWith(".conflist")).sort();
  if (files.length === 0) throw new Error(`no .conflist in ${confDir}`);
  return parseConfList(readFileSync(join(confDir, files[0]), "utf8"));
}

const stringifyArgs = (args?: [string, string][]): string => (args ?? []).map(([k, v]) => `${k}=${v}`).join(";");

export class LibCni {
  readonly calls: PluginCall[] = [];
  private readonly env: Record<string, string>;

  constructor(readonly opts: LibCniOptions) {
    this.env = opts.env ?? { PATH: RUNTIME_PATH };
    mkdirSync(join(opts.cacheDir, "results"), { recursive: true, mode: 0o700 });
  }

  // ---- execution ---------------------------------------------------------------------------------------------------------

  /** FindInPath: the first directory holding a file named `type`. */
  findInPath(type: string): string {
    if (!type) throw new Error("no plugin name provided");
    if (type.includes("/")) throw new Error(`invalid plugin name: ${type}`);
    for (const dir of this.opts.binDirs) {
      const p = join(dir, type);
      try {
        if (statSync(p).isFile()) return p;
      } catch {
        // not here
      }
    }
    throw new Error(`failed to find plugin "${type}" in path [${this.opts.binDirs.join(" ")}]`);
  }

  private envFor(command: string, rt: Partial<RuntimeConf>, path = this.opts.binDirs.join(":")): Record<string, string> {
    return {
      ...this.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerID ?? "",
      CNI_NETNS: rt.netns ?? "",
      CNI_ARGS: stringifyArgs(rt.args),
      CNI_IFNAME: rt.ifname ?? "",
      CNI_PATH: path,
    };
  }

  /** RawExec.ExecPlugin: runs the plugin with `env` and `stdin`; its stdout, or a CniPluginError. */
  async execPlugin(type: string, env: Record<string, string>, stdin: string): Promise<string> {
    const path = this.findInPath(type);
    const call = await this.run(path, env, stdin);
    call.plugin = type;
    this.calls.push(call);
    if (call.exitCode === 0) return call.stdout;
    let parsed: { code?: unknown; msg?: unknown; details?: unknown } = {};
    try {
      parsed = JSON.parse(call.stdout) as typeof parsed;
    } catch {
      // not an error JSON: report the exit status
    }
    const code = typeof parsed.code === "number" ? parsed.code : undefined;
    const msg = typeof parsed.msg === "string" ? parsed.msg
      : `netplugin failed (exit ${call.exitCode ?? call.signal}): "${call.stdout.trim()}"`;
    throw new CniPluginError(call, code, msg, typeof parsed.details === "string" ? parsed.details : undefined);
  }

  private run(path: string, env: Record<string, string>, stdin: string): Promise<PluginCall> {
    const [cmd, args] = this.opts.netns ? [IP_BIN, ["netns", "exec", this.opts.netns, path]] : [path, []];
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), this.opts.timeoutMs ?? 30_000);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once("close", (exitCode, signal) => {
        clearTimeout(timer);
        resolve({ plugin: path, command: env.CNI_COMMAND, env, stdin, exitCode, signal, stdout, stderr, ms: performance.now() - started });
      });
      child.stdin.on("error", () => undefined); // a plugin that exits without reading its stdin
      child.stdin.end(stdin);
    });
  }

  // ---- config building ---------------------------------------------------------------------------------------------------

  /** buildOneConfig: the plugin's config + name, cniVersion, prevResult, and runtimeConfig from its capabilities. */
  buildOneConfig(list: NetworkConfigList, plugin: PluginConf, prevResult: Result | undefined, rt?: RuntimeConf): string {
    const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
    if (prevResult !== undefined) conf.prevResult = prevResult;
    if (rt) {
      const rc: Record<string, unknown> = {};
      for (const [capability, supported] of Object.entries(plugin.capabilities ?? {})) {
        if (supported && rt.capabilityArgs && capability in rt.capabilityArgs) rc[capability] = rt.capabilityArgs[capability];
      }
      if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
    }
    return JSON.stringify(conf);
  }

  // ---- the result cache --------------------------------------------------------------------------------------------------

  private cacheFile(network: string, rt: Pick<RuntimeConf, "containerID" | "ifname">): string {
    if (!network || !rt.containerID || !rt.ifname) {
      throw new Error(`cache file path requires network name (${network}), container ID (${rt.containerID}), ` +
        `and interface name (${rt.ifname})`);
    }
    return join(this.opts.cacheDir, "results", `${network}-${rt.containerID}-${rt.ifname}`);
  }

  private cacheAdd(result: Result, list: NetworkConfigList, rt: RuntimeConf): void {
    const info: CachedInfo = {
      kind: "cniCacheV1", containerId: rt.containerID, config: JSON.stringify(list), ifName: rt.ifname, networkName: list.name,
      netns: rt.netns || undefined, cniArgs: rt.args, capabilityArgs: rt.capabilityArgs, result,
    };
    writeFileSync(this.cacheFile(list.name, rt), JSON.stringify(info), { mode: 0o600 });
  }

  private cacheDel(network: string, rt: RuntimeConf): void {
    try {
      rmSync(this.cacheFile(network, rt), { force: true });
    } catch {
      // no path, nothing cached
    }
  }

  private cachedInfo(network: string, rt: Pick<RuntimeConf, "containerID" | "ifname">): CachedInfo | undefined {
    try {
      const info = JSON.parse(readFileSync(this.cacheFile(network, rt), "utf8")) as CachedInfo;
      return info.kind === "cniCacheV1" ? info : undefined;
    } catch {
      return undefined;
    }
  }

  /** GetNetworkListCachedResult, with the list's cniVersion when the result has none. */
  cachedResult(list: NetworkConfigList, rt: Pick<RuntimeConf, "containerID" | "ifname">): Result | undefined {
    const r = this.cachedInfo(list.name, rt)?.result;
    return r ? { ...r, cniVersion: r.cniVersion ?? list.cniVersion } : undefined;
  }

  /** Forgets an attachment as a runtime that lost its state would (the plugins still hold it). */
  forget(network: string, rt: Pick<RuntimeConf, "containerID" | "ifname">): void {
    rmSync(this.cacheFile(network, rt), { force: true });
  }

  /** GetCachedAttachments. */
  cachedAttachments(containerID = ""): (GCAttachment & { network: string; netns?: string; cniArgs?: [string, string][];
    capabilityArgs?: Record<string, unknown> })[] {
    const dir = join(this.opts.cacheDir, "results");
    const out = [];
    for (const f of readdirSync(dir).sort()) {
      let info: CachedInfo;
      try {
        info = JSON.parse(readFileSync(join(dir, f), "utf8")) as CachedInfo;
      } catch {
        continue;
      }
      if (info.kind !== "cniCacheV1" || !info.ifName || !info.networkName) continue;
      if (containerID && info.containerId !== containerID) continue;
      out.push({ containerID: info.containerId, ifname: info.ifName, network: info.networkName, netns: info.netns, cniArgs: info.cniArgs,
        capabilityArgs: info.capabilityArgs });
    }
    return out;
  }

  // ---- the operations ----------------------------------------------------------------------------------------------------

  /** GetVersionInfo. */
  async version(type: string): Promise<{ cniVersion: string; supportedVersions: string[] }> {
    const env = { ...this.envFor("VERSION", { netns: "dummy", ifname: "dummy" }, "dummy") };
    const out = await this.execPlugin(type, env, JSON.stringify({ cniVersion: CURRENT_VERSION }));
    const info = JSON.parse(out) as { cniVersion: string; supportedVersions?: string[] };
    return { cniVersion: info.cniVersion, supportedVersions: info.supportedVersions ?? ["0.1.0", "0.2.0"] };
  }

  /** validatePlugin for every plugin of the list: each must support the list's version. */
  async validate(list: NetworkConfigList): Promise<void> {
    const errors: string[] = [];
    for (const p of list.plugins) {
      const info = await this.version(p.type);
      if (!info.supportedVersions.includes(list.cniVersion)) {
        errors.push(`plugin ${p.type} does not support config version "${list.cniVersion}"`);
      }
    }
    if (errors.length > 0) throw new Error(errors.join("; "));
  }

  /** AddNetworkList (podman: VERSION on every plugin first). */
  async add(list: NetworkConfigList, rt: RuntimeConf): Promise<Result> {
    if (this.opts.style === "podman") await this.validate(list);
    let result: Result | undefined;
    for (const plugin of list.plugins) {
      validateAdd(list.name, rt);
      const out = await this.execPlugin(plugin.type, this.envFor("ADD", rt), this.buildOneConfig(list, plugin, result, rt));
      let parsed: Result;
      try {
        parsed = JSON.parse(out) as Result;
      } catch (err) {
        throw new Error(`plugin type="${plugin.type}" failed (add): decoding its result: ${(err as Error).message}: ` +
          JSON.stringify(out));
      }
      // fixupResultVersion: a result without a version is in the config's.
      result = { ...parsed, cniVersion: parsed.cniVersion ?? list.cniVersion };
    }
    this.cacheAdd(result!, list, rt);
    return result!;
  }

  /** CheckNetworkList. */
  async check(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (!versionAtLeast(list.cniVersion, "0.4.0")) {
      throw new Error(`configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    const cached = this.cachedResult(list, rt);
    for (const plugin of list.plugins) {
      await this.execPlugin(plugin.type, this.envFor("CHECK", rt), this.buildOneConfig(list, plugin, cached, rt));
    }
  }

  /** DelNetworkList, once; `del` adds the runtime's quirks. */
  async delNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    let cached: Result | undefined;
    if (versionAtLeast(list.cniVersion, "0.4.0")) cached = this.cachedResult(list, rt);
    for (const plugin of [...list.plugins].reverse()) {
      await this.execPlugin(plugin.type, this.envFor("DEL", rt), this.buildOneConfig(list, plugin, cached, rt));
    }
    if (cached) this.cacheDel(list.name, rt);
  }

  /** DEL as the runtime does it: podman asks VERSION first, containerd deletes again without a namespace. */
  async del(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (this.opts.style === "podman") await this.validate(list);
    await this.delNetworkList(list, rt);
    if (this.opts.style === "containerd") await this.delNetworkList(list, { ...rt, netns: "" });
  }

  /** GCNetworkList. */
  async gc(list: NetworkConfigList, valid: GCAttachment[]): Promise<void> {
    const keep = new Set(valid.map((a) => `${a.containerID}/${a.ifname}`));
    const errors: string[] = [];
    for (const a of this.cachedAttachments()) {
      if (a.network !== list.name || keep.has(`${a.containerID}/${a.ifname}`)) continue;
      try {
        await this.delNetworkList(list, { containerID: a.containerID, netns: a.netns ?? "", ifname: a.ifname, args: a.cniArgs,
          capabilityArgs: a.capabilityArgs });
      } catch (err) {
        errors.push(`failed to delete stale attachment ${a.containerID} ${a.ifname}: ${(err as Error).message}`);
      }
    }
    if (versionAtLeast(list.cniVersion, "1.1.0")) {
      for (const plugin of list.plugins) {
        const conf = JSON.stringify({ ...plugin, name: list.name, cniVersion: list.cniVersion,
          "cni.dev/valid-attachments": valid.map((a) => ({ containerID: a.containerID, ifname: a.ifname })) });
        try {
          await this.execPlugin(plugin.type, this.envFor("GC", {}), conf);
        } catch (err) {
          errors.push(`failed to GC plugin ${plugin.type}: ${(err as Error).message}`);
        }
      }
    }
    if (errors.length > 0) throw new Error(errors.join("\n"));
  }

  /** GetStatusNetworkList: the first failure is the answer (a CniPluginError with its code). */
  async status(list: NetworkConfigList): Promise<void> {
    if (!versionAtLeast(list.cniVersion, "1.1.0")) return;
    for (const plugin of list.plugins) {
      const conf = JSON.stringify({ ...plugin, name: list.name, cniVersion: list.cniVersion });
      await this.execPlugin(plugin.type, this.envFor("STATUS", {}), conf);
    }
  }
}

// ---- a node's runtime setup --------------------------------------------------------------------------------------------

export const REFERENCE_PLUGINS_DIR = "/usr/lib/cni";
export const CHAINED_PLUGINS = ["portmap", "bandwidth", "tuning", "host-local"];

export interface NodeRuntime {
  binDir: string;
  confDir: string;
  cacheDir: string;
  /** The conflist install-cni wrote (weft, then portmap). */
  list: NetworkConfigList;
  /** A plain libcni over that bin dir and cache, running plugins in the node's namespace. */
  cni: LibCni;
}

/**
 * A node as a runtime sees it, under `dir`: the reference plugins linked into bin/, then `install(binDir, confDir)` (the
 * caller's `weft install-cni`), the conflist it wrote loaded, and a result cache.
 */
export async function setUpNodeRuntime(dir: string, nodeNs: string, install: (binDir: string, confDir: string) => Promise<number>):
  Promise<NodeRuntime> {
  const binDir = join(dir, "bin");
  const confDir = join(dir, "net.d");
  const cacheDir = join(dir, "cache");
  mkdirSync(binDir, { recursive: true });
  for (const p of CHAINED_PLUGINS) symlinkSync(join(REFERENCE_PLUGINS_DIR, p), join(binDir, p));
  const code = await install(binDir, confDir);
  if (code !== 0) throw new Error(`installing the CNI plugin into ${binDir} failed (exit ${code})`);
  const list = loadConfList(confDir);
  return { binDir, confDir, cacheDir, list, cni: new LibCni({ binDirs: [binDir], cacheDir, netns: nodeNs }) };
}
