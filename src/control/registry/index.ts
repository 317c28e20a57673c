// Picks the registry named by the config: file (docs/agent.md), etcd (docs/registry-etcd.md); kube refuses at startup
// rather than pretend to work.
import type { Logger } from "pino";
import type { AgentConfig } from "../config.js";
import { EtcdRegistry } from "./etcd.js";
import { FileRegistry, type FileRegistryOptions } from "./file.js";
import type { Registry } from "./record.js";

export { EtcdRegistry, type EtcdRegistryOptions } from "./etcd.js";
export { FileRegistry, type FileRegistryOptions } from "./file.js";
export { FileLock, withFileLock, type LockOptions } from "./lock.js";
export {
  type NodeRecord, type Registry, type RegistryEvents, parseNodeRecord, RecordError, sameRecord,
} from "./record.js";

export class RegistryNotImplementedError extends Error {}

export function createRegistry(
  config: Pick<AgentConfig, "registry" | "nodeName" | "publicIP" | "clusterCIDR" | "subnetLen" | "clusterCIDRv6" | "subnetLenV6" | "vni" | "port">,
  log: Logger,
  fileOptions: Partial<Pick<FileRegistryOptions, "pollMs" | "debounceMs" | "lock">> = {},
): Registry {
  const registry = config.registry;
  switch (registry.type) {
    case "file":
      return new FileRegistry({ path: registry.path, nodeName: config.nodeName, log, ...fileOptions });
    case "etcd":
      return new EtcdRegistry({
        config: registry,
        nodeName: config.nodeName,
        publicIP: config.publicIP,
        network: {
          clusterCIDR: config.clusterCIDR,
          subnetLen: config.subnetLen,
          ...(config.clusterCIDRv6 !== undefined && { clusterCIDRv6: config.clusterCIDRv6, subnetLenV6: config.subnetLenV6 }),
          vni: config.vni,
          port: config.port,
        },
        log: log.child({ part: "registry" }),
      });
    case "kube":
      throw new RegistryNotImplementedError(
        `registry.type "${registry.type}" is not implemented yet; use registry.type "file" (the embedded default)`,
      );
  }
}
