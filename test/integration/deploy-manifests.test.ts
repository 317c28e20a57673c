// deploy/ against a real kube-apiserver (on loopback, with its etcd): every manifest passes the server's own validation
// and admission in a server-side dry run, the dry run does reject broken objects (so this test can fail), the ClusterRole
// grants exactly what docs/install.md says, and the ConfigMap's agent config and conflist are ones weft itself accepts
// with the DaemonSet's flags.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runInstallCni } from "../../src/cli/install-cni.js";
import { loadAgentConfig } from "../../src/control/config.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { findApiServerTools, LoopbackApiServer } from "./lib/apiserver.js";

const DEPLOY = join(PACKAGE_ROOT, "deploy");
const UNINSTALL = join(DEPLOY, "uninstall");
const tools = findApiServerTools();
if (typeof tools === "string") console.warn(`deploy manifest validation needs kube-apiserver, kubectl and etcd: skipped (${tools})`);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

describe.skipIf(typeof tools === "string")("deploy/: the manifests against a real kube-apiserver", () => {
  let api: LoopbackApiServer;
  let objects: K8sObject[];
  let dir: string;
  const find = (kind: string, name?: string) => {
    const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
    if (!o) throw new Error(`deploy/ has no ${kind}${name ? ` ${name}` : ""}`);
    return structuredClone(o) as any;
  };
  const dryRun = (input: unknown) => api.kubectl(["apply", "--dry-run=server", "-f", "-"], JSON.stringify(input));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "weft-deploy-"));
    api = new LoopbackApiServer(tools as Exclude<typeof tools, string>);
    await api.start();
    // The manifests as the API server's client reads them (kubectl's own YAML decoding, no second parser here).
    const list = api.kubectl(["apply", "--dry-run=client", "-o", "json", "-f", DEPLOY]);
    expect(list.code, list.stderr).toBe(0);
    const parsed = JSON.parse(list.stdout) as K8sObject & { items?: K8sObject[] };
    objects = parsed.items ?? [parsed];
  }, 240_000);
  afterAll(async () => {
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("deploy/ is one Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap and DaemonSet, in that order", () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "Namespace/kube-weft", "ServiceAccount/weft", "ClusterRole/weft", "ClusterRoleBinding/weft", "ConfigMap/weft-config", "DaemonSet/weft",
    ]);
    expect(find("Namespace").metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("privileged");
  });

  it("a server-side dry run of `kubectl apply -f deploy/` (and of deploy/uninstall/) succeeds: validation and admission pass", () => {
    // A dry run creates nothing, so the namespaced objects need their Namespace to exist: that one is applied for real.
    const ns = api.kubectl(["apply", "-f", "-"], JSON.stringify(find("Namespace")));
    expect(ns.code, ns.stderr).toBe(0);
    const r = api.kubectl(["apply", "--dry-run=server", "-f", DEPLOY]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(6);
    for (const line of r.stdout.trim().split("\n")) expect(line).toMatch(/ (created|configured|unchanged) \(server dry run\)$/);
    const u = api.kubectl(["apply", "--dry-run=server", "-f", UNINSTALL]);
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout.trim()).toBe("daemonset.apps/weft-uninstall created (server dry run)");
  });

  it("the dry run rejects what is wrong: a bad mount propagation, a misspelled field, a capability list that is not one", () => {
    const badPropagation = find("DaemonSet");
    badPropagation.spec.template.spec.containers[0].volumeMounts.find((m: any) => m.name === "run-netns").mountPropagation = "Sideways";
    const r1 = dryRun(badPropagation);
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toMatch(/mountPropagation.*Sideways/);

    const misspelled = find("DaemonSet");
    misspelled.spec.template.spec.hostNetwrok = true;
    const r2 = dryRun(misspelled);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain('unknown field "spec.template.spec.hostNetwrok"');

    const badCapabilities = find("DaemonSet");
    badCapabilities.spec.template.spec.containers[0].securityContext.capabilities.add = "NET_ADMIN";
    const r3 = dryRun(badCapabilities);
    expect(r3.code).not.toBe(0);
    expect(r3.stderr).toMatch(/capabilities/);
  });

  it("the ClusterRole lets the agent read Nodes and patch their status, and nothing else", () => {
    for (const kind of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]) {
      const r = api.kubectl(["apply", "-f", "-"], JSON.stringify(find(kind)));
      expect(r.code, r.stderr).toBe(0);
    }
    const can = (verb: string, resource: string) => {
      const [kind, subresource] = resource.split("/");
      return api.kubectl(["auth", "can-i", verb, kind, ...(subresource ? [`--subresource=${subresource}`] : []),
        "--as=system:serviceaccount:kube-weft:weft"]).stdout.trim();
    };
    for (const verb of ["get", "list", "watch"]) expect(can(verb, "nodes"), `${verb} nodes`).toBe("yes");
    expect(can("patch", "nodes/status")).toBe("yes");
    for (const [verb, resource] of [["patch", "nodes"], ["update", "nodes/status"], ["delete", "nodes"], ["create", "nodes"],
      ["get", "pods"], ["get", "secrets"], ["get", "configmaps"], ["list", "namespaces"]]) {
      expect(can(verb, resource), `${verb} ${resource}`).toBe("no");
    }
  });

  it("the ConfigMap's agent config is one weft accepts with the DaemonSet's flags; its conflist is one install-cni installs", async () => {
    const config = find("ConfigMap");
    const ds = find("DaemonSet");
    const [init] = ds.spec.template.spec.initContainers;
    const agent = ds.spec.template.spec.containers[0];
    // Both containers read the ConfigMap where it is mounted, by its keys.
    expect(agent.volumeMounts.find((m: any) => m.name === "weft-config").mountPath).toBe("/etc/weft");
    expect(agent.command.slice(0, 4)).toEqual(["weft", "agent", "--config", "/etc/weft/agent.json"]);
    expect(init.command).toContain("/etc/weft/cni-conf.json");
    expect(Object.keys(config.data).sort()).toEqual(["agent.json", "cni-conf.json"]);

    const agentFile = join(dir, "agent.json");
    writeFileSync(agentFile, config.data["agent.json"]);
    const hostIP = "192.0.2.10";
    const flags: Record<string, string> = {};
    const rest: string[] = agent.command.slice(4).map((a: string) => a.replaceAll("$(HOST_IP)", hostIP));
    for (let i = 0; i < rest.length; i += 2) flags[rest[i].replace(/^--/, "")] = rest[i + 1];
    const loaded = loadAgentConfig(agentFile, flags, { hostname: () => "node-a" });
    expect(loaded).toMatchObject({ clusterCIDR: "10.244.0.0/16", port: 8472, vni: 1, publicIP: hostIP, registry: { type: "kube" },
      socket: "/run/weft/weft.sock", stateDir: "/var/lib/weft", metrics: { host: hostIP, port: 9464 } });

    const conflist = join(dir, "cni-conf.json");
    writeFileSync(conflist, config.data["cni-conf.json"]);
    vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      expect(await runInstallCni({ binDir: join(dir, "bin"), confDir: join(dir, "net.d"), conflist })).toBe(0);
    } finally {
      vi.restoreAllMocks();
    }
    expect(JSON.parse(config.data["cni-conf.json"]).plugins[0]).toEqual({ type: "weft", socket: loaded.socket });
  });

  it("the DaemonSet has the shape docs/install.md describes", () => {
    const ds = find("DaemonSet");
    const pod = ds.spec.template.spec;
    const agent = pod.containers[0];
    expect(ds.spec.updateStrategy.type).toBe("RollingUpdate");
    expect(pod).toMatchObject({ hostNetwork: true, priorityClassName: "system-node-critical", tolerations: [{ operator: "Exists" }],
      serviceAccountName: "weft" });
    expect(pod.initContainers.map((c: any) => c.name)).toEqual(["install-cni"]);
    expect(agent.env.find((e: any) => e.name === "NODE_NAME").valueFrom.fieldRef.fieldPath).toBe("spec.nodeName");
    expect(agent.securityContext.privileged ?? false).toBe(false);
    expect(agent.securityContext.capabilities).toEqual({ drop: ["ALL"], add: ["NET_ADMIN", "SYS_ADMIN"] });
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) expect(agent[probe].httpGet).toEqual({ path: "/healthz", port: 9464 });
    expect(agent.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    const hostPaths = Object.fromEntries(pod.volumes.filter((v: any) => v.hostPath).map((v: any) => [v.hostPath.path, v.name]));
    for (const path of ["/dev/net/tun", "/opt/cni/bin", "/etc/cni/net.d", "/run/weft", "/var/lib/weft", "/run/netns", "/proc/sys/net"]) {
      expect(hostPaths[path], path).toBeDefined();
    }
    const netns = agent.volumeMounts.find((m: any) => m.name === hostPaths["/run/netns"]);
    expect(netns.mountPropagation).toBe("HostToContainer");
  });
});
