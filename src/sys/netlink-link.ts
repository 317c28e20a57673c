// Link operations on an open rtnetlink socket: query, up/down, attributes, delete, veth pairs.
import { SysError, closeFd } from "./libc.js";
import { IFF_UP, IFINFOMSG_SIZE, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MTU, IFLA_NET_NS_FD,
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
  const req = new NlRequest(RTM_GETLINK, NLM_F_REQUEST).raw(ifinfomsg({})).string(IFLA_IFNAME, name);
  return parseLink(nl.query(req, `link ${name}`)[0]);
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

/** RTM_NEWLINK on an existing link: `fill` adds the attributes to change; `flags` changes IFF_* bits. */
export function setLink(nl: Rtnl, name: string, what: string, fill: (req: NlRequest) => void,
  flags?: { flags: number; change: number }): void {
  const req = new NlRequest(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)
    .raw(ifinfomsg({ index: getLink(nl, name).index, flags: flags?.flags, change: flags?.change }));
  fill(req);
  nl.change(req, `${what} ${name}`);
}

export function setLinkUp(nl: Rtnl, name: string, up: boolean): void {
  setLink(nl, name, up ? "set up" : "set down", () => {}, { flags: up ? IFF_UP : 0, change: IFF_UP });
}

export function deleteLink(nl: Rtnl, name: string): void {
  const req = new NlRequest(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK).raw(ifinfomsg({ index: getLink(nl, name).index }));
  nl.change(req, `delete ${name}`);
}

/** Creates a veth pair: `name` in this namespace, `peer` here or directly inside `peerNetns`. */
export function createVeth(nl: Rtnl, spec: VethSpec): void {
  const build = (nsFd: number) => {
    const req = new NlRequest(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).raw(ifinfomsg({}));
    req.string(IFLA_IFNAME, spec.name);
    if (spec.mtu) req.u32(IFLA_MTU, spec.mtu);
    req.nest(IFLA_LINKINFO, (info) => {
      info.string(IFLA_INFO_KIND, "veth");
      info.nest(IFLA_INFO_DATA, (data) => {
        data.nest(VETH_INFO_PEER, (peer) => {
          peer.raw(ifinfomsg({})).string(IFLA_IFNAME, spec.peer);
          if (spec.mtu) peer.u32(IFLA_MTU, spec.mtu);
          if (nsFd >= 0) peer.u32(IFLA_NET_NS_FD, nsFd);
        });
      });
    });
    nl.change(req, `veth ${spec.name} peer ${spec.peer}`);
  };
  if (spec.peerNetns === undefined) build(-1);
  else withNetnsFd(spec.peerNetns, build);
}
