// Picks the registry named by the config. Only the file registry exists today; etcd and kube refuse at startup rather than
// pretend to work.
import type { Logger } from "pino";
import type { AgentConfig } from "../config.js";
import { FileRegistry, type FileRegistryOptions } from "./file.js";
import type { Registry } from "./record.js";

export { FileRegistry, type FileRegistryOptions } from "./file.js";
export { FileLock, withFileLock, type LockOptions } from "./lock.js";
export {
  type NodeRecord, type Registry, type RegistryEvents, parseNodeRecord, RecordError, sameRecord,
} from "./record.js";

export class RegistryNotImplementedError extends Error {}

export function createRegistry(
  config: Pick<AgentConfig, "registry" | "nodeName">,
  log: Logger,
  fileOptions: Partial<Pick<FileRegistryOptions, "pollMs" | "debounceMs" | "lock">> = {},
): Registry {
  const registry = config.registry;
  switch (registry.type) {
    case "file":
      return new FileRegistry({ path: registry.path, nodeName: config.nodeName, log, ...fileOptions });
    case "etcd":
    case "kube":
      throw new RegistryNotImplementedError(
        `registry.type "${registry.type}" is not implemented yet; use registry.type "file" (the embedded default)`,
      );
  }
}
