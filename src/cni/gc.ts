// GC (spec 1.1.0): the runtime lists the attachments of this network that are still valid; every other attachment weft
// holds a record of for the network is stale (a Pod whose DEL never came, an agent killed mid-ADD) and goes as DEL would
// take it, by its record. What weft has no record of is not weft's to collect, whatever its name or alias
// (docs/cni.md). ADDs in progress are not stale yet. Every step runs even when one fails.
import { type Env, type NetConf, compareVersions } from "./config.js";
import { type CniContext, delegates } from "./context.js";
import { removeRecordedVeth } from "./del.js";
import { CniError, ERR, asCniError } from "./errors.js";
import { type Attachment, attachmentKey } from "./ipam.js";
import { DelegatedIpam } from "./ipam-delegate.js";

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
  const failures: CniError[] = [];
  const step = async (what: string, fn: () => unknown) => {
    try {
      await fn();
    } catch (err) {
      failures.push(asCniError(err, what));
    }
  };

  const removed: string[] = [];
  await step("removing stale attachments", async () => removed.push(...(await removeStaleAttachments(ctx, conf.name, keep))));
  let freed: Attachment[] = [];
  if (!delegates(conf)) await step("releasing stale reservations", () => (freed = ctx.builtin.collect(conf.name, keep)));
  if (delegates(conf)) await step("IPAM GC", () => new DelegatedIpam(conf, env).optional("GC"));

  ctx.log.info({ network: conf.name, valid: valid.length, released: freed.map((a) => `${a.containerID}/${a.ifname}`), removed },
    "CNI GC");
  // The first failure's code: an IPAM plugin missing from CNI_PATH is a config error here as in ADD.
  if (failures.length > 0) {
    throw new CniError(failures[0].code, `GC did not finish: ${failures[0].message}`, failures.map((f) => f.message).join("\n"));
  }
}

/** The host veths of this network's stale records (those still weft's), then the records; returns the veths removed. */
async function removeStaleAttachments(ctx: CniContext, network: string, keep: (a: Attachment) => boolean): Promise<string[]> {
  const stale = ctx.records.list(network).filter((r) => !keep(r));
  const removed = await Promise.all(stale.map((r) => removeRecordedVeth(ctx, r)));
  // An ADD of one of them may have begun meanwhile: its new record stays. The reservations go with builtin.collect (or the
  // IPAM plugin's GC) right after.
  for (const r of stale) if (!keep(r)) ctx.records.remove(r);
  return removed.filter((name): name is string => name !== undefined);
}
