// `weft install-cni`: puts the CNI front end (build/cni/weft, a static C binary) into the runtime's plugin directory and
// a conflist (weft, then portmap) into its config directory. Both are replaced atomically: a runtime may execute the
// plugin or read the config at any moment, and must never see half a file. The temporaries end in .tmp, an extension
// the runtimes' config loaders ignore.
import { existsSync, readFileSync, symlinkSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { writeFileAtomic } from "../control/atomic-file.js";
import { PACKAGE_ROOT } from "../paths.js";

export const CNI_FRONTEND = join(PACKAGE_ROOT, "build", "cni", "weft");
export const DEFAULT_SOCKET = "/run/weft/weft.sock";
/** Where Debian's containernetworking-plugins puts the reference plugins. */
export const DEBIAN_PLUGINS_DIR = "/usr/lib/cni";
const MAX_SOCKET_PATH_BYTES = 107; // sockaddr_un.sun_path less its NUL
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/; // CNI spec: network names
const MIN_MTU = 68;
const MAX_MTU = 65535;

export interface InstallCniOptions {
  binDir?: string;
  confDir?: string;
  socket?: string;
  mtu?: number;
  name?: string;
  /** The front end to install; the one `npm run build` made unless given. */
  source?: string;
  /** Where to find portmap when binDir lacks it. */
  referencePluginsDir?: string;
}

export async function runInstallCni({
  binDir = "/opt/cni/bin",
  confDir = "/etc/cni/net.d",
  socket = DEFAULT_SOCKET,
  mtu,
  name = "weft",
  source = CNI_FRONTEND,
  referencePluginsDir = DEBIAN_PLUGINS_DIR,
}: InstallCniOptions = {}): Promise<number> {
  const problem = checkOptions({ socket, mtu, name });
  if (problem) {
    console.error(`weft install-cni: ${problem}`);
    return 1;
  }
  if (!existsSync(source)) {
    console.error(`weft install-cni: the CNI front end is not built (${source} is missing): run \`npm run build\` first`);
    return 1;
  }
  const plugin = join(binDir, "weft");
  const conflist = join(confDir, `10-${name}.conflist`);
  try {
    const binary = readFileSync(source);
    writeFileAtomic(plugin, binary, 0o755);
    console.log(`installed ${plugin} (the weft CNI front end, ${Math.ceil(binary.length / 1024)} KiB, static)`);
    writeFileAtomic(conflist, JSON.stringify(conflistFor({ name, socket, mtu }), null, 2) + "\n", 0o644);
    console.log(`installed ${conflist} (network "${name}": weft, then portmap; agent socket ${socket})`);
  } catch (err) {
    console.error(`weft install-cni: ${(err as Error).message}`);
    return 1;
  }
  const portmap = join(binDir, "portmap");
  const packaged = join(referencePluginsDir, "portmap");
  if (!existsSync(portmap) && existsSync(packaged)) {
    // The conflist chains portmap, and runtimes look for it in binDir only.
    symlinkSync(packaged, portmap);
    console.log(`linked ${portmap} → ${packaged} (the reference plugin, as the distribution installed it)`);
  }
  if (!existsSync(portmap)) {
    console.warn(`note: ${join(binDir, "portmap")} is missing; hostPort mappings need the CNI reference plugins (containernetworking-plugins) in ${binDir}`);
  }
  return 0;
}

function checkOptions({ socket, mtu, name }: { socket: string; mtu?: number; name: string }): string | undefined {
  if (!NETWORK_NAME.test(name)) return `network name ${JSON.stringify(name)}: use letters, digits, '_', '.', '-', starting with a letter or digit`;
  if (!isAbsolute(socket)) return `--socket ${JSON.stringify(socket)}: the agent's socket must be an absolute path`;
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) return `--socket: a unix socket path has at most ${MAX_SOCKET_PATH_BYTES} bytes`;
  if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= MIN_MTU && mtu <= MAX_MTU)) return `--mtu ${mtu}: expected a whole number from ${MIN_MTU} to ${MAX_MTU}`;
  return undefined;
}

/** The network as the runtime sees it: weft wires the Pod, portmap adds hostPort DNAT after it (docs/cni.md). */
export function conflistFor({ name = "weft", socket = DEFAULT_SOCKET, mtu }: { name?: string; socket?: string; mtu?: number } = {}) {
  return {
    cniVersion: "1.0.0",
    name,
    plugins: [
      { type: "weft", socket, ...(mtu === undefined ? {} : { mtu }) },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
}

