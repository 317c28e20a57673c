// Where a UDP flood's packets go missing between two Pods of the lab: the kernel's counters (socket, device, softnet)
// in every namespace on the path and, on weft nodes, the agents' own counters, read before and after one iperf3 run.
// The pure part (parsers, `accountUdp`) turns two snapshots into losses per stage; `snapshotUdpPath` reads them.
import { readFileSync } from "node:fs";

export interface LinkCounters {
  rxPackets: number;
  rxDropped: number;
  rxErrors: number;
  txPackets: number;
  txDropped: number;
  txErrors: number;
  txFifoErrors: number;
}

export interface SnmpUdp {
  InDatagrams: number;
  InErrors: number;
  OutDatagrams: number;
  RcvbufErrors: number;
  SndbufErrors: number;
}

export interface NetnsCounters {
  links: Record<string, LinkCounters>;
  udp: SnmpUdp;
  /** The drops column of /proc/net/udp, summed per local port. */
  socketDrops: Record<number, number>;
}

/** The namespaces and devices a Pod-to-Pod datagram crosses (docs/architecture.md, "Packet path"). */
export interface UdpPath {
  senderPod: string;
  senderNode: string;
  receiverNode: string;
  receiverPod: string;
  /** Node-side veths of the two Pods. */
  senderHostVeth: string;
  receiverHostVeth: string;
  /** weft0, or the kernel's VXLAN device. */
  senderOverlay: string;
  receiverOverlay: string;
  senderUnderlay: string;
  receiverUnderlay: string;
  vxlanPort: number;
}

export interface UdpSnapshot {
  senderPod: NetnsCounters;
  senderNode: NetnsCounters;
  receiverNode: NetnsCounters;
  receiverPod: NetnsCounters;
  /** /proc/net/softnet_stat's dropped column over all CPUs (backlog full; the machine's, not one namespace's). */
  softnetDropped: number;
  /** The agents' counters (their status' `counters`) on weft paths. */
  weft?: { sender: Record<string, number>; receiver: Record<string, number> };
}

export interface UdpStage {
  stage: string;
  /** Packets this stage's counters say it dropped. */
  lost: number;
  /** The counters behind it (deltas over the run), for the JSON. */
  counters: Record<string, number>;
  /** A stage inside weft itself (its drops count against weft's own drop rate). */
  weft?: boolean;
  /** The device the stage's counters are from, when its name does not say. */
  device?: string;
}

export interface UdpAccounting {
  /** Datagrams the sender's iperf3 says it sent, and the receiver's says arrived. */
  offered: number;
  received: number;
  stages: UdpStage[];
  /** offered − received − what the stages account for. */
  unaccounted: number;
  /** weft paths: datagrams the sending agent read from weft0, and what weft itself dropped of them. */
  weft?: { read: number; dropped: number; droppedPct: number };
}

const NO_UDP: SnmpUdp = { InDatagrams: 0, InErrors: 0, OutDatagrams: 0, RcvbufErrors: 0, SndbufErrors: 0 };

/** The Udp: lines of /proc/net/snmp (a header line, then a line of values). */
export function parseSnmpUdp(snmp: string): SnmpUdp {
  const lines = snmp.split("\n").filter((l) => l.startsWith("Udp: "));
  if (lines.length < 2) throw new Error("/proc/net/snmp has no Udp lines");
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  const out = { ...NO_UDP };
  names.forEach((n, i) => {
    if (n in out) out[n as keyof SnmpUdp] = values[i];
  });
  return out;
}

/** /proc/net/udp (or udp6): the drops column (the last) summed by local port. */
export function parseSocketDrops(table: string): Record<number, number> {
  const drops: Record<number, number> = {};
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt(f[1].split(":")[1], 16);
    drops[port] = (drops[port] ?? 0) + Number(f[f.length - 1]);
  }
  return drops;
}

/** `ip -s -s -j link` output, by interface name. */
export function parseLinkStats(json: string): Record<string, LinkCounters> {
  const links: Record<string, LinkCounters> = {};
  for (const l of JSON.parse(json) as { ifname: string; stats64?: { rx: Record<string, number>; tx: Record<string, number> } }[]) {
    const s = l.stats64;
    if (!s) continue;
    links[l.ifname] = { rxPackets: s.rx.packets, rxDropped: s.rx.dropped, rxErrors: s.rx.errors, txPackets: s.tx.packets,
      txDropped: s.tx.dropped, txErrors: s.tx.errors, txFifoErrors: s.tx.fifo_errors ?? 0 };
  }
  return links;
}

/** /proc/net/softnet_stat: the second column (hex) is packets dropped because a CPU's backlog was full. */
export function parseSoftnetDropped(softnet: string): number {
  return softnet.split("\n").filter((l) => l.trim()).reduce((sum, l) => sum + parseInt(l.trim().split(/\s+/)[1], 16), 0);
}

const sumMatching = (c: Record<string, number>, re: RegExp) => Object.entries(c).reduce((s, [k, v]) => (re.test(k) ? s + v : s), 0);

/** Losses per stage, from the sender's socket to the receiver's, between two snapshots of one run. */
export function accountUdp(path: UdpPath, before: UdpSnapshot, after: UdpSnapshot, offered: number, received: number): UdpAccounting {
  const link = (where: "senderPod" | "senderNode" | "receiverNode" | "receiverPod", dev: string, field: keyof LinkCounters) =>
    (after[where].links[dev]?.[field] ?? 0) - (before[where].links[dev]?.[field] ?? 0);
  const udp = (where: "senderPod" | "senderNode" | "receiverNode" | "receiverPod", field: keyof SnmpUdp) => after[where].udp[field] - before[where].udp[field];
  const socketDrops = (where: "receiverNode", port: number) => (after[where].socketDrops[port] ?? 0) - (before[where].socketDrops[port] ?? 0);
  const stage = (name: string, counters: Record<string, number>, lostKeys: string[], extra: Partial<UdpStage> = {}): UdpStage =>
    ({ stage: name, lost: lostKeys.reduce((s, k) => s + Math.max(0, counters[k]), 0), counters, ...extra });

  const stages: UdpStage[] = [];
  stages.push(stage("sender Pod socket", { OutDatagrams: udp("senderPod", "OutDatagrams"), SndbufErrors: udp("senderPod", "SndbufErrors") }, ["SndbufErrors"]));
  stages.push(stage("sender Pod veth", {
    eth0_tx_packets: link("senderPod", "eth0", "txPackets"), eth0_tx_dropped: link("senderPod", "eth0", "txDropped"),
    host_veth_rx_dropped: link("senderNode", path.senderHostVeth, "rxDropped"), softnet_dropped: after.softnetDropped - before.softnetDropped,
  }, ["eth0_tx_dropped", "host_veth_rx_dropped", "softnet_dropped"]));
  stages.push(stage("overlay device queue (sender node)", {
    tx_packets: link("senderNode", path.senderOverlay, "txPackets"), tx_dropped: link("senderNode", path.senderOverlay, "txDropped"),
    tx_errors: link("senderNode", path.senderOverlay, "txErrors"), tx_fifo_errors: link("senderNode", path.senderOverlay, "txFifoErrors"),
  }, ["tx_dropped", "tx_errors"], { device: path.senderOverlay }));
  const weft = after.weft && before.weft ? { after: after.weft, before: before.weft } : undefined;
  const delta = (side: "sender" | "receiver") => {
    const d: Record<string, number> = {};
    for (const [k, v] of Object.entries(weft!.after[side])) d[k] = v - (weft!.before[side][k] ?? 0);
    return d;
  };
  const tx = weft ? delta("sender") : undefined;
  const rx = weft ? delta("receiver") : undefined;
  if (tx) {
    stages.push(stage("weft TX (sender agent)", {
      tx_packets_in: tx.tx_packets_in ?? 0, tx_datagrams_out: tx.tx_datagrams_out ?? 0, tx_drops: sumMatching(tx, /^tx_drop_/),
      tx_send_errors: tx.tx_send_errors ?? 0, tx_send_stalls: tx.tx_send_stalls ?? 0,
    }, ["tx_drops", "tx_send_errors"], { weft: true }));
  }
  const underlay = stage("underlay (sockets, veths)", {
    sender_node_SndbufErrors: udp("senderNode", "SndbufErrors"), sender_underlay_tx_dropped: link("senderNode", path.senderUnderlay, "txDropped"),
    receiver_underlay_rx_dropped: link("receiverNode", path.receiverUnderlay, "rxDropped"),
    receiver_node_RcvbufErrors: udp("receiverNode", "RcvbufErrors"), receiver_node_InErrors: udp("receiverNode", "InErrors"),
    vxlan_socket_drops: socketDrops("receiverNode", path.vxlanPort),
  }, ["sender_node_SndbufErrors", "sender_underlay_tx_dropped", "receiver_underlay_rx_dropped", "vxlan_socket_drops"]);
  stages.push(underlay);
  if (tx && rx) {
    // Datagrams weft sent and weft never received. The kernel counts a dropped UDP_GRO skb once however many datagrams it
    // held, so its counters say where but not how many: without send stalls, all of them were lost in the underlay. A
    // sendmmsg that stays full past its wait drops the rest of its batch (tx_send_stalls), which no kernel counter sees.
    const gap = (tx.tx_datagrams_out ?? 0) - (rx.rx_datagrams_in ?? 0);
    underlay.counters.weft_sent_not_received = gap;
    if ((tx.tx_send_stalls ?? 0) === 0) underlay.lost = Math.max(underlay.lost, gap);
    else stages.push(stage("weft send stalls", { datagrams: gap - underlay.lost, tx_send_stalls: tx.tx_send_stalls }, ["datagrams"], { weft: true }));
    stages.push(stage("weft RX (receiver agent)", {
      rx_datagrams_in: rx.rx_datagrams_in ?? 0, rx_packets_out: rx.rx_packets_out ?? 0, rx_drops: sumMatching(rx, /^rx_drop_/),
      rx_tun_write_errors: rx.rx_tun_write_errors ?? 0,
    }, ["rx_drops", "rx_tun_write_errors"], { weft: true }));
  }
  stages.push(stage("overlay device (receiver node)", {
    rx_packets: link("receiverNode", path.receiverOverlay, "rxPackets"), rx_dropped: link("receiverNode", path.receiverOverlay, "rxDropped"),
    rx_errors: link("receiverNode", path.receiverOverlay, "rxErrors"),
  }, ["rx_dropped", "rx_errors"], { device: path.receiverOverlay }));
  stages.push(stage("receiver Pod veth", {
    host_veth_tx_dropped: link("receiverNode", path.receiverHostVeth, "txDropped"), eth0_rx_packets: link("receiverPod", "eth0", "rxPackets"),
    eth0_rx_dropped: link("receiverPod", "eth0", "rxDropped"),
  }, ["host_veth_tx_dropped", "eth0_rx_dropped"]));
  stages.push(stage("receiver Pod socket", { InDatagrams: udp("receiverPod", "InDatagrams"), RcvbufErrors: udp("receiverPod", "RcvbufErrors") }, ["RcvbufErrors"]));

  const accounted = stages.reduce((s, x) => s + x.lost, 0);
  const result: UdpAccounting = { offered, received, stages, unaccounted: offered - received - accounted };
  if (tx) {
    const own = stages.filter((s) => s.weft).reduce((s, x) => s + x.lost, 0);
    const read = tx.tx_packets_in ?? 0;
    result.weft = { read, dropped: own, droppedPct: read > 0 ? (100 * own) / read : 0 };
  }
  return result;
}

/** Reads the counters of every namespace on `path` (and, when given, the agents' counters). */
export async function snapshotUdpPath(path: UdpPath, exec: (ns: string, cmd: string, args: string[]) => string,
  weft?: () => Promise<{ sender: Record<string, number>; receiver: Record<string, number> }>): Promise<UdpSnapshot> {
  const read = (ns: string): NetnsCounters => ({
    links: parseLinkStats(exec(ns, "ip", ["-s", "-s", "-j", "link", "show"])),
    udp: parseSnmpUdp(exec(ns, "cat", ["/proc/net/snmp"])),
    socketDrops: parseSocketDrops(exec(ns, "cat", ["/proc/net/udp"])),
  });
  return {
    senderPod: read(path.senderPod),
    senderNode: read(path.senderNode),
    receiverNode: read(path.receiverNode),
    receiverPod: read(path.receiverPod),
    softnetDropped: parseSoftnetDropped(readFileSync("/proc/net/softnet_stat", "utf8")),
    weft: weft ? await weft() : undefined,
  };
}
