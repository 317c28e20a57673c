// ADD: the steps of attaching a Pod, top to bottom (docs/cni.md). Each step that leaves something behind pushes its undo; a
// failure anywhere runs the undo stack backwards, so a failed ADD leaves no veth, route, reserved address or record.
import type { Logger } from "pino";
import { type Env, type NetConf, containerIdFrom, hasDns, ifnameFrom, netnsFrom, parseCniArgs } from "./config.js";
import { type CniContext, delegates, podMtu } from "./context.js";
import { CniError, ERR } from "./errors.js";
import { type Attachment, type IpamResult, attachmentKey } from "./ipam.js";
import { DelegatedIpam } from "./ipam-delegate.js";
import { Phases } from "./phases.js";
import { type CniResult, ipFamily, shapeResult } from "./result.js";
import { removeRecordedVeth } from "./del.js";
import type { AttachmentRecord } from "./records.js";
import { type LinkState, PodNamespace, type VethPair, configureHost, configurePod, createPair, hostAlias, hostVethName, linkOn }
  from "./wiring.js";

type Undo = () => void | Promise<void>;

class UndoStack {
  private readonly steps: { what: string; undo: Undo }[] = [];

  push(what: string, undo: Undo): void {
    this.steps.push({ what, undo });
  }

  /** Undoes everything, newest first; a step that fails is logged and the rest still run. */
  async unwind(log: Logger): Promise<void> {
    for (const { what, undo } of this.steps.splice(0).reverse()) {
      try {
        await undo();
      } catch (err) {
        log.error({ err: (err as Error).message, step: what }, "CNI ADD: undo failed");
      }
    }
  }
}

export async function cmdAdd(ctx: CniContext, conf: NetConf, env: Env, phases = new Phases()): Promise<string> {
  const containerID = containerIdFrom(env);
  const ifname = ifnameFrom(env);
  const pod = parseCniArgs(env.CNI_ARGS);
  const netns = netnsFrom(env, ctx.ownNetns);
  const attachment: Attachment = { network: conf.name, containerID, ifname };
  const pair: VethPair = { hostVeth: hostVethName(containerID, ifname), netns, ifname, mtu: podMtu(ctx, conf) };
  const podNs = PodNamespace.open(netns);
  const key = attachmentKey(attachment);
  ctx.inFlight.add(key);
  const undo = new UndoStack();
  try {
    ensureInterfaceFree(podNs, pair);
    phases.lap("checks");
    await removeInterruptedAdd(ctx, attachment);
    ensureHostNameFree(ctx, pair);
    const record: AttachmentRecord = { ...attachment, phase: "adding", hostVeth: { name: pair.hostVeth }, netns,
      addresses: [], gateways: [], podRoutes: [], hostRoutes: [] };
    // Written before the first change, so that whatever an agent killed from here on leaves, DEL and GC can find.
    ctx.records.create(record);
    undo.push("remove the attachment record", () => ctx.records.remove(attachment));
    phases.lap("record");
    const ipam = await allocateAddresses(ctx, conf, env, attachment, undo);
    phases.lap("ipam");
    const ends = createPair(ctx.host, podNs, pair);
    undo.push("delete veth", () => removeRecordedVeth(ctx, record).then(() => undefined));
    phases.lap("veth");
    configurePod(podNs, ends.pod, ipam.ips, ipam.routes);
    phases.lap("pod");
    configureHost(ctx.host, ends.host, ipam.ips, hostAlias(conf.name, containerID, ifname), ends.pod.index);
    phases.lap("host");
    ctx.records.update(completeRecord(record, ends.host, ipam));
    phases.lap("record added");
    const result = attachmentResult(pair, ends.host, ends.pod, ipam, conf);
    ctx.log.info({ containerID, ifname, pod: pod.K8S_POD_NAME ? `${pod.K8S_POD_NAMESPACE}/${pod.K8S_POD_NAME}` : undefined,
      ips: ipam.ips.map((ip) => ip.address), hostVeth: pair.hostVeth }, "CNI ADD");
    const output = JSON.stringify(shapeResult(result, conf.cniVersion));
    phases.lap("result");
    return output;
  } catch (err) {
    await undo.unwind(ctx.log);
    throw err;
  } finally {
    ctx.inFlight.delete(key);
    podNs.close();
  }
}

/** The runtime must not ADD an interface name twice; saying so beats a kernel EEXIST halfway through. */
function ensureInterfaceFree(pod: PodNamespace, pair: VethPair): void {
  if (pod.link(pair.ifname)) {
    throw new CniError(ERR.INVALID_ENV, `CNI_IFNAME: interface ${pair.ifname} already exists in ${pair.netns}; DEL it first or pick another name`);
  }
}

async function allocateAddresses(ctx: CniContext, conf: NetConf, env: Env, a: Attachment, undo: UndoStack): Promise<IpamResult> {
  if (!delegates(conf)) {
    const result = ctx.builtin.allocate(a);
    undo.push("release addresses", () => void ctx.builtin.release(a));
    return result;
  }
  const plugin = new DelegatedIpam(conf, env);
  // Pushed before the call: a plugin that reserved and then failed still gets its DEL.
  undo.push(`IPAM ${plugin.type} DEL`, () => plugin.del());
  const result = await plugin.add();
  for (const ip of result.ips) {
    if (!ip.gateway) {
      throw new CniError(ERR.INVALID_CONFIG,
        `IPAM plugin ${plugin.type} gave ${ip.address} no gateway; weft routes every Pod through a gateway on its host veth`);
    }
  }
  // Without routes of its own, the IPAM plugin leaves the Pod's default route to us: through the gateway, per family.
  if (result.routes.length === 0) {
    for (const ip of result.ips) {
      const dst = ipFamily(ip.address) === 4 ? "0.0.0.0/0" : "::/0";
      if (!result.routes.some((r) => r.dst === dst)) result.routes.push({ dst, gw: ip.gateway });
    }
  }
  return result;
}

/**
 * A record of this attachment without its Pod interface (ensureInterfaceFree checked) is what an interrupted ADD, or an
 * ADD whose DEL never came, left: its veth is ours and in the way. Its addresses stay reserved for this ADD to reuse.
 */
async function removeInterruptedAdd(ctx: CniContext, a: Attachment): Promise<void> {
  const previous = ctx.records.read(a);
  if (!previous) return;
  const removed = await removeRecordedVeth(ctx, previous);
  ctx.records.remove(a);
  ctx.log.warn({ ...a, phase: previous.phase, removed }, "CNI ADD: cleaned up what an earlier ADD of this attachment left");
}

/** A link with the host veth's name that no record of ours accounts for is someone else's: not to be deleted or reused. */
function ensureHostNameFree(ctx: CniContext, pair: VethPair): void {
  const link = linkOn(ctx.host, pair.hostVeth);
  if (link) {
    throw new CniError(ERR.IO, `the node already has an interface ${pair.hostVeth} (${link.kind ?? "device"}) that weft did not create; ` +
      "weft names this attachment's host veth so: remove that interface");
  }
}

function completeRecord(record: AttachmentRecord, host: LinkState, ipam: IpamResult): AttachmentRecord {
  return {
    ...record,
    phase: "added",
    hostVeth: { name: host.name, ifindex: host.index },
    addresses: ipam.ips.map((ip) => ip.address),
    gateways: [...new Set(ipam.ips.map((ip) => ip.gateway!))],
    podRoutes: ipam.routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst })),
    hostRoutes: ipam.ips.map((ip) => `${ip.address.split("/")[0]}/${ipFamily(ip.address) === 4 ? 32 : 128}`),
  };
}

/** Host veth first, the Pod's interface second (ips point at it), as ptp reports them. */
function attachmentResult(pair: VethPair, host: LinkState, pod: LinkState, ipam: IpamResult, conf: NetConf): CniResult {
  return {
    interfaces: [
      { name: pair.hostVeth, mac: host.mac, mtu: host.mtu },
      { name: pair.ifname, mac: pod.mac, mtu: pod.mtu, sandbox: pair.netns },
    ],
    ips: ipam.ips.map((ip) => ({ ...ip, interface: 1 })),
    routes: ipam.routes,
    dns: hasDns(conf.dns) ? conf.dns : ipam.dns ?? {},
  };
}
