// The CNI service against the kernel. The test's thread moves into a fresh "node" namespace for the whole file, so the
// service's host side (host veths, gateway addresses, /32 routes) lands there and not in the machine's own namespace; Pods
// are namespaces of their own. Everything is named wcn<4 hex>… and deleted in afterAll, also when a test fails.
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCniService, type CniService } from "../../src/cni/service.js";
import { hostVethName } from "../../src/cni/wiring.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { ip, ipJson } from "./lib/netns.js";
import { NodeLab } from "./lib/node-lab.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("weft CNI integration tests need root (namespaces, veth): skipped");
const run = promisify(execFile);

const VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
const SUBNET = "10.244.1.0/24";
const SUBNET6 = "fd00:10:244:1::/64";
const MTU = 1400;

const nsName = (path: string) => path.split("/").pop()!;
const conf = (version: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: version, name: "weftnet", type: "weft", ...extra });
const envFor = (command: string, containerID: string, netns: string, ifname = "eth0") =>
  ({ CNI_COMMAND: command, CNI_CONTAINERID: containerID, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: "/usr/lib/cni",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p" });

interface Result {
  cniVersion: string;
  interfaces: { name: string; mac: string; sandbox?: string; mtu?: number }[];
  ips: { version?: string; interface: number; address: string; gateway: string }[];
  routes: { dst: string; gw: string }[];
  dns: object;
}

async function ok(service: CniService, env: Record<string, string>, stdin: string): Promise<string> {
  const r = await service.handle({ env, stdin });
  if (r.code !== 0) throw new Error(`${env.CNI_COMMAND} ${env.CNI_CONTAINERID} failed: ${r.output}`);
  return r.output;
}

const hostVeths = () => ipJson<{ ifname: string }[]>(null, "link", "show", "type", "veth").map((l) => l.ifname).filter((n) => n.startsWith("weft"));
const podRoutes = () => ipJson<{ dst: string }[]>(null, "route", "show").map((r) => r.dst).filter((d) => d.startsWith("10.244.1."));
const reservations = (stateDir: string, subnet = SUBNET) => {
  const dir = join(stateDir, "ipam", subnet.replace("/", "_"));
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/.test(f)) : [];
};
const ping = (address: string) => run("ping", ["-c", "1", "-W", "2", address]).then(() => true, () => false);

function podState(netns: string) {
  const ns = nsName(netns);
  return {
    addrs: ipJson<{ ifname: string; mtu: number; operstate: string; address: string; addr_info: { local: string; prefixlen: number; family: string }[] }[]>(ns, "addr", "show"),
    routes: ipJson<{ dst: string; gateway?: string; dev: string; scope?: string }[]>(ns, "route", "show"),
    routes6: ipJson<{ dst: string; gateway?: string; dev: string }[]>(ns, "-6", "route", "show"),
  };
}

const operstate = (ns: string | null, ifname: string) =>
  ipJson<{ ifname: string; operstate: string }[]>(ns, "link", "show").find((l) => l.ifname === ifname)?.operstate;

const suite = isRoot ? describe : describe.skip;

suite("weft CNI service against the kernel", () => {
  const lab = new NodeLab();
  let stateDir = "";
  let ready = true;
  let service: CniService;

  beforeAll(() => {
    lab.enter();
    stateDir = mkdtempSync(join(tmpdir(), "weft-cni-int-"));
    service = createCniService({ subnet: SUBNET, mtu: MTU, stateDir, log: pino({ level: "silent" }), ready: () => ready });
  });
  afterAll(async () => {
    await service?.close();
    lab.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  describe("ADD, CHECK, DEL for every cniVersion", () => {
    for (const version of VERSIONS) {
      it(`${version}: a routed veth Pod, reachable from the node; CHECK agrees; DEL removes everything, twice`, async () => {
        const id = `ctr-${version.replace(/\./g, "")}`;
        const netns = lab.pod(`v${version.replace(/\./g, "")}`);
        const result = JSON.parse(await ok(service, envFor("ADD", id, netns), conf(version))) as Result;
        const host = hostVethName(id, "eth0");
        // Both ends running as soon as ADD answers, the first Pod of a fresh node too (both ends ifindex 2). Read from a
        // dump of every link: asking for one link by name would itself hurry the kernel along.
        expect(operstate(null, host)).toBe("UP");
        expect(operstate(nsName(netns), "eth0")).toBe("UP");
        // One queue each way on both ends, not the kernel's one per CPU.
        for (const [ns, name] of [[null, host], [nsName(netns), "eth0"]] as const) {
          expect(ipJson<{ num_tx_queues: number; num_rx_queues: number }[]>(ns, "-d", "link", "show", "dev", name)[0])
            .toMatchObject({ num_tx_queues: 1, num_rx_queues: 1 });
        }

        // The result, shaped for the version.
        expect(result.cniVersion).toBe(version);
        expect(result.interfaces.map((i) => i.name)).toEqual([host, "eth0"]);
        expect(result.interfaces[0].sandbox).toBeUndefined();
        expect(result.interfaces[1].sandbox).toBe(netns);
        expect(result.interfaces[1].mtu).toBe(version === "1.1.0" ? MTU : undefined);
        expect(result.ips).toHaveLength(1);
        const [address, len] = result.ips[0].address.split("/");
        expect(len).toBe("24");
        expect(result.ips[0]).toMatchObject({ interface: 1, gateway: "10.244.1.1" });
        expect(result.ips[0].version).toBe(version < "1.0.0" ? "4" : undefined);
        expect(result.routes).toEqual([{ dst: "0.0.0.0/0", gw: "10.244.1.1" }]);
        expect(result.dns).toEqual({});

        // The Pod's side: lo up, eth0 with the address, MTU and MAC; the gateway link route and the default; no subnet route.
        const pod = podState(netns);
        const eth0 = pod.addrs.find((l) => l.ifname === "eth0")!;
        expect(eth0.mtu).toBe(MTU);
        expect(eth0.address).toBe(result.interfaces[1].mac);
        expect(eth0.addr_info.filter((a) => a.family === "inet")).toMatchObject([{ local: address, prefixlen: 24 }]);
        expect(pod.addrs.find((l) => l.ifname === "lo")!.operstate).toBe("UNKNOWN");
        expect(pod.routes.map((r) => `${r.dst} ${r.gateway ?? "-"} ${r.dev}`).sort()).toEqual([
          "10.244.1.1 - eth0", "default 10.244.1.1 eth0"]);
        expect(execFileSync("ip", ["netns", "exec", nsName(netns), "sysctl", "-n", "net.ipv6.conf.eth0.accept_dad"], { encoding: "utf8" }).trim())
          .toBe("0");

        // The host's side: the gateway as /32 on the veth, the /32 route to the Pod.
        const hostAddrs = ipJson<{ address: string; mtu: number; addr_info: { local: string; prefixlen: number; family: string }[] }[]>(null, "addr", "show", "dev", host);
        expect(hostAddrs[0].address).toBe(result.interfaces[0].mac);
        expect(hostAddrs[0].addr_info.filter((a) => a.family === "inet")).toMatchObject([{ local: "10.244.1.1", prefixlen: 32 }]);
        expect(ipJson<{ dst: string; dev: string }[]>(null, "route", "show", address)).toMatchObject([{ dst: address, dev: host }]);
        expect(await ping(address)).toBe(true);

        const checkConf = conf(version, { prevResult: result });
        const check = await service.handle({ env: envFor("CHECK", id, netns), stdin: checkConf });
        if (version < "0.4.0") expect(JSON.parse(check.output)).toMatchObject({ code: 1 });
        else expect(check).toEqual({ code: 0, output: "" });

        expect(await ok(service, envFor("DEL", id, netns), checkConf)).toBe("");
        expect(hostVeths()).not.toContain(host);
        expect(podRoutes()).toEqual([]);
        expect(reservations(stateDir)).not.toContain(address);
        expect(podState(netns).addrs.map((l) => l.ifname)).toEqual(["lo"]);
        expect(await ok(service, envFor("DEL", id, netns), checkConf)).toBe("");
      });
    }
  });

  it("CHECK notices a missing route, address, host route or reservation (code 100, naming it)", async () => {
    const netns = lab.pod("chk");
    const id = "ctr-check";
    const result = JSON.parse(await ok(service, envFor("ADD", id, netns), conf("1.0.0"))) as Result;
    const address = result.ips[0].address.split("/")[0];
    const check = async () => JSON.parse((await service.handle({ env: envFor("CHECK", id, netns), stdin: conf("1.0.0", { prevResult: result }) })).output || "{}");
    expect(await check()).toEqual({});

    ip("-n", nsName(netns), "route", "del", "default");
    expect(await check()).toMatchObject({ code: 100, msg: "eth0 lacks the route 0.0.0.0/0 via 10.244.1.1" });
    ip("-n", nsName(netns), "route", "add", "default", "via", "10.244.1.1", "dev", "eth0");
    ip("route", "del", `${address}/32`);
    expect(await check()).toMatchObject({ code: 100, msg: `the host has no route ${address}/32 dev ${hostVethName(id, "eth0")}` });
    ip("route", "add", `${address}/32`, "dev", hostVethName(id, "eth0"));
    ip("-n", nsName(netns), "addr", "del", result.ips[0].address, "dev", "eth0");
    expect(await check()).toMatchObject({ code: 100, msg: `eth0 lacks its address ${result.ips[0].address}` });
    const other = { ...result, ips: [{ ...result.ips[0], address: "10.244.1.250/24" }] };
    ip("-n", nsName(netns), "addr", "add", "10.244.1.250/24", "dev", "eth0");
    const r = await service.handle({ env: envFor("CHECK", id, netns), stdin: conf("1.0.0", { prevResult: other }) });
    expect(JSON.parse(r.output)).toMatchObject({ code: 100, msg: `10.244.1.250 is not reserved for ${id}/eth0` });
    await ok(service, envFor("DEL", id, netns), conf("1.0.0"));
  });

  it("DEL succeeds when the Pod's namespace is gone (path or empty CNI_NETNS), releasing the address", async () => {
    for (const how of ["vanished", "empty"]) {
      const netns = lab.pod(`gone${how}`);
      const id = `ctr-${how}`;
      const result = JSON.parse(await ok(service, envFor("ADD", id, netns), conf("1.0.0"))) as Result;
      lab.removePod(netns);
      const env = envFor("DEL", id, how === "empty" ? "" : netns);
      expect(await ok(service, env, conf("1.0.0"))).toBe("");
      expect(await ok(service, env, conf("1.0.0"))).toBe("");
      expect(hostVeths()).not.toContain(hostVethName(id, "eth0"));
      expect(reservations(stateDir)).not.toContain(result.ips[0].address.split("/")[0]);
    }
  });

  it("refuses an interface name that already exists in the Pod, leaving nothing half-done", async () => {
    const netns = lab.pod("dup");
    ip("-n", nsName(netns), "link", "add", "eth0", "type", "veth", "peer", "name", "other0");
    const before = { veths: hostVeths(), reserved: reservations(stateDir).sort() };
    const r = await service.handle({ env: envFor("ADD", "ctr-dup", netns), stdin: conf("1.0.0") });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.output)).toMatchObject({ code: 4, msg: `CNI_IFNAME: interface eth0 already exists in ${netns}; DEL it first or pick another name` });
    expect({ veths: hostVeths(), reserved: reservations(stateDir).sort() }).toEqual(before);
    expect(ipJson<{ ifname: string }[]>(nsName(netns), "link", "show").map((l) => l.ifname).sort()).toEqual(["eth0", "lo", "other0"]);
  });

  it("undoes everything when the wiring fails halfway (IPv6 disabled in the Pod, dual-stack node)", async () => {
    const dual = createCniService({ subnet: SUBNET, subnetV6: SUBNET6, mtu: MTU, stateDir, log: pino({ level: "silent" }), ready: () => true });
    const netns = lab.pod("nov6");
    execFileSync("ip", ["netns", "exec", nsName(netns), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
    const before = { veths: hostVeths(), v4: reservations(stateDir).sort(), v6: reservations(stateDir, SUBNET6).sort() };
    const r = await dual.handle({ env: envFor("ADD", "ctr-nov6", netns), stdin: conf("1.0.0") });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.output)).toMatchObject({ code: 5 });
    expect({ veths: hostVeths(), v4: reservations(stateDir).sort(), v6: reservations(stateDir, SUBNET6).sort() }).toEqual(before);
    expect(ipJson<{ ifname: string }[]>(nsName(netns), "link", "show").map((l) => l.ifname)).toEqual(["lo"]);
    await dual.close();
  });

  it("dual-stack: an IPv6 address usable at once (no DAD), both families reachable from the node", async () => {
    const dual = createCniService({ subnet: SUBNET, subnetV6: SUBNET6, mtu: MTU, stateDir, log: pino({ level: "silent" }), ready: () => true });
    const netns = lab.pod("dual");
    const result = JSON.parse(await ok(dual, envFor("ADD", "ctr-dual", netns), conf("1.1.0"))) as Result;
    expect(result.ips.map((i) => i.gateway)).toEqual(["10.244.1.1", "fd00:10:244:1::1"]);
    expect(result.routes).toEqual([{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "::/0", gw: "fd00:10:244:1::1" }]);
    const v6 = result.ips[1].address;
    expect(v6).toMatch(/^fd00:10:244:1::[0-9a-f]+\/64$/);
    const pod = podState(netns);
    expect(JSON.stringify(pod.addrs)).not.toMatch(/tentative/);
    expect(pod.routes6.map((r) => `${r.dst} ${r.gateway ?? "-"}`)).toEqual(expect.arrayContaining(["fd00:10:244:1::1 -", "default fd00:10:244:1::1"]));
    expect(pod.routes6.map((r) => r.dst)).not.toContain("fd00:10:244:1::/64");
    expect(await ping(result.ips[0].address.split("/")[0])).toBe(true);
    expect(await ping(v6.split("/")[0])).toBe(true);
    expect(await ok(dual, envFor("CHECK", "ctr-dual", netns), conf("1.1.0", { prevResult: result }))).toBe("");
    await ok(dual, envFor("DEL", "ctr-dual", netns), conf("1.1.0"));
    expect(reservations(stateDir, SUBNET6)).toEqual([]);
    await dual.close();
  });

  it("DEL still deletes when something not ours sits in weft's device group (one by one instead)", async () => {
    const netns = lab.pod("group");
    await ok(service, envFor("ADD", "ctr-group", netns), conf("1.0.0"));
    ip("link", "set", "lo", "group", String(0x77656674));
    try {
      expect(await ok(service, envFor("DEL", "ctr-group", netns), conf("1.0.0"))).toBe("");
      expect(hostVeths()).not.toContain(hostVethName("ctr-group", "eth0"));
    } finally {
      ip("link", "set", "lo", "group", "default");
    }
  });

  it("MTU: the config's when smaller than the agent's, else the agent's", async () => {
    for (const [asked, expected] of [[1300, 1300], [9000, MTU]]) {
      const netns = lab.pod(`mtu${asked}`);
      const result = JSON.parse(await ok(service, envFor("ADD", `ctr-mtu${asked}`, netns), conf("1.1.0", { mtu: asked }))) as Result;
      expect(result.interfaces.map((i) => i.mtu)).toEqual([expected, expected]);
      expect(podState(netns).addrs.find((l) => l.ifname === "eth0")!.mtu).toBe(expected);
      await ok(service, envFor("DEL", `ctr-mtu${asked}`, netns), conf("1.1.0"));
    }
  });

  it("round robin across ADD/DEL: the next Pod does not get the address just freed", async () => {
    const a = lab.pod("rra");
    const b = lab.pod("rrb");
    const first = JSON.parse(await ok(service, envFor("ADD", "ctr-rra", a), conf("1.0.0"))) as Result;
    await ok(service, envFor("DEL", "ctr-rra", a), conf("1.0.0"));
    const second = JSON.parse(await ok(service, envFor("ADD", "ctr-rrb", b), conf("1.0.0"))) as Result;
    expect(second.ips[0].address).not.toBe(first.ips[0].address);
    await ok(service, envFor("DEL", "ctr-rrb", b), conf("1.0.0"));
  });

  it("STATUS: 50 until the agent is ready, then success", async () => {
    ready = false;
    const r = await service.handle({ env: { CNI_COMMAND: "STATUS", CNI_PATH: "/usr/lib/cni" }, stdin: conf("1.1.0") });
    expect(JSON.parse(r.output)).toMatchObject({ code: 50 });
    ready = true;
    expect(await service.handle({ env: { CNI_COMMAND: "STATUS" }, stdin: conf("1.1.0") })).toEqual({ code: 0, output: "" });
  });

  it("GC frees reservations and veths of attachments the runtime no longer lists, keeps the listed ones and other networks'", async () => {
    const pods = ["gca", "gcb", "gcc"].map((s) => ({ id: `ctr-${s}`, netns: lab.pod(s) }));
    const results: Result[] = [];
    for (const p of pods) results.push(JSON.parse(await ok(service, envFor("ADD", p.id, p.netns), conf("1.1.0"))) as Result);
    const otherNet = lab.pod("gcother");
    await ok(service, envFor("ADD", "ctr-other", otherNet), JSON.stringify({ cniVersion: "1.1.0", name: "othernet", type: "weft" }));
    // An orphan file (a reservation a power loss left unreadable), and a weft-named veth weft holds no record of: not ours.
    writeFileSync(join(stateDir, "ipam", "10.244.1.0_24", "10.244.1.250"), "");
    ip("link", "add", "weft0123456789a", "type", "veth", "peer", "name", `${lab.prefix}peer`);

    const gc = conf("1.1.0", { "cni.dev/valid-attachments": [{ containerID: "ctr-gca", ifname: "eth0" }] });
    expect(await ok(service, { CNI_COMMAND: "GC", CNI_PATH: "/usr/lib/cni" }, gc)).toBe("");

    const kept = results[0].ips[0].address.split("/")[0];
    expect(hostVeths().sort()).toEqual([hostVethName("ctr-gca", "eth0"), hostVethName("ctr-other", "eth0"), "weft0123456789a"].sort());
    ip("link", "del", "weft0123456789a");
    const left = reservations(stateDir);
    expect(left).toContain(kept);
    expect(left).toHaveLength(2);
    for (const r of results.slice(1)) expect(left).not.toContain(r.ips[0].address.split("/")[0]);
    expect(await ping(kept)).toBe(true);

    // The older key name works too.
    const older = JSON.stringify({ cniVersion: "1.1.0", name: "othernet", type: "weft", "cni.dev/attachments": [] });
    expect(await ok(service, { CNI_COMMAND: "GC" }, older)).toBe("");
    expect(hostVeths()).toEqual([hostVethName("ctr-gca", "eth0")]);
    await ok(service, envFor("DEL", "ctr-gca", pods[0].netns), conf("1.1.0"));
    expect(reservations(stateDir)).toEqual([]);
  });

  it("200 concurrent ADDs: 200 distinct addresses, all answering ping; 200 DELs leave no veth, route or reservation", async () => {
    const pods = Array.from({ length: 200 }, (_, i) => ({ id: `ctr-scale-${i}`, netns: lab.pod(`s${i}`) }));
    const started = performance.now();
    const results = await Promise.all(pods.map(async (p) => JSON.parse(await ok(service, envFor("ADD", p.id, p.netns), conf("1.0.0"))) as Result));
    const addMs = performance.now() - started;
    const addresses = results.map((r) => r.ips[0].address.split("/")[0]);
    expect(new Set(addresses).size).toBe(200);
    expect(reservations(stateDir)).toHaveLength(200);
    expect(hostVeths()).toHaveLength(200);

    const unreachable: string[] = [];
    for (let i = 0; i < addresses.length; i += 25) {
      const batch = addresses.slice(i, i + 25);
      const answers = await Promise.all(batch.map(ping));
      unreachable.push(...batch.filter((_, j) => !answers[j]));
    }
    expect(unreachable).toEqual([]);

    const delStarted = performance.now();
    await Promise.all(pods.map((p) => ok(service, envFor("DEL", p.id, p.netns), conf("1.0.0"))));
    const delMs = performance.now() - delStarted;
    expect(hostVeths()).toEqual([]);
    expect(podRoutes()).toEqual([]);
    expect(reservations(stateDir)).toEqual([]);
    console.log(`200 ADDs in ${addMs.toFixed(0)} ms, 200 DELs in ${delMs.toFixed(0)} ms`);
    for (const p of pods) lab.removePod(p.netns);
  });

  describe("kill -9 in the middle of a burst of ADDs (built dist/)", () => {
    const built = join(PACKAGE_ROOT, "dist/src/cni/service.js");
    const stale = ["service", "add", "ipam", "wiring", "gc"].find((f) => {
      const js = join(PACKAGE_ROOT, `dist/src/cni/${f}.js`);
      return !existsSync(js) || statSync(js).mtimeMs < statSync(join(PACKAGE_ROOT, `src/cni/${f}.ts`)).mtimeMs;
    });
    if (stale) console.warn(`weft: skipping the kill -9 CNI test: dist/src/cni/${stale}.js is missing or stale (run 'npx tsc -p tsconfig.json')`);

    // A service in a child process (in the node namespace, inherited) that ADDs the Pods in argv one after another and
    // prints each container id once its ADD has returned.
    const CHILD = `
      import { createCniService } from ${JSON.stringify(built)};
      import { pino } from "pino";
      const [stateDir, ...pods] = process.argv.slice(1);
      const service = createCniService({ subnet: ${JSON.stringify(SUBNET)}, mtu: ${MTU}, stateDir, log: pino({ level: "silent" }), ready: () => true });
      for (const p of pods) {
        const [id, netns] = p.split("=");
        const r = await service.handle({ env: { CNI_COMMAND: "ADD", CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: "eth0" },
          stdin: JSON.stringify({ cniVersion: "1.0.0", name: "weftnet", type: "weft" }) });
        if (r.code !== 0) { console.error(r.output); process.exit(2); }
        process.stdout.write(id + " " + JSON.parse(r.output).ips[0].address + "\\n");
      }
    `;

    it.skipIf(stale !== undefined)("a new service's GC leaves exactly the completed Pods: no doubled and no leaked address", async () => {
      const pods = Array.from({ length: 120 }, (_, i) => ({ id: `ctr-kill-${i}`, netns: lab.pod(`k${i}`) }));
      const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, stateDir, ...pods.map((p) => `${p.id}=${p.netns}`)],
        { cwd: PACKAGE_ROOT, stdio: ["ignore", "pipe", "pipe"] });
      const completed = new Map<string, string>();
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      let buffered = "";
      const killedAfter = await new Promise<number>((resolve, reject) => {
        child.stdout.setEncoding("utf8").on("data", (d: string) => {
          buffered += d;
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const [id, address] = buffered.slice(0, nl).split(" ");
            buffered = buffered.slice(nl + 1);
            completed.set(id, address);
          }
          if (completed.size >= 40 && child.exitCode === null && !child.killed) {
            child.kill("SIGKILL");
            resolve(completed.size);
          }
        });
        child.once("exit", (code, signal) => (signal === "SIGKILL" ? undefined : reject(new Error(`child exited ${code}: ${stderr}`))));
      });
      await new Promise((res) => child.once("close", res));
      expect(killedAfter).toBeLessThan(pods.length);

      const restarted = createCniService({ subnet: SUBNET, mtu: MTU, stateDir, log: pino({ level: "silent" }), ready: () => true });
      const valid = [...completed.keys()].map((containerID) => ({ containerID, ifname: "eth0" }));
      expect(await ok(restarted, { CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/valid-attachments": valid }))).toBe("");

      const expected = [...completed.values()].map((a) => a.split("/")[0]).sort();
      expect(new Set(expected).size).toBe(expected.length);
      expect(reservations(stateDir).sort()).toEqual(expected);
      expect(hostVeths().sort()).toEqual([...completed.keys()].map((id) => hostVethName(id, "eth0")).sort());
      expect(readdirSync(join(stateDir, "ipam", "10.244.1.0_24")).filter((f) => f.startsWith("."))).toEqual([]);
      for (const [id, address] of completed) {
        const netns = pods.find((p) => p.id === id)!.netns;
        expect(podState(netns).addrs.find((l) => l.ifname === "eth0")?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain(address);
      }

      // The restarted service goes on: the rest of the Pods (their leftovers cleaned) get fresh, distinct addresses.
      const rest = pods.filter((p) => !completed.has(p.id)).slice(0, 20);
      for (const p of rest) {
        if (existsSync(p.netns)) lab.removePod(p.netns);
        p.netns = lab.pod(`r${p.id.split("-").pop()}`);
      }
      const more = await Promise.all(rest.map(async (p) => (JSON.parse(await ok(restarted, envFor("ADD", p.id, p.netns), conf("1.0.0"))) as Result).ips[0].address));
      expect(new Set([...more, ...completed.values()]).size).toBe(more.length + completed.size);

      await Promise.all([...completed.keys()].map((id) => ok(restarted, envFor("DEL", id, ""), conf("1.0.0"))));
      await Promise.all(rest.map((p) => ok(restarted, envFor("DEL", p.id, p.netns), conf("1.0.0"))));
      expect(reservations(stateDir)).toEqual([]);
      expect(hostVeths()).toEqual([]);
      await restarted.close();
      for (const p of pods) if (existsSync(p.netns)) lab.removePod(p.netns);
    });
  });
});
