// The kernel side of a Pod attachment (docs/cni.md, "Wiring"), all through rtnetlink (src/sys), never the `ip` binary.
// Routed like the reference ptp plugin: a veth pair, the Pod's end holding its address and a route to a gateway that lives
// on the host's end.
//
//   Pod netns:  eth0 10.244.1.7/24   10.244.1.1 dev eth0 scope link   default via 10.244.1.1 dev eth0
//   host:       weft<11 hex> 10.244.1.1/32 (the same gateway on every Pod's veth)   10.244.1.7 dev weft<11 hex>
//
// Every function here is synchronous: withNetns switches the calling thread, so nothing may await inside it.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { SysError, closeFd } from "../sys/libc.js";
import { type NlOutcome, type NlStep, type RouteInfo, type RouteSpec, Rtnl, UP, addAddressRequest,
  addRouteRequest, changeLinkRequest, createVethRequest, deleteLink, describeRoute, getLinkRequest, listAddresses, listRoutes,
  replaceRouteRequest, rtnl, setLink } from "../sys/netlink.js";
import { IFF_UP, IFINFOMSG_SIZE, IFLA_IFNAME, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MTU, NLM_F_ACK, NLM_F_REQUEST,
  type NlMessage, NlRequest, RTM_DELLINK, attrString, attrU32, ifinfomsg, parseAttrs } from "../sys/netlink-msg.js";
import { openNetns, withNetns } from "../sys/netns.js";
import { CniError, ERR } from "./errors.js";
import type { AttachmentRecord } from "./records.js";
import { type CniIp, type CniRoute, ipFamily } from "./result.js";
import { sysctlPath } from "../sys/sysctl.js";

const ENODEV = 19;
const EINVAL = 22;
const IFLA_ADDRESS = 1;
const IFLA_IFALIAS = 20;
const IFLA_GROUP = 27;

/** "weft" + 11 hex digits of sha256(containerID:ifname): stable across calls, unique per attachment, 15 characters. */
export function hostVethName(containerID: string, ifname: string): string {
  return `weft${createHash("sha256").update(`${containerID}:${ifname}`).digest("hex").slice(0, 11)}`;
}

const ALIAS_MAX = 254;

/**
 * The host end's alias, for whoever reads `ip link`: network, container, interface, cut to what the kernel keeps (255 bytes,
 * counting the NUL that the attribute carries).
 * Nothing reads it back: what a veth is for is in weft's attachment record (records.ts).
 */
export function hostAlias(network: string, containerID: string, ifname: string): string {
  const full = Buffer.from(`weft ${network} ${containerID} ${ifname}`);
  if (full.length <= ALIAS_MAX) return full.toString();
  let end = ALIAS_MAX;
  while (end > 0 && (full[end] & 0xc0) === 0x80) end--; // not inside a UTF-8 sequence
  return full.subarray(0, end).toString();
}

// ---- links as weft reads them: with MAC address and alias --------------------------------------------------------------

export interface LinkState {
  index: number;
  name: string;
  mtu: number;
  up: boolean;
  kind?: string;
  mac?: string;
  alias?: string;
}

function parseLinkState(m: NlMessage): LinkState {
  const p = m.payload;
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const attrs = parseAttrs(p, IFINFOMSG_SIZE);
  const info = attrs.get(IFLA_LINKINFO);
  const mac = attrs.get(IFLA_ADDRESS);
  return {
    index: dv.getInt32(4, true),
    name: attrString(attrs.get(IFLA_IFNAME)) ?? "",
    mtu: attrU32(attrs.get(IFLA_MTU)) ?? 0,
    up: (dv.getUint32(8, true) & IFF_UP) !== 0,
    kind: info ? attrString(parseAttrs(info).get(IFLA_INFO_KIND)) : undefined,
    mac: mac && mac.length === 6 ? Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":") : undefined,
    alias: attrString(attrs.get(IFLA_IFALIAS)),
  };
}

function findLinkState(nl: Rtnl, name: string): LinkState | null {
  try {
    return parseLinkState(nl.query(getLinkRequest(name), `link ${name}`)[0]);
  } catch (err) {
    if (err instanceof SysError && err.errno === ENODEV) return null;
    throw err;
  }
}

/** Runs `fn` inside the Pod's namespace; a path that is no network namespace is the runtime's mistake (CNI_NETNS). */
function inNetns<T>(netns: string, fn: () => T, fd?: number): T {
  try {
    return withNetns(fd ?? netns, fn);
  } catch (err) {
    if (err instanceof SysError && err.call === "setns" && err.errno === EINVAL) {
      throw new CniError(ERR.INVALID_ENV, `CNI_NETNS ${netns} is not a network namespace`);
    }
    throw err;
  }
}

/**
 * The Pod's network namespace for one ADD: an fd (the veth's Pod end is created through it) and an rtnetlink socket opened
 * inside it, so that everything ADD asks the Pod's kernel takes no switch of namespace. Closed by whoever opened it.
 */
export class PodNamespace {
  private constructor(readonly path: string, readonly fd: number, readonly nl: Rtnl) {}

  static open(path: string): PodNamespace {
    const fd = openNetns(path);
    try {
      return new PodNamespace(path, fd, inNetns(path, () => new Rtnl(), fd));
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** Link `name` in the Pod, or null. */
  link(name: string): LinkState | null {
    return findLinkState(this.nl, name);
  }

  /** Runs `fn` in the Pod's namespace (a sysctl file resolves in the namespace of the thread that opens it). */
  run<T>(fn: () => T): T {
    return inNetns(this.path, fn, this.fd);
  }

  close(): void {
    this.nl.close();
    closeFd(this.fd);
  }
}

// ---- ADD ----------------------------------------------------------------------------------------------------------------
// The Pod's side and the host's side each go to the kernel as one batch of requests (Rtnl.batch): a handful of round
// trips per ADD instead of two dozen. Requests name links by the index their creation reported.

export interface VethPair {
  hostVeth: string;
  netns: string;
  ifname: string;
  mtu: number;
}

/** Throws the first refusal of a batch, in the order the requests were sent (later ones depend on earlier ones). */
function firstError(outcomes: NlOutcome[]): void {
  const failed = outcomes.find((o) => o.error !== null);
  if (failed) throw failed.error;
}

/**
 * Creates the pair, the Pod's end directly inside its namespace under its final name; returns both ends as the kernel
 * made them (index, MAC address, MTU).
 */
export function createPair(host: Rtnl, pod: PodNamespace, pair: VethPair): { host: LinkState; pod: LinkState } {
  // One queue each way per end. The kernel's default is one per possible CPU, and each costs the kernel sysfs objects at
  // creation (~50 µs a pair for each CPU); without XDP on the veth its traffic takes the per-CPU backlog whatever the count.
  const spec = { name: pair.hostVeth, peer: pair.ifname, mtu: pair.mtu, queues: 1 };
  const outcomes = host.batch([
    { req: createVethRequest(spec, pod.fd), what: `veth ${pair.hostVeth} peer ${pair.ifname}` },
    { req: getLinkRequest(pair.hostVeth), what: `link ${pair.hostVeth}` },
  ]);
  firstError(outcomes);
  const podEnd = pod.nl.query(getLinkRequest(pair.ifname), `link ${pair.ifname} in ${pair.netns}`);
  return { host: parseLinkState(outcomes[1].replies[0]), pod: parseLinkState(podEnd[0]) };
}

const hostPrefix = (address: string): string => `${address}/${ipFamily(address) === 4 ? 32 : 128}`;
const bare = (cidr: string): string => cidr.split("/")[0];

const EEXIST = 17;

/** Each gateway once: two addresses of a family may share one. */
const gatewaysOf = (ips: CniIp[]): string[] => [...new Set(ips.map((ip) => ip.gateway!))];

/** An IPv6 address that waits for duplicate address detection is unusable for a second; nothing can duplicate it here. */
function disableDad(ifname: string): void {
  try {
    writeFileSync(sysctlPath(`net/ipv6/conf/${ifname}/accept_dad`), "0");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err; // IPv6 is off in the Pod
  }
}

/** Loopback up, DAD off, the Pod's interface up, its addresses, the gateways' link routes and the routes. */
export function configurePod(pod: PodNamespace, link: LinkState, ips: CniIp[], routes: CniRoute[]): void {
  pod.run(() => disableDad(link.name));
  const steps: (NlStep & { gateway?: string })[] = [
    { req: changeLinkRequest("lo", undefined, UP), what: "set up lo" },
    { req: changeLinkRequest(link.index, undefined, UP), what: `set up ${link.name}` },
  ];
  for (const ip of ips) {
    // Without the subnet's connected route the Pod would ARP for its neighbours directly, but they sit behind other
    // veths: every address in the subnet, the gateway aside, must go through the gateway (the ptp trick).
    const req = addAddressRequest(link.index, ip.address, { nodad: ipFamily(ip.address) === 6, noPrefixRoute: true });
    steps.push({ req, what: `${ip.address} dev ${link.name}` });
  }
  for (const gateway of gatewaysOf(ips)) {
    const route: RouteSpec = { dst: hostPrefix(gateway), dev: link.name, scope: "link" };
    steps.push({ req: addRouteRequest(route, link.index), what: describeRoute(route), gateway });
  }
  for (const r of routes) {
    const route: RouteSpec = { dst: r.dst, dev: link.name, via: r.gw ?? ips.find((ip) => ipFamily(ip.address) === ipFamily(r.dst))?.gateway };
    steps.push({ req: addRouteRequest(route, link.index), what: describeRoute(route) });
  }
  const outcomes = pod.nl.batch(steps);
  const i = outcomes.findIndex((o) => o.error !== null);
  if (i < 0) return;
  const { gateway } = steps[i];
  // Another interface of this Pod already routes to the gateway: a second attachment to this node's subnet (e.g. Multus
  // net1 on another weft network), which routed ptp-style wiring cannot express.
  if (gateway !== undefined && outcomes[i].error!.errno === EEXIST) {
    throw new CniError(ERR.INVALID_CONFIG, `the Pod already has an interface on this node's Pod subnet (a route to ${gateway} exists): ` +
      "weft attaches one interface per Pod; remove the second weft network from the Pod's networks");
  }
  throw outcomes[i].error;
}

/**
 * The host end: its alias, the gateway address(es) as host prefixes, up, and a route to each Pod address. `podIndex`: the
 * Pod end's ifindex (in its own namespace).
 */
export function configureHost(host: Rtnl, link: LinkState, ips: CniIp[], alias: string, podIndex: number): void {
  const steps: NlStep[] = [{ req: changeLinkRequest(link.index, (req) => req.string(IFLA_IFALIAS, alias)), what: `set alias ${link.name}` }];
  for (const gateway of gatewaysOf(ips)) {
    const cidr = hostPrefix(gateway);
    steps.push({ req: addAddressRequest(link.index, cidr, { nodad: ipFamily(gateway) === 6 }), what: `${cidr} dev ${link.name}` });
  }
  steps.push({ req: changeLinkRequest(link.index, undefined, UP), what: `set up ${link.name}` });
  // Replace, not add: a route left by a veth that vanished without its DEL must not block this Pod.
  for (const ip of ips) {
    const route: RouteSpec = { dst: hostPrefix(bare(ip.address)), dev: link.name, scope: "link" };
    steps.push({ req: replaceRouteRequest(route, link.index), what: describeRoute(route) });
  }
  // The kernel's link watcher finishes a veth end's carrier change at once when the end's ifindex differs from its peer's.
  // With the same one on both ends (the first Pod of a node that has nothing but lo) it puts the host end's off for up to
  // a second: operstate down, no IPv6 link-local address. Asking for the link makes it finish the change now.
  if (link.index === podIndex) steps.push({ req: getLinkRequest(link.name), what: `link ${link.name}` });
  firstError(host.batch(steps));
}

// ---- DEL ----------------------------------------------------------------------------------------------------------------

/** Deletes link `name`; false when it is not there (or vanished meanwhile). */
function deleteIfPresent(nl: Rtnl, name: string): boolean {
  try {
    deleteLink(nl, name);
    return true;
  } catch (err) {
    if (err instanceof SysError && err.errno === ENODEV) return false;
    throw err;
  }
}

/** Deletes a host veth (its Pod end and every route through it go too); false when it was not there. */
export const deleteHostVeth = (name: string): boolean => rtnl((nl) => deleteIfPresent(nl, name));

// Deleting a veth costs the kernel an RCU grace period (~20 ms) however many devices go at once, so deletions are batched
// (reaper.ts): each host veth is first moved into a device group of weft's own, then one RTM_DELLINK for the group
// removes every device in it.
const DOOMED_GROUP = 0x77656674; // "weft"

/** Puts host veth `name` in the doomed group; false when it is not there. */
export function markDoomed(name: string): boolean {
  return rtnl((nl) => {
    try {
      setLink(nl, name, "mark for deletion", (req) => req.u32(IFLA_GROUP, DOOMED_GROUP));
      return true;
    } catch (err) {
      if (err instanceof SysError && err.errno === ENODEV) return false;
      throw err;
    }
  });
}

/** Deletes every device of the doomed group in one go; false when there was none. */
export function deleteDoomed(): boolean {
  return rtnl((nl) => {
    try {
      nl.change(new NlRequest(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK).raw(ifinfomsg({})).u32(IFLA_GROUP, DOOMED_GROUP), "delete group");
      return true;
    } catch (err) {
      if (err instanceof SysError && err.errno === ENODEV) return false;
      throw err;
    }
  });
}

/**
 * The host veth a record names, when the link of that name is still the one weft made: a veth, with the recorded ifindex
 * (an "adding" record has none yet: the name was free when it was written and the ADD that wrote it was creating it).
 */
export function recordedHostVeth(record: AttachmentRecord): string | null {
  const link = rtnl((nl) => findLinkState(nl, record.hostVeth.name));
  if (!link || link.kind !== "veth") return null;
  if (record.hostVeth.ifindex !== undefined && link.index !== record.hostVeth.ifindex) return null;
  return link.name;
}

/** Link `name` in the namespace `nl` was opened in, or null. */
export const linkOn = (nl: Rtnl, name: string): LinkState | null => findLinkState(nl, name);

// ---- CHECK --------------------------------------------------------------------------------------------------------------

export interface Observed {
  link: LinkState | null;
  /** "address/prefix" on the link. */
  addresses: string[];
  routes: RouteInfo[];
}

function observe(nl: Rtnl, name: string): Observed {
  const link = findLinkState(nl, name);
  if (!link) return { link, addresses: [], routes: [] };
  return {
    link,
    addresses: listAddresses(nl, link.index).map((a) => a.cidr),
    routes: [...listRoutes(nl, { family: 4, dev: name }), ...listRoutes(nl, { family: 6, dev: name })],
  };
}

export const observePod = (netns: string, ifname: string): Observed => inNetns(netns, () => rtnl((nl) => observe(nl, ifname)));
export const observeHost = (hostVeth: string): Observed => rtnl((nl) => observe(nl, hostVeth));
