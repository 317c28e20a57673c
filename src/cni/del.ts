// DEL: release everything an attachment holds, as weft's record of it says (docs/cni.md, "What DEL, GC and CHECK may
// remove"). Runtimes call it twice, with an empty CNI_NETNS, after the namespace is gone, or after an ADD that failed
// halfway: whatever is already gone counts as done, and an attachment weft holds no record of is a successful no-op.
// Nothing is looked up on the host by CNI_NETNS or CNI_IFNAME: an interface the record does not name is not ours.
// CNI_ARGS is not checked here: a DEL refused for an argument would leak the Pod's address.
import { type Env, type NetConf, containerIdFrom, ifnameFrom } from "./config.js";
import { type CniContext, delegates } from "./context.js";
import type { Attachment } from "./ipam.js";
import { DelegatedIpam } from "./ipam-delegate.js";
import type { AttachmentRecord } from "./records.js";
import { recordedHostVeth } from "./wiring.js";

export async function cmdDel(ctx: CniContext, conf: NetConf, env: Env): Promise<void> {
  const attachment: Attachment = { network: conf.name, containerID: containerIdFrom(env), ifname: ifnameFrom(env) };
  const record = ctx.records.read(attachment);
  // The veth before the address: the address must not be handed out while a route still leads to this Pod.
  const removedVeth = record ? await removeRecordedVeth(ctx, record) : undefined;
  const released = await releaseAddresses(ctx, conf, env, attachment);
  ctx.records.remove(attachment);
  ctx.log.info({ ...attachment, known: record !== null, removedVeth, ...released }, "CNI DEL");
}

/**
 * Deletes the host veth a record names when the link of that name is still the one weft made (its Pod end and every
 * route through it go too); returns its name, or undefined when it is gone or is not ours any more.
 */
export async function removeRecordedVeth(ctx: CniContext, record: AttachmentRecord): Promise<string | undefined> {
  const name = recordedHostVeth(record);
  if (name === null) return undefined;
  return (await ctx.reaper.delete(name)) ? name : undefined;
}

/**
 * The addresses go by their own records: weft's reservations (owned by exactly this attachment) or the delegated IPAM
 * plugin's, which gets its DEL whatever weft knows (a plugin that reserved before weft could record anything must not leak).
 */
async function releaseAddresses(ctx: CniContext, conf: NetConf, env: Env, a: Attachment): Promise<{ released?: string[]; ipam?: string }> {
  if (!delegates(conf)) return { released: ctx.builtin.release(a) };
  const plugin = new DelegatedIpam(conf, env);
  await plugin.del();
  return { ipam: plugin.type };
}
