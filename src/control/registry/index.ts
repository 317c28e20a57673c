// Picks the registry named by the config: file (docs/registries.md), etcd (docs/registry-etcd.md), kube
// (docs/registry-kube.md).
import type { Logger } from "pino";
import type { AgentConfig, EtcdRegistryConfig } from "../config.js";
import { FileRegistry, type FileRegistryOptions } from "./file.js";
import { KubeRegistry, type KubeRegistryOptions } from "./kube.js";
import type { Registry } from "./record.js";

export type { EtcdRegistryOptions } from "./etcd.js";
export { FileRegistry, type FileRegistryOptions } from "./file.js";
export { KubeRegistry, type KubeRegistryOptions } from "./kube.js";
export { FileLock, withFileLock, type LockOptions } from "./lock.js";
export {
  type NodeRecord, type Registry, type RegistryEvents, parseNodeRecord, RecordError, sameRecord,
} from "./record.js";

export class RegistryNotImplementedError extends Error {}

/** What the kube registry needs beyond the file registry: the cluster networks to check the Node's podCIDR against. */
type RegistryKeys = "clusterCIDR" | "subnetLen" | "clusterCIDRv6" | "subnetLenV6" | "publicIP" | "publicIPv6" | "vtepMAC" | "vni" | "port";

/** The etcd client (grpc-js, protobufjs: ~25 MiB of RSS) is loaded only by an agent whose registry is etcd. */
export async function createRegistry(
  config: Pick<AgentConfig, "registry" | "nodeName"> & Partial<Pick<AgentConfig, RegistryKeys>>,
  log: Logger,
  fileOptions: Partial<Pick<FileRegistryOptions, "pollMs" | "debounceMs" | "lock">> = {},
  kubeOptions: Partial<Pick<KubeRegistryOptions, "informer" | "waitLogMs">> = {},
): Promise<Registry> {
  const registry = config.registry;
  switch (registry.type) {
    case "file":
      return new FileRegistry({ path: registry.path, nodeName: config.nodeName, log, ...fileOptions });
    case "kube": {
      const { clusterCIDR, subnetLen, publicIP, vtepMAC, vni } = config;
      if (clusterCIDR === undefined || subnetLen === undefined || publicIP === undefined || vtepMAC === undefined || vni === undefined) {
        throw new Error("the kube registry needs clusterCIDR, subnetLen, publicIP, vtepMAC and vni from the agent's config");
      }
      return new KubeRegistry({
        nodeName: config.nodeName,
        kubeconfig: registry.kubeconfig,
        clusterCIDR,
        subnetLen,
        clusterCIDRv6: config.clusterCIDRv6,
        subnetLenV6: config.subnetLenV6,
        self: { publicIP, vtepMAC, vni, ...(config.publicIPv6 !== undefined && { publicIPv6: config.publicIPv6 }) },
        log,
        ...kubeOptions,
      });
    }
    case "etcd":
      return createEtcdRegistry(registry, config, log);
  }
}

async function createEtcdRegistry(registry: EtcdRegistryConfig, config: Pick<AgentConfig, "nodeName"> & Partial<Pick<AgentConfig, RegistryKeys>>,
  log: Logger): Promise<Registry> {
  const { clusterCIDR, subnetLen, publicIP, vni, port } = config;
  if (clusterCIDR === undefined || subnetLen === undefined || publicIP === undefined || vni === undefined || port === undefined) {
    throw new Error("the etcd registry needs clusterCIDR, subnetLen, publicIP, vni and port from the agent's config");
  }
  const { EtcdRegistry } = await import("./etcd.js");
  return new EtcdRegistry({
    config: registry,
    nodeName: config.nodeName,
    publicIP,
    network: {
      clusterCIDR,
      subnetLen,
      ...(config.clusterCIDRv6 !== undefined && { clusterCIDRv6: config.clusterCIDRv6, subnetLenV6: config.subnetLenV6 }),
      vni,
      port,
    },
    log: log.child({ part: "registry" }),
  });
}
