// weft0, the node's overlay device, across agent restarts (docs/restarts.md).
//
// The device is persistent (IFF_PERSIST): a planned stop or a crash leaves it, its address and its routes in place, so the
// kernel keeps routing the cluster network into it. With no agent attached, the TUN has no queue and drops what it is given;
// nothing bound for another node's Pods leaves unencapsulated. A starting agent attaches to the device that is there and
// makes its MTU, addresses and routes what its config says, fixing what differs. Below weft0's cluster route sits a
// blackhole route for the same network: should weft0 itself be gone, Pod traffic for other nodes is dropped, never sent
// out of the default route. Only `weft uninstall` removes the device and the blackhole routes.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { nthAddress, parseCIDR } from "../net/addr.js";
import type { AgentConfig } from "../control/config.js";
import type { Logger } from "../control/log.js";
import type { NodeRecord } from "../control/registry/index.js";
import { type LinkInfo, addrAdd, addrDel, linkAddresses, linkDelete, linkFind, linkSetMtu, linkSetUp, routeDel,
  routeList, routeReplace } from "../sys/netlink.js";
import { openTun, type TunDevice } from "../sys/tun.js";
import { sysctlPath } from "../sys/sysctl.js";

/** The protocol tag on weft's routes (RTPROT_*; unassigned in iproute2's rt_protos): how uninstall finds them. */
export const RTPROT_WEFT = 57;
/** The blackhole's metric: the last resort, below any route a node could have for the cluster network. */
export const BLACKHOLE_METRIC = 0xffffffff;
const RTPROT_KERNEL = 2;

/**
 * weft0 as opened: the device with one fd per queue, and the link that was there before (a previous agent's), or null when
 * it was created; `recreated` says a previous single-queue weft0 was replaced by a multi-queue one.
 */
export interface OverlayTun {
  tun: TunDevice;
  existing: LinkInfo | null;
  recreated: boolean;
}

/**
 * Opens weft0 with `queues` queues, creating it or re-attaching to a previous agent's; a link of that name that is not a
 * TUN is refused. The device is always multi-queue, so a restart with another queue count re-attaches; a single-queue
 * weft0 (an older agent's) cannot take more queues and is deleted and made again (configureOverlayDevice restores its
 * address and routes; the blackhole routes below it stay throughout).
 */
export function openOverlayTun(device: string, queues: number): OverlayTun {
  const existing = linkFind(device);
  if (existing && (existing.kind !== "tun" || existing.tun?.type === "tap")) {
    const what = existing.kind === "tun" ? "TAP" : existing.kind ?? "non-TUN";
    throw new Error(`${device} exists and is a ${what} device, not weft's TUN: delete it or set "device" to another name`);
  }
  // A multi-queue device takes more queues from anyone: a device with queues attached belongs to a running process.
  if (existing?.tun && existing.tun.queues > 0) {
    throw new Error(`${device} exists and another process holds it (${existing.tun.queues} queue(s) attached): is another agent running?`);
  }
  const open = () => openTun({ name: device, vnetHdr: true, persist: true, queues });
  if (existing?.tun && !existing.tun.multiQueue) {
    linkDelete(device);
    return { tun: open(), existing: null, recreated: true };
  }
  return { tun: open(), existing, recreated: false };
}

/**
 * Makes weft0's MTU, addresses, routes and the blackhole routes what `config` and the leased `record` say; what had to
 * change on an adopted device is logged.
 */
export function configureOverlayDevice({ tun, existing }: OverlayTun, config: AgentConfig, record: NodeRecord, mtu: number,
  log: Logger): void {
  const fixed: string[] = [];
  if (existing && existing.mtu !== mtu) fixed.push(`mtu ${existing.mtu} → ${mtu}`);
  linkSetMtu(tun.name, mtu);
  // Without an IPv6 Pod subnet, IPv6 on weft0 would only send link-local chatter (router solicitations, MLD) that the
  // core must drop as spoofed.
  const ipv6Knob = sysctlPath(`net/ipv6/conf/${tun.name}/disable_ipv6`);
  if (!record.subnetV6 && existsSync(ipv6Knob) && readFileSync(ipv6Knob, "utf8").trim() !== "1") writeFileSync(ipv6Knob, "1");
  fixed.push(...reconcileAddresses(tun.name, wantedAddresses(record)));
  linkSetUp(tun.name);
  fixed.push(...reconcileRoutes(tun.name, clusterNetworks(config)));
  if (existing) log.info({ device: tun.name, fixed }, fixed.length ? "adopted the existing device and fixed it" : "adopted the existing device");
}

/**
 * Removes weft0 (and with it its address and cluster route) and weft's blackhole routes: what `weft uninstall` does.
 * Returns what it removed; a device that is not a TUN is left alone and named in the error.
 */
export function removeOverlayDevice(device: string): string[] {
  const removed: string[] = [];
  const link = linkFind(device);
  if (link && link.kind !== "tun") throw new Error(`${device} is a ${link.kind ?? "non-TUN"} device, not weft's: left alone`);
  if (link) {
    linkDelete(device);
    removed.push(`device ${device}`);
  }
  for (const family of [4, 6] as const) {
    for (const r of routeList({ family }).filter((r) => r.type === "blackhole" && r.protocol === RTPROT_WEFT)) {
      routeDel({ dst: r.dst, type: "blackhole", metric: r.metric, protocol: RTPROT_WEFT });
      removed.push(`blackhole route ${r.dst}`);
    }
  }
  return removed;
}

const clusterNetworks = (c: AgentConfig): string[] => [c.clusterCIDR, ...(c.clusterCIDRv6 ? [c.clusterCIDRv6] : [])];

function wantedAddresses(rec: NodeRecord): string[] {
  return [`${nthAddress(parseCIDR(rec.subnet), 0)}/32`, ...(rec.subnetV6 ? [`${nthAddress(parseCIDR(rec.subnetV6), 0)}/128`] : [])];
}

const isLinkLocal6 = (address: string) => /^fe[89ab]/i.test(address);

/** Exactly `wanted` on `dev` (IPv6 link-local addresses are the kernel's and stay); returns what changed. */
function reconcileAddresses(dev: string, wanted: string[]): string[] {
  const changes: string[] = [];
  const present = linkAddresses(dev).filter((a) => !(a.family === 6 && isLinkLocal6(a.address))).map((a) => a.cidr);
  for (const cidr of present.filter((p) => !wanted.includes(p))) {
    addrDel(dev, cidr);
    changes.push(`removed address ${cidr}`);
  }
  for (const cidr of wanted.filter((w) => !present.includes(w))) {
    addrAdd(dev, cidr, { nodad: cidr.includes(":") });
    changes.push(`added address ${cidr}`);
  }
  return changes;
}

/**
 * A route through `dev` and a blackhole below it for each cluster network (canonical text, as the config holds them);
 * routes through `dev` for other networks (a previous config's) and weft's blackholes for them go; a route for a cluster
 * network through another device is refused. Returns what changed.
 */
function reconcileRoutes(dev: string, networks: string[]): string[] {
  const changes: string[] = [];
  for (const family of [4, 6] as const) {
    const routes = routeList({ family });
    for (const r of routes) {
      const ours = (r.dev === dev && r.protocol !== RTPROT_KERNEL) || (r.type === "blackhole" && r.protocol === RTPROT_WEFT);
      if (!ours || networks.includes(r.dst)) continue;
      routeDel(r.type === "blackhole" ? { dst: r.dst, type: "blackhole", metric: r.metric } : { dst: r.dst, dev, metric: r.metric });
      changes.push(`removed route ${r.type === "blackhole" ? "blackhole " : ""}${r.dst}`);
    }
    for (const dst of networks.filter((n) => n.includes(":") === (family === 6))) {
      // A route for the cluster network through another device is someone else's (another overlay, a leftover): weft
      // does not take it over, it says so.
      const foreign = routes.find((r) => r.dst === dst && r.type === "unicast" && r.dev !== dev);
      if (foreign) {
        throw new Error(`a route to the cluster network ${dst} exists through ${foreign.dev ?? foreign.via ?? "another device"}, ` +
          `not ${dev}: remove it (ip route del ${dst}) or fix clusterCIDR`);
      }
      if (!routes.some((r) => r.dst === dst && r.dev === dev)) changes.push(`added route ${dst} dev ${dev}`);
      routeReplace({ dst, dev, protocol: RTPROT_WEFT });
      if (!routes.some((r) => r.dst === dst && r.type === "blackhole" && r.metric === BLACKHOLE_METRIC)) changes.push(`added blackhole ${dst}`);
      routeReplace({ dst, type: "blackhole", metric: BLACKHOLE_METRIC, protocol: RTPROT_WEFT });
    }
  }
  return changes;
}
