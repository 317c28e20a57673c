// flannel's formats in etcd (docs/registry-etcd.md): subnet keys, lease values read the way Go's encoding/json reads them
// (any letter case, unknown fields ignored) and written in flannel's spelling, and the network config checked as flanneld
// interprets it, every disagreement naming the agent key and the etcd key.
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/control/config.js";
import {
  checkNetworkConfig, leaseValueFor, networkConfigFor, parseLease, parseSubnetKeyName, subnetKeyName,
} from "../../src/control/registry/flannel.js";
import { RecordError } from "../../src/control/registry/record.js";

const KEY = "/coreos.com/network/config";
const want = { clusterCIDR: "10.244.0.0/16", subnetLen: 24, vni: 1, port: 8472 };
const record = { nodeName: "node1", publicIP: "192.0.2.1", subnet: "10.244.3.0/24", vtepMAC: "02:5e:00:00:00:01", vni: 1 };

describe("subnet keys", () => {
  it("are flannel's <net>-<len>, with &<net6>-<len6> when dual-stack, and read back", () => {
    expect(subnetKeyName(record)).toBe("10.244.3.0-24");
    expect(subnetKeyName({ ...record, subnetV6: "fd00:10:244:3::/64" })).toBe("10.244.3.0-24&fd00:10:244:3::-64");
    expect(parseSubnetKeyName("10.244.3.0-24")).toEqual({ subnet: "10.244.3.0/24" });
    expect(parseSubnetKeyName("10.244.3.0-24&fd00:10:244:3::-64")).toEqual({ subnet: "10.244.3.0/24", subnetV6: "fd00:10:244:3::/64" });
  });

  it("refuse what is not one", () => {
    for (const bad of ["10.244.3.0", "10.244.3.0/24", "10.244.3.0-24-1", "10.244.300.0-24", "10.244.3.1-24", "fd00::-64", "config"]) {
      expect(parseSubnetKeyName(bad)).toBeUndefined();
    }
  });
});

describe("lease values", () => {
  it("are written as flanneld writes them, plus our node name", () => {
    expect(leaseValueFor(record)).toBe(
      '{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:5e:00:00:00:01"},"NodeName":"node1"}');
  });

  it("are read in any letter case, unknown fields ignored, and named as asked", () => {
    const value = JSON.stringify({ publicip: "192.0.2.7", PublicIPv6: null, backendtype: "vxlan", BackendData: { vni: 1, vtepmac: "9A:1B:2C:3D:4E:5F" }, Extra: 1 });
    expect(parseLease("10.244.7.0-24", value, "10.244.7.0-24")).toEqual({
      record: { nodeName: "10.244.7.0-24", publicIP: "192.0.2.7", subnet: "10.244.7.0/24", vtepMAC: "9a:1b:2c:3d:4e:5f", vni: 1 },
    });
    expect(parseLease("10.244.3.0-24", leaseValueFor(record), "node1")).toEqual({ record, weftNodeName: "node1" });
  });

  it("refuse what cannot be a peer, saying why", () => {
    const cases: [string, string, RegExp][] = [
      ["10.244.7.0", "{}", /not a subnet key/],
      ["10.244.7.0-24", "nope", /not JSON/],
      ["10.244.7.0-24", JSON.stringify({ PublicIP: "192.0.2.7", BackendType: "udp" }), /BackendType is "udp"/],
      ["10.244.7.0-24", JSON.stringify({ PublicIP: "192.0.2.7", BackendType: "vxlan" }), /BackendData/],
      ["10.244.7.0-24", JSON.stringify({ PublicIP: "nope", BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" } }), /publicIP/],
      ["10.244.7.0-24", JSON.stringify({ PublicIP: "192.0.2.7", BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "01:00:5e:00:00:01" } }), /multicast/],
    ];
    for (const [key, value, why] of cases) {
      expect(() => parseLease(key, value, key)).toThrow(RecordError);
      expect(() => parseLease(key, value, key)).toThrow(why);
    }
  });
});

describe("network config", () => {
  it("is written in flannel's spelling and agrees with itself", () => {
    expect(JSON.parse(networkConfigFor(want))).toEqual({ Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: "vxlan", VNI: 1, Port: 8472 } });
    expect(checkNetworkConfig(KEY, networkConfigFor(want), want)).toEqual([]);
    const dual = { ...want, clusterCIDRv6: "fd00:10::/56", subnetLenV6: 64 };
    expect(checkNetworkConfig(KEY, networkConfigFor(dual), dual)).toEqual([]);
  });

  it("fills in flannel's defaults: SubnetLen 24 for networks up to /22 (else +2), VNI 1, port 8472", () => {
    expect(checkNetworkConfig(KEY, JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }), want)).toEqual([]);
    expect(checkNetworkConfig(KEY, JSON.stringify({ network: "10.244.0.0/24", backend: { type: "vxlan" } }), { ...want, clusterCIDR: "10.244.0.0/24", subnetLen: 26 })).toEqual([]);
  });

  const refused: [string, unknown, Partial<typeof want>, string, RegExp][] = [
    ["another Network", { Network: "10.5.0.0/16", Backend: { Type: "vxlan" } }, {}, "clusterCIDR", /Network "10.5.0.0\/16" in etcd key \/coreos.com\/network\/config/],
    ["another SubnetLen", { Network: "10.244.0.0/16", SubnetLen: 26, Backend: { Type: "vxlan" } }, {}, "subnetLen", /SubnetLen 26/],
    ["the default SubnetLen against ours", { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }, { subnetLen: 25 }, "subnetLen", /flannel's default/],
    ["no Backend (flannel's udp)", { Network: "10.244.0.0/16" }, {}, "registry", /Backend.Type "udp/],
    ["host-gw", { Network: "10.244.0.0/16", Backend: { Type: "host-gw" } }, {}, "registry", /Backend.Type "host-gw"/],
    ["another VNI", { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 4 } }, {}, "vni", /Backend.VNI 4/],
    ["the default port against weft's", { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }, { port: 4789 }, "port", /Backend.Port 8472 .*default/],
    ["GBP", { Network: "10.244.0.0/16", Backend: { Type: "vxlan", GBP: true } }, {}, "registry", /GBP/],
    ["SubnetMin", { Network: "10.244.0.0/16", SubnetMin: "10.244.10.0", Backend: { Type: "vxlan" } }, {}, "registry", /SubnetMin/],
    ["IPv6 we lack", { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/56", Backend: { Type: "vxlan" } }, {}, "clusterCIDRv6", /EnableIPv6 true/],
    ["no IPv4", { EnableIPv4: false, Backend: { Type: "vxlan" } }, {}, "clusterCIDR", /EnableIPv4/],
    ["not JSON", "{", {}, "registry", /not JSON/],
  ];
  it.each(refused)("refuses %s, naming the agent key", (_, config, diff, key, message) => {
    const text = typeof config === "string" ? config : JSON.stringify(config);
    let error: unknown;
    try {
      checkNetworkConfig(KEY, text, { ...want, ...diff });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(KEY);
  });

  it("warns about DirectRouting, which flannel nodes apply on their own", () => {
    const warnings = checkNetworkConfig(KEY, JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: true } }), want);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/DirectRouting/);
  });
});
