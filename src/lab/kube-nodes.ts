// The lab's Node objects: registered as kubelets register them, subnets read back from the podCIDRs the controller
// manager assigns, kernel-VXLAN nodes annotated the way flanneld annotates its own Node, and kernel nodes' peers
// programmed from the other Nodes' annotations (as flanneld's vxlan backend does from its watch).
import { sleep } from "./topology.js";
import type { KubeControlPlane } from "./kube.js";
import type { Lab, LabNode } from "./topology.js";

const FLANNEL = "flannel.alpha.coreos.com/";

export interface NodeJson {
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { conditions?: { type: string; status: string; reason?: string }[] };
}

/**
 * A Node as a kubelet registers it: name, hostname label, addresses, and the annotation every kubelet sets (flanneld
 * relies on a Node having annotations: it writes into the map without creating it).
 */
export function nodeObject(name: string, address: string, extra: { annotations?: Record<string, string> } = {}): object {
  const annotations = { "volumes.kubernetes.io/controller-managed-attach-detach": "true", ...extra.annotations };
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" }, annotations },
    status: { addresses: [{ type: "InternalIP", address }, { type: "Hostname", address: name }] },
  };
}

/** flannel's own annotations for a node with this VtepMAC and underlay address. */
export function flannelAnnotations(vtepMAC: string, publicIP: string): Record<string, string> {
  return {
    [`${FLANNEL}kube-subnet-manager`]: "true",
    [`${FLANNEL}backend-type`]: "vxlan",
    [`${FLANNEL}backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: vtepMAC }),
    [`${FLANNEL}public-ip`]: publicIP,
  };
}

export function getNodes(kube: KubeControlPlane): NodeJson[] {
  return (JSON.parse(kube.kubectl(["get", "nodes", "-o", "json"])) as { items: NodeJson[] }).items;
}

/** Creates a Node per lab node and waits for each to get a podCIDR, which becomes the lab node's subnet. */
export async function registerNodes(kube: KubeControlPlane, nodes: LabNode[], timeoutMs = 60_000): Promise<void> {
  kube.kubectl(["create", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: nodes.map((n) => nodeObject(n.name, n.underlayIP)) }));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const byName = new Map(getNodes(kube).map((n) => [n.metadata.name, n]));
    const missing = nodes.filter((n) => !byName.get(n.name)?.spec?.podCIDR);
    if (missing.length === 0) {
      for (const n of nodes) n.subnet = byName.get(n.name)!.spec!.podCIDR!;
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`no podCIDR for ${missing.map((n) => n.name).join(", ")} after ${timeoutMs / 1000} s; see ${kube.logFile("kube-controller-manager")}`);
    }
    await sleep(250);
  }
}

/** Publishes a kernel-VXLAN node's record as flanneld would: its annotations, through nodes/status. */
export function annotateAsFlannel(kube: KubeControlPlane, n: LabNode): void {
  const patch = { metadata: { annotations: flannelAnnotations(n.vtepMAC, n.underlayIP) } };
  kube.kubectl(["patch", "node", n.name, "--subresource=status", "--type=strategic", "-p", JSON.stringify(patch)]);
}

/** Programs kernel node `k` with every other flannel-annotated Node as a peer (neighbour, FDB, route). */
export async function kernelPeersFromKube(lab: Lab, k: LabNode): Promise<void> {
  for (const node of getNodes(lab.kube!)) {
    const a = node.metadata.annotations ?? {};
    if (node.metadata.name === k.name || a[`${FLANNEL}kube-subnet-manager`] !== "true" || !node.spec?.podCIDR) continue;
    const data = JSON.parse(a[`${FLANNEL}backend-data`]) as { VtepMAC: string };
    lab.kernelPeer(k, { subnet: node.spec.podCIDR, vtepMAC: data.VtepMAC, underlayIP: a[`${FLANNEL}public-ip`] });
  }
}
