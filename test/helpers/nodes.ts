// Two cores standing for two nodes, configured as the agent will configure them, and a wire between them.
import { Core, type Identity } from "../../src/core/index.js";

export const NODE1 = {
  underlay: "192.168.77.1",
  vtepMAC: "02:5e:00:00:00:01",
  subnet4: "10.244.1.0/24",
  subnet6: "fd00:244:1::/64",
  gateway4: "10.244.1.0",
  gateway6: "fd00:244:1::",
};
export const NODE2 = {
  underlay: "192.168.77.2",
  vtepMAC: "02:5e:00:00:00:02",
  subnet4: "10.244.2.0/24",
  subnet6: "fd00:244:2::/64",
  gateway4: "10.244.2.0",
  gateway6: "fd00:244:2::",
};
export type NodeSpec = typeof NODE1;

/** A Pod on each node, IPv4 and IPv6. */
export const POD1 = "10.244.1.10";
export const POD2 = "10.244.2.20";
export const POD1_6 = "fd00:244:1::10";
export const POD2_6 = "fd00:244:2::20";

/** A little-endian u16 (virtio_net_hdr fields) and a big-endian one (wire fields) out of packet bytes. */
export const le16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
export const be16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];

export function makeCore(self: NodeSpec, peer: NodeSpec, opts: Partial<Identity> & { slots?: number } = {}): Core {
  const core = Core.load({ txSlots: opts.slots ?? 64, rxSlots: opts.slots ?? 64, maxPeers: 16 });
  core.configure({
    vni: 1,
    mtu: 1450,
    vtepMAC: self.vtepMAC,
    vnetHdr: false,
    subnet4: self.subnet4,
    subnet6: self.subnet6,
    icmpSource4: self.gateway4,
    icmpSource6: self.gateway6,
    ...opts,
  });
  core.setPeer(0, { address: peer.underlay, vtepMAC: peer.vtepMAC });
  core.routes4.insert(peer.subnet4, 0);
  core.routes6.insert(peer.subnet6, 0);
  return core;
}

export interface Datagram {
  data: Uint8Array;
  peer: number;
  sourcePort: number;
}

/** Every datagram of the last encap, in order. */
export function datagramsOf(core: Core, groups: number): Datagram[] {
  const out: Datagram[] = [];
  for (let g = 0; g < groups; g++) {
    const grp = core.txGroup(g);
    for (const data of core.txDatagrams(grp)) out.push({ data, peer: grp.peer, sourcePort: grp.sourcePort });
  }
  return out;
}

/** Sum of the counters whose names match. */
export function sumCounters(c: Record<string, number>, match: RegExp): number {
  return Object.entries(c).filter(([k]) => match.test(k)).reduce((s, [, v]) => s + v, 0);
}
