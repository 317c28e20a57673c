// weft end to end, the less common ways runtimes call it: every result version a conflist may ask for, a chained plugin
// that fails after weft's ADD (the runtime then DELs without a cached result), duplicate ADDs, DEL of what was never added,
// a second attachment in one Pod, host-local as weft's delegated IPAM reached through the front end's CNI_PATH, and many
// ADD/DEL cycles leaving nothing behind. Same setup as cni-e2e.test.ts: a two-node weft lab, `weft install-cni` into
// temporary directories, and lib/libcni.ts calling the plugins inside the node's namespace. Names start with wcx<4 hex>.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Lab, type LabNode } from "../../src/lab/topology.js";
import { runInstallCni } from "../../src/cli/install-cni.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { CHAINED_PLUGINS, CniPluginError, type NetworkConfigList, type NodeRuntime, REFERENCE_PLUGINS_DIR, type Result,
  type RuntimeConf, setUpNodeRuntime } from "./lib/libcni.js";
import { ip, ipJson } from "./lib/netns.js";
import { isRoot, spawnIn, waitPing } from "./lib/traffic.js";

const FRONTEND = join(PACKAGE_ROOT, "build", "cni", "weft");
const ready = isRoot && CHAINED_PLUGINS.every((p) => existsSync(join(REFERENCE_PLUGINS_DIR, p))) && existsSync(FRONTEND);
if (!ready) console.warn("weft CNI end-to-end edge tests need root, the reference plugins and `npm run build`: skipped");

interface Node extends NodeRuntime {
  lab: LabNode;
  ipamDir: string;
}

interface Pod {
  ns: string;
  rt: RuntimeConf;
  result?: Result;
  ip?: string;
  hostVeth?: string;
}

const HOST_VETH = /^weft[0-9a-f]{11}$/;
const isAddress = (name: string) => /^\d+\.\d+\.\d+\.\d+$/.test(name);

describe.skipIf(!ready)("weft end to end: the less common runtime calls", () => {
  const prefix = `wcx${randomBytes(2).toString("hex")}`;
  const namespaces: string[] = [];
  let lab: Lab;
  let tmp = "";
  const nodes: Node[] = [];
  let peer: Pod; // a Pod on node 2 to ping

  beforeAll(async () => {
    lab = await new Lab({ mode: "weft", pods: 0, podsVia: "hand", prefix: `${prefix}l` }).up();
    tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      for (const n of lab.nodes) {
        const rt = await setUpNodeRuntime(join(tmp, `node${n.index}`), n.ns,
          (binDir, confDir) => runInstallCni({ binDir, confDir, socket: n.socket }));
        nodes.push({ lab: n, ...rt, ipamDir: join(lab.dir, `node${n.index}`, "state", "ipam", n.subnet.replace("/", "_")) });
      }
    } finally {
      log.mockRestore();
    }
    peer = await add(nodes[1], nodes[1].list, sandbox("peer"));
  });

  afterAll(async () => {
    await lab?.down();
    for (const ns of namespaces.splice(0)) {
      try {
        ip("netns", "del", ns);
      } catch {
        // already gone
      }
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  function sandbox(tag: string, capabilityArgs?: Record<string, unknown>): Pod {
    const ns = `${prefix}${tag}`;
    ip("netns", "add", ns);
    namespaces.push(ns);
    const containerID = randomBytes(32).toString("hex");
    return { ns, rt: { containerID, netns: `/run/netns/${ns}`, ifname: "eth0", capabilityArgs,
      args: [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", tag], ["K8S_POD_INFRA_CONTAINER_ID", containerID],
        ["K8S_POD_UID", randomBytes(16).toString("hex")]] } };
  }

  async function add(n: Node, list: NetworkConfigList, pod: Pod): Promise<Pod> {
    pod.result = await n.cni.add(list, pod.rt);
    pod.ip = pod.result.ips![0].address.split("/")[0];
    pod.hostVeth = pod.result.interfaces!.find((i) => !i.sandbox)!.name;
    return pod;
  }

  const links = (ns: string) => ipJson<{ ifname: string }[]>(ns, "link", "show").map((l) => l.ifname);
  const hostVeths = (n: Node) => links(n.lab.ns).filter((l) => HOST_VETH.test(l)).sort();
  const reservations = (n: Node) => readdirSync(n.ipamDir).filter(isAddress).sort();
  /** Host routes to single Pod addresses (dev <host veth>) on the node. */
  const podRoutes = (n: Node) => ipJson<{ dst: string; dev: string }[]>(n.lab.ns, "route", "show")
    .filter((r) => HOST_VETH.test(r.dev)).map((r) => r.dst).sort();
  const iptablesSave = (n: Node) => lab.exec(n.lab.ns, "iptables-save", []);
  const list = (n: Node, name: string, cniVersion: string, plugins = n.list.plugins): NetworkConfigList => ({ cniVersion, name, plugins });

  /** Host veth, host route and reservation of the attachment are all gone. */
  function expectGone(n: Node, pod: Pod): void {
    expect(hostVeths(n)).not.toContain(pod.hostVeth);
    expect(podRoutes(n)).not.toContain(pod.ip);
    expect(reservations(n)).not.toContain(pod.ip);
  }

  async function failure(p: Promise<unknown>): Promise<CniPluginError> {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err, "expected the call to fail with a CNI error").toBeInstanceOf(CniPluginError);
    return err as CniPluginError;
  }

  it.each([["0.3.0"], ["0.3.1"], ["0.4.0"], ["1.0.0"]])("a %s conflist (weft → portmap): the result in that version, CHECK, DEL", async (v) => {
    const n = nodes[0];
    const tag = `v${v.replace(/\./g, "")}`;
    const l = list(n, `weft-${tag}`, v);
    const pod = await add(n, l, sandbox(tag, { portMappings: [{ hostPort: 9000, containerPort: 80, protocol: "tcp" }] }));
    expect(pod.result!.cniVersion).toBe(v);
    const ip0 = pod.result!.ips![0] as Record<string, unknown>;
    if (v === "1.0.0") expect(ip0.version).toBeUndefined();
    else expect(ip0.version).toBe("4");
    expect(ip0.interface).toBe(pod.result!.interfaces!.findIndex((i) => i.name === "eth0"));
    // What portmap made of weft's result: a DNAT to the Pod's address.
    expect(iptablesSave(n)).toMatch(new RegExp(`--to-destination ${pod.ip!.replace(/\./g, "\\.")}:80`));
    await waitPing(pod.ns, peer.ip!);
    if (v !== "0.3.0" && v !== "0.3.1") {
      // weft's CHECK must pass; Debian's portmap fails its own for IPv4-only Pods (containernetworking/plugins#819).
      await n.cni.check(l, pod.rt).catch((err: Error) => {
        if (!(err instanceof CniPluginError && err.call.plugin === "portmap" && /ipv6 dnat/.test(err.msg))) throw err;
      });
      expect(n.cni.calls.filter((c) => c.plugin === "weft" && c.command === "CHECK").at(-1)?.exitCode).toBe(0);
    }
    await n.cni.del(l, pod.rt);
    expectGone(n, pod);
    expect(iptablesSave(n)).not.toContain(pod.rt.containerID);
  });

  it("a 1.1.0 network with weft alone: ADD, CHECK, DEL", async () => {
    const n = nodes[0];
    const l = list(n, "weft-v110", "1.1.0", [n.list.plugins[0]]);
    const pod = await add(n, l, sandbox("v110"));
    expect(pod.result!.cniVersion).toBe("1.1.0");
    await n.cni.check(l, pod.rt);
    await waitPing(pod.ns, peer.ip!);
    await n.cni.del(l, pod.rt);
    expectGone(n, pod);
  });

  it("a chained plugin failing after weft's ADD: the runtime's DEL (no cached result) removes weft's part too", async () => {
    const n = nodes[0];
    const pod = sandbox("chainfail", { portMappings: [{ hostPort: 9100, containerPort: 80, protocol: "bogus" }] });
    const err = await failure(n.cni.add(n.list, pod.rt));
    expect(err.call.plugin).toBe("portmap");
    const weftAdd = n.cni.calls.filter((c) => c.plugin === "weft" && c.command === "ADD").at(-1)!;
    expect(weftAdd.exitCode).toBe(0);
    const made = JSON.parse(weftAdd.stdout) as Result;
    pod.ip = made.ips![0].address.split("/")[0];
    pod.hostVeth = made.interfaces!.find((i) => !i.sandbox)!.name;
    expect(reservations(n)).toContain(pod.ip);
    // containerd and CRI-O tear a failed sandbox down with a DEL of the whole list; nothing was cached.
    expect(n.cni.cachedResult(n.list, pod.rt)).toBeUndefined();
    await n.cni.del(n.list, pod.rt);
    expectGone(n, pod);
    expect(links(pod.ns)).toEqual(["lo"]);
  });

  it("a second ADD of the same attachment fails and leaves the first one working", async () => {
    const n = nodes[0];
    const pod = await add(n, n.list, sandbox("dup"));
    const err = await failure(n.cni.add(n.list, pod.rt));
    expect(err.call.plugin).toBe("weft");
    expect(err.code).toBe(4);
    expect(reservations(n)).toContain(pod.ip);
    expect(hostVeths(n)).toContain(pod.hostVeth);
    await waitPing(pod.ns, peer.ip!);
    await n.cni.check(n.list, pod.rt);
    await n.cni.del(n.list, pod.rt);
    expectGone(n, pod);
  });

  it("CHECK fails once the wiring is broken (host route gone, then the Pod's default route gone)", async () => {
    const n = nodes[0];
    const pod = await add(n, n.list, sandbox("broken"));
    await n.cni.check(n.list, pod.rt);
    ip("-n", n.lab.ns, "route", "del", `${pod.ip}/32`, "dev", pod.hostVeth!);
    const noHostRoute = await failure(n.cni.check(n.list, pod.rt));
    expect(noHostRoute.call.plugin).toBe("weft");
    expect(noHostRoute.msg).toContain(pod.ip);
    ip("-n", n.lab.ns, "route", "add", `${pod.ip}/32`, "dev", pod.hostVeth!, "scope", "link");
    await n.cni.check(n.list, pod.rt);
    ip("-n", pod.ns, "route", "del", "default");
    const noDefault = await failure(n.cni.check(n.list, pod.rt));
    expect(noDefault.call.plugin).toBe("weft");
    expect(noDefault.msg).toMatch(/0\.0\.0\.0\/0|default/);
    await n.cni.del(n.list, pod.rt);
    expectGone(n, pod);
  });

  it("DEL of an attachment that was never added succeeds (with and without a namespace)", async () => {
    const n = nodes[0];
    const pod = sandbox("never");
    const before = reservations(n);
    await n.cni.del(n.list, pod.rt);
    await n.cni.del(n.list, { ...pod.rt, netns: "" });
    await n.cni.del(n.list, { ...pod.rt, netns: `/run/netns/${prefix}nonexistent` });
    expect(reservations(n)).toEqual(before);
  });

  it("ADD into a namespace that does not exist fails with a CNI error and reserves nothing", async () => {
    const n = nodes[0];
    const before = { reservations: reservations(n), veths: hostVeths(n) };
    const rt: RuntimeConf = { containerID: randomBytes(32).toString("hex"), netns: `/run/netns/${prefix}missing`, ifname: "eth0" };
    const err = await failure(n.cni.add(n.list, rt));
    expect(err.call.plugin).toBe("weft");
    expect([3, 4]).toContain(err.code);
    expect({ reservations: reservations(n), veths: hostVeths(n) }).toEqual(before);
  });

  it("a second weft attachment (net1) in a Pod is refused as a config error (code 7), leaving the first untouched", async () => {
    const n = nodes[0];
    const pod = await add(n, n.list, sandbox("multi"));
    const second: Pod = { ns: pod.ns, rt: { ...pod.rt, ifname: "net1" } };
    const l2 = list(n, "weft-second", "1.0.0", [n.list.plugins[0]]);
    const before = { reservations: reservations(n), veths: hostVeths(n) };
    const outcome = await n.cni.add(l2, second.rt).then((r) => r, (e: unknown) => e as Error);
    expect(outcome).toBeInstanceOf(CniPluginError);
    expect((outcome as CniPluginError).code).toBe(7);
    expect((outcome as Error).message).toMatch(/one interface per Pod/);
    expect({ reservations: reservations(n), veths: hostVeths(n) }).toEqual(before);
    expect(links(pod.ns).sort()).toEqual(["eth0", "lo"]);
    await n.cni.check(n.list, pod.rt);
    await waitPing(pod.ns, peer.ip!);
    await n.cni.del(n.list, pod.rt);
    expectGone(n, pod);
  });

  it("a namespace named by /proc/<pid>/ns/net (as dockershim and some runtimes pass it): ADD, CHECK, DEL", async () => {
    const n = nodes[0];
    const holder = sandbox("proc");
    const sleeper = spawnIn(holder.ns, "sleep", ["60"]);
    try {
      const pod: Pod = { ns: holder.ns, rt: { ...holder.rt, netns: `/proc/${sleeper.child.pid}/ns/net` } };
      // `ip netns exec` execs sleep in place: the pid is the sleeper's, in the Pod's namespace.
      await add(n, n.list, pod);
      expect(pod.result!.interfaces).toContainEqual(expect.objectContaining({ name: "eth0", sandbox: pod.rt.netns }));
      expect(links(holder.ns)).toContain("eth0");
      await n.cni.check(n.list, pod.rt);
      await waitPing(holder.ns, peer.ip!);
      await n.cni.del(n.list, pod.rt);
      expectGone(n, pod);
      expect(links(holder.ns)).toEqual(["lo"]);
    } finally {
      sleeper.kill();
    }
  });

  it("host-local as weft's IPAM, found through the CNI_PATH the front end forwards: ADD, CHECK, DEL", async () => {
    const n = nodes[0];
    const dataDir = join(tmp, "host-local");
    const l = list(n, "weft-hl", "1.0.0", [{ ...n.list.plugins[0],
      ipam: { type: "host-local", dataDir, ranges: [[{ subnet: n.lab.subnet, rangeStart: "10.244.1.200", rangeEnd: "10.244.1.250" }]] } },
    n.list.plugins[1]]);
    const pod = await add(n, l, sandbox("hl"));
    expect(pod.ip).toMatch(/^10\.244\.1\.(2[0-4]\d|250)$/);
    expect(readdirSync(join(dataDir, "weft-hl"))).toContain(pod.ip);
    expect(readFileSync(join(dataDir, "weft-hl", pod.ip!), "utf8")).toContain(pod.rt.containerID);
    await n.cni.check(l, pod.rt);
    await waitPing(pod.ns, peer.ip!);
    await n.cni.del(l, pod.rt);
    expect(readdirSync(join(dataDir, "weft-hl"))).not.toContain(pod.ip);
    expect(hostVeths(n)).not.toContain(pod.hostVeth);
    expect(podRoutes(n)).not.toContain(pod.ip);
  });

  it("20 ADD/DEL cycles (with a hostPort) leave no veth, route, reservation or iptables rule behind", async () => {
    const n = nodes[0];
    const before = { reservations: reservations(n), veths: hostVeths(n), routes: podRoutes(n) };
    const pod = sandbox("cycle");
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const rt: RuntimeConf = { ...pod.rt, containerID: randomBytes(32).toString("hex"),
        capabilityArgs: { portMappings: [{ hostPort: 9200, containerPort: 80, protocol: "tcp" }] } };
      const r = await n.cni.add(n.list, rt);
      seen.add(r.ips![0].address);
      await n.cni.del(n.list, rt);
    }
    expect(seen.size).toBeGreaterThan(1);
    expect({ reservations: reservations(n), veths: hostVeths(n), routes: podRoutes(n) }).toEqual(before);
    expect(iptablesSave(n)).not.toMatch(/CNI-DN-/);
    expect(links(pod.ns)).toEqual(["lo"]);
  });

  it("SIGTERM during a burst of 20 ADDs: each ADD succeeds or fails with 11, and the failed ones leave nothing, even before GC", async () => {
    const n = nodes[0];
    const before = { reservations: reservations(n), veths: hostVeths(n) };
    const pods = Array.from({ length: 20 }, (_, i) => sandbox(`t${i}`));
    let completed = 0;
    let stopNow!: () => void;
    const stop = new Promise<void>((res) => (stopNow = res));
    const outcomes = pods.map((pod) => add(n, n.list, pod).then(
      () => {
        if (++completed === 5) stopNow();
        return undefined;
      },
      (err: unknown) => {
        stopNow();
        return err;
      }));
    await stop;
    expect(await lab.stopAgent(n.lab, "SIGTERM")).toBe(0);
    const errors = await Promise.all(outcomes);
    const ok = pods.filter((_, i) => errors[i] === undefined);
    for (const err of errors.filter((e) => e !== undefined)) {
      expect(err, String(err)).toBeInstanceOf(CniPluginError);
      expect((err as CniPluginError).code, (err as Error).message).toBe(11);
    }
    // A graceful stop finishes or refuses each call: no half-made attachment is left for GC.
    expect(reservations(n)).toEqual([...before.reservations, ...ok.map((p) => p.ip!)].sort());
    expect(hostVeths(n)).toEqual([...before.veths, ...ok.map((p) => p.hostVeth!)].sort());
    for (const pod of pods.filter((_, i) => errors[i] !== undefined)) expect(links(pod.ns)).toEqual(["lo"]);

    lab.startAgent(n.lab);
    await lab.waitReady(n.lab);
    for (const pod of ok) await n.cni.check(n.list, pod.rt);
    await Promise.all(pods.filter((_, i) => errors[i] !== undefined).map((pod) => add(n, n.list, pod)));
    expect(new Set(pods.map((p) => p.ip)).size).toBe(20);
    await waitPing(pods[19].ns, peer.ip!);
    for (const pod of pods) await n.cni.del(n.list, pod.rt);
    expect({ reservations: reservations(n), veths: hostVeths(n) }).toEqual(before);
  });
});
