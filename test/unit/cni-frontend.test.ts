// The CNI front end (src/cni/frontend/weft.c) as a runtime sees it: a child process with CNI_* variables and a network
// config on stdin, talking to a fake agent on a unix socket that records each request line and answers as scripted.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CNI_FRONTEND } from "../../src/cli/install-cni.js";
import { PACKAGE_ROOT } from "../../src/paths.js";

const SOURCE_DIR = join(PACKAGE_ROOT, "src", "cni", "frontend");
/** The newest change to the front end's C sources. */
const sourcesChanged = () => Math.max(...readdirSync(SOURCE_DIR).filter((f) => /\.[ch]$/.test(f)).map((f) => statSync(join(SOURCE_DIR, f)).mtimeMs));
const DEFAULT_SOCKET = "/run/weft/weft.sock";
const MAX_CONFIG_BYTES = 1024 * 1024;
const SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

interface Run {
  status: number | null;
  stdout: string;
  ms: number;
}

/** Runs the front end with exactly `env` (no PATH, nothing inherited) and `stdin`. */
function runFrontend(env: Record<string, string>, stdin: string | Buffer = ""): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(CNI_FRONTEND, [], { env, stdio: ["pipe", "pipe", "inherit"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stdin.on("error", () => {}); // it may stop reading early (oversized config) and exit
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout: Buffer.concat(out).toString("utf8"), ms: Date.now() - started }));
    child.stdin.end(stdin);
  });
}

type Behaviour = { reply: unknown } | { raw: string } | "hang" | "close";

/** A stand-in for the agent's API socket (src/control/api-server.ts): one request line in, one reply line out. */
class FakeAgent {
  readonly requests: string[] = [];
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  constructor(readonly path: string, private readonly behave: (request: Record<string, unknown>) => Behaviour) {
    this.server = createServer((sock) => this.serve(sock));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.path, () => resolve());
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The last request, decoded. */
  get request(): Record<string, unknown> {
    return JSON.parse(this.requests[this.requests.length - 1]) as Record<string, unknown>;
  }

  private serve(sock: Socket): void {
    this.connections++;
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => {});
    const chunks: Buffer[] = [];
    sock.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(0x0a);
      if (nl < 0) return;
      sock.removeAllListeners("data");
      const line = all.subarray(0, nl).toString("utf8");
      this.requests.push(line);
      const b = this.behave(JSON.parse(line) as Record<string, unknown>);
      if (b === "close") sock.destroy();
      else if (b !== "hang") sock.end(("raw" in b ? b.raw : JSON.stringify(b.reply)) + "\n");
    });
  }
}

let dir: string;
let agent: FakeAgent | undefined;

beforeAll(() => {
  if (!existsSync(CNI_FRONTEND) || statSync(CNI_FRONTEND).mtimeMs < sourcesChanged()) {
    execFileSync("npm", ["run", "--silent", "build:cni"], { cwd: PACKAGE_ROOT, stdio: "inherit" });
  }
  dir = mkdtempSync(join(tmpdir(), "weft-cni-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

let sockets = 0;
async function startAgent(behave: (request: Record<string, unknown>) => Behaviour): Promise<FakeAgent> {
  agent = new FakeAgent(join(dir, `agent-${++sockets}.sock`), behave);
  await agent.listen();
  return agent;
}

const succeed = (output: string) => (): Behaviour => ({ reply: { ok: true, result: { code: 0, output } } });
const configFor = (socket: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: "1.0.0", name: "weft", type: "weft", socket, ...extra });
const addEnv = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "c0ffee",
  CNI_NETNS: "/var/run/netns/pod-1",
  CNI_IFNAME: "eth0",
  CNI_ARGS: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
  CNI_PATH: "/opt/cni/bin",
};

function cniError(run: Run): { cniVersion: string; code: number; msg: string; details: string } {
  expect(run.status).toBe(1);
  return JSON.parse(run.stdout) as { cniVersion: string; code: number; msg: string; details: string };
}

describe("the binary", () => {
  it("is statically linked: its ELF program headers have no PT_INTERP", () => {
    const ELF_CLASS = 4, ELFCLASS64 = 2, E_PHOFF = 0x20, E_PHENTSIZE = 0x36, E_PHNUM = 0x38, PT_INTERP = 3;
    const elf = readFileSync(CNI_FRONTEND);
    expect(elf.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(elf[ELF_CLASS]).toBe(ELFCLASS64);
    const phoff = Number(elf.readBigUInt64LE(E_PHOFF));
    const types = Array.from({ length: elf.readUInt16LE(E_PHNUM) }, (_, i) => elf.readUInt32LE(phoff + i * elf.readUInt16LE(E_PHENTSIZE)));
    expect(types.length).toBeGreaterThan(0);
    expect(types).not.toContain(PT_INTERP);
  });

  it("runs with nothing in its environment but the CNI variables (no PATH), and forwards only those", async () => {
    const a = await startAgent(succeed("{}"));
    const run = await runFrontend(addEnv, configFor(a.path));
    expect(run.status).toBe(0);
    expect(a.request.env).toEqual(addEnv);
  });
});

describe("VERSION", () => {
  it("is answered without the agent, in the config's cniVersion", async () => {
    const run = await runFrontend({ CNI_COMMAND: "VERSION" }, configFor(join(dir, "nobody-here.sock"), { cniVersion: "0.4.0" }));
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ cniVersion: "0.4.0", supportedVersions: SUPPORTED });
  });

  it("says 1.1.0 when stdin is empty", async () => {
    const run = await runFrontend({ CNI_COMMAND: "VERSION" });
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ cniVersion: "1.1.0", supportedVersions: SUPPORTED });
  });
});

describe("forwarding", () => {
  it("sends env and stdin exactly: unicode, quotes, backslashes, newlines, control characters", async () => {
    const a = await startAgent(succeed(""));
    const config = `{\n\t"cniVersion": "1.1.0",\n  "name": "wéft \\"quoted\\" 网络 😀",\n  "socket": ${JSON.stringify(a.path)},\n  "note": "back\\\\slash \\u0001"\n}\n`;
    const env = { ...addEnv, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=a"b\\c;X=ü€😀\u0001\t' };
    const run = await runFrontend(env, config);
    expect(run.status).toBe(0);
    expect(a.request).toEqual({ op: "cni", env, stdin: config });
  });

  it("forwards only the CNI variables that are set", async () => {
    const a = await startAgent(succeed(""));
    const env = { CNI_COMMAND: "DEL", CNI_CONTAINERID: "c0ffee", CNI_IFNAME: "eth0", HOME: "/root", WEFT_OTHER: "x" };
    await runFrontend(env, configFor(a.path));
    expect(a.request.env).toEqual({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c0ffee", CNI_IFNAME: "eth0" });
  });

  it("refuses a CNI variable that is not UTF-8 (code 4 naming it): the agent could only get it altered", async () => {
    const a = await startAgent(succeed(""));
    // Node cannot put raw bytes in an environment value; bash's $'…' can.
    const env = Object.fromEntries(Object.entries(addEnv).filter(([k]) => k !== "CNI_IFNAME"));
    const run = await new Promise<Run>((resolve, reject) => {
      const child = spawn("/bin/bash", ["-c", `export CNI_IFNAME=$'eth\\xff'; exec "$0"`, CNI_FRONTEND], { env, stdio: ["pipe", "pipe", "inherit"] });
      let stdout = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.on("error", reject);
      child.on("close", (status) => resolve({ status, stdout, ms: 0 }));
      child.stdin.end(configFor(a.path));
    });
    expect(cniError(run)).toMatchObject({ code: 4, msg: "CNI_IFNAME is not valid UTF-8 (byte 3)" });
    expect(a.connections).toBe(0);
  });

  it("forwards a config of exactly 1 MiB whole", async () => {
    const a = await startAgent(succeed(""));
    const head = configFor(a.path).slice(0, -1) + ',"pad":"';
    const config = head + "x".repeat(MAX_CONFIG_BYTES - head.length - 2) + '"}';
    expect(config.length).toBe(MAX_CONFIG_BYTES);
    const run = await runFrontend(addEnv, config);
    expect(run.status).toBe(0);
    expect(a.request.stdin).toBe(config);
  });

  it("finds the top-level socket key through whitespace and escapes, past nested and quoted decoys", async () => {
    const a = await startAgent(succeed("found"));
    const decoy = join(dir, "decoy.sock");
    const escapedPath = JSON.stringify(a.path).replace(/\//g, "\\/");
    const config = `{ "cniVersion":"1.0.0" , "soc\\u006bet"  :\t${escapedPath} ,
      "ipam" : { "socket" : "${decoy}", "list": [1, -2.5e3, true, null, {"socket": "${decoy}"}] },
      "note": "\\"socket\\": \\"${decoy}\\"" }`;
    const run = await runFrontend(addEnv, config);
    expect(run).toMatchObject({ status: 0, stdout: "found" });
  });

  it("reads any nesting depth: a socket key after 100 000 levels of arrays is found", async () => {
    const a = await startAgent(succeed("deep"));
    for (const depth of [65, 100_000]) {
      const config = `{"cniVersion":"1.0.0","deep":${"[".repeat(depth)}${"]".repeat(depth)},"socket":${JSON.stringify(a.path)}}`;
      expect(await runFrontend(addEnv, config)).toMatchObject({ status: 0, stdout: "deep" });
    }
    expect(a.connections).toBe(2);
  });

  it("a config that is not RFC 8259 JSON is code 6 naming the problem, and no agent is called, the default one neither", async () => {
    const a = await startAgent(succeed(""));
    const good = configFor(a.path);
    const cases: [string, string | Buffer, RegExp][] = [
      ["empty", "", /no JSON value \(the config is empty\) at byte 0/],
      ["blank", " \n\t", /no JSON value/],
      ["a byte order mark", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(good)]), /byte order mark.* at byte 0/],
      ["a NUL after the socket key", good.slice(0, -1) + ",\u0000}", /a NUL byte at byte/],
      ["a NUL inside a string", good.slice(0, -1) + ',"x":"a\u0000b"}', /a NUL byte/],
      ["a raw control character in a string", good.slice(0, -1) + ',"x":"a\u0001b"}', /control character/],
      ["bytes that are not UTF-8", Buffer.concat([Buffer.from(good.slice(0, -1) + ',"x":"'), Buffer.from([0xff]), Buffer.from('"}')]), /not UTF-8/],
      ["malformed after the socket key", `${good.slice(0, -1)}, this is not JSON}`, /at byte \d+/],
      ["a trailing comma", `${good.slice(0, -1)},}`, /key that is not a string/],
      ["a leading zero", `${good.slice(0, -1)},"n":01}`, /expected ',' or '}'/],
      ["text after the value", `${good} {}`, /more text after the JSON value/],
      ["unterminated", good.slice(0, -1), /ends inside an object/],
      ["an unclosed deep array", `{"socket":${JSON.stringify(a.path)},"x":${"[".repeat(1000)}}`, /at byte/],
      ["not an object", `[${good}]`, /must be a JSON object/],
      ["a bare string", JSON.stringify(a.path), /must be a JSON object/],
    ];
    for (const [what, config, msg] of cases) {
      const e = cniError(await runFrontend(addEnv, config));
      expect({ what, code: e.code }).toEqual({ what, code: 6 });
      expect(e.msg).toMatch(msg);
      expect(e.msg).not.toContain(DEFAULT_SOCKET);
    }
    expect(a.connections).toBe(0);
  });
});

describe("replies", () => {
  it("code 0: prints the output as is and exits 0", async () => {
    const output = JSON.stringify({ cniVersion: "1.0.0", interfaces: [{ name: "eth0" }], note: 'ü "q" \\ 😀\n' }) + "\n";
    await startAgent(succeed(output));
    const run = await runFrontend(addEnv, configFor(agent!.path));
    expect(run).toMatchObject({ status: 0, stdout: output });
  });

  it("decodes every JSON escape, surrogate pairs included; a lone surrogate becomes U+FFFD", async () => {
    const raw = String.raw`{"ok":true,"result":{"output":"a\"b\\c\/d\b\f\n\r\t \u00e9\u20AC\ud83d\ude00 \ud800x","code":0}}`;
    await startAgent(() => ({ raw }));
    const run = await runFrontend(addEnv, configFor(agent!.path));
    expect(run).toMatchObject({ status: 0, stdout: 'a"b\\c/d\b\f\n\r\t é€😀 \ufffdx' });
  });

  it("passes a 3 MB output through whole", async () => {
    const output = "é".repeat(1_500_000);
    await startAgent(succeed(output));
    const run = await runFrontend(addEnv, configFor(agent!.path));
    expect(run.status).toBe(0);
    expect(run.stdout === output).toBe(true);
  });

  it("code 1: prints the agent's CNI error and exits 1", async () => {
    const output = JSON.stringify({ cniVersion: "1.0.0", code: 7, msg: "bad ipam", details: "x" });
    await startAgent(() => ({ reply: { ok: true, result: { code: 1, output } } }));
    const run = await runFrontend(addEnv, configFor(agent!.path));
    expect(run).toMatchObject({ status: 1, stdout: output });
  });

  it("ok:false: a CNI error with the agent's code and message, in the config's cniVersion", async () => {
    await startAgent(() => ({ reply: { ok: false, code: 3, error: "no such container \"c0ffee\"" } }));
    const e = cniError(await runFrontend(addEnv, configFor(agent!.path, { cniVersion: "0.4.0" })));
    expect(e).toMatchObject({ cniVersion: "0.4.0", code: 3, msg: 'no such container "c0ffee"' });
    expect(e.details).toContain(agent!.path);
  });

  it("ok:false without a code: 999", async () => {
    await startAgent(() => ({ reply: { ok: false, error: "boom" } }));
    expect(cniError(await runFrontend(addEnv, configFor(agent!.path)))).toMatchObject({ code: 999, msg: "boom" });
  });

  it("an unreadable reply: code 6", async () => {
    await startAgent(() => ({ raw: "<html>hello</html>" }));
    expect(cniError(await runFrontend(addEnv, configFor(agent!.path))).code).toBe(6);
  });

  it("a connection closed without a reply: code 11", async () => {
    await startAgent(() => "close");
    const e = cniError(await runFrontend(addEnv, configFor(agent!.path)));
    expect(e.code).toBe(11);
    expect(e.msg).toContain("without a reply");
  });

  it("an agent that never answers: code 11 once WEFT_CNI_TIMEOUT_MS has passed (50 for STATUS)", async () => {
    await startAgent(() => "hang");
    const run = await runFrontend({ ...addEnv, WEFT_CNI_TIMEOUT_MS: "400" }, configFor(agent!.path));
    const e = cniError(run);
    expect(e).toMatchObject({ code: 11, msg: `the weft agent at ${agent!.path} did not answer within 400 ms` });
    expect(run.ms).toBeGreaterThanOrEqual(350);
    // Far below the 60 s default: the variable, not the default, set the deadline.
    expect(run.ms).toBeLessThan(30_000);
    const status = await runFrontend({ CNI_COMMAND: "STATUS", WEFT_CNI_TIMEOUT_MS: "200" }, configFor(agent!.path));
    expect(cniError(status).code).toBe(50);
  });
});

describe("errors", () => {
  it("agent not there (ENOENT): code 11 naming the socket and the reason", async () => {
    const path = join(dir, "nobody-here.sock");
    const e = cniError(await runFrontend(addEnv, configFor(path)));
    expect(e).toMatchObject({ cniVersion: "1.0.0", code: 11 });
    expect(e.msg).toBe(`cannot reach the weft agent at ${path}: No such file or directory`);
  });

  it("agent gone, its socket file left behind (ECONNREFUSED): code 11", async () => {
    const path = join(dir, "stale.sock");
    const listener = spawn(process.execPath, ["-e", "require('net').createServer().listen(process.argv[1], () => console.log('up'))", path]);
    await new Promise((resolve) => listener.stdout.once("data", resolve));
    listener.kill("SIGKILL");
    await new Promise((resolve) => listener.once("close", resolve));
    expect(statSync(path).isSocket()).toBe(true);
    const e = cniError(await runFrontend(addEnv, configFor(path)));
    expect(e).toMatchObject({ code: 11, msg: `cannot reach the weft agent at ${path}: Connection refused` });
  });

  it("STATUS with the agent unreachable: code 50", async () => {
    const e = cniError(await runFrontend({ CNI_COMMAND: "STATUS" }, configFor(join(dir, "nobody-here.sock"))));
    expect(e.code).toBe(50);
    expect(e.msg).toContain("nobody-here.sock");
  });

  it("CNI_COMMAND missing or unknown: code 4 naming the variable", async () => {
    const missing = cniError(await runFrontend({ CNI_CONTAINERID: "c0ffee" }, configFor("/x.sock", { cniVersion: "0.3.1" })));
    expect(missing).toMatchObject({ cniVersion: "0.3.1", code: 4, msg: "CNI_COMMAND is not set" });
    const unknown = cniError(await runFrontend({ CNI_COMMAND: "ATTACH" }, configFor("/x.sock")));
    expect(unknown).toMatchObject({ code: 4, msg: "CNI_COMMAND=ATTACH is not a CNI command" });
  });

  it("a bad WEFT_CNI_TIMEOUT_MS: code 4 naming it", async () => {
    const e = cniError(await runFrontend({ ...addEnv, WEFT_CNI_TIMEOUT_MS: "5s" }, configFor("/x.sock")));
    expect(e.code).toBe(4);
    expect(e.msg).toContain("WEFT_CNI_TIMEOUT_MS");
  });

  it.skipIf(existsSync(DEFAULT_SOCKET))("the default socket only when the config has no socket key at all", async () => {
    const e = cniError(await runFrontend(addEnv, JSON.stringify({ cniVersion: "1.0.0", name: "weft", type: "weft", ipam: { socket: "/x.sock" } })));
    expect(e).toMatchObject({ cniVersion: "1.0.0", code: 11, msg: `cannot reach the weft agent at ${DEFAULT_SOCKET}: No such file or directory` });
    expect(cniError(await runFrontend(addEnv, JSON.stringify({ cniVersion: "1.0.0", socket: null })))).toMatchObject({ code: 7 });
  });

  it("a config over 1 MiB: code 7, and the agent is never called", async () => {
    const a = await startAgent(succeed(""));
    const config = configFor(a.path, { pad: "x".repeat(MAX_CONFIG_BYTES) });
    const e = cniError(await runFrontend(addEnv, config));
    expect(e).toMatchObject({ cniVersion: "1.0.0", code: 7 });
    expect(e.msg).toContain("larger than 1048576 bytes");
    expect(a.connections).toBe(0);
  });

  it("a socket key that is not a usable path: code 7", async () => {
    expect(cniError(await runFrontend(addEnv, JSON.stringify({ cniVersion: "1.0.0", socket: 42 })))).toMatchObject({ code: 7 });
    expect(cniError(await runFrontend(addEnv, configFor("/" + "s".repeat(107)))).msg).toContain("at most 107");
    expect(cniError(await runFrontend(addEnv, configFor("/run/we\u0000ft.sock"))).msg).toContain("NUL");
  });
});
