// CHECK (spec ≥ 0.4.0, docs/cni.md): is the Pod still wired as its prevResult says, through the host veth weft's record
// names? The Pod's interface, its addresses and routes, the host veth with the gateway and the route back, and the
// address reservation. Routes a later plugin added are fine; ours missing are not.
import { cidrToString, formatIPBytes, parseCIDR } from "../net/addr.js";
import { type Env, type NetConf, compareVersions, containerIdFrom, ifnameFrom, netnsFrom, parseCniArgs } from "./config.js";
import { type CniContext, delegates } from "./context.js";
import { CniError, ERR } from "./errors.js";
import { DelegatedIpam } from "./ipam-delegate.js";
import { type CniIp, type CniResult, ipFamily, parseResult } from "./result.js";
import { type Observed, observeHost, observePod, recordedHostVeth } from "./wiring.js";

const mismatch = (msg: string): CniError => new CniError(ERR.CHECK_MISMATCH, msg);

const bare = (cidr: string): string => cidr.split("/")[0];
const fullLen = (address: string): number => (ipFamily(address) === 4 ? 32 : 128);

/** One spelling per address ("fd00:0::1" and "fd00::1" agree). */
const normalAddress = (address: string): string => formatIPBytes(parseCIDR(`${address}/${fullLen(address)}`).bytes);
/** An interface address, host bits kept. */
const normalAddressPrefix = (cidr: string): string => `${normalAddress(bare(cidr))}/${cidr.split("/")[1]}`;
/** A route destination. */
const normalRoute = (cidr: string): string => cidrToString(parseCIDR(cidr));
const hostRoute = (address: string): string => normalRoute(`${address}/${fullLen(address)}`);

export async function cmdCheck(ctx: CniContext, conf: NetConf, env: Env): Promise<void> {
  if (compareVersions(conf.cniVersion, "0.4.0") < 0) {
    throw new CniError(ERR.INCOMPATIBLE_VERSION, `CHECK needs cniVersion 0.4.0 or later; the config says ${conf.cniVersion}`);
  }
  const containerID = containerIdFrom(env);
  const ifname = ifnameFrom(env);
  parseCniArgs(env.CNI_ARGS);
  if (conf.prevResult === undefined) throw new CniError(ERR.INVALID_CONFIG, "CHECK needs prevResult: the result of this attachment's ADD");
  const netns = netnsFrom(env, ctx.ownNetns);
  const prev = parseResult(conf.prevResult, "prevResult");
  const ips = podAddresses(prev, ifname, netns);
  const record = ctx.records.read({ network: conf.name, containerID, ifname });
  if (record?.phase !== "added") {
    throw new CniError(ERR.UNKNOWN_CONTAINER, `weft holds no attachment of ${containerID}/${ifname} on network ${conf.name}: ADD it first`);
  }

  checkReservation(ctx, conf, containerID, ifname, ips);
  if (delegates(conf)) await new DelegatedIpam(conf, env).check();
  checkPod(observePod(netns, ifname), prev, ifname, ips);
  const hostVeth = recordedHostVeth(record);
  if (hostVeth === null) throw mismatch(`the Pod's host veth ${record.hostVeth.name} is missing (or is no longer the one weft created)`);
  checkHost(observeHost(hostVeth), ips);
}

/** The addresses prevResult gives the Pod's interface (the one named CNI_IFNAME in CNI_NETNS). */
function podAddresses(prev: CniResult, ifname: string, netns: string): CniIp[] {
  const index = prev.interfaces.findIndex((i) => i.name === ifname && i.sandbox === netns);
  if (index < 0) throw mismatch(`prevResult lists no interface ${ifname} in ${netns}`);
  const ips = prev.ips.filter((ip) => ip.interface === undefined || ip.interface === index);
  if (ips.length === 0) throw mismatch(`prevResult gives ${ifname} no address`);
  return ips;
}

function checkReservation(ctx: CniContext, conf: NetConf, containerID: string, ifname: string, ips: CniIp[]): void {
  if (delegates(conf)) return;
  const reserved = new Set(ctx.builtin.addressesOf({ network: conf.name, containerID, ifname }).map(normalAddress));
  for (const ip of ips) {
    if (!reserved.has(normalAddress(bare(ip.address)))) throw mismatch(`${bare(ip.address)} is not reserved for ${containerID}/${ifname}`);
  }
}

function checkPod(seen: Observed, prev: CniResult, ifname: string, ips: CniIp[]): void {
  const link = seen.link;
  if (!link) throw mismatch(`interface ${ifname} is missing from the Pod's namespace`);
  if (link.kind !== "veth") throw mismatch(`interface ${ifname} is a ${link.kind ?? "device"}, not a veth`);
  const expectedMac = prev.interfaces.find((i) => i.name === ifname && i.sandbox)?.mac;
  if (expectedMac && link.mac !== expectedMac.toLowerCase()) throw mismatch(`interface ${ifname} has MAC ${link.mac}, prevResult says ${expectedMac}`);
  if (!link.up) throw mismatch(`interface ${ifname} is down`);
  const addresses = new Set(seen.addresses.map(normalAddressPrefix));
  for (const ip of ips) if (!addresses.has(normalAddressPrefix(ip.address))) throw mismatch(`${ifname} lacks its address ${ip.address}`);
  const routes = seen.routes.map((r) => ({ dst: normalRoute(r.dst), via: r.via && normalAddress(r.via) }));
  const has = (dst: string, via?: string) => routes.some((r) => r.dst === dst && (via === undefined || r.via === via));
  for (const ip of ips) {
    if (ip.gateway && !has(hostRoute(ip.gateway))) throw mismatch(`${ifname} lacks its route to the gateway ${ip.gateway}`);
  }
  for (const r of prev.routes) {
    if (!has(normalRoute(r.dst), r.gw && normalAddress(r.gw))) throw mismatch(`${ifname} lacks the route ${r.dst}${r.gw ? ` via ${r.gw}` : ""}`);
  }
}

function checkHost(seen: Observed, ips: CniIp[]): void {
  const link = seen.link;
  if (!link) throw mismatch("the Pod's host veth is missing");
  if (!link.up) throw mismatch(`host veth ${link.name} is down`);
  const addresses = new Set(seen.addresses.map(normalAddressPrefix));
  const routes = new Set(seen.routes.map((r) => normalRoute(r.dst)));
  for (const ip of ips) {
    if (ip.gateway && !addresses.has(normalAddressPrefix(`${ip.gateway}/${fullLen(ip.gateway)}`))) {
      throw mismatch(`host veth ${link.name} lacks the gateway ${ip.gateway}`);
    }
    const back = hostRoute(bare(ip.address));
    if (!routes.has(back)) throw mismatch(`the host has no route ${back} dev ${link.name}`);
  }
}
