// The batched TUN helpers (src/sys/batchio/weftio.c through src/sys/batchio.ts) against a real TUN device in a namespace:
// one call reads every waiting packet into slots behind their headroom, one call writes packets gathered from iovec lists
// (a plain packet in three pieces, a UDP_L4 super-packet as headers plus payload slices the kernel splits).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  POLLIN, SysError, type TunDevice, type UdpSocket, nativeBase, openTun, openUdp, pollFd, readPackets, setPointer, withNetns,
  writeFailures, writePackets,
} from "../../src/sys/index.js";
import { VIRTIO_NET, buildUDP, onesComplementSum, concat, parseUDP, virtioNetHdr } from "../helpers/packets.js";
import { Sandbox, ip } from "./lib/netns.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("integration tests need root: skipped");
const suite = isRoot ? describe : describe.skip;

const STRIDE = 4096;
const HEADROOM = 22;
const SLOTS = 1 << 20;
const LENS = 64;
const IOVS = 2 << 20;
const COUNTS = 128;
const PIECES = 3 << 20;

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 29 + seed) & 0xff);

suite("batched TUN reads and writes", () => {
  const sandbox = isRoot ? new Sandbox() : (null as unknown as Sandbox);
  const p = sandbox?.prefix;
  let ns = "";
  let tun: TunDevice;
  let sock: UdpSocket;
  const memory = new WebAssembly.Memory({ initial: 80 });
  const u8 = new Uint8Array(memory.buffer);
  const dv = new DataView(memory.buffer);
  const base = nativeBase(memory.buffer);

  beforeAll(() => {
    ns = sandbox.netns("io");
    tun = withNetns(ns, () => openTun({ name: `${p}io`, vnetHdr: true, nonBlocking: true }));
    ip("-n", ns, "addr", "add", "10.246.0.1/24", "dev", tun.name);
    ip("-n", ns, "link", "set", tun.name, "up");
    ip("-n", ns, "route", "add", "10.247.0.0/24", "dev", tun.name);
    sock = withNetns(ns, () => openUdp({ family: 4, address: "10.246.0.1", port: 0, gro: false, nonBlocking: true }));
  });
  afterAll(() => {
    sock?.close();
    tun?.close();
    sandbox?.cleanup();
  });

  /** Reads batches of at most n until `want` datagrams to port 7100 arrived; returns the batch sizes and those datagrams. */
  function readUdp(n: number, want: number) {
    const sizes: number[] = [];
    const got: { slot: number; length: number }[] = [];
    const deadline = Date.now() + 2000;
    while (got.length < want && Date.now() < deadline) {
      if (pollFd(tun.fd, POLLIN, 50) === 0) continue;
      u8.fill(0xaa, SLOTS, SLOTS + n * STRIDE);
      const r = readPackets(tun.fd, base + SLOTS, STRIDE, HEADROOM, base + LENS, n);
      sizes.push(r);
      for (let i = 0; i < r; i++) {
        const at = SLOTS + i * STRIDE;
        // The headroom is left alone: encapsulation writes there.
        expect(u8.subarray(at, at + HEADROOM).every((b) => b === 0xaa)).toBe(true);
        const pkt = u8.subarray(at + HEADROOM + 10, at + HEADROOM + dv.getUint32(LENS + 4 * i, true));
        if (pkt[0] >> 4 === 4 && pkt[9] === 17 && ((pkt[22] << 8) | pkt[23]) === 7100) got.push({ slot: i, length: dv.getUint32(LENS + 4 * i, true) });
      }
    }
    return { sizes, got };
  }

  it("reads every waiting packet in one call, behind the headroom, up to the batch size; 0 when none waits", () => {
    // Whatever the kernel sent when the link came up (IPv6 solicitations) goes first; then nothing is waiting.
    while (readPackets(tun.fd, base + SLOTS, STRIDE, HEADROOM, base + LENS, 8) > 0);
    expect(readPackets(tun.fd, base + SLOTS, STRIDE, HEADROOM, base + LENS, 8)).toBe(0);
    for (let k = 0; k < 5; k++) sock.sendTo(bytes(100 + k, k), "10.247.0.9", 7100);
    const { sizes, got } = readUdp(3, 5);
    expect(got.map((g) => g.length)).toEqual([0, 1, 2, 3, 4].map((k) => 10 + 28 + 100 + k));
    expect(sizes.filter((s) => s > 0).every((s) => s <= 3)).toBe(true);
    expect(sizes.some((s) => s === 3)).toBe(true);
    expect(() => readPackets(-1, base + SLOTS, STRIDE, HEADROOM, base + LENS, 1)).toThrowError(SysError);
    expect(() => readPackets(-1, base + SLOTS, STRIDE, HEADROOM, base + LENS, 1)).toThrowError(/read fd -1: EBADF/);
  });

  it("writes a batch gathered from iovec lists, counting the packets the device refused", () => {
    const dst = "10.246.0.1";
    const packets = [0, 1, 2].map((k) => buildUDP({ srcPort: 7200 + k, dstPort: sock.port, payload: bytes(300 + k, 10 + k) }, "10.247.0.5", dst));
    // A 1500-byte UDP payload as one UDP_L4 super-packet of 3 × 500, its payload in three slices.
    const big = buildUDP({ srcPort: 7300, dstPort: sock.port, payload: bytes(1500, 20) }, "10.247.0.5", dst);
    const sum = onesComplementSum(concat(big.subarray(12, 20), Uint8Array.of(0, 17, 1508 >> 8, 1508 & 0xff)));
    big.set([sum >> 8, sum & 0xff], 26);
    const gsoHdr = virtioNetHdr({ flags: VIRTIO_NET.F_NEEDS_CSUM, gsoType: VIRTIO_NET.GSO_UDP_L4, hdrLen: 28, gsoSize: 500, csumStart: 20, csumOffset: 6 });

    let pieceAt = PIECES;
    let iov = 0;
    const piece = (b: Uint8Array) => {
      u8.set(b, pieceAt);
      setPointer(dv, IOVS + 16 * iov, base + pieceAt);
      setPointer(dv, IOVS + 16 * iov + 8, b.length);
      pieceAt += (b.length + 63) & ~63;
      iov++;
    };
    const counts: number[] = [];
    for (const pkt of packets.slice(0, 2)) {
      piece(virtioNetHdr());
      piece(pkt.subarray(0, 28));
      piece(pkt.subarray(28));
      counts.push(3);
    }
    piece(Uint8Array.of(0, 0, 0, 0)); // shorter than a virtio_net_hdr: the device refuses it
    counts.push(1);
    piece(gsoHdr);
    piece(big.subarray(0, 28));
    for (let k = 0; k < 3; k++) piece(big.subarray(28 + 500 * k, 28 + 500 * (k + 1)));
    counts.push(5);
    piece(concat(virtioNetHdr(), packets[2]));
    counts.push(1);
    counts.forEach((c, k) => dv.setUint32(COUNTS + 4 * k, c, true));

    expect(writePackets(tun.fd, base + IOVS, base + COUNTS, counts.length)).toBe(4);
    expect(writeFailures).toEqual({ count: 1, errno: 22 });
    const received: { port: number; data: Uint8Array }[] = [];
    const buf = new Uint8Array(2000);
    while (received.length < 6 && pollFd(sock.fd, POLLIN, 2000) !== 0) {
      const r = sock.recvFrom(buf);
      if (r) received.push({ port: r.port, data: buf.slice(0, r.length) });
    }
    expect(received.map((r) => r.port)).toEqual([7200, 7201, 7300, 7300, 7300, 7202]);
    expect(received.map((r) => Buffer.from(r.data))).toEqual([
      ...packets.slice(0, 2).map((pkt) => Buffer.from(parseUDP(pkt).payload)),
      ...[0, 1, 2].map((k) => Buffer.from(bytes(1500, 20).subarray(500 * k, 500 * (k + 1)))),
      Buffer.from(parseUDP(packets[2]).payload),
    ]);
    expect(writePackets(tun.fd, base + IOVS, base + COUNTS, 0)).toBe(0);
    expect(writeFailures).toEqual({ count: 0, errno: 0 });
  });
});
