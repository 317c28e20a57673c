// The kernel side of a Pod attachment (docs/cni.md, "Wiring"), all through rtnetlink (src/sys), never the `ip` binary.
// Routed like the reference ptp plugin: a veth pair, the Pod's end holding its address and a route to a gateway that lives
// on the host's end.
//
//   Pod netns:  eth0 10.244.1.7/24   10.244.1.1 dev eth0 scope link   default via 10.244.1.1 dev eth0
//   host:       weft<11 hex> 10.244.1.1/32 (the same gateway on every Pod's veth)   10.244.1.7 dev weft<11 hex>
//
// Every function here is synchronous: withNetns switches the calling thread, so nothing may await inside it.
import { createHash } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { parseCIDR, cidrToString } from "../net/addr.js";
import { SysError } from "../sys/libc.js";
import { type RouteInfo, type Rtnl, addAddress, addRoute, createVeth, deleteLink, deleteRoute, listAddresses, listRoutes,
  replaceRoute, rtnl, setLink, setLinkUp } from "../sys/netlink.js";
import { IFF_UP, IFINFOMSG_SIZE, IFLA_IFNAME, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MTU, NLM_F_ACK, NLM_F_REQUEST,
  type NlMessage, NlRequest, RTM_DELLINK, RTM_GETLINK, attrString, attrU32, ifinfomsg, parseAttrs } from "../sys/netlink-msg.js";
import { withNetns } from "../sys/netns.js";
import { CniError, ERR } from "./errors.js";
import type { AttachmentRecord } from "./records.js";
import { type CniIp, type CniRoute, ipFamily } from "./result.js";

const ENODEV = 19;
const ESRCH = 3;
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
    const req = new NlRequest(RTM_GETLINK, NLM_F_REQUEST).raw(ifinfomsg({})).string(IFLA_IFNAME, name);
    return parseLinkState(nl.query(req, `link ${name}`)[0]);
  } catch (err) {
    if (err instanceof SysError && err.errno === ENODEV) return null;
    throw err;
  }
}

/** Runs `fn` inside the Pod's namespace; a path that is no network namespace is the runtime's mistake (CNI_NETNS). */
function inNetns<T>(netns: string, fn: () => T): T {
  try {
    return withNetns(netns, fn);
  } catch (err) {
    if (err instanceof SysError && err.call === "setns" && err.errno === EINVAL) {
      throw new CniError(ERR.INVALID_ENV, `CNI_NETNS ${netns} is not a network namespace`);
    }
    throw err;
  }
}

/** Link `name` in the Pod's namespace, or null. */
export const linkIn = (netns: string, name: string): LinkState | null => inNetns(netns, () => rtnl((nl) => findLinkState(nl, name)));

// ---- ADD ----------------------------------------------------------------------------------------------------------------

export interface VethPair {
  hostVeth: string;
  netns: string;
  ifname: string;
  mtu: number;
}

/** The pair, the Pod's end created directly inside its namespace under its final name. */
export function createPair(pair: VethPair): void {
  rtnl((nl) => createVeth(nl, { name: pair.hostVeth, peer: pair.ifname, peerNetns: pair.netns, mtu: pair.mtu }));
}

const hostPrefix = (address: string): string => `${address}/${ipFamily(address) === 4 ? 32 : 128}`;
const bare = (cidr: string): string => cidr.split("/")[0];

const EEXIST = 17;

function ignoring<T>(errno: number, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SysError && err.errno === errno) return undefined;
    throw err;
  }
}

/** Each gateway once: two addresses of a family may share one. */
const gatewaysOf = (ips: CniIp[]): string[] => [...new Set(ips.map((ip) => ip.gateway!))];

/** Loopback up, DAD off, addresses, the gateways' link routes and the routes; returns the Pod interface as it is now. */
export function configurePod(pair: VethPair, ips: CniIp[], routes: CniRoute[]): LinkState {
  return inNetns(pair.netns, () => {
    // An IPv6 address that waits for duplicate address detection is unusable for a second; nothing can duplicate it here.
    const dad = `/proc/sys/net/ipv6/conf/${pair.ifname}/accept_dad`;
    if (existsSync(dad)) writeFileSync(dad, "0");
    return rtnl((nl) => {
      setLinkUp(nl, "lo", true);
      setLinkUp(nl, pair.ifname, true);
      for (const ip of ips) {
        addAddress(nl, pair.ifname, ip.address, { nodad: ipFamily(ip.address) === 6 });
        // The kernel's connected route would have the Pod ARP for its neighbours directly, but they sit behind other
        // veths: every address in the subnet, the gateway aside, must go through the gateway (the ptp trick).
        ignoring(ESRCH, () => deleteRoute(nl, { dst: cidrToString(parseCIDR(ip.address)), dev: pair.ifname }));
      }
      for (const gateway of gatewaysOf(ips)) {
        try {
          addRoute(nl, { dst: hostPrefix(gateway), dev: pair.ifname, scope: "link" });
        } catch (err) {
          // Another interface of this Pod already routes to the gateway: a second attachment to this node's subnet
          // (e.g. Multus net1 on another weft network), which routed ptp-style wiring cannot express.
          if (err instanceof SysError && err.errno === EEXIST) {
            throw new CniError(ERR.INVALID_CONFIG, `the Pod already has an interface on this node's Pod subnet (a route to ${gateway} exists): ` +
              "weft attaches one interface per Pod; remove the second weft network from the Pod's networks");
          }
          throw err;
        }
      }
      for (const r of routes) {
        const via = r.gw ?? ips.find((ip) => ipFamily(ip.address) === ipFamily(r.dst))?.gateway;
        addRoute(nl, { dst: r.dst, dev: pair.ifname, via });
      }
      return findLinkState(nl, pair.ifname)!;
    });
  });
}

/** The host end: its alias, the gateway address(es) as host prefixes, up, and a route to each Pod address. */
export function configureHost(pair: VethPair, ips: CniIp[], alias: string): LinkState {
  return rtnl((nl) => {
    setLink(nl, pair.hostVeth, "set alias", (req) => req.string(IFLA_IFALIAS, alias));
    for (const gateway of gatewaysOf(ips)) addAddress(nl, pair.hostVeth, hostPrefix(gateway), { nodad: ipFamily(gateway) === 6 });
    setLinkUp(nl, pair.hostVeth, true);
    // Replace, not add: a route left by a veth that vanished without its DEL must not block this Pod.
    for (const ip of ips) replaceRoute(nl, { dst: hostPrefix(bare(ip.address)), dev: pair.hostVeth, scope: "link" });
    return findLinkState(nl, pair.hostVeth)!;
  });
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

/** Link `name` in the calling thread's namespace (the host's), or null. */
export const hostLink = (name: string): LinkState | null => rtnl((nl) => findLinkState(nl, name));

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
