// Address and route operations on an open rtnetlink socket, and the underlay lookup the agent sizes its MTU from.
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../net/addr.js";
import { AF_INET, AF_INET6 } from "./libc.js";
import { IFADDRMSG_SIZE, IFA_ADDRESS, IFA_FLAGS, IFA_F_DADFAILED, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_TENTATIVE, IFA_LOCAL, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
  NLM_F_REPLACE, NLM_F_REQUEST, type NlMessage, NlRequest, RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_PREFSRC, RTA_PRIORITY,
  RTA_TABLE, RTMSG_SIZE, RTN_BLACKHOLE, RTM_DELADDR, RTM_DELROUTE, RTM_GETADDR, RTM_GETROUTE, RTM_NEWADDR, RTM_NEWROUTE, RTNH_F_ONLINK,
  RTN_UNICAST, RTPROT_BOOT, RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, attrU32,
  ifaddrmsg, parseAttrs, rtmsg } from "./netlink-msg.js";
import { getLink, listLinks } from "./netlink-link.js";
import type { Rtnl } from "./netlink-socket.js";

export type Scope = "universe" | "link" | "host" | number;

export interface AddressInfo {
  family: 4 | 6;
  address: string;
  prefixLen: number;
  /** "address/prefixLen". */
  cidr: string;
  scope: number;
  index: number;
  /** IFA_F_* flags. */
  flags: number;
  /** A socket can bind it: not an IPv6 address still in (or failed) duplicate address detection. */
  usable: boolean;
}

export interface RouteSpec {
  /** "10.244.2.0/24", "fd00::/64", a bare address (a host route), or "default" (IPv4 unless `via` is IPv6). */
  dst: string;
  dev?: string;
  via?: string;
  /** Trust that `via` is on `dev`'s link even without a matching connected route (RTNH_F_ONLINK). */
  onlink?: boolean;
  /** Default: "link" without `via`, "universe" with it (as `ip route` does). */
  scope?: Scope;
  /** Preferred source address (RTA_PREFSRC). */
  src?: string;
  table?: number;
  metric?: number;
  /** RTPROT_* (default RTPROT_BOOT, as `ip route`); a distinct value lets an agent find its own routes. */
  protocol?: number;
  /** "blackhole": matching packets are dropped silently (no `dev`, no `via`). Default "unicast". */
  type?: RouteType;
}

export type RouteType = "unicast" | "blackhole";
const ROUTE_TYPES: Record<RouteType, number> = { unicast: RTN_UNICAST, blackhole: RTN_BLACKHOLE };

export interface RouteInfo {
  family: 4 | 6;
  /** "a.b.c.d/len"; "0.0.0.0/0" or "::/0" for default routes. */
  dst: string;
  dev?: string;
  via?: string;
  src?: string;
  scope: number;
  table: number;
  protocol: number;
  metric?: number;
  onlink: boolean;
  type: RouteType;
}

export interface Underlay {
  name: string;
  index: number;
  mtu: number;
  family: 4 | 6;
  /** Pod/TUN MTU over this underlay: MTU − 50 (IPv4) or − 70 (IPv6), the VXLAN overhead. */
  overlayMtu: number;
}

interface Ip {
  family: 4 | 6;
  bytes: Uint8Array;
}

function parseIp(text: string): Ip {
  if (text.includes(":")) return { family: 6, bytes: parseIPv6(text) };
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, parseIPv4(text));
  return { family: 4, bytes };
}

function formatIp(bytes: Uint8Array): string {
  return bytes.length === 4 ? formatIPv4(new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0)) : formatIPv6(bytes);
}

/** "addr/len" keeping host bits (an interface address), or a bare address as a host prefix. */
function parsePrefix(text: string): Ip & { len: number } {
  const [addr, lenText, extra] = text.split("/");
  const ip = parseIp(addr);
  const max = ip.family === 4 ? 32 : 128;
  const len = lenText === undefined ? max : Number(lenText);
  if (extra !== undefined || !/^\d{1,3}$/.test(lenText ?? String(max)) || len > max) throw new Error(`bad prefix: ${JSON.stringify(text)}`);
  return { ...ip, len };
}

const kernelFamily = (family: 4 | 6) => (family === 4 ? AF_INET : AF_INET6);

function scopeValue(scope: Scope): number {
  if (typeof scope === "number") return scope;
  return { universe: RT_SCOPE_UNIVERSE, link: RT_SCOPE_LINK, host: RT_SCOPE_HOST }[scope];
}

// ---- addresses --------------------------------------------------------------------------------------------------------

export interface AddressOptions {
  /** An IPv6 address usable at once, without duplicate address detection. */
  nodad?: boolean;
  /** No connected route for the address's prefix (IFA_F_NOPREFIXROUTE). */
  noPrefixRoute?: boolean;
}

function addrRequest(type: number, flags: number, index: number, cidr: string, ifaFlags: number): NlRequest {
  const p = parsePrefix(cidr);
  const req = new NlRequest(type, flags)
    .raw(ifaddrmsg({ family: kernelFamily(p.family), prefixLen: p.len, flags: ifaFlags & 0xff, index }))
    .attr(IFA_LOCAL, p.bytes)
    .attr(IFA_ADDRESS, p.bytes);
  // The flags past the first eight bits exist only as the IFA_FLAGS attribute.
  return ifaFlags > 0xff ? req.u32(IFA_FLAGS, ifaFlags) : req;
}

/** The RTM_NEWADDR that adds "addr/len" to link `index` (for a batch; addAddress sends one). */
export function addAddressRequest(index: number, cidr: string, opts: AddressOptions = {}): NlRequest {
  const ifaFlags = (opts.nodad ? IFA_F_NODAD : 0) | (opts.noPrefixRoute ? IFA_F_NOPREFIXROUTE : 0);
  return addrRequest(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, index, cidr, ifaFlags);
}

/** Adds "addr/len" to `dev`. */
export function addAddress(nl: Rtnl, dev: string, cidr: string, opts: AddressOptions = {}): void {
  nl.change(addAddressRequest(getLink(nl, dev).index, cidr, opts), `${cidr} dev ${dev}`);
}

export function deleteAddress(nl: Rtnl, dev: string, cidr: string): void {
  nl.change(addrRequest(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, getLink(nl, dev).index, cidr, 0), `${cidr} dev ${dev}`);
}

function parseAddress(m: NlMessage): AddressInfo | null {
  const p = m.payload;
  const attrs = parseAttrs(p, IFADDRMSG_SIZE);
  const bytes = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  if (!bytes || (p[0] !== AF_INET && p[0] !== AF_INET6)) return null;
  const address = formatIp(bytes);
  const flags = attrU32(attrs.get(IFA_FLAGS)) ?? p[2];
  return {
    family: p[0] === AF_INET ? 4 : 6,
    address,
    prefixLen: p[1],
    cidr: `${address}/${p[1]}`,
    scope: p[3],
    index: new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(4, true),
    flags,
    usable: (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) === 0,
  };
}

/** Every address in the namespace, or those of link `index`. */
export function listAddresses(nl: Rtnl, index?: number): AddressInfo[] {
  const req = new NlRequest(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP).raw(ifaddrmsg({ family: 0, prefixLen: 0, index: 0 }));
  return nl.query(req, "addresses")
    .map(parseAddress)
    .filter((a): a is AddressInfo => a !== null && (index === undefined || a.index === index));
}

/**
 * The interface holding local address `address` and the MTU a VXLAN overlay across it gets; null when none has it usable.
 * Carrier does not matter: the kernel binds an address on a link that is not running yet.
 */
export function findUnderlay(nl: Rtnl, address: string): Underlay | null {
  const wanted = formatIp(parseIp(address).bytes);
  const match = listAddresses(nl).find((a) => a.address === wanted && a.usable);
  if (!match) return null;
  const link = listLinks(nl).find((l) => l.index === match.index);
  if (!link) return null;
  return { name: link.name, index: link.index, mtu: link.mtu, family: match.family,
    overlayMtu: link.mtu - (match.family === 4 ? 50 : 70) };
}

// ---- routes -----------------------------------------------------------------------------------------------------------

/** `oif`: the index of `r.dev`, which the caller has looked up. */
function routeRequest(type: number, flags: number, r: RouteSpec, oif: number | undefined): NlRequest {
  const via = r.via === undefined ? undefined : parseIp(r.via);
  const dst = r.dst === "default" ? { family: via?.family ?? 4, bytes: new Uint8Array(0), len: 0 } : parsePrefix(r.dst);
  if (via && via.family !== dst.family) throw new Error(`route ${r.dst}: gateway ${r.via} is of another family`);
  const deleting = type === RTM_DELROUTE;
  const blackhole = r.type === "blackhole";
  if (blackhole && (r.dev !== undefined || via)) throw new Error(`route ${r.dst}: a blackhole route has no dev or via`);
  const table = r.table ?? RT_TABLE_MAIN;
  const req = new NlRequest(type, flags).raw(rtmsg({
    family: kernelFamily(dst.family),
    dstLen: dst.len,
    table,
    protocol: r.protocol ?? (deleting ? 0 : RTPROT_BOOT),
    scope: r.scope !== undefined ? scopeValue(r.scope)
      : deleting ? RT_SCOPE_NOWHERE : via || blackhole ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
    type: deleting && !blackhole ? 0 : ROUTE_TYPES[r.type ?? "unicast"],
    flags: r.onlink ? RTNH_F_ONLINK : 0,
  }));
  if (dst.len > 0) req.attr(RTA_DST, dst.bytes);
  if (oif !== undefined) req.u32(RTA_OIF, oif);
  if (via) req.attr(RTA_GATEWAY, via.bytes);
  if (r.src !== undefined) req.attr(RTA_PREFSRC, parseIp(r.src).bytes);
  if (r.metric !== undefined) req.u32(RTA_PRIORITY, r.metric);
  if (table >= 256) req.u32(RTA_TABLE, table);
  return req;
}

export const describeRoute = (r: RouteSpec): string => `${r.type === "blackhole" ? "blackhole " : ""}${r.dst}${r.via ? ` via ${r.via}` : ""}${r.dev ? ` dev ${r.dev}` : ""}`;

const ADD_ROUTE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const REPLACE_ROUTE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
const oifOf = (nl: Rtnl, r: RouteSpec) => (r.dev === undefined ? undefined : getLink(nl, r.dev).index);

/** The RTM_NEWROUTE that adds `r` out of link `oif` (`r.dev` names it for messages), for a batch; addRoute sends one. */
export const addRouteRequest = (r: RouteSpec, oif: number): NlRequest => routeRequest(RTM_NEWROUTE, ADD_ROUTE, r, oif);
/** The same, replacing a route to the same destination (replaceRoute sends one). */
export const replaceRouteRequest = (r: RouteSpec, oif: number): NlRequest => routeRequest(RTM_NEWROUTE, REPLACE_ROUTE, r, oif);

export function addRoute(nl: Rtnl, r: RouteSpec): void {
  nl.change(routeRequest(RTM_NEWROUTE, ADD_ROUTE, r, oifOf(nl, r)), describeRoute(r));
}

export function replaceRoute(nl: Rtnl, r: RouteSpec): void {
  nl.change(routeRequest(RTM_NEWROUTE, REPLACE_ROUTE, r, oifOf(nl, r)), describeRoute(r));
}

export function deleteRoute(nl: Rtnl, r: RouteSpec): void {
  nl.change(routeRequest(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, r, oifOf(nl, r)), describeRoute(r));
}

/** Unicast and blackhole routes of `family` in `table` (default main), optionally only those out of `dev`. */
export function listRoutes(nl: Rtnl, opts: { family: 4 | 6; dev?: string; table?: number }): RouteInfo[] {
  const names = new Map(listLinks(nl).map((l) => [l.index, l.name]));
  const table = opts.table ?? RT_TABLE_MAIN;
  const req = new NlRequest(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP).raw(rtmsg({
    family: kernelFamily(opts.family), dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0,
  }));
  const out: RouteInfo[] = [];
  for (const m of nl.query(req, "routes")) {
    const p = m.payload;
    const attrs = parseAttrs(p, RTMSG_SIZE);
    const routeTable = attrU32(attrs.get(RTA_TABLE)) ?? p[4];
    const routeType = p[7] === RTN_UNICAST ? "unicast" : p[7] === RTN_BLACKHOLE ? "blackhole" : null;
    if (routeType === null || routeTable !== table) continue;
    const oif = attrU32(attrs.get(RTA_OIF));
    const dev = oif === undefined ? undefined : names.get(oif);
    if (opts.dev !== undefined && dev !== opts.dev) continue;
    const dstBytes = attrs.get(RTA_DST) ?? new Uint8Array(opts.family === 4 ? 4 : 16);
    const gateway = attrs.get(RTA_GATEWAY);
    const src = attrs.get(RTA_PREFSRC);
    out.push({
      family: opts.family,
      dst: `${formatIp(dstBytes)}/${p[1]}`,
      dev,
      via: gateway ? formatIp(gateway) : undefined,
      src: src ? formatIp(src) : undefined,
      scope: p[6],
      table: routeTable,
      protocol: p[5],
      metric: attrU32(attrs.get(RTA_PRIORITY)),
      onlink: (new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(8, true) & RTNH_F_ONLINK) !== 0,
      type: routeType,
    });
  }
  return out;
}
