// GC (spec 1.1.0): the runtime lists the attachments of this network that are still valid; everything else weft holds for
// the network is stale: reservations left by Pods whose DEL never came (or by an agent killed mid-ADD), and host veths
// without a Pod the runtime knows. ADDs in progress are not stale yet. Every step runs even when one fails.
import { type Env, type NetConf, compareVersions } from "./config.js";
import { type CniContext, delegates } from "./context.js";
import { CniError, ERR, asCniError } from "./errors.js";
import { type Attachment, attachmentKey } from "./ipam.js";
import { DelegatedIpam } from "./ipam-delegate.js";
import { hostVethName, listHostVeths, parseHostAlias } from "./wiring.js";

interface Valid {
  containerID: string;
  ifname: string;
}

/** `cni.dev/valid-attachments`, or the name spec 1.1.0's first text used, `cni.dev/attachments`. */
function validAttachments(raw: Record<string, unknown>): Valid[] {
  const list = raw["cni.dev/valid-attachments"] ?? raw["cni.dev/attachments"];
  if (list === undefined) {
    throw new CniError(ERR.INVALID_CONFIG, "GC needs cni.dev/valid-attachments: the attachments of this network to keep");
  }
  if (!Array.isArray(list)) throw new CniError(ERR.INVALID_CONFIG, "cni.dev/valid-attachments must be a list");
  return list.map((a, i) => {
    const v = a as Partial<Valid> | null;
    if (typeof v?.containerID !== "string" || typeof v.ifname !== "string") {
      throw new CniError(ERR.INVALID_CONFIG, `cni.dev/valid-attachments[${i}] must be {"containerID", "ifname"}`);
    }
    return { containerID: v.containerID, ifname: v.ifname };
  });
}

export async function cmdGc(ctx: CniContext, conf: NetConf, env: Env): Promise<void> {
  if (compareVersions(conf.cniVersion, "1.1.0") < 0) {
    throw new CniError(ERR.INCOMPATIBLE_VERSION, `GC needs cniVersion 1.1.0 or later; the config says ${conf.cniVersion}`);
  }
  const valid = validAttachments(conf.raw);
  const validKeys = new Set(valid.map((v) => attachmentKey({ network: conf.name, ...v })));
  const keep = (a: Attachment) => validKeys.has(attachmentKey(a)) || ctx.inFlight.has(attachmentKey(a));
  const failures: string[] = [];
  const step = async (what: string, fn: () => unknown) => {
    try {
      await fn();
    } catch (err) {
      failures.push(asCniError(err, what).message);
    }
  };

  let freed: Attachment[] = [];
  if (!delegates(conf)) await step("releasing stale reservations", () => (freed = ctx.builtin.collect(conf.name, keep)));
  const removed: string[] = [];
  await step("removing stale veths", async () => removed.push(...(await removeStaleVeths(ctx, conf.name, valid, keep))));
  if (delegates(conf)) await step("IPAM GC", () => new DelegatedIpam(conf, env).optional("GC"));

  ctx.log.info({ network: conf.name, valid: valid.length, released: freed.map((a) => `${a.containerID}/${a.ifname}`), removed },
    "CNI GC");
  if (failures.length > 0) throw new CniError(ERR.IO, `GC did not finish: ${failures[0]}`, failures.join("\n"));
}

/**
 * Host veths of this network whose attachment is not kept. A veth without weft's alias was made by an ADD killed before
 * it could label it: stale unless its name is that of a kept attachment.
 */
async function removeStaleVeths(ctx: CniContext, network: string, valid: Valid[], keep: (a: Attachment) => boolean): Promise<string[]> {
  const keptNames = new Set(valid.map((v) => hostVethName(v.containerID, v.ifname)));
  for (const key of ctx.inFlight) {
    const [, containerID, ifname] = key.split("/");
    keptNames.add(hostVethName(containerID, ifname));
  }
  const stale = listHostVeths().filter((link) => {
    const owner = parseHostAlias(link.alias);
    return owner ? owner.network === network && !keep(owner) : !keptNames.has(link.name);
  });
  const removed = await Promise.all(stale.map((link) => ctx.reaper.delete(link.name)));
  return stale.filter((_, i) => removed[i]).map((link) => link.name);
}
