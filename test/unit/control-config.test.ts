// The agent config (docs/agent.md): defaults, file + flags (flags win), and every refusal naming its key.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseMAC } from "../../src/net/addr.js";
import { ConfigError, defaultQueues, deriveVtepMAC, loadAgentConfig } from "../../src/control/config.js";
import { tempDir } from "./fixtures-control/helpers.js";

const opts = { hostname: () => "host-a" };
const minimal = { clusterCIDR: "10.244.0.0/16", publicIP: "10.0.0.1" };

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir("config");
});
afterEach(() => tmp.cleanup());

function file(content: unknown): string {
  const path = join(tmp.dir, "agent.json");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

describe("defaults", () => {
  it("fills every optional key", () => {
    const c = loadAgentConfig(undefined, minimal, opts);
    expect(c).toEqual({
      nodeName: "host-a",
      clusterCIDR: "10.244.0.0/16",
      subnetLen: 24,
      publicIP: "10.0.0.1",
      publicIPWait: 60,
      vni: 1,
      port: 4789,
      vtepMAC: deriveVtepMAC("host-a"),
      vtepMACDerived: true,
      device: "weft0",
      registry: { type: "file", path: "/etc/weft/peers.json" },
      socket: "/run/weft/weft.sock",
      stateDir: "/var/lib/weft",
      metrics: { host: "127.0.0.1", port: 9464 },
      maxPeers: 8192,
      queues: defaultQueues(),
    });
  });

  it("leaves whether this machine has publicIP to the start, which waits publicIPWait seconds for it", () => {
    const c = loadAgentConfig(undefined, { ...minimal, publicIP: "192.0.2.77", "public-ip-wait": "5" }, opts);
    expect(c.publicIP).toBe("192.0.2.77");
    expect(c.publicIPWait).toBe(5);
  });

  it("accepts the docs/agent.md example file as is", () => {
    const c = loadAgentConfig(file({
      nodeName: "node1", clusterCIDR: "10.244.0.0/16", subnetLen: 24, subnet: "10.244.1.0/24", publicIP: "10.0.0.1", vni: 1,
      port: 4789, vtepMAC: "02:5e:00:00:00:01", device: "weft0", registry: { type: "file", path: "/etc/weft/peers.json" },
      socket: "/run/weft/weft.sock", stateDir: "/var/lib/weft", metrics: "127.0.0.1:9464",
    }), {}, opts);
    expect(c.subnet).toBe("10.244.1.0/24");
    expect(c.vtepMAC).toBe("02:5e:00:00:00:01");
    expect(c.vtepMACDerived).toBe(false);
  });

  it("accepts dual-stack keys and canonicalises IPv6 text", () => {
    const c = loadAgentConfig(undefined, {
      ...minimal, clusterCIDRv6: "fd00:10:244::/56", subnetV6: "fd00:10:244:5::/64", publicIPv6: "FD00:0::1",
    }, opts);
    expect(c).toMatchObject({ clusterCIDRv6: "fd00:10:244::/56", subnetLenV6: 64, subnetV6: "fd00:10:244:5::/64", publicIPv6: "fd00::1" });
  });

  it("accepts an IPv6 underlay as publicIP", () => {
    expect(loadAgentConfig(undefined, { ...minimal, publicIP: "fd00::1" }, opts).publicIP).toBe("fd00::1");
  });
});

describe("flags", () => {
  it("override the file, in camelCase or kebab-case", () => {
    const path = file({ ...minimal, nodeName: "node1", port: 4789, vni: 1, registry: { type: "file", path: "/a.json" } });
    const c = loadAgentConfig(path, {
      "node-name": "node2", port: "8472", vni: undefined, "--cluster-cidr": "10.96.0.0/12", "registry-path": "/b.json",
      stateDir: "/tmp/weft-state", "subnet-len": "26",
    }, opts);
    expect(c.nodeName).toBe("node2");
    expect(c.port).toBe(8472);
    expect(c.vni).toBe(1);
    expect(c.clusterCIDR).toBe("10.96.0.0/12");
    expect(c.subnetLen).toBe(26);
    expect(c.registry).toEqual({ type: "file", path: "/b.json" });
    expect(c.stateDir).toBe("/tmp/weft-state");
  });

  it("take the peer bound as --max-peers or maxPeers", () => {
    expect(loadAgentConfig(undefined, { ...minimal, "max-peers": "20000" }, opts).maxPeers).toBe(20000);
    expect(loadAgentConfig(file({ ...minimal, maxPeers: 65536 }), {}, opts).maxPeers).toBe(65536);
  });

  it("take the TUN queue count as --queues or queues; the default is one queue per four cores, 1 to 8", () => {
    expect(loadAgentConfig(undefined, { ...minimal, queues: "3" }, opts).queues).toBe(3);
    expect(loadAgentConfig(file({ ...minimal, queues: 64 }), {}, opts).queues).toBe(64);
    expect([1, 2, 4, 7, 8, 16, 32, 64].map((cores) => defaultQueues(cores))).toEqual([1, 1, 1, 1, 2, 4, 8, 8]);
  });

  it("switch the registry type with a fresh registry object", () => {
    const path = file({ ...minimal, registry: { type: "file", path: "/a.json" } });
    const c = loadAgentConfig(path, { registryType: "etcd", "registry-endpoints": "http://a:2379, https://b:2379" }, opts);
    expect(c.registry).toEqual({ type: "etcd", endpoints: ["http://a:2379", "https://b:2379"], prefix: "/coreos.com/network", leaseTTL: 86400 });
  });

  it("keep the file's registry keys when the type stays", () => {
    const path = file({ ...minimal, registry: { type: "etcd", endpoints: ["http://a:2379"] } });
    expect(loadAgentConfig(path, { "registry-prefix": "/x" }, opts).registry)
      .toEqual({ type: "etcd", endpoints: ["http://a:2379"], prefix: "/x", leaseTTL: 86400 });
  });

  it("take the etcd lease TTL and TLS files from flags, paths made absolute", () => {
    const pem = join(tmp.dir, "a.pem");
    writeFileSync(pem, "x");
    const c = loadAgentConfig(undefined, { ...minimal, "registry-type": "etcd", "registry-endpoints": "https://a:2379",
      "registry-lease-ttl": "60", "registry-ca-file": pem, "registry-cert-file": pem, "registry-key-file": pem }, opts);
    expect(c.registry).toEqual({ type: "etcd", endpoints: ["https://a:2379"], prefix: "/coreos.com/network", leaseTTL: 60,
      caFile: pem, certFile: pem, keyFile: pem });
  });
});

describe("the kube registry", () => {
  it("takes registry.kubeconfig from the file or --registry-kubeconfig, as an absolute path", () => {
    const kubeconfig = join(tmp.dir, "kubeconfig");
    writeFileSync(kubeconfig, "{}");
    expect(loadAgentConfig(file({ ...minimal, registry: { type: "kube", kubeconfig } }), {}, opts).registry).toEqual({ type: "kube", kubeconfig });
    expect(loadAgentConfig(undefined, { ...minimal, "registry-type": "kube", "registry-kubeconfig": kubeconfig }, opts).registry)
      .toEqual({ type: "kube", kubeconfig });
  });
  it("without kubeconfig means the in-cluster service account", () => {
    expect(loadAgentConfig(undefined, { ...minimal, "registry-type": "kube" }, opts).registry).toEqual({ type: "kube" });
  });
  it("names the node from NODE_NAME unless nodeName is set; other registries ignore NODE_NAME", () => {
    const env = { NODE_NAME: "k8s-node-7" };
    expect(loadAgentConfig(undefined, { ...minimal, "registry-type": "kube" }, { ...opts, env }).nodeName).toBe("k8s-node-7");
    expect(loadAgentConfig(undefined, { ...minimal, "registry-type": "kube", nodeName: "given" }, { ...opts, env }).nodeName).toBe("given");
    expect(loadAgentConfig(undefined, minimal, { ...opts, env }).nodeName).toBe("host-a");
    expect(loadAgentConfig(undefined, { ...minimal, "registry-type": "kube" }, { ...opts, env: {} }).nodeName).toBe("host-a");
  });
});

describe("derived VtepMAC", () => {
  it("is stable, locally administered and unicast", () => {
    for (const name of ["node1", "node2", "a-very-long-node-name.example.com", "x"]) {
      const mac = deriveVtepMAC(name);
      expect(deriveVtepMAC(name)).toBe(mac);
      const b0 = parseMAC(mac)[0];
      expect(b0 & 0x02).toBe(0x02);
      expect(b0 & 0x01).toBe(0);
    }
    expect(deriveVtepMAC("node1")).not.toBe(deriveVtepMAC("node2"));
  });
});

interface Refusal {
  name: string;
  key: string;
  flags?: Record<string, string>;
  file?: unknown;
}

const refusals: Refusal[] = [
  { name: "unknown key in the file", key: "bogus", file: { ...minimal, bogus: 1 } },
  { name: "unknown flag", key: "--frobnicate", flags: { ...minimal, "--frobnicate": "1" } },
  { name: "the registry as one flag", key: "registry", flags: { ...minimal, registry: "{}" } },
  { name: "a number given as a string", key: "vni", file: { ...minimal, vni: "1" } },
  { name: "a non-integer flag", key: "port", flags: { ...minimal, port: "http" } },
  { name: "a fractional number", key: "subnetLen", file: { ...minimal, subnetLen: 24.5 } },
  { name: "a string given as a number", key: "nodeName", file: { ...minimal, nodeName: 7 } },
  { name: "a registry that is not an object", key: "registry", file: { ...minimal, registry: "file" } },
  { name: "a missing clusterCIDR", key: "clusterCIDR", flags: { publicIP: "10.0.0.1" } },
  { name: "a CIDR without a length", key: "clusterCIDR", flags: { ...minimal, clusterCIDR: "10.244.0.0" } },
  { name: "a CIDR with a bad address", key: "clusterCIDR", flags: { ...minimal, clusterCIDR: "10.244.0.256/16" } },
  { name: "a CIDR with host bits", key: "clusterCIDR", flags: { ...minimal, clusterCIDR: "10.244.1.0/16" } },
  { name: "an IPv6 clusterCIDR", key: "clusterCIDR", flags: { ...minimal, clusterCIDR: "fd00::/48" } },
  { name: "an IPv4 clusterCIDRv6", key: "clusterCIDRv6", flags: { ...minimal, clusterCIDRv6: "10.245.0.0/16" } },
  { name: "subnetLen equal to the cluster prefix", key: "subnetLen", flags: { ...minimal, subnetLen: "16" } },
  { name: "subnetLen shorter than the cluster prefix", key: "subnetLen", flags: { ...minimal, subnetLen: "8" } },
  { name: "subnetLen too long for Pods", key: "subnetLen", flags: { ...minimal, subnetLen: "31" } },
  { name: "a subnet outside the cluster", key: "subnet", flags: { ...minimal, subnet: "10.245.1.0/24" } },
  { name: "a subnet of the wrong length", key: "subnet", flags: { ...minimal, subnet: "10.244.0.0/23" } },
  { name: "a malformed subnet", key: "subnet", flags: { ...minimal, subnet: "10.244.1/24" } },
  { name: "subnetV6 without clusterCIDRv6", key: "subnetV6", flags: { ...minimal, subnetV6: "fd00::/64" } },
  { name: "subnetV6 outside clusterCIDRv6", key: "subnetV6", flags: { ...minimal, clusterCIDRv6: "fd00:10::/56", subnetV6: "fd00:11::/64" } },
  { name: "subnetLenV6 not longer than clusterCIDRv6", key: "subnetLenV6", flags: { ...minimal, clusterCIDRv6: "fd00:10::/64" } },
  { name: "a missing publicIP", key: "publicIP", flags: { clusterCIDR: "10.244.0.0/16" } },
  { name: "a malformed publicIP", key: "publicIP", flags: { ...minimal, publicIP: "10.0.0" } },
  { name: "a negative publicIPWait", key: "publicIPWait", flags: { ...minimal, publicIPWait: "-1" } },
  { name: "a publicIPWait above an hour", key: "publicIPWait", file: { ...minimal, publicIPWait: 3601 } },
  { name: "a publicIP inside the Pod network", key: "publicIP", flags: { ...minimal, clusterCIDR: "10.0.0.0/16" } },
  { name: "an IPv4 publicIPv6", key: "publicIPv6", flags: { ...minimal, publicIPv6: "192.168.7.2" } },
  { name: "a VNI above 24 bits", key: "vni", flags: { ...minimal, vni: "16777216" } },
  { name: "a negative VNI", key: "vni", flags: { ...minimal, vni: "-1" } },
  { name: "port 0", key: "port", flags: { ...minimal, port: "0" } },
  { name: "a port above 65535", key: "port", flags: { ...minimal, port: "65536" } },
  { name: "a malformed MAC", key: "vtepMAC", flags: { ...minimal, vtepMAC: "02:5e:00:00:01" } },
  { name: "a multicast MAC", key: "vtepMAC", flags: { ...minimal, vtepMAC: "03:00:00:00:00:01" } },
  { name: "the zero MAC", key: "vtepMAC", flags: { ...minimal, vtepMAC: "00:00:00:00:00:00" } },
  { name: "an unknown registry type", key: "registry.type", flags: { ...minimal, "registry-type": "consul" } },
  { name: "a key of another registry type", key: "registry.endpoints", file: { ...minimal, registry: { type: "file", endpoints: [] } } },
  { name: "etcd without endpoints", key: "registry.endpoints", flags: { ...minimal, "registry-type": "etcd" } },
  { name: "etcd with a bad endpoint", key: "registry.endpoints", flags: { ...minimal, "registry-type": "etcd", "registry-endpoints": "127.0.0.1:2379" } },
  { name: "etcd with a relative prefix", key: "registry.prefix", flags: { ...minimal, "registry-type": "etcd", "registry-endpoints": "http://a:2379", "registry-prefix": "weft" } },
  { name: "etcd with a prefix ending in a slash", key: "registry.prefix", file: { ...minimal, registry: { type: "etcd", endpoints: ["http://a:2379"], prefix: "/coreos.com/network/" } } },
  { name: "etcd with a lease TTL of 1 s", key: "registry.leaseTTL", file: { ...minimal, registry: { type: "etcd", endpoints: ["http://a:2379"], leaseTTL: 1 } } },
  { name: "etcd with a lease TTL that is not a number", key: "registry.leaseTTL", flags: { ...minimal, "registry-type": "etcd", "registry-endpoints": "http://a:2379", "registry-lease-ttl": "1d" } },
  { name: "etcd with an unreadable CA file", key: "registry.caFile", flags: { ...minimal, "registry-type": "etcd", "registry-endpoints": "https://a:2379", "registry-ca-file": "/nonexistent/ca.pem" } },
  { name: "etcd with a client certificate but no key", key: "registry.keyFile", file: { ...minimal, registry: { type: "etcd", endpoints: ["https://a:2379"], certFile: "/etc/hostname" } } },
  { name: "etcd over plain http with TLS files", key: "registry.endpoints", file: { ...minimal, registry: { type: "etcd", endpoints: ["http://a:2379"], caFile: "/etc/hostname" } } },
  { name: "etcd with an IPv6 publicIP", key: "publicIP", flags: { ...minimal, publicIP: "fd00::1", "registry-type": "etcd", "registry-endpoints": "http://a:2379" } },
  { name: "kube with a kubeconfig that is not a string", key: "registry.kubeconfig", file: { ...minimal, registry: { type: "kube", kubeconfig: 7 } } },
  { name: "kube with a kubeconfig that does not exist", key: "registry.kubeconfig", flags: { ...minimal, "registry-type": "kube", "registry-kubeconfig": "/nonexistent/kubeconfig" } },
  { name: "kube with a file registry's key", key: "registry.path", file: { ...minimal, registry: { type: "kube", path: "/a.json" } } },
  { name: "metrics without a port", key: "metrics", flags: { ...minimal, metrics: "127.0.0.1" } },
  { name: "metrics with a port above 65535", key: "metrics", flags: { ...minimal, metrics: "127.0.0.1:99999" } },
  { name: "metrics with a bad IPv4 host", key: "metrics", flags: { ...minimal, metrics: "300.0.0.1:9464" } },
  { name: "maxPeers 0", key: "maxPeers", flags: { ...minimal, "max-peers": "0" } },
  { name: "queues 0", key: "queues", flags: { ...minimal, queues: "0" } },
  { name: "queues above 64", key: "queues", file: { ...minimal, queues: 65 } },
  { name: "queues not an integer", key: "queues", file: { ...minimal, queues: 1.5 } },
  { name: "maxPeers above the 16-bit peer index", key: "maxPeers", file: { ...minimal, maxPeers: 65537 } },
  { name: "a device name too long", key: "device", flags: { ...minimal, device: "weft-0123456789abc" } },
  { name: "a device name with a slash", key: "device", flags: { ...minimal, device: "we/ft" } },
  { name: "a device name the kernel reserves", key: "device", flags: { ...minimal, device: "default" } },
  { name: "an invalid nodeName", key: "nodeName", flags: { ...minimal, nodeName: "node 1" } },
  { name: "a config file that is not JSON", key: "config", file: "{ nodeName: node1" },
  { name: "a config file holding an array", key: "config", file: [minimal] },
];

describe("refusals name the key", () => {
  it.each(refusals)("$name → $key", ({ key, flags, file: content }) => {
    const path = content === undefined ? undefined : file(content);
    let error: unknown;
    try {
      loadAgentConfig(path, flags ?? {}, opts);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as ConfigError).message).toContain(`${key}:`);
    expect((error as ConfigError).message).toMatch(/expected /);
  });

  it("the unknown-flag refusal lists every key's flag in kebab-case", () => {
    expect(() => loadAgentConfig(undefined, { ...minimal, "--frobnicate": "1" }, opts))
      .toThrow(/--public-ip, --public-ip-wait, --cluster-cidr-v6, .*--public-ip-v6, .*--state-dir/);
  });

  it("refuses a config file that does not exist, naming it", () => {
    expect(() => loadAgentConfig(join(tmp.dir, "missing.json"), {}, opts)).toThrow(/config: cannot read .*missing\.json/);
  });

  it("says what was expected, e.g. the canonical network address", () => {
    expect(() => loadAgentConfig(undefined, { ...minimal, clusterCIDR: "10.244.1.0/16" }, opts))
      .toThrow("clusterCIDR: 10.244.1.0/16 has host bits set; expected the network address, 10.244.0.0/16");
    expect(() => loadAgentConfig(undefined, { ...minimal, subnet: "10.245.1.0/24" }, opts))
      .toThrow("expected a /24 inside clusterCIDR 10.244.0.0/16");
  });
});
