// weft end to end, called as container runtimes call CNI plugins: a two-node weft lab (src/lab/topology.ts), `weft
// install-cni` into a temporary plugin and config directory per node (with the reference portmap, bandwidth, tuning and
// host-local beside it), and a small libcni (lib/libcni.ts) that reads the installed conflist and runs each plugin inside
// the node's namespace with a runtime's environment (CNI_* and a PATH without node, or nothing but CNI_*). Pods are bare
// namespaces this file makes (<prefix>…, all deleted in afterAll), as a runtime's sandboxes are.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Lab, type LabNode } from "../../src/lab/topology.js";
import { runInstallCni } from "../../src/cli/install-cni.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { CHAINED_PLUGINS, CniPluginError, LibCni, type LibCniOptions, type NetworkConfigList, type NodeRuntime, REFERENCE_PLUGINS_DIR,
  type Result, type RuntimeConf, RUNTIME_PATH, setUpNodeRuntime } from "./lib/libcni.js";
import { ip, ipJson } from "./lib/netns.js";
import { isRoot, ping, tcpSend, tcpSink, waitPing } from "./lib/traffic.js";

const FRONTEND = join(PACKAGE_ROOT, "build", "cni", "weft");
const havePlugins = CHAINED_PLUGINS.every((p) => existsSync(join(REFERENCE_PLUGINS_DIR, p)));
if (!isRoot) console.warn("weft CNI end-to-end tests need root (namespaces, veth, iptables): skipped");
else if (!havePlugins) console.warn(`weft CNI end-to-end tests need the reference plugins in ${REFERENCE_PLUGINS_DIR}: skipped`);
else if (!existsSync(FRONTEND)) console.warn(`weft CNI end-to-end tests need the front end (${FRONTEND}): run \`npm run build\`; skipped`);

interface Pod {
  node: Node;
  ns: string;
  rt: RuntimeConf;
  result?: Result;
  ip?: string;
  hostVeth?: string;
}

interface Node extends NodeRuntime {
  lab: LabNode;
  /** The same network at 1.1.0 with weft alone, for GC and STATUS (the Debian reference plugins stop at 1.0.0). */
  list11: NetworkConfigList;
  /** Where the agent keeps its reservations. */
  ipamDir: string;
}

const bareIp = (cidr: string) => cidr.split("/")[0];
const HOST_VETH = /^weft[0-9a-f]{11}$/;
const isAddress = (name: string) => /^\d+\.\d+\.\d+\.\d+$/.test(name);

const suite = isRoot && havePlugins && existsSync(FRONTEND) ? describe : describe.skip;

suite("weft end to end through a runtime's libcni", () => {
  const prefix = `wce${randomBytes(2).toString("hex")}`;
  const namespaces: string[] = [];
  let lab: Lab;
  let tmp = "";
  const nodes: Node[] = [];
  const main: Pod[] = []; // n1a (hostPort 8080 → 80), n1b, n2a, n2b

  beforeAll(async () => {
    lab = await new Lab({ mode: "weft", pods: 0, podsVia: "hand", prefix: `${prefix}l` }).up();
    tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      for (const n of lab.nodes) {
        const rt = await setUpNodeRuntime(join(tmp, `node${n.index}`), n.ns,
          (binDir, confDir) => runInstallCni({ binDir, confDir, socket: n.socket }));
        nodes.push({
          lab: n, ...rt,
          list11: { cniVersion: "1.1.0", name: rt.list.name, plugins: [rt.list.plugins[0]] },
          ipamDir: join(lab.dir, `node${n.index}`, "state", "ipam", n.subnet.replace("/", "_")),
        });
      }
    } finally {
      log.mockRestore();
    }
  });

  afterAll(async () => {
    await lab?.down();
    for (const ns of namespaces.splice(0)) {
      try {
        ip("netns", "del", ns);
      } catch {
        // deleted by a test (a crashed Pod)
      }
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** A runtime for node `n` sharing the node's result cache, with another style or environment. */
  const runtime = (n: Node, opts: Partial<LibCniOptions> = {}) =>
    new LibCni({ binDirs: [n.binDir], cacheDir: n.cacheDir, netns: n.lab.ns, ...opts });

  /** A bare sandbox namespace, as a runtime makes one (no loopback setup: the plugin does that). */
  function sandbox(node: Node, tag: string, capabilityArgs?: Record<string, unknown>): Pod {
    const ns = `${prefix}${tag}`;
    ip("netns", "add", ns);
    namespaces.push(ns);
    const containerID = randomBytes(32).toString("hex");
    return { node, ns, rt: { containerID, netns: `/run/netns/${ns}`, ifname: "eth0", capabilityArgs,
      args: [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", tag], ["K8S_POD_INFRA_CONTAINER_ID", containerID],
        ["K8S_POD_UID", randomBytes(16).toString("hex")]] } };
  }

  async function add(cni: LibCni, list: NetworkConfigList, pod: Pod): Promise<Pod> {
    pod.result = await cni.add(list, pod.rt);
    pod.ip = bareIp(pod.result.ips![0].address);
    pod.hostVeth = pod.result.interfaces!.find((i) => !i.sandbox)!.name;
    return pod;
  }

  const links = (ns: string) => ipJson<{ ifname: string; link_type?: string }[]>(ns, "link", "show").map((l) => l.ifname);
  const hostVeths = (n: Node) => links(n.lab.ns).filter((l) => HOST_VETH.test(l)).sort();
  const hostRoutes = (n: Node, address: string) => ipJson<unknown[]>(n.lab.ns, "route", "show", "exact", `${address}/32`);
  const reservations = (n: Node) => readdirSync(n.ipamDir).filter(isAddress).sort();
  const owner = (n: Node, address: string) => readFileSync(join(n.ipamDir, address), "utf8").split("\n").slice(0, 3);
  const iptablesSave = (n: Node) => lab.exec(n.lab.ns, "iptables-save", []);

  /** ADDs the agent counts in weft_cni_request_duration_seconds, read from its /metrics inside its namespace. */
  function servedAdds(n: Node): number {
    const ready = readFileSync(n.lab.logFile!, "utf8").split("\n").find((l) => l.includes("weft agent ready"));
    const { host, port } = (JSON.parse(ready!) as { metrics: { host: string; port: number } }).metrics;
    const text = lab.exec(n.lab.ns, "python3", ["-c", `import urllib.request; print(urllib.request.urlopen("http://${host}:${port}/metrics").read().decode())`]);
    const count = /^weft_cni_request_duration_seconds_count\{command="ADD"\} (\d+)$/m.exec(text);
    return Number(count?.[1] ?? 0);
  }

  /** The attachment is gone everywhere weft keeps it: host veth, host route, reservation. */
  function expectGone(n: Node, pod: Pod): void {
    expect(hostVeths(n)).not.toContain(pod.hostVeth);
    expect(hostRoutes(n, pod.ip!)).toEqual([]);
    expect(reservations(n)).not.toContain(pod.ip);
  }

  async function expectCniError(p: Promise<unknown>, code: number): Promise<CniPluginError> {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err, `expected a CNI error with code ${code}`).toBeInstanceOf(CniPluginError);
    expect((err as CniPluginError).code, (err as Error).message).toBe(code);
    return err as CniPluginError;
  }

  it("ADD through the installed conflist (weft → portmap) gives 2 Pods per node distinct addresses in the node's subnet", async () => {
    const [n1, n2] = nodes;
    expect(n1.list).toMatchObject({ cniVersion: "1.0.0", name: "weft",
      plugins: [{ type: "weft", socket: n1.lab.socket }, { type: "portmap" }] });
    const portMappings = [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }];
    const specs: [Node, Pod][] = [[n1, sandbox(n1, "n1a", { portMappings })], [n1, sandbox(n1, "n1b")], [n2, sandbox(n2, "n2a")],
      [n2, sandbox(n2, "n2b")]];
    const before = n1.cni.calls.length;
    const addsBefore = servedAdds(n1);
    for (const [n, pod] of specs) main.push(await add(n.cni, n.list, pod));
    // The agent's own account of its part: one more ADD per Pod on node 1.
    expect(servedAdds(n1) - addsBefore).toBe(2);

    for (const [i, [n, pod]] of specs.entries()) {
      const subnet = n.lab.subnet.replace(/\.0\/24$/, ".");
      expect(pod.result).toMatchObject({ cniVersion: "1.0.0" });
      expect(pod.result!.ips![0].address, `Pod ${i}`).toMatch(new RegExp(`^${subnet.replace(/\./g, "\\.")}\\d+/24$`));
      expect(pod.result!.ips![0].gateway).toBe(`${subnet}1`);
      expect(pod.result!.interfaces).toContainEqual(expect.objectContaining({ name: "eth0", sandbox: pod.rt.netns }));
      const podAddrs = ipJson<{ ifname: string; addr_info: { local: string }[] }[]>(pod.ns, "addr", "show", "dev", "eth0");
      expect(podAddrs[0].addr_info.map((a) => a.local)).toContain(pod.ip);
      expect(owner(n, pod.ip!)).toEqual([pod.rt.containerID, "eth0", "weft"]);
    }
    expect(new Set(main.map((p) => p.ip)).size).toBe(4);

    // What the plugins were given: a runtime's environment, name/cniVersion injected, prevResult and runtimeConfig chained.
    const calls = n1.cni.calls.slice(before);
    expect(calls.map((c) => `${c.plugin} ${c.command}`)).toEqual(["weft ADD", "portmap ADD", "weft ADD", "portmap ADD"]);
    for (const c of calls) {
      expect(Object.keys(c.env).sort())
        .toEqual(["CNI_ARGS", "CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS", "CNI_PATH", "PATH"]);
      expect(c.env.PATH).toBe(RUNTIME_PATH);
    }
    expect(RUNTIME_PATH.split(":").filter((d) => existsSync(join(d, "node")))).toEqual([]);
    const [weftIn, portmapIn] = [JSON.parse(calls[0].stdin), JSON.parse(calls[1].stdin)];
    expect(weftIn).toEqual({ type: "weft", socket: n1.lab.socket, name: "weft", cniVersion: "1.0.0" });
    expect(portmapIn.prevResult).toEqual(JSON.parse(calls[0].stdout));
    expect(portmapIn.runtimeConfig).toEqual({ portMappings });
    expect(JSON.parse(calls[3].stdin).runtimeConfig).toBeUndefined();
  });

  it("Pods reach each other across the nodes both ways and within a node; each node reaches its local Pods", async () => {
    const [a1, b1, a2, b2] = main;
    for (const [from, to] of [[a1, a2], [a2, a1], [b1, b2], [b2, b1], [a1, b1], [b2, a2]]) await waitPing(from.ns, to.ip!);
    for (const [n, pods] of [[nodes[0], [a1, b1]], [nodes[1], [a2, b2]]] as const) {
      for (const pod of pods) expect(ping(n.lab.ns, pod.ip!, 2), `${n.lab.ns} → ${pod.ip}`).toBe(2);
    }
  });

  it("portmap: node 1's underlay address :8080 reaches a server on port 80 in Pod 1 (from node 2)", async () => {
    const [n1, n2] = nodes;
    const pod = main[0];
    const sink = await tcpSink(pod.ns, 80, { timeoutS: 15 });
    try {
      const client = await tcpSend(n2.lab.ns, n1.lab.underlayIP, 8080, 256 * 1024, 15);
      const [server] = await sink.results();
      expect(server).toMatchObject({ localPort: 80, local: pod.ip, peer: n2.lab.underlayIP, bytes: 256 * 1024, sha256: client.sha256 });
    } finally {
      sink.proc.kill();
    }
    expect(iptablesSave(n1)).toContain(pod.rt.containerID);
  });

  it("CHECK passes after ADD for every Pod (weft, then portmap, with the cached result)", async () => {
    for (const pod of main) {
      const n = pod.node;
      const before = n.cni.calls.length;
      // Debian's portmap (plugins ≤ 1.2) fails CHECK for an IPv4-only Pod with port mappings: it looks for an ip6tables
      // chain ADD never made (containernetworking/plugins#819). Only that failure is forgiven, and weft's CHECK must pass.
      const portmapBug = pod.rt.capabilityArgs?.portMappings !== undefined;
      await n.cni.check(n.list, pod.rt).catch((err: Error) => {
        const known = portmapBug && err instanceof CniPluginError && err.call.plugin === "portmap" && /could not check ipv6 dnat/.test(err.msg);
        if (!known) throw err;
      });
      const calls = n.cni.calls.slice(before);
      expect(calls.map((c) => `${c.plugin} ${c.command} ${c.exitCode}`)).toEqual(["weft CHECK 0", `portmap CHECK ${portmapBug ? 1 : 0}`]);
      expect(JSON.parse(calls[0].stdin).prevResult).toEqual(pod.result);
    }
  });

  it("bandwidth chained after weft: ADD shapes the Pod (tbf on the host veth, an ifb for egress), CHECK passes, DEL removes all", async () => {
    const n = nodes[0];
    const list: NetworkConfigList = { cniVersion: "1.0.0", name: "weft-bw",
      plugins: [{ type: "weft", socket: n.lab.socket }, { type: "bandwidth", capabilities: { bandwidth: true } }] };
    const shaping = { ingressRate: 10_000_000, ingressBurst: 1_000_000, egressRate: 20_000_000, egressBurst: 1_000_000 };
    const pod = await add(n.cni, list, sandbox(n, "bw", { bandwidth: shaping }));
    expect(owner(n, pod.ip!)).toEqual([pod.rt.containerID, "eth0", "weft-bw"]);
    const qdiscs = (dev: string) => JSON.parse(lab.exec(n.lab.ns, "tc", ["-j", "qdisc", "show", "dev", dev])) as { kind: string }[];
    expect(qdiscs(pod.hostVeth!).map((q) => q.kind)).toContain("tbf");
    const ifbs = () => links(n.lab.ns).filter((l) => l.startsWith("bwp"));
    expect(ifbs()).toHaveLength(1);
    await n.cni.check(list, pod.rt);
    await waitPing(pod.ns, main[2].ip!);
    await n.cni.del(list, pod.rt);
    expectGone(n, pod);
    expect(ifbs()).toEqual([]);
  });

  it("containerd-style DEL (with the netns, then with an empty CNI_NETNS) succeeds and leaves nothing; the Pod can come back", async () => {
    const n = nodes[0];
    const cni = runtime(n, { style: "containerd" });
    const pod = main[1];
    await cni.del(n.list, pod.rt);
    expect(cni.calls.map((c) => `${c.plugin} ${c.command} ${c.exitCode} ${c.env.CNI_NETNS || "-"}`)).toEqual([
      `portmap DEL 0 ${pod.rt.netns}`, `weft DEL 0 ${pod.rt.netns}`, "portmap DEL 0 -", "weft DEL 0 -"]);
    // The first DEL carries the cached ADD result; the second finds the cache entry gone, as libcni does.
    expect(JSON.parse(cni.calls[1].stdin).prevResult).toEqual(pod.result);
    expect(JSON.parse(cni.calls[3].stdin).prevResult).toBeUndefined();
    expectGone(n, pod);
    expect(links(pod.ns)).not.toContain("eth0");
    expect(cni.cachedResult(n.list, pod.rt)).toBeUndefined();

    // The sandbox restarts under a new id in the same namespace: the address is free to be handed out again, and works.
    const again: Pod = { node: n, ns: pod.ns, rt: { ...pod.rt, containerID: randomBytes(32).toString("hex") } };
    await add(n.cni, n.list, again);
    expect(reservations(n)).toContain(again.ip);
    await waitPing(again.ns, main[2].ip!);
    main[1] = again;
  });

  it("podman-style: VERSION on every plugin before each ADD and DEL", async () => {
    const n = nodes[1];
    const cni = runtime(n, { style: "podman" });
    const pod = await add(cni, n.list, sandbox(n, "pm"));
    await waitPing(pod.ns, main[0].ip!);
    await cni.del(n.list, pod.rt);
    expect(cni.calls.map((c) => `${c.plugin} ${c.command} ${c.exitCode}`)).toEqual([
      "weft VERSION 0", "portmap VERSION 0", "weft ADD 0", "portmap ADD 0",
      "weft VERSION 0", "portmap VERSION 0", "portmap DEL 0", "weft DEL 0"]);
    const version = JSON.parse(cni.calls[0].stdout);
    expect(version.cniVersion).toBe("1.1.0");
    expect(version.supportedVersions).toEqual(expect.arrayContaining(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
    expect(cni.calls[0].env).toMatchObject({ CNI_COMMAND: "VERSION", CNI_NETNS: "dummy", CNI_IFNAME: "dummy", CNI_PATH: "dummy" });
    expectGone(n, pod);
  });

  it("DEL after the Pod's namespace vanished succeeds and frees everything", async () => {
    const n = nodes[1];
    const pod = await add(n.cni, n.list, sandbox(n, "gone"));
    ip("netns", "del", pod.ns);
    expect(existsSync(pod.rt.netns)).toBe(false);
    await n.cni.del(n.list, pod.rt);
    expectGone(n, pod);
  });

  it("GC (1.1.0) with cni.dev/valid-attachments keeps the listed Pods and removes the others' leftovers", async () => {
    const n = nodes[1];
    const kept = await add(n.cni, n.list, sandbox(n, "gcA"));
    // Crashed with the runtime's cache intact: libcni's GC DELs it itself (with its vanished netns).
    const cached = await add(n.cni, n.list, sandbox(n, "gcB"));
    // Crashed, and the runtime lost its cache entry: only the plugin's GC can free the address.
    const lost = await add(n.cni, n.list, sandbox(n, "gcC"));
    // Forgotten by the runtime while its namespace lives on: the plugin's GC must remove the host veth too.
    const forgotten = await add(n.cni, n.list, sandbox(n, "gcD"));
    ip("netns", "del", cached.ns);
    ip("netns", "del", lost.ns);
    n.cni.forget(n.list.name, lost.rt);
    n.cni.forget(n.list.name, forgotten.rt);
    expect(hostVeths(n)).toContain(forgotten.hostVeth);

    const valid = n.cni.cachedAttachments().filter((a) => a.network === n.list.name && a.containerID !== cached.rt.containerID);
    expect(valid.map((a) => a.containerID).sort()).toEqual([main[2], main[3], kept].map((p) => p.rt.containerID).sort());
    const before = n.cni.calls.length;
    await n.cni.gc(n.list11, valid.map(({ containerID, ifname }) => ({ containerID, ifname })));
    const calls = n.cni.calls.slice(before);
    expect(calls.map((c) => `${c.plugin} ${c.command} ${c.exitCode}`)).toEqual(["weft DEL 0", "weft GC 0"]);
    expect(JSON.parse(calls[1].stdin)["cni.dev/valid-attachments"]).toHaveLength(3);

    for (const pod of [cached, lost, forgotten]) expectGone(n, pod);
    expect(links(forgotten.ns)).not.toContain("eth0");
    expect(reservations(n)).toEqual([main[2], main[3], kept].map((p) => p.ip!).sort());
    expect(hostVeths(n)).toEqual([main[2], main[3], kept].map((p) => p.hostVeth!).sort());
    for (const pod of [main[2], main[3], kept]) await n.cni.check(n.list, pod.rt);
    await waitPing(kept.ns, main[0].ip!);
    main.push(kept);
  });

  it("the front end works with nothing but the CNI_* variables in its environment (no PATH)", async () => {
    const n = nodes[0];
    const cni = runtime(n, { env: {} });
    const list: NetworkConfigList = { cniVersion: "1.0.0", name: "weft-bare", plugins: [{ type: "weft", socket: n.lab.socket }] };
    const pod = await add(cni, list, sandbox(n, "bare"));
    await cni.check(list, pod.rt);
    await waitPing(pod.ns, main[2].ip!);
    await cni.del(list, pod.rt);
    expectGone(n, pod);
    for (const c of cni.calls) expect(Object.keys(c.env).every((k) => k.startsWith("CNI_")), JSON.stringify(c.env)).toBe(true);
    expect(cni.calls.map((c) => `${c.command} ${c.exitCode}`)).toEqual(["ADD 0", "CHECK 0", "DEL 0"]);
  });

  it("kill -9 of the agent during a burst of 20 ADDs: after restart + GC, no duplicate address or leaked reservation; ADDs work", async () => {
    const n = nodes[0];
    const pods = Array.from({ length: 20 }, (_, i) => sandbox(n, `b${i}`));
    const KILL_AFTER = Number(process.env.WCE_KILL_AFTER ?? 5);
    let completed = 0;
    let firstDone!: () => void; // the kill comes once 5 ADDs are through (or one has failed)
    const first = new Promise<void>((res) => (firstDone = res));
    const outcomes = pods.map((pod) => add(n.cni, n.list, pod).then(
      () => {
        if (++completed === KILL_AFTER) firstDone();
        return undefined;
      },
      (err: unknown) => {
        firstDone();
        return err;
      }));
    await first;
    await lab.stopAgent(n.lab, "SIGKILL");
    const errors = await Promise.all(outcomes);
    const ok = pods.filter((_, i) => errors[i] === undefined);
    const failed = pods.filter((_, i) => errors[i] !== undefined);
    const reasons: Record<string, number> = {};
    for (const e of errors.filter((x): x is CniPluginError => x instanceof CniPluginError)) {
      const why = e.msg.replace(/\/\S+/g, "<path>");
      reasons[why] = (reasons[why] ?? 0) + 1;
    }
    console.log(`burst: ${ok.length} ADDs succeeded, ${failed.length} failed when the agent was killed:`, reasons);
    // Whatever failed, failed as "try again later": the agent was unreachable or went away mid-call.
    for (const err of errors.filter((e) => e !== undefined)) {
      expect(err, String(err)).toBeInstanceOf(CniPluginError);
      expect((err as CniPluginError).code, (err as Error).message).toBe(11);
      expect((err as CniPluginError).msg).toContain(n.lab.socket);
    }
    // A killed agent's socket file is left behind: STATUS says not available, an ADD says try again.
    await expectCniError(n.cni.status(n.list11), 50);

    lab.startAgent(n.lab);
    await lab.waitReady(n.lab);
    const valid = n.cni.cachedAttachments().filter((a) => a.network === n.list.name);
    const leftBefore = { reservations: reservations(n).length, veths: hostVeths(n).length };
    await n.cni.gc(n.list11, valid.map(({ containerID, ifname }) => ({ containerID, ifname })));
    console.log(`burst: GC freed ${leftBefore.reservations - reservations(n).length} reservations and removed ` +
      `${leftBefore.veths - hostVeths(n).length} host veths left by the interrupted ADDs`);

    const live = [...main.filter((p) => p.node === n), ...ok];
    expect(valid.map((a) => a.containerID).sort()).toEqual(live.map((p) => p.rt.containerID).sort());
    expect(new Set(live.map((p) => p.ip)).size).toBe(live.length);
    expect(reservations(n)).toEqual(live.map((p) => p.ip!).sort());
    for (const pod of live) expect(owner(n, pod.ip!)).toEqual([pod.rt.containerID, "eth0", "weft"]);
    expect(readdirSync(n.ipamDir).filter((f) => f.startsWith("."))).toEqual([]);
    expect(hostVeths(n)).toEqual(live.map((p) => p.hostVeth!).sort());
    for (const pod of ok) await n.cni.check(n.list, pod.rt);

    // The ones that failed are retried, as the runtime would, all at once.
    await Promise.all(failed.map((pod) => add(n.cni, n.list, pod)));
    const all = [...live, ...failed];
    expect(new Set(all.map((p) => p.ip)).size).toBe(all.length);
    expect(reservations(n)).toEqual(all.map((p) => p.ip!).sort());
    for (const pod of [pods[0], pods[19]]) await waitPing(pod.ns, main[2].ip!);
    expect(ping(n.lab.ns, pods[10].ip!, 1)).toBe(1);
  });

  it("STATUS succeeds while the agent runs and says 50 once it is stopped; ADD then fails with 11, naming the socket", async () => {
    const n = nodes[1];
    await n.cni.status(n.list11);
    expect(n.cni.calls.at(-1)).toMatchObject({ plugin: "weft", command: "STATUS", exitCode: 0, stdout: "" });
    await lab.stopAgent(n.lab);
    const status = await expectCniError(n.cni.status(n.list11), 50);
    expect(status.call.exitCode).toBe(1);
    expect(status.msg).toContain(n.lab.socket!);
    const pod = sandbox(n, "down");
    const addErr = await expectCniError(n.cni.add(n.list, pod.rt), 11);
    expect(addErr.call).toMatchObject({ plugin: "weft", exitCode: 1 });
    expect(addErr.msg).toContain(n.lab.socket!);
    expect(JSON.parse(addErr.call.stdout)).toMatchObject({ cniVersion: "1.0.0", code: 11 });
    // The front end gave up before anything was made in the Pod.
    expect(links(pod.ns)).toEqual(["lo"]);
  });
});
