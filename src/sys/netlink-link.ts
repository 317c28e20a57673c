// Link operations on an open rtnetlink socket: query, up/down, attributes, delete, veth pairs.
import { SysError, closeFd } from "./libc.js";
import { IFF_UP, IFINFOMSG_SIZE, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MTU, IFLA_NET_NS_FD, IFLA_NUM_RX_QUEUES,
  IFLA_NUM_TX_QUEUES,
  NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, type NlMessage, NlRequest, RTM_DELLINK, RTM_GETLINK,
  RTM_NEWLINK, VETH_INFO_PEER, attrString, attrU32, ifinfomsg, parseAttrs } from "./netlink-msg.js";
import type { Rtnl } from "./netlink-socket.js";
import { openNetns } from "./netns.js";

const ENODEV = 19;

export interface LinkInfo {
  index: number;
  name: string;
  mtu: number;
  /** IFF_* flags. */
  flags: number;
  up: boolean;
  /** IFLA_INFO_KIND ("veth", "tun", …) when the link has one. */
  kind?: string;
  /** For kind "tun" (TUN and TAP both), what the kernel says of it (IFLA_TUN_*, Linux 4.15 and later). */
  tun?: TunLinkInfo;
}

export interface TunLinkInfo {
  /** "tun" (IFF_TUN, layer 3) or "tap" (IFF_TAP). */
  type: "tun" | "tap";
  multiQueue: boolean;
  persist: boolean;
  /** Queues attached now: > 0 while some process holds the device. */
  queues: number;
}

// <linux/if_link.h> IFLA_TUN_*.
const IFLA_TUN_TYPE = 3;
const IFLA_TUN_PERSIST = 6;
const IFLA_TUN_MULTI_QUEUE = 7;
const IFLA_TUN_NUM_QUEUES = 8;
const IFF_TUN = 1;

function parseTunInfo(data: Uint8Array | undefined): TunLinkInfo | undefined {
  if (!data) return undefined;
  const a = parseAttrs(data);
  const type = a.get(IFLA_TUN_TYPE)?.[0];
  if (type === undefined) return undefined;
  return {
    type: type === IFF_TUN ? "tun" : "tap",
    multiQueue: a.get(IFLA_TUN_MULTI_QUEUE)?.[0] === 1,
    persist: a.get(IFLA_TUN_PERSIST)?.[0] === 1,
    queues: attrU32(a.get(IFLA_TUN_NUM_QUEUES)) ?? 0,
  };
}

/** A network namespace: a path, an `ip netns` name, or an open fd (left open). */
export type NetnsRef = string | number;

export interface VethSpec {
  name: string;
  peer: string;
  /** Where the peer end is created; absent: the current namespace. */
  peerNetns?: NetnsRef;
  /** MTU of both ends. */
  mtu?: number;
  /** TX and RX queues of each end; absent: the kernel's default (one per possible CPU). */
  queues?: number;
}

function parseLink(m: NlMessage): LinkInfo {
  const dv = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
  const attrs = parseAttrs(m.payload, IFINFOMSG_SIZE);
  const info = attrs.get(IFLA_LINKINFO);
  const infoAttrs = info ? parseAttrs(info) : undefined;
  const kind = attrString(infoAttrs?.get(IFLA_INFO_KIND));
  const flags = dv.getUint32(8, true);
  const tun = kind === "tun" ? parseTunInfo(infoAttrs?.get(IFLA_INFO_DATA)) : undefined;
  return {
    index: dv.getInt32(4, true),
    name: attrString(attrs.get(IFLA_IFNAME)) ?? "",
    mtu: attrU32(attrs.get(IFLA_MTU)) ?? 0,
    flags,
    up: (flags & IFF_UP) !== 0,
    kind,
    ...(tun && { tun }),
  };
}

/** Runs `fn` with an fd for `ns`, closing it afterwards unless the caller passed an fd. */
export function withNetnsFd<T>(ns: NetnsRef, fn: (fd: number) => T): T {
  if (typeof ns === "number") return fn(ns);
  const fd = openNetns(ns);
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/** The link named `name`; SysError ENODEV when there is none. */
export function getLink(nl: Rtnl, name: string): LinkInfo {
  return parseLink(nl.query(getLinkRequest(name), `link ${name}`)[0]);
}

export function findLink(nl: Rtnl, name: string): LinkInfo | null {
  try {
    return getLink(nl, name);
  } catch (err) {
    if (err instanceof SysError && err.errno === ENODEV) return null;
    throw err;
  }
}

export function listLinks(nl: Rtnl): LinkInfo[] {
  return nl.query(new NlRequest(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP).raw(ifinfomsg({})), "links").map(parseLink);
}

/** IFF_* bits to change: those in `change` take their value from `flags`. */
export interface FlagChange {
  flags: number;
  change: number;
}

export const UP: FlagChange = { flags: IFF_UP, change: IFF_UP };
const DOWN: FlagChange = { flags: 0, change: IFF_UP };

/**
 * RTM_NEWLINK on an existing link, by index or (an index the caller does not know) by name: `fill` adds the attributes
 * to change, `flags` changes IFF_* bits. For a batch; setLink sends one.
 */
export function changeLinkRequest(link: number | string, fill?: (req: NlRequest) => void, flags?: FlagChange): NlRequest {
  const byName = typeof link === "string";
  const req = new NlRequest(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)
    .raw(ifinfomsg({ index: byName ? 0 : link, flags: flags?.flags, change: flags?.change }));
  if (byName) req.string(IFLA_IFNAME, link);
  fill?.(req);
  return req;
}

/** RTM_NEWLINK on an existing link: `fill` adds the attributes to change; `flags` changes IFF_* bits. */
export function setLink(nl: Rtnl, name: string, what: string, fill: (req: NlRequest) => void, flags?: FlagChange): void {
  nl.change(changeLinkRequest(getLink(nl, name).index, fill, flags), `${what} ${name}`);
}

export function setLinkUp(nl: Rtnl, name: string, up: boolean): void {
  setLink(nl, name, up ? "set up" : "set down", () => {}, up ? UP : DOWN);
}

export function deleteLink(nl: Rtnl, name: string): void {
  const req = new NlRequest(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK).raw(ifinfomsg({ index: getLink(nl, name).index }));
  nl.change(req, `delete ${name}`);
}

/** The RTM_NEWLINK that creates a veth pair (for a batch; createVeth sends one). `peerNetnsFd`: -1 for this namespace. */
export function createVethRequest(spec: Omit<VethSpec, "peerNetns">, peerNetnsFd: number): NlRequest {
  const req = new NlRequest(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).raw(ifinfomsg({}));
  const sizes = (end: NlRequest) => {
    if (spec.mtu) end.u32(IFLA_MTU, spec.mtu);
    if (spec.queues) end.u32(IFLA_NUM_TX_QUEUES, spec.queues).u32(IFLA_NUM_RX_QUEUES, spec.queues);
  };
  req.string(IFLA_IFNAME, spec.name);
  sizes(req);
  req.nest(IFLA_LINKINFO, (info) => {
    info.string(IFLA_INFO_KIND, "veth");
    info.nest(IFLA_INFO_DATA, (data) => {
      data.nest(VETH_INFO_PEER, (peer) => {
        peer.raw(ifinfomsg({})).string(IFLA_IFNAME, spec.peer);
        sizes(peer);
        if (peerNetnsFd >= 0) peer.u32(IFLA_NET_NS_FD, peerNetnsFd);
      });
    });
  });
  return req;
}

/** Creates a veth pair: `name` in this namespace, `peer` here or directly inside `peerNetns`. */
export function createVeth(nl: Rtnl, spec: VethSpec): void {
  const create = (nsFd: number) => nl.change(createVethRequest(spec, nsFd), `veth ${spec.name} peer ${spec.peer}`);
  if (spec.peerNetns === undefined) create(-1);
  else withNetnsFd(spec.peerNetns, create);
}

/** The RTM_GETLINK that asks for link `name` (for a batch; getLink sends one). */
export const getLinkRequest = (name: string): NlRequest =>
  new NlRequest(RTM_GETLINK, NLM_F_REQUEST).raw(ifinfomsg({})).string(IFLA_IFNAME, name);
