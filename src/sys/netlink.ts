// rtnetlink, the public face: one function per operation, each on a fresh NETLINK_ROUTE socket of the calling thread's
// current network namespace, so `withNetns(ns, () => linkSetUp("eth0"))` acts inside `ns`. For many operations in a row,
// `rtnl((nl) => { setLinkUp(nl, ...); addAddress(nl, ...); })` shares one socket (the *-on-socket functions below).
// No `ip` binary anywhere: messages are built and parsed in netlink-msg.ts.
import { type LinkInfo, type NetnsRef, type VethSpec, createVeth, deleteLink, findLink, getLink, listLinks, setLink,
  setLinkUp, withNetnsFd } from "./netlink-link.js";
import { type AddressInfo, type RouteInfo, type RouteSpec, type Underlay, addAddress, addRoute, deleteAddress, deleteRoute,
  findUnderlay, listAddresses, listRoutes, replaceRoute } from "./netlink-route.js";
import { IFLA_IFNAME, IFLA_MTU, IFLA_NET_NS_FD } from "./netlink-msg.js";
import { rtnl } from "./netlink-socket.js";

export { Rtnl, rtnl } from "./netlink-socket.js";
export type { NlOutcome, NlStep } from "./netlink-socket.js";
export { UP, changeLinkRequest, createVeth, createVethRequest, deleteLink, findLink, getLink, getLinkRequest, listLinks, setLink,
  setLinkUp } from "./netlink-link.js";
export type { FlagChange, LinkInfo, NetnsRef, VethSpec } from "./netlink-link.js";
export { addAddress, addAddressRequest, addRoute, addRouteRequest, deleteAddress, deleteRoute, describeRoute, findUnderlay,
  listAddresses, listRoutes, replaceRoute, replaceRouteRequest } from "./netlink-route.js";
export type { AddressInfo, AddressOptions, RouteInfo, RouteSpec, RouteType, Scope, Underlay } from "./netlink-route.js";

// ---- links --------------------------------------------------------------------------------------------------------------

/** The link named `name`; SysError ENODEV when there is none. */
export const linkGet = (name: string): LinkInfo => rtnl((nl) => getLink(nl, name));
/** The link named `name`, or null. */
export const linkFind = (name: string): LinkInfo | null => rtnl((nl) => findLink(nl, name));
export const linkIndex = (name: string): number => linkGet(name).index;
export const linkGetMtu = (name: string): number => linkGet(name).mtu;
export const linkList = (): LinkInfo[] => rtnl(listLinks);
export const linkSetUp = (name: string): void => rtnl((nl) => setLinkUp(nl, name, true));
export const linkSetDown = (name: string): void => rtnl((nl) => setLinkUp(nl, name, false));
export const linkDelete = (name: string): void => rtnl((nl) => deleteLink(nl, name));

export function linkSetMtu(name: string, mtu: number): void {
  rtnl((nl) => setLink(nl, name, `set mtu ${mtu}`, (req) => req.u32(IFLA_MTU, mtu)));
}

/** Renames a link (the kernel wants it down). */
export function linkRename(name: string, newName: string): void {
  rtnl((nl) => setLink(nl, name, `rename to ${newName}`, (req) => req.string(IFLA_IFNAME, newName)));
}

/** Moves a link into another network namespace; it arrives there down, without addresses. */
export function linkSetNetns(name: string, netns: NetnsRef): void {
  withNetnsFd(netns, (fd) => rtnl((nl) => setLink(nl, name, `move to netns ${netns}`, (req) => req.u32(IFLA_NET_NS_FD, fd))));
}

/** Creates a veth pair, the peer end directly inside `peerNetns` when given (the CNI container side). */
export const vethCreate = (spec: VethSpec): void => rtnl((nl) => createVeth(nl, spec));

// ---- addresses ----------------------------------------------------------------------------------------------------------

/** Adds "addr/len" to `dev`; `nodad` makes an IPv6 address usable at once. */
export function addrAdd(dev: string, cidr: string, opts: { nodad?: boolean } = {}): void {
  rtnl((nl) => addAddress(nl, dev, cidr, opts));
}

export const addrDel = (dev: string, cidr: string): void => rtnl((nl) => deleteAddress(nl, dev, cidr));
export const linkAddresses = (dev: string): AddressInfo[] => rtnl((nl) => listAddresses(nl, getLink(nl, dev).index));

/** The interface that holds local `address`, its MTU and the overlay MTU over it; null when no interface has it. */
export const underlayFor = (address: string): Underlay | null => rtnl((nl) => findUnderlay(nl, address));

// ---- routes -------------------------------------------------------------------------------------------------------------

export const routeAdd = (route: RouteSpec): void => rtnl((nl) => addRoute(nl, route));
export const routeReplace = (route: RouteSpec): void => rtnl((nl) => replaceRoute(nl, route));
export const routeDel = (route: RouteSpec): void => rtnl((nl) => deleteRoute(nl, route));
export const routeList = (opts: { family: 4 | 6; dev?: string; table?: number }): RouteInfo[] => rtnl((nl) => listRoutes(nl, opts));
