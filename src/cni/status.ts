// STATUS (spec 1.1.0): can this node take ADDs? Not before the agent's dataplane is up (code 50), and not when a
// delegated IPAM plugin says it cannot. VERSION: which spec versions weft speaks (the front end answers it too).
import { type Env, LATEST_VERSION, type NetConf, SUPPORTED_VERSIONS, compareVersions, peekVersion } from "./config.js";
import { type CniContext, delegates } from "./context.js";
import { CniError, ERR } from "./errors.js";
import { DelegatedIpam } from "./ipam-delegate.js";

export async function cmdStatus(ctx: CniContext, conf: NetConf, env: Env): Promise<void> {
  if (compareVersions(conf.cniVersion, "1.1.0") < 0) {
    throw new CniError(ERR.INCOMPATIBLE_VERSION, `STATUS needs cniVersion 1.1.0 or later; the config says ${conf.cniVersion}`);
  }
  if (!ctx.opts.ready()) throw new CniError(ERR.NOT_AVAILABLE, "the weft agent is not ready yet (dataplane starting)");
  if (delegates(conf)) await new DelegatedIpam(conf, env).optional("STATUS");
}

export function versionInfo(stdin: string): string {
  return JSON.stringify({ cniVersion: peekVersion(stdin) ?? LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] });
}
