// A real flanneld as a lab node (kind "flanneld"): the kube subnet manager against the lab's kube-apiserver, the vxlan
// backend on the lab's port, inside the node's namespace only. Everything it would put elsewhere is pointed into the
// lab's directory (net-conf.json, subnet.env), and the rules it can skip are off: no masquerade (--ip-masq=false), no
// FORWARD accept rules (--iptables-forward-rules=false), no health server. Pods on it are wired by the lab (ptp style);
// flanneld's job is the cross-node part: flannel.<VNI>, its neighbours, FDB entries and routes.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findClusterTools } from "./kube.js";
import { CLUSTER, type Lab, type LabNode } from "./topology.js";

export function startFlanneld(lab: Lab, n: LabNode): ChildProcess {
  const tools = findClusterTools();
  if (typeof tools === "string" || !tools.flanneld) {
    throw new Error(`node kind "flanneld": no flanneld binary (${typeof tools === "string" ? tools : "set WEFT_FLANNEL_BIN or run scripts/ensure-cluster-tools.sh"})`);
  }
  if (!lab.kube) throw new Error(`node kind "flanneld" needs the lab's registry "kube"`);
  const dir = join(lab.dir, `node${n.index}`);
  mkdirSync(dir, { recursive: true });
  const netConf = join(dir, "net-conf.json");
  writeFileSync(netConf, JSON.stringify({ Network: CLUSTER, Backend: { Type: "vxlan", VNI: 1, Port: lab.port } }, null, 2));
  n.logFile = join(dir, "flanneld.log");
  const out = createWriteStream(n.logFile, { flags: "a" });
  const child = spawn("ip", ["netns", "exec", n.ns, "env", `NODE_NAME=${n.name}`, tools.flanneld,
    "--kube-subnet-mgr", `--kubeconfig-file=${lab.kube.flannel.kubeconfig}`, `--iface=${lab.prefix}u${n.index}`,
    `--net-config-path=${netConf}`, `--subnet-file=${join(dir, "subnet.env")}`,
    "--ip-masq=false", "--iptables-forward-rules=false", "--healthz-port=0", "-v=1"], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}
