// Hostile CNI calls for cni-hostile.test.ts, generated from a seed: network configs mutated as JSON (missing keys, wrong
// types, odd names, deep nesting) and as bytes (truncated, flipped, NULs, byte order marks, not UTF-8, over the size
// limit), and environments with odd commands, ids, interface names, namespace paths and plugin paths. Every config keeps
// pointing at the agent under test or at a path where nothing listens: a mutation that would send it to another socket
// (or, with no "socket" key, to the default one) is generated again.
import { mulberry32 } from "../../helpers/packets.js";

export type Rand = () => number;

export const MAX_CONFIG_BYTES = 1024 * 1024;
const VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];

export interface FuzzTargets {
  /** The agent's socket: the only one a config may name that something listens on. */
  socket: string;
  /** A directory where nothing listens (socket paths under it fail with ENOENT). */
  nowhere: string;
  /** The Pod namespaces this case may use (its worker's own). */
  pods: string[];
  /** Paths naming the agent's own namespace. */
  ownNetns: string[];
  /** A CNI_PATH without any plugin in it. */
  emptyPluginDir: string;
  network: string;
}

export interface FuzzCase {
  index: number;
  env: Record<string, string>;
  stdin: Buffer;
  /** What the mutations did, for the failure message. */
  notes: string[];
}

const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const chance = (r: Rand, p: number): boolean => r() < p;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const hex = (r: Rand, n: number): string => Array.from({ length: n }, () => "0123456789abcdef"[int(r, 0, 15)]).join("");

function oddString(r: Rand): string {
  return pick(r, [
    "", " ", ".", "..", "-x", "_", "a b", "a/b", "../../etc/passwd", "a:b", "\n", "\t", "\u0000", "é", "网络", "😀", "\ufeff",
    "\ud800", "x".repeat(int(r, 16, 300)), "weft", "eth0", "lo", "weft0", "a\\b", '"', "%s%n", "$(reboot)", "`id`", "*", "?",
    "\u202e", "null", "true", "0", "-1", hex(r, 64),
  ]);
}

function oddValue(r: Rand, depth = 0): unknown {
  switch (int(r, 0, 9)) {
    case 0: return null;
    case 1: return chance(r, 0.5);
    case 2: return pick(r, [0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 65536, 68, 67, 1400, 9000]);
    case 3: return oddString(r);
    case 4: return depth > 3 ? [] : Array.from({ length: int(r, 0, 3) }, () => oddValue(r, depth + 1));
    case 5: return depth > 3 ? {} : Object.fromEntries(Array.from({ length: int(r, 0, 3) }, () => [oddString(r), oddValue(r, depth + 1)]));
    default: return hex(r, int(r, 1, 12));
  }
}

/** A config that is mostly right: weft's keys with sometimes odd values, sometimes extra keys. */
function baseConfig(r: Rand, t: FuzzTargets, notes: string[]): Record<string, unknown> {
  const conf: Record<string, unknown> = { cniVersion: pick(r, VERSIONS), name: t.network, type: "weft", socket: t.socket };
  const odd = (key: string, value: unknown) => {
    conf[key] = value;
    notes.push(`${key}=${JSON.stringify(value)?.slice(0, 60)}`);
  };
  if (chance(r, 0.15)) odd("cniVersion", chance(r, 0.5) ? oddValue(r) : pick(r, ["0.1.0", "0.2.0", "2.0.0", "1.0", "1.0.0.0", " 1.0.0"]));
  if (chance(r, 0.15)) odd("name", chance(r, 0.5) ? oddValue(r) : oddString(r));
  if (chance(r, 0.1)) odd("type", oddValue(r));
  if (chance(r, 0.15)) odd("mtu", oddValue(r));
  if (chance(r, 0.15)) {
    odd("ipam", pick(r, [{}, { type: "host-local" }, { type: "../../bin/sh" }, { type: oddString(r) }, oddValue(r),
      { type: "host-local", ranges: oddValue(r) }, { type: "static", addresses: [{ address: "10.244.1.9/24" }] }]));
  }
  if (chance(r, 0.1)) odd("dns", pick(r, [oddValue(r), { nameservers: oddValue(r) }, { domain: oddValue(r), search: ["a"] }]));
  if (chance(r, 0.1)) odd("prevResult", pick(r, [oddValue(r), { cniVersion: "1.0.0", interfaces: oddValue(r), ips: oddValue(r) }]));
  if (chance(r, 0.1)) odd(pick(r, ["cni.dev/valid-attachments", "cni.dev/attachments"]), pick(r, [oddValue(r),
    [{ containerID: oddString(r), ifname: oddString(r) }], []]));
  if (chance(r, 0.05)) odd("ipMasq", oddValue(r));
  if (chance(r, 0.1)) odd("socket", pick(r, [oddValue(r), `${t.nowhere}/${hex(r, 6)}.sock`, "", "relative.sock", `/${"s".repeat(120)}`]));
  for (let i = int(r, 0, 2); i > 0; i--) odd(oddString(r) || "k", oddValue(r));
  return conf;
}

function serialize(r: Rand, conf: Record<string, unknown>, notes: string[]): string {
  const text = JSON.stringify(conf, null, chance(r, 0.3) ? int(r, 1, 4) : undefined);
  if (!chance(r, 0.1)) return text;
  const depth = pick(r, [64, 65, 1000, 100_000]);
  notes.push(`nested ${depth}`);
  const [open, close] = chance(r, 0.5) ? ["[".repeat(depth), "]".repeat(depth)] : ['{"a":'.repeat(depth), "}".repeat(depth)];
  return `{"deep":${open}${close},${text.slice(1)}`;
}

/** Byte-level damage to a serialized config. */
function mutateBytes(r: Rand, text: string, notes: string[]): Buffer {
  let b = Buffer.from(text);
  for (let n = int(r, 1, 3); n > 0; n--) {
    const at = int(r, 0, b.length);
    switch (int(r, 0, 9)) {
      case 0: notes.push(`truncated at ${at}`); b = b.subarray(0, at); break;
      case 1: notes.push(`NUL at ${at}`); b = Buffer.concat([b.subarray(0, at), Buffer.from([0]), b.subarray(at)]); break;
      case 2: notes.push("BOM"); b = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]); break;
      case 3: notes.push(`byte ${at} flipped`); if (at < b.length) b[at] ^= 1 << int(r, 0, 7); break;
      case 4: notes.push(`not UTF-8 at ${at}`); b = Buffer.concat([b.subarray(0, at), Buffer.from([pick(r, [0xff, 0xc0, 0xed, 0x80, 0xf5])]), b.subarray(at)]); break;
      case 5: notes.push("garbage after"); b = Buffer.concat([b, Buffer.from(pick(r, [" x", "}", ",", "\u0000", "{}", "\n\n"]))]); break;
      case 6: notes.push(`control byte at ${at}`); b = Buffer.concat([b.subarray(0, at), Buffer.from([int(r, 1, 31)]), b.subarray(at)]); break;
      case 7: notes.push("empty"); b = Buffer.alloc(0); break;
      case 8: notes.push("oversized"); b = Buffer.concat([b, Buffer.alloc(Math.max(0, MAX_CONFIG_BYTES - b.length) + int(r, 1, 100), 0x20)]); break;
      default: notes.push(`random bytes at ${at}`); b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: int(r, 1, 8) }, () => int(r, 0, 255))), b.subarray(at)]);
    }
  }
  return b;
}

/** The JSON view a strict reader has of stdin: the parsed value, or undefined when it is not RFC 8259 JSON. */
export function strictJson(stdin: Buffer): { value: unknown } | undefined {
  if (stdin.length >= 3 && stdin[0] === 0xef && stdin[1] === 0xbb && stdin[2] === 0xbf) return undefined;
  try {
    return { value: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(stdin)) };
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Whether the front end could send this config anywhere but the agent under test or nowhere. */
function strays(stdin: Buffer, t: FuzzTargets): boolean {
  if (stdin.length > MAX_CONFIG_BYTES) return false;
  const parsed = strictJson(stdin);
  if (!parsed || !isObject(parsed.value)) return false;
  if (!("socket" in parsed.value)) return true;
  const s = parsed.value.socket;
  return typeof s === "string" && s !== t.socket && !s.startsWith(`${t.nowhere}/`) && s !== "" && !s.includes("\u0000") &&
    Buffer.byteLength(s) < 108;
}

function environment(r: Rand, t: FuzzTargets, notes: string[]): Record<string, string> {
  const env: Record<string, string> = {
    CNI_COMMAND: chance(r, 0.05) ? pick(r, ["", "add", "ADD ", "ATTACH", "VERSIONS", oddString(r)]) : pick(r, ["ADD", "ADD", "ADD", ...COMMANDS]),
    CNI_CONTAINERID: chance(r, 0.15) ? pick(r, [oddString(r), `c${hex(r, 300)}`, `c${"x".repeat(int(r, 256, 5000))}`]) : `fz${hex(r, 16)}`,
    CNI_NETNS: chance(r, 0.25)
      ? pick(r, [...t.ownNetns, "", "/", "/dev/null", "/proc/self/ns/mnt", "/proc/1/ns/uts", "relative/ns", `/run/netns/${hex(r, 8)}`,
        `${t.pods[0]}/..`, `${t.pods[0]}\n`, `/${"n".repeat(5000)}`, "/proc/self/ns/net/x", oddString(r)])
      : pick(r, t.pods),
    CNI_IFNAME: chance(r, 0.25)
      ? pick(r, [oddString(r), "a23456789012345x", "ééééééééé", "eth0😀😀😀", "lo", ".", "..", "a b", "ab:c", "éé", "x".repeat(15)])
      : pick(r, ["eth0", "net1", `e${hex(r, 4)}`]),
    CNI_PATH: chance(r, 0.1) ? pick(r, ["", ":::", "/nonexistent", "relative", oddString(r)]) : t.emptyPluginDir,
  };
  if (chance(r, 0.3)) {
    env.CNI_ARGS = chance(r, 0.5) ? "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"
      : pick(r, ["=", ";;", "K8S_POD_NAME", "X=1", "IgnoreUnknown=1;X=1", `K8S_POD_NAME=${oddString(r)}`, oddString(r)]);
  }
  for (const key of Object.keys(env)) {
    if (chance(r, 0.04)) {
      delete env[key];
      notes.push(`no ${key}`);
    }
  }
  if (chance(r, 0.02)) env.WEFT_CNI_TIMEOUT_MS = pick(r, ["0", "-1", "5s", "99999999999", ""]);
  // Node cannot pass a NUL in the environment: such a value stands for the runtime's bug the kernel already refuses.
  for (const [k, v] of Object.entries(env)) env[k] = v.replace(/\u0000/g, "");
  return env;
}

/** Case `index` of the run seeded with `seed`: the same arguments always give the same case. */
export function generateCase(seed: number, index: number, t: FuzzTargets): FuzzCase {
  const r = mulberry32((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  for (;;) {
    const notes: string[] = [];
    const env = environment(r, t, notes);
    const conf = baseConfig(r, t, notes);
    let stdin: Buffer = Buffer.from(serialize(r, conf, notes));
    if (chance(r, 0.3)) stdin = mutateBytes(r, stdin.toString(), notes);
    if (!strays(stdin, t)) return { index, env, stdin, notes };
  }
}
