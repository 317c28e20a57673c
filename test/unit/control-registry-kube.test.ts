// flannel's kube subnet manager format (docs/registry-kube.md), read and written: which Nodes are peers, what a record
// looks like on a Node, and public-ip-overwrite. The registry against a real API server is test/integration/registry-kube.
import { describe, expect, it } from "vitest";
import {
  ANNOTATIONS, annotationsHold, nodeToRecord, podCIDRs, recordAnnotations,
} from "../../src/control/registry/kube-annotations.js";
import type { KubeNode } from "../../src/control/registry/kube-client.js";

/** A Node as flanneld v0.28 leaves it (annotations copied from a real kube-flannel cluster, addresses changed). */
function flannelNode(extra: Record<string, string> = {}, spec: KubeNode["spec"] = { podCIDR: "10.244.3.0/24", podCIDRs: ["10.244.3.0/24"] }): KubeNode {
  return {
    metadata: {
      name: "worker-3",
      resourceVersion: "812",
      annotations: {
        "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"6e:1b:0c:4d:9f:21"}',
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": "192.168.10.13",
        "node.alpha.kubernetes.io/ttl": "0",
        ...extra,
      },
    },
    spec,
  };
}

describe("nodeToRecord", () => {
  it("reads a flanneld node as a peer record", () => {
    expect(nodeToRecord(flannelNode())).toEqual({
      nodeName: "worker-3", publicIP: "192.168.10.13", subnet: "10.244.3.0/24", vtepMAC: "6e:1b:0c:4d:9f:21", vni: 1,
    });
  });

  it("ignores Nodes no kube subnet manager manages", () => {
    expect(nodeToRecord({ metadata: { name: "plain" }, spec: { podCIDR: "10.244.1.0/24" } })).toBeNull();
    expect(nodeToRecord(flannelNode({ [ANNOTATIONS.kubeSubnetManager]: "false" }))).toBeNull();
  });

  it("says why a managed Node cannot be a vxlan peer", () => {
    expect(nodeToRecord(flannelNode({ [ANNOTATIONS.backendType]: "host-gw" }))).toMatch(/backend-type is "host-gw", not "vxlan"/);
    expect(nodeToRecord(flannelNode({}, {}))).toMatch(/no IPv4 podCIDR/);
    expect(nodeToRecord(flannelNode({ [ANNOTATIONS.backendData]: "{nope" }))).toMatch(/backend-data is not JSON/);
    expect(nodeToRecord(flannelNode({ [ANNOTATIONS.backendData]: '{"VNI":1,"VtepMAC":"zz"}' }))).toMatch(/vtepMAC/);
    const noIP = flannelNode();
    delete noIP.metadata.annotations![ANNOTATIONS.publicIP];
    expect(nodeToRecord(noIP)).toMatch(/no public-ip/);
  });

  it("takes flannel's default VNI 1 when backend-data carries none (older flanneld)", () => {
    const r = nodeToRecord(flannelNode({ [ANNOTATIONS.backendData]: '{"VtepMAC":"6e:1b:0c:4d:9f:21"}' }));
    expect(r).toMatchObject({ vni: 1 });
  });

  it("takes the first IPv4 podCIDR, spec.podCIDR when podCIDRs is absent, and IPv6 only with its annotations", () => {
    expect(podCIDRs({ metadata: { name: "a" }, spec: { podCIDRs: ["fd00:10:244:3::/64", "10.244.3.0/24"] } }))
      .toEqual({ v4: "10.244.3.0/24", v6: "fd00:10:244:3::/64" });
    expect(podCIDRs({ metadata: { name: "a" }, spec: { podCIDR: "10.244.9.0/24" } })).toEqual({ v4: "10.244.9.0/24" });
    const dual = flannelNode({
      [ANNOTATIONS.backendV6Data]: '{"VNI":1,"VtepMAC":"6e:1b:0c:4d:9f:22"}', [ANNOTATIONS.publicIPv6]: "fd00:200::13",
    }, { podCIDRs: ["10.244.3.0/24", "fd00:10:244:3::/64"] });
    expect(nodeToRecord(dual)).toMatchObject({ subnetV6: "fd00:10:244:3::/64", publicIPv6: "fd00:200::13" });
    expect(nodeToRecord(flannelNode({}, { podCIDRs: ["10.244.3.0/24", "fd00:10:244:3::/64"] }))).not.toHaveProperty("subnetV6");
  });
});

describe("recordAnnotations", () => {
  const record = { nodeName: "weft-1", publicIP: "192.168.10.21", subnet: "10.244.5.0/24", vtepMAC: "02:5e:00:00:00:01", vni: 1 };

  it("writes what flanneld's vxlan backend writes, byte for byte", () => {
    expect(recordAnnotations(record, {})).toEqual({
      "flannel.alpha.coreos.com/kube-subnet-manager": "true",
      "flannel.alpha.coreos.com/backend-type": "vxlan",
      "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"02:5e:00:00:00:01"}',
      "flannel.alpha.coreos.com/public-ip": "192.168.10.21",
    });
  });

  it("publishes public-ip-overwrite instead of our address when an operator set it", () => {
    const out = recordAnnotations(record, { [ANNOTATIONS.publicIPOverwrite]: "203.0.113.7" });
    expect(out[ANNOTATIONS.publicIP]).toBe("203.0.113.7");
  });

  it("round-trips through nodeToRecord", () => {
    const node: KubeNode = { metadata: { name: "weft-1", annotations: recordAnnotations(record, {}) }, spec: { podCIDRs: ["10.244.5.0/24"] } };
    expect(nodeToRecord(node)).toEqual(record);
  });

  it("dual-stack adds public-ipv6 and backend-v6-data", () => {
    const out = recordAnnotations({ ...record, subnetV6: "fd00:10:244:5::/64", publicIPv6: "fd00:200::21" }, {});
    expect(out[ANNOTATIONS.publicIPv6]).toBe("fd00:200::21");
    expect(out[ANNOTATIONS.backendV6Data]).toBe('{"VNI":1,"VtepMAC":"02:5e:00:00:00:01"}');
  });

  it("annotationsHold compares values and absences", () => {
    const current = recordAnnotations(record, {});
    expect(annotationsHold(current, current)).toBe(true);
    expect(annotationsHold({ ...current, [ANNOTATIONS.publicIP]: "192.168.10.99" }, current)).toBe(false);
    expect(annotationsHold({ [ANNOTATIONS.publicIPv6]: null }, current)).toBe(true);
    expect(annotationsHold({ [ANNOTATIONS.publicIP]: null }, current)).toBe(false);
  });
});
