// subnet.env beside the agent's socket, in the shape of flannel's /run/flannel/subnet.env, so scripts and CNI chains that
// read flannel's file can read ours: the cluster network, our subnet as gateway/len, the Pod MTU, and no masquerading.
import { dirname, join } from "node:path";
import { cidrToString, nthAddress, parseCIDR } from "../net/addr.js";
import { writeFileAtomic } from "./atomic-file.js";
import type { AgentConfig } from "./config.js";
import type { NodeRecord } from "./registry/record.js";

export function subnetEnvPath(socket: string): string {
  return join(dirname(socket), "subnet.env");
}

/** `10.244.1.0/24` → `10.244.1.1/24`: the gateway (first host address) with the subnet's prefix length. */
export function gatewayWithPrefix(subnet: string): string {
  const c = parseCIDR(subnet);
  return `${nthAddress(c, 1)}/${c.len}`;
}

export function formatSubnetEnv(
  config: Pick<AgentConfig, "clusterCIDR" | "clusterCIDRv6">,
  lease: Pick<NodeRecord, "subnet" | "subnetV6">,
  mtu: number,
): string {
  if (!Number.isInteger(mtu) || mtu < 68) throw new Error(`subnet.env: Pod MTU ${mtu} is not an integer of at least 68`);
  const lines = [
    `WEFT_NETWORK=${cidrToString(parseCIDR(config.clusterCIDR))}`,
    `WEFT_SUBNET=${gatewayWithPrefix(lease.subnet)}`,
    `WEFT_MTU=${mtu}`,
    "WEFT_IPMASQ=false",
  ];
  if (config.clusterCIDRv6 !== undefined && lease.subnetV6 !== undefined) {
    lines.push(`WEFT_IPV6_NETWORK=${cidrToString(parseCIDR(config.clusterCIDRv6))}`, `WEFT_IPV6_SUBNET=${gatewayWithPrefix(lease.subnetV6)}`);
  }
  return lines.join("\n") + "\n";
}

/** Writes subnet.env atomically beside config.socket and returns its path. */
export function writeSubnetEnv(
  config: Pick<AgentConfig, "socket" | "clusterCIDR" | "clusterCIDRv6">,
  lease: Pick<NodeRecord, "subnet" | "subnetV6">,
  mtu: number,
): string {
  const path = subnetEnvPath(config.socket);
  writeFileAtomic(path, formatSubnetEnv(config, lease, mtu));
  return path;
}
