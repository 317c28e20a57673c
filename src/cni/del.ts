// DEL: release everything an attachment holds. Runtimes call it twice, with an empty CNI_NETNS, after the namespace is
// gone, or after an ADD that failed halfway: whatever is already gone counts as done.
// CNI_ARGS is not checked here: a DEL refused for an argument would leak the Pod's address.
import { type Env, type NetConf, containerIdFrom, ifnameFrom, optionalNetns } from "./config.js";
import { type CniContext, delegates } from "./context.js";
import type { Attachment } from "./ipam.js";
import { DelegatedIpam } from "./ipam-delegate.js";
import { deletePodVeth, hostVethName } from "./wiring.js";

export async function cmdDel(ctx: CniContext, conf: NetConf, env: Env): Promise<void> {
  const containerID = containerIdFrom(env);
  const ifname = ifnameFrom(env);
  const netns = optionalNetns(env);
  const attachment: Attachment = { network: conf.name, containerID, ifname };
  const hostVeth = hostVethName(containerID, ifname);

  // The veth before the address: the address must not be handed out while a route still leads to this Pod.
  const removedVeth = await ctx.reaper.delete(hostVeth);
  const removedPodEnd = !removedVeth && netns !== undefined && deletePodVeth(netns, ifname);
  const released = await releaseAddresses(ctx, conf, env, attachment);
  ctx.log.info({ containerID, ifname, hostVeth, removedVeth: removedVeth || removedPodEnd, ...released }, "CNI DEL");
}

async function releaseAddresses(ctx: CniContext, conf: NetConf, env: Env, a: Attachment): Promise<{ released?: string[]; ipam?: string }> {
  if (!delegates(conf)) return { released: ctx.builtin.release(a) };
  const plugin = new DelegatedIpam(conf, env);
  await plugin.del();
  return { ipam: plugin.type };
}
