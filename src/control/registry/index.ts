// Picks the registry named by the config. The etcd registry does not exist yet and refuses at startup rather than pretend
// to work.
import type { Logger } from "pino";
import type { AgentConfig } from "../config.js";
import { FileRegistry, type FileRegistryOptions } from "./file.js";
import { KubeRegistry, type KubeRegistryOptions } from "./kube.js";
import type { Registry } from "./record.js";

export { FileRegistry, type FileRegistryOptions } from "./file.js";
export { KubeRegistry, type KubeRegistryOptions } from "./kube.js";
export { FileLock, withFileLock, type LockOptions } from "./lock.js";
export {
  type NodeRecord, type Registry, type RegistryEvents, parseNodeRecord, RecordError, sameRecord,
} from "./record.js";

export class RegistryNotImplementedError extends Error {}

/** What the kube registry needs beyond the file registry: the cluster networks to check the Node's podCIDR against. */
type KubeKeys = "clusterCIDR" | "subnetLen" | "clusterCIDRv6" | "subnetLenV6" | "publicIP" | "publicIPv6" | "vtepMAC" | "vni";

export function createRegistry(
  config: Pick<AgentConfig, "registry" | "nodeName"> & Partial<Pick<AgentConfig, KubeKeys>>,
  log: Logger,
  fileOptions: Partial<Pick<FileRegistryOptions, "pollMs" | "debounceMs" | "lock">> = {},
  kubeOptions: Partial<Pick<KubeRegistryOptions, "informer" | "waitLogMs">> = {},
): Registry {
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
      throw new RegistryNotImplementedError(
        `registry.type "${registry.type}" is not implemented yet; use registry.type "file" (the embedded default) or "kube"`,
      );
  }
}
