// What every CNI handler shares: the agent's options, the built-in allocator, and the attachments being added right now
// (GC must not collect an ADD that is halfway through).
import type { Logger } from "pino";
import type { NetConf } from "./config.js";
import type { NetnsId } from "./config.js";
import type { BuiltinIpam } from "./ipam.js";
import type { AttachmentRecords } from "./records.js";
import type { VethReaper } from "./reaper.js";
import type { Rtnl } from "../sys/netlink.js";

export interface CniServiceOptions {
  /** The node's IPv4 Pod subnet: gateway .1, Pods from .2. */
  subnet: string;
  subnetV6?: string;
  /** The Pod MTU (underlay MTU minus the VXLAN overhead). */
  mtu: number;
  /** Reservations live under <stateDir>/ipam, attachment records under <stateDir>/attachments. */
  stateDir: string;
  log: Logger;
  /** STATUS answers "not available" (50) while this is false. */
  ready: () => boolean;
}

export interface CniContext {
  opts: CniServiceOptions;
  log: Logger;
  builtin: BuiltinIpam;
  records: AttachmentRecords;
  /** The namespace the service wires host ends in (its own): never a Pod's. */
  ownNetns: NetnsId;
  /** An rtnetlink socket in that namespace, open as long as the service is. */
  host: Rtnl;
  reaper: VethReaper;
  /** attachmentKey() of every ADD in progress. */
  inFlight: Set<string>;
}

export type WithIpam = NetConf & { ipam: NonNullable<NetConf["ipam"]> };

export const delegates = (conf: NetConf): conf is WithIpam => conf.ipam !== undefined;

/** The Pod MTU: the agent's, or the config's when that is smaller. */
export const podMtu = (ctx: CniContext, conf: NetConf): number => Math.min(ctx.opts.mtu, conf.mtu ?? ctx.opts.mtu);
