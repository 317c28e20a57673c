// The underlay sockets of the queues (docs/agent.md, "Queues"): each queue's socket in an SO_REUSEPORT group on the VXLAN
// port, and each queue's sending sockets on a run of source ports that every queue binds (SO_REUSEPORT again).
import { createHash } from "node:crypto";
import type { AgentConfig } from "../control/config.js";
import type { Logger } from "../control/log.js";
import { openUdp, type UdpSocket } from "../sys/udp.js";
import { naming } from "./startup.js";

/** Sockets (and so outer source ports) flows are spread over; docs/wire.md wants the inner flow's entropy in the source port. */
export const SOURCE_PORTS = 8;

export interface QueueSockets {
  /** Queue q's socket on publicIP:port. */
  rx: UdpSocket[];
  /** Queue q's sending sockets, bound to sourcePortBase + i. */
  tx: UdpSocket[][];
  sourcePortBase: number;
}

/** Closes each socket once (a queue without source ports sends from its VXLAN-port socket). */
export function closeQueueSockets(s: QueueSockets): void {
  for (const u of new Set([...s.tx.flat(), ...s.rx])) u.close();
}

/** The VXLAN port taken by another process names `port`. */
export async function openQueueSockets(c: AgentConfig, log: Logger): Promise<QueueSockets> {
  const family = c.publicIP.includes(":") ? 6 : 4;
  const rx: UdpSocket[] = [];
  await naming("port", `cannot bind UDP ${c.publicIP}:${c.port}`, "a UDP port no other process on this address uses", () => {
    try {
      // A socket without SO_REUSEPORT first: binding it fails when anyone holds the port, even another reuse group.
      openUdp({ family, address: c.publicIP, port: c.port, gro: false, bufferBytes: 4096 }).close();
      for (let q = 0; q < c.queues; q++) rx.push(openUdp({ family, address: c.publicIP, port: c.port, gro: true, reusePort: true }));
    } catch (err) {
      rx.splice(0).forEach((u) => u.close());
      throw err;
    }
  });
  const first = rx[0];
  if (!first.gso) log.warn("UDP_SEGMENT refused by the kernel: one datagram per message in each sendmmsg");
  if (!first.gro) log.warn("UDP_GRO refused by the kernel: one datagram per receive");
  log.debug({ sendBuffer: first.sendBufferBytes, recvBuffer: first.recvBufferBytes, queues: c.queues }, "underlay sockets");
  return { rx, ...openSourcePorts(c, rx, log) };
}

/**
 * SOURCE_PORTS sending sockets per queue on consecutive ports in 49152–65535, starting where a hash of the node name points
 * (stable across restarts), moving on when a port is taken. When no run of free ports is found, each queue sends from its
 * socket on the VXLAN port, as flannel's UDP backend does, and the log says so.
 */
function openSourcePorts(c: AgentConfig, rx: UdpSocket[], log: Logger): Pick<QueueSockets, "tx" | "sourcePortBase"> {
  const family = rx[0].family;
  const span = 65536 - 49152 - SOURCE_PORTS;
  const start = createHash("sha256").update(c.nodeName).digest().readUInt32BE(0) % span;
  for (let attempt = 0; attempt < 16; attempt++) {
    const base = 49152 + ((start + attempt * 997) % span);
    const pools: UdpSocket[][] = [];
    try {
      for (let q = 0; q < c.queues; q++) {
        const pool: UdpSocket[] = [];
        pools.push(pool);
        for (let i = 0; i < SOURCE_PORTS; i++) pool.push(openUdp({ family, address: c.publicIP, port: base + i, gro: false, reusePort: true }));
      }
      return { tx: pools, sourcePortBase: base };
    } catch {
      pools.flat().forEach((u) => u.close());
    }
  }
  log.warn({ port: c.port }, "no free run of source ports in 49152-65535: sending every flow from the VXLAN port");
  return { tx: rx.map((u) => [u]), sourcePortBase: c.port };
}
