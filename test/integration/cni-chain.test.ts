// weft among the reference plugins (Debian's containernetworking-plugins in /usr/lib/cni): host-local as its delegated
// IPAM, and portmap, bandwidth and tuning chained after it, each fed weft's result as prevResult. As in
// cni-service.test.ts, the test thread lives in a fresh node namespace (iptables rules, ifb devices and host veths land
// there), and everything is named wcn<4 hex>… and removed in afterAll.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCniService, type CniService } from "../../src/cni/service.js";
import { hostVethName } from "../../src/cni/wiring.js";
import { ipJson } from "./lib/netns.js";
import { NodeLab } from "./lib/node-lab.js";

const CNI_DIR = "/usr/lib/cni";
const isRoot = process.getuid?.() === 0;
const havePlugins = ["host-local", "portmap", "bandwidth", "tuning"].every((p) => existsSync(join(CNI_DIR, p)));
if (!isRoot) console.warn("weft CNI chain tests need root (namespaces, veth, iptables): skipped");
else if (!havePlugins) console.warn(`weft CNI chain tests need the reference plugins in ${CNI_DIR} (apt install containernetworking-plugins): skipped`);

const nsName = (path: string) => path.split("/").pop()!;
const envFor = (command: string, containerID: string, netns: string) =>
  ({ CNI_COMMAND: command, CNI_CONTAINERID: containerID, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: CNI_DIR });
const hostVeths = () => ipJson<{ ifname: string }[]>(null, "link", "show", "type", "veth").map((l) => l.ifname).filter((n) => n.startsWith("weft"));

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a reference plugin as a runtime would: CNI_* environment, config on stdin. */
function execPlugin(type: string, env: Record<string, string>, config: object): Promise<Exec> {
  return new Promise((resolve) => {
    const child = spawn(join(CNI_DIR, type), [], { env: { ...env, PATH: process.env.PATH }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(JSON.stringify(config));
  });
}

async function plugin(type: string, env: Record<string, string>, config: object): Promise<string> {
  const r = await execPlugin(type, env, config);
  if (r.code !== 0) throw new Error(`${type} ${env.CNI_COMMAND} exited ${r.code}: ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

/** A TCP server in the Pod that greets whoever connects once. */
function greeter(netns: string, port: number): Promise<() => void> {
  const code = `import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(("0.0.0.0",${port}))\n` +
    `s.listen(1)\nprint("READY",flush=True)\nc,_=s.accept()\nc.sendall(b"hello from the pod")\nc.close()\n`;
  const child = spawn("ip", ["netns", "exec", nsName(netns), "python3", "-c", code], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (d: string) => d.includes("READY") && resolve(() => child.kill("SIGKILL")));
    child.once("exit", (c) => reject(new Error(`greeter exited ${c}`)));
  });
}

function fetchGreeting(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const sock = connect({ host, port }, () => undefined);
    sock.setTimeout(3000, () => sock.destroy(new Error(`no answer from ${host}:${port}`)));
    sock.setEncoding("utf8").on("data", (d: string) => (text += d));
    sock.once("error", reject);
    sock.once("close", () => resolve(text));
  });
}

const suite = isRoot && havePlugins ? describe : describe.skip;

suite("weft with the reference CNI plugins", () => {
  const lab = new NodeLab();
  let stateDir = "";
  let service: CniService;
  let n = 0;

  beforeAll(() => {
    lab.enter();
    stateDir = mkdtempSync(join(tmpdir(), "weft-cni-chain-"));
    service = createCniService({ subnet: "10.244.7.0/24", mtu: 1400, stateDir, log: pino({ level: "silent" }), ready: () => true });
  });
  afterAll(async () => {
    await service?.close();
    lab.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  async function weft(env: Record<string, string>, config: object) {
    const r = await service.handle({ env, stdin: JSON.stringify(config) });
    return { code: r.code, output: r.output, json: r.output ? JSON.parse(r.output) : undefined };
  }

  describe("host-local as the delegated IPAM", () => {
    const ipamFor = (dataDir: string, extra: object = {}) =>
      ({ type: "host-local", ranges: [[{ subnet: "10.244.1.0/24", ...extra }]], dataDir });

    for (const version of ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
      it(`${version}: ADD takes host-local's address, CHECK passes, DEL gives it back (twice)`, async () => {
        const dataDir = mkdtempSync(join(stateDir, "hl-"));
        const id = `ctr-hl-${++n}`;
        const netns = lab.pod(`hl${n}`);
        const config = { cniVersion: version, name: "hlnet", type: "weft", ipam: ipamFor(dataDir) };
        const add = await weft(envFor("ADD", id, netns), config);
        expect(add.code, add.output).toBe(0);
        expect(add.json.cniVersion).toBe(version);
        expect(add.json.ips).toMatchObject([{ address: "10.244.1.2/24", gateway: "10.244.1.1", interface: 1 }]);
        expect(readFileSync(join(dataDir, "hlnet", "10.244.1.2"), "utf8")).toMatch(new RegExp(`^${id}\\s+eth0`));
        expect(readdirSync(join(stateDir, "ipam", "10.244.7.0_24"))).not.toContain("10.244.1.2");
        expect(ipJson<{ dst: string }[]>(nsName(netns), "route", "show").map((r) => r.dst).sort()).toEqual(["10.244.1.1", "default"]);

        if (version !== "0.3.1") {
          const check = await weft(envFor("CHECK", id, netns), { ...config, prevResult: add.json });
          expect(check, check.output).toMatchObject({ code: 0, output: "" });
        }
        for (let i = 0; i < 2; i++) expect(await weft(envFor("DEL", id, netns), config)).toMatchObject({ code: 0, output: "" });
        expect(existsSync(join(dataDir, "hlnet", "10.244.1.2"))).toBe(false);
        expect(hostVeths()).not.toContain(hostVethName(id, "eth0"));
      });
    }

    it("propagates host-local's refusal (range exhausted) and undoes everything", async () => {
      const dataDir = mkdtempSync(join(stateDir, "hl-"));
      const config = { cniVersion: "1.0.0", name: "tiny", type: "weft", ipam: ipamFor(dataDir, { rangeStart: "10.244.1.9", rangeEnd: "10.244.1.9" }) };
      const first = lab.pod("tiny1");
      const second = lab.pod("tiny2");
      expect((await weft(envFor("ADD", "ctr-tiny1", first), config)).code).toBe(0);
      const veths = hostVeths();
      const r = await weft(envFor("ADD", "ctr-tiny2", second), config);
      expect(r.code).toBe(1);
      expect(r.json.msg).toMatch(/^IPAM plugin host-local \(ADD\): .*no IP addresses available/);
      expect(hostVeths()).toEqual(veths);
      expect(ipJson<{ ifname: string }[]>(nsName(second), "link", "show").map((l) => l.ifname)).toEqual(["lo"]);
      expect(readdirSync(join(dataDir, "tiny")).filter((f) => f.startsWith("10."))).toEqual(["10.244.1.9"]);
      await weft(envFor("DEL", "ctr-tiny1", first), config);
      expect(readdirSync(join(dataDir, "tiny")).filter((f) => f.startsWith("10."))).toEqual([]);
    });

    it("an IPAM type missing from CNI_PATH is a config error (7), and nothing is left behind", async () => {
      const netns = lab.pod("noipam");
      const veths = hostVeths();
      const r = await weft(envFor("ADD", "ctr-noipam", netns), { cniVersion: "1.0.0", name: "x", type: "weft", ipam: { type: "no-such-ipam" } });
      expect(r.json).toMatchObject({ code: 7, msg: `IPAM plugin "no-such-ipam" not found in CNI_PATH (${CNI_DIR})` });
      expect(hostVeths()).toEqual(veths);
    });

    it("GC and STATUS succeed with a host-local too old for them (it predates spec 1.1.0)", async () => {
      const dataDir = mkdtempSync(join(stateDir, "hl-"));
      const config = { cniVersion: "1.1.0", name: "gcnet", type: "weft", ipam: ipamFor(dataDir) };
      const netns = lab.pod("gchl");
      expect((await weft(envFor("ADD", "ctr-gchl", netns), config)).code).toBe(0);
      expect(await weft({ CNI_COMMAND: "STATUS", CNI_PATH: CNI_DIR }, config)).toMatchObject({ code: 0, output: "" });
      const gc = await weft({ CNI_COMMAND: "GC", CNI_PATH: CNI_DIR }, { ...config, "cni.dev/valid-attachments": [] });
      expect(gc, gc.output).toMatchObject({ code: 0, output: "" });
      expect(hostVeths()).not.toContain(hostVethName("ctr-gchl", "eth0"));
      await weft(envFor("DEL", "ctr-gchl", netns), config);
    });
  });

  describe("portmap, bandwidth and tuning chained after weft", () => {
    for (const version of ["0.3.1", "0.4.0", "1.0.0"]) {
      it(`${version}: each consumes the previous result and exits 0; DEL in reverse order${version === "1.0.0" ? "; the hostPort reaches the Pod" : ""}`, async () => {
        const id = `ctr-chain-${++n}`;
        const netns = lab.pod(`ch${n}`);
        const env = envFor("ADD", id, netns);
        const base = { cniVersion: version, name: "chain" };
        const port = 18000 + n;
        const chain = [
          { ...base, type: "portmap", capabilities: { portMappings: true },
            runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 8080, protocol: "tcp" }] } },
          { ...base, type: "bandwidth", ingressRate: 100_000_000, ingressBurst: 10_000_000, egressRate: 100_000_000, egressBurst: 10_000_000 },
          { ...base, type: "tuning", sysctl: { "net.core.somaxconn": "1234" } },
        ];

        const add = await weft(env, { ...base, type: "weft" });
        expect(add.code, add.output).toBe(0);
        let prevResult: unknown = add.json;
        for (const config of chain) {
          const out = await plugin(config.type, env, { ...config, prevResult });
          prevResult = JSON.parse(out);
        }
        expect(prevResult).toMatchObject({ cniVersion: version, ips: (add.json as { ips: object[] }).ips });

        const host = hostVethName(id, "eth0");
        const qdiscs = JSON.parse(execFileSync("tc", ["-j", "qdisc", "show", "dev", host], { encoding: "utf8" })) as { kind: string }[];
        expect(qdiscs.map((q) => q.kind)).toContain("tbf");
        expect(execFileSync("ip", ["netns", "exec", nsName(netns), "sysctl", "-n", "net.core.somaxconn"], { encoding: "utf8" }).trim()).toBe("1234");

        if (version === "1.0.0") {
          const stop = await greeter(netns, 8080);
          try {
            expect(await fetchGreeting("10.244.7.1", port)).toBe("hello from the pod");
          } finally {
            stop();
          }
        }

        const del = envFor("DEL", id, netns);
        for (const config of [...chain].reverse()) await plugin(config.type, del, { ...config, prevResult });
        expect(await weft(del, { ...base, type: "weft", prevResult })).toMatchObject({ code: 0, output: "" });
        expect(hostVeths()).not.toContain(host);
        expect(execFileSync("iptables", ["-t", "nat", "-S"], { encoding: "utf8" })).not.toContain(`dport ${port}`);
      });
    }
  });
});
