// What weft may touch: only what its own record of an attachment says it created (docs/cni.md, "Attachment records").
// DEL of an attachment weft never made leaves a running Pod's eth0 and an LXC-style uplink alone; ADD refuses the agent's
// own namespace before any change; GC of one network never takes another's Pods, however long their container ids.
// The test thread lives in a node namespace (lib/node-lab.ts); everything is named wcn<4 hex>… and deleted afterwards.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCniService, type CniService } from "../../src/cni/service.js";
import { hostVethName } from "../../src/cni/wiring.js";
import { ip, ipJson } from "./lib/netns.js";
import { NodeLab } from "./lib/node-lab.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("weft CNI ownership tests need root (namespaces, veth): skipped");
const run = promisify(execFile);

const SUBNET = "10.244.7.0/24";
const nsName = (path: string) => path.split("/").pop()!;
const conf = (name = "weftnet", extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: "1.1.0", name, type: "weft", ...extra });
const envFor = (command: string, containerID: string, netns: string, ifname = "eth0") =>
  ({ CNI_COMMAND: command, CNI_CONTAINERID: containerID, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: "/usr/lib/cni" });
const ping = (address: string) => run("ping", ["-c", "1", "-W", "2", address]).then(() => true, () => false);

interface Result {
  interfaces: { name: string }[];
  ips: { address: string }[];
}

/** Everything a namespace's network holds, as `ip` prints it. */
const snapshot = (ns: string | null) => ({
  links: ipJson<{ ifname: string; ifindex: number; link_type: string }[]>(ns, "-d", "link", "show").map((l) => `${l.ifindex} ${l.ifname} ${l.link_type}`),
  addrs: ipJson<{ ifname: string; addr_info: { local: string; prefixlen: number }[] }[]>(ns, "addr", "show")
    .flatMap((l) => l.addr_info.map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`)),
  routes: [...ipJson<object[]>(ns, "route", "show", "table", "all"), ...ipJson<object[]>(ns, "-6", "route", "show", "table", "all")]
    .map((r) => JSON.stringify(r)).sort(),
});

const suite = isRoot ? describe : describe.skip;

suite("weft CNI: only what weft's records say it created", () => {
  const lab = new NodeLab();
  let stateDir = "";
  let service: CniService;

  async function ok(env: Record<string, string>, stdin: string): Promise<string> {
    const r = await service.handle({ env, stdin });
    if (r.code !== 0) throw new Error(`${env.CNI_COMMAND} ${env.CNI_CONTAINERID} failed: ${r.output}`);
    return r.output;
  }
  const reservations = () => readdirSync(join(stateDir, "ipam", SUBNET.replace("/", "_"))).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort();
  const records = () => (existsSync(join(stateDir, "attachments")) ? readdirSync(join(stateDir, "attachments")).sort() : []);

  beforeAll(() => {
    lab.enter();
    stateDir = mkdtempSync(join(tmpdir(), "weft-cni-own-"));
    service = createCniService({ subnet: SUBNET, mtu: 1400, stateDir, log: pino({ level: "silent" }), ready: () => true });
  });
  afterAll(async () => {
    await service?.close();
    lab.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  describe("DEL", () => {
    it("of a container weft never attached, pointed at a running Pod's namespace and eth0, succeeds and changes nothing", async () => {
      const netns = lab.pod("run");
      const result = JSON.parse(await ok(envFor("ADD", "ctr-running", netns), conf())) as Result;
      const address = result.ips[0].address.split("/")[0];
      const before = { node: snapshot(null), pod: snapshot(nsName(netns)), reserved: reservations(), records: records() };

      for (const netnsArg of [netns, ""]) {
        expect(await service.handle({ env: envFor("DEL", "ctr-never-added", netnsArg), stdin: conf() })).toEqual({ code: 0, output: "" });
      }
      expect({ node: snapshot(null), pod: snapshot(nsName(netns)), reserved: reservations(), records: records() }).toEqual(before);
      expect(await ping(address)).toBe(true);
      await ok(envFor("DEL", "ctr-running", netns), conf());
    });

    it("pointed at a namespace whose uplink eth0 is a veth (an LXC host), leaves the uplink and its default route", async () => {
      const netns = lab.pod("lxc");
      const ns = nsName(netns);
      ip("link", "add", `${lab.prefix}up`, "type", "veth", "peer", "name", "eth0", "netns", ns);
      ip("-n", ns, "addr", "add", "192.0.2.10/24", "dev", "eth0");
      ip("-n", ns, "link", "set", "eth0", "up");
      ip("-n", ns, "route", "add", "default", "via", "192.0.2.1");
      const before = { node: snapshot(null), host: snapshot(ns) };

      expect(await service.handle({ env: envFor("DEL", "lxc-guest", netns), stdin: conf() })).toEqual({ code: 0, output: "" });
      expect({ node: snapshot(null), host: snapshot(ns) }).toEqual(before);
      expect(ipJson<{ dst: string }[]>(ns, "route", "show", "default")).toHaveLength(1);
    });

    it("leaves a link that took the recorded veth's name after weft's veth went (another ifindex), and DEL twice succeeds", async () => {
      const netns = lab.pod("swap");
      const result = JSON.parse(await ok(envFor("ADD", "ctr-swap", netns), conf())) as Result;
      const host = hostVethName("ctr-swap", "eth0");
      ip("link", "del", host);
      ip("link", "add", host, "type", "veth", "peer", "name", `${lab.prefix}sw`);
      const check = await service.handle({ env: envFor("CHECK", "ctr-swap", netns), stdin: conf("weftnet", { prevResult: result }) });
      expect(JSON.parse(check.output)).toMatchObject({ code: 100 });
      for (let i = 0; i < 2; i++) expect(await service.handle({ env: envFor("DEL", "ctr-swap", netns), stdin: conf() })).toEqual({ code: 0, output: "" });
      expect(ipJson<{ ifname: string }[]>(null, "link", "show", "dev", host)).toHaveLength(1);
      expect(records()).toEqual([]);
      ip("link", "del", host);
      const unknown = await service.handle({ env: envFor("CHECK", "ctr-swap", netns), stdin: conf("weftnet", { prevResult: result }) });
      expect(JSON.parse(unknown.output)).toMatchObject({ code: 3, msg: expect.stringContaining("holds no attachment of ctr-swap/eth0") });
    });
  });

  describe("ADD into the agent's own namespace", () => {
    it("is refused with code 4, saying why, before any change (by path or through another name for it)", async () => {
      const own = `/var/run/netns/${lab.node}`;
      for (const netns of [own, "/proc/self/ns/net", "/proc/thread-self/ns/net"]) {
        const before = { node: snapshot(null), reserved: reservations(), records: records() };
        const r = await service.handle({ env: envFor("ADD", "ctr-self", netns), stdin: conf() });
        expect(r.code).toBe(1);
        expect(JSON.parse(r.output)).toMatchObject({ code: 4, msg: expect.stringContaining("is the weft agent's own network namespace") });
        expect({ node: snapshot(null), reserved: reservations(), records: records() }).toEqual(before);
      }
    });
  });

  describe("GC", () => {
    it("of one network keeps another's Pods, whatever the length of their container ids; each ADD leaves a whole record", async () => {
      const pods = [{ id: `c${"0123456789".repeat(30)}`, netns: lab.pod("long") }, { id: "ctr-short", netns: lab.pod("short") }];
      const addresses: string[] = [];
      for (const p of pods) addresses.push((JSON.parse(await ok(envFor("ADD", p.id, p.netns), conf("blue"))) as Result).ips[0].address.split("/")[0]);
      expect(await ok({ CNI_COMMAND: "GC", CNI_PATH: "/usr/lib/cni" }, conf("red", { "cni.dev/valid-attachments": [] }))).toBe("");
      for (const [i, p] of pods.entries()) {
        expect(ipJson<object[]>(null, "link", "show", "dev", hostVethName(p.id, "eth0"))).toHaveLength(1);
        expect(await ping(addresses[i])).toBe(true);
      }
      expect(reservations()).toEqual([...addresses].sort());

      // One whole JSON line per version, "adding" before the veth existed and "added" after; the last is the record.
      const stored = records().map((f) => {
        const versions = readFileSync(join(stateDir, "attachments", f), "utf8").split("\n");
        expect(versions.pop()).toBe("");
        const parsed = versions.map((line) => JSON.parse(line) as { containerID: string; phase: string; hostVeth: { name: string; ifindex: number } });
        expect(parsed.map((r) => r.phase)).toEqual(["adding", "added"]);
        return parsed[1];
      });
      expect(stored.map((r) => r.containerID).sort()).toEqual(pods.map((p) => p.id).sort());
      for (const r of stored) {
        expect(r.phase).toBe("added");
        expect(r.hostVeth.ifindex).toBe(ipJson<{ ifindex: number }[]>(null, "link", "show", "dev", r.hostVeth.name)[0].ifindex);
      }

      // Its own network's GC, keeping the long one, takes exactly the short one.
      const keepLong = conf("blue", { "cni.dev/valid-attachments": [{ containerID: pods[0].id, ifname: "eth0" }] });
      expect(await ok({ CNI_COMMAND: "GC" }, keepLong)).toBe("");
      expect(await ping(addresses[0])).toBe(true);
      expect(ip("link", "show").includes(hostVethName(pods[1].id, "eth0"))).toBe(false);
      expect(reservations()).toEqual([addresses[0]]);
      await ok(envFor("DEL", pods[0].id, pods[0].netns), conf("blue"));
      expect({ reserved: reservations(), records: records() }).toEqual({ reserved: [], records: [] });
    });
  });
});
