// The UDP batch paths of src/sys across a veth pair between two namespaces: UDP_SEGMENT sends and UDP_GRO receives in
// one sendmmsg/recvmmsg each, straight from and into WASM memory; entries gathered from iovec lists (the core's send
// groups among them); the per-datagram fallback; refused entries; EAGAIN.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseIPAny } from "../../src/net/addr.js";
import {
  MSG_DONTWAIT, MsgBatch, POLLIN, SysError, type UdpSocket, nativeBase, openUdp, pollFd, setPointer, sockaddr, withNetns,
} from "../../src/sys/index.js";
import { IOVEC } from "../../src/core/index.js";
import { COPY_PATH_INPUTS } from "../helpers/copy-path.js";
import { NODE1, NODE2, makeCore } from "../helpers/nodes.js";
import { Sandbox, nsExec } from "./lib/netns.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("integration tests need root: skipped");
const suite = isRoot ? describe : describe.skip;

const SLOT = 65600;
const TX_REGION = 0;
const RX_REGION = 32 * 1024;
const TX_DATA = 1 << 20;
const RX_SLOTS = 8 << 20;
const IOVS = 4 << 20;
const HEADERS = 5 << 20;

suite("UDP batches across namespaces", () => {
  const sandbox = isRoot ? new Sandbox() : (null as unknown as Sandbox);
  const p = sandbox?.prefix;
  let nsA = "";
  let nsB = "";
  const memory = new WebAssembly.Memory({ initial: 256, maximum: 512 });
  let u8 = new Uint8Array(memory.buffer);
  let base = nativeBase(memory.buffer);
  const open: UdpSocket[] = [];
  const udp = (ns: string, opts: Parameters<typeof openUdp>[0]) => {
    const s = withNetns(ns, () => openUdp(opts));
    open.push(s);
    return s;
  };
  const region = (at: number, capacity: number) => new Uint8Array(memory.buffer, at, MsgBatch.bytesFor(capacity));
  const pattern = (at: number, n: number, seed: number) => {
    for (let i = 0; i < n; i++) u8[at + i] = (i * 13 + seed + Math.floor(i / 1000)) & 0xff;
  };
  const rxBatch = (capacity = 64) => {
    const b = new MsgBatch({ capacity, region: region(RX_REGION, capacity) });
    for (let i = 0; i < capacity; i++) b.setBuffer(i, base + RX_SLOTS + i * SLOT, SLOT);
    return b;
  };
  const rxSlot = (i: number, len: number) => u8.subarray(RX_SLOTS + i * SLOT, RX_SLOTS + i * SLOT + len);

  /** Receives until `want` messages arrived (copying what matters out of each batch) or 2 s passed. */
  function drain(sock: UdpSocket, batch: MsgBatch, want: number) {
    const got: { length: number; seg: number; source: string; addr16: Uint8Array; port: number; data: Uint8Array }[] = [];
    let calls = 0;
    const deadline = Date.now() + 2000;
    while (got.length < want && Date.now() < deadline) {
      if (!pollFd(sock.fd, POLLIN, 50)) continue;
      const n = batch.recvBatch(sock.fd, Math.min(batch.capacity, want - got.length), MSG_DONTWAIT);
      calls++;
      for (let i = 0; i < n; i++) {
        const addr16 = new Uint8Array(16);
        const port = batch.copySource(i, addr16, 0);
        got.push({ length: batch.length(i), seg: batch.segmentSize(i), source: batch.source(i), addr16, port,
          data: rxSlot(i, batch.length(i)).slice() });
      }
    }
    return { got, calls };
  }

  beforeAll(() => {
    nsA = sandbox.netns("ua");
    nsB = sandbox.netns("ub");
    sandbox.veth({ ns: nsA, name: `${p}a0`, addresses: ["10.250.0.1/24", "fd00:250::1/64"] },
      { ns: nsB, name: `${p}b0`, addresses: ["10.250.0.2/24", "fd00:250::2/64"] });
  });
  afterAll(() => {
    open.splice(0).forEach((s) => s.close());
    sandbox?.cleanup();
  });

  it("sends 40 UDP_SEGMENT segments and more messages in one sendmmsg; UDP_GRO gives them back with segment sizes", () => {
    const tx = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false });
    const rx1 = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: true, nonBlocking: true });
    const rx2 = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: true, nonBlocking: true });
    expect([tx.gso, rx1.gro, rx1.gso]).toEqual([true, true, true]);
    expect(rx1.recvBufferBytes).toBeGreaterThanOrEqual(7 * 1024 * 1024);

    pattern(TX_DATA, 70000, 1);
    const batch = new MsgBatch({ capacity: 8, region: region(TX_REGION, 8) });
    const to1 = tx.destination("10.250.0.2", rx1.port);
    expect(batch.add(to1, base + TX_DATA, 40 * 1400, 1400)).toBe(true);
    expect(batch.add(tx.destination("10.250.0.2", rx2.port), base + TX_DATA + 56000, 3000, 1000)).toBe(true);
    expect(batch.add(to1, base + TX_DATA + 59000, 500)).toBe(true);
    expect(batch.add(to1, base + TX_DATA + 59500, 1400, 1400)).toBe(true);
    expect(batch.sendBatch(tx.fd)).toBe(4);
    expect(batch.failed).toBe(0);

    const r1 = drain(rx1, rxBatch(), 3);
    expect(r1.got.map((m) => [m.length, m.seg])).toEqual([[56000, 1400], [500, 0], [1400, 0]]);
    expect(r1.got[0].data).toEqual(u8.slice(TX_DATA, TX_DATA + 56000));
    expect(r1.got[1].data).toEqual(u8.slice(TX_DATA + 59000, TX_DATA + 59500));
    expect(r1.got.every((m) => m.source === "10.250.0.1" && m.port === tx.port)).toBe(true);
    const r2 = drain(rx2, rxBatch(), 1);
    expect(r2.got.map((m) => [m.length, m.seg])).toEqual([[3000, 1000]]);
    expect(r2.got[0].data).toEqual(u8.slice(TX_DATA + 56000, TX_DATA + 59000));

    // Sanity figures: one 56 000-byte train per sendmmsg, as many as the receiver takes per recvmmsg.
    const rounds = 120;
    const rx = rxBatch();
    let recvCalls = 0;
    let received = 0;
    let messages = 0;
    for (let r = 0; r < rounds; r++) {
      batch.clear();
      batch.add(to1, base + TX_DATA, 40 * 1400, 1400);
      batch.sendBatch(tx.fd);
      for (let n; (n = rx.recvBatch(rx1.fd, 64, MSG_DONTWAIT)) > 0; recvCalls++) {
        messages += n;
        for (let i = 0; i < n; i++) received += rx.length(i);
      }
    }
    expect(received).toBe(rounds * 56000);
    console.info(`UDP_SEGMENT/GRO: ${rounds} sendmmsg × 40 segments = ${received} bytes; ${recvCalls} recvmmsg calls, ` +
      `${messages} messages, ${Math.round(received / messages)} bytes per message`);
  });

  it("expandSegments sends the same bytes as one datagram per entry, still in one sendmmsg", () => {
    const tx = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false });
    const rx = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: false, nonBlocking: true });
    pattern(TX_DATA, 4000, 2);
    const batch = new MsgBatch({ capacity: 5, region: region(TX_REGION, 5), expandSegments: true });
    const to = tx.destination("10.250.0.2", rx.port);
    expect(batch.add(to, base + TX_DATA, 3500, 1000)).toBe(true);
    expect(batch.count).toBe(4);
    expect(batch.add(to, base + TX_DATA + 3500, 500, 250)).toBe(false);
    expect(batch.add(to, base + TX_DATA + 3500, 500)).toBe(true);
    expect(batch.sendBatch(tx.fd)).toBe(5);
    const { got } = drain(rx, rxBatch(), 5);
    expect(got.map((m) => [m.length, m.seg])).toEqual([[1000, 0], [1000, 0], [1000, 0], [500, 0], [500, 0]]);
    expect(Buffer.concat(got.map((m) => m.data))).toEqual(Buffer.from(u8.slice(TX_DATA, TX_DATA + 4000)));
  });

  it("sends entries gathered from iovec lists (headers and payloads apart): with UDP_SEGMENT, and expanded per datagram", () => {
    const tx = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false });
    const rx = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: true, nonBlocking: true });
    const dv = new DataView(memory.buffer);
    // Five datagrams of a 30-byte header (written apart, as the core writes segment headers) and a payload slice, the
    // last shorter, then one of a single iovec: [hdr0, pay0, …, hdr4, pay4] and [whole].
    pattern(TX_DATA, 5000, 4);
    pattern(HEADERS, 5 * 32, 9);
    const lens = [970, 970, 970, 970, 470];
    const slices: [number, number][] = [];
    lens.forEach((len, k) => slices.push([HEADERS + 32 * k, 30], [TX_DATA + 970 * k, len]));
    slices.push([TX_DATA + 4500, 300]);
    slices.forEach(([at, len], k) => {
      setPointer(dv, IOVS + 16 * k, base + at);
      setPointer(dv, IOVS + 16 * k + 8, len);
    });
    const expected = slices.map(([at, len]) => u8.slice(at, at + len));
    const datagrams = [0, 1, 2, 3, 4].map((k) => Buffer.concat([expected[2 * k], expected[2 * k + 1]]));
    const list = (first: number, count: number) => ({ address: base + IOVS + 16 * first, view: dv, at: IOVS + 16 * first, count });
    const to = tx.destination("10.250.0.2", rx.port);

    const gso = new MsgBatch({ capacity: 4, region: region(TX_REGION, 4) });
    expect(gso.addIov(to, list(0, 10), 1000)).toBe(true);
    expect(gso.addIov(to, list(10, 1))).toBe(true);
    expect(gso.sendBatch(tx.fd)).toBe(2);
    const sent = drain(rx, rxBatch(), 2).got;
    expect(sent.map((m) => [m.length, m.seg])).toEqual([[4500, 1000], [300, 0]]);
    expect(Buffer.from(sent[0].data)).toEqual(Buffer.concat(datagrams));
    expect(Buffer.from(sent[1].data)).toEqual(Buffer.from(expected[10]));

    // Received one datagram per message (no UDP_GRO), so the entries can be counted.
    const plain = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: false, nonBlocking: true });
    const toPlain = tx.destination("10.250.0.2", plain.port);
    const expanded = new MsgBatch({ capacity: 6, region: region(TX_REGION, 6), expandSegments: true });
    expect(expanded.addIov(toPlain, list(0, 10), 1000)).toBe(true);
    expect(expanded.count).toBe(5);
    expect(expanded.addIov(toPlain, list(0, 10), 1000)).toBe(false);
    expect(expanded.count).toBe(5);
    expect(expanded.addIov(toPlain, list(10, 1), 1000)).toBe(true);
    expect(expanded.sendBatch(tx.fd)).toBe(6);
    const one = drain(plain, rxBatch(), 6).got;
    expect(one.map((m) => Buffer.from(m.data))).toEqual([...datagrams, Buffer.from(expected[10])]);
    // A datagram boundary inside an iovec cannot be expanded into whole entries.
    expect(() => expanded.addIov(toPlain, list(0, 10), 990)).toThrowError(/a datagram of 990 bytes ends inside iovec 1/);
  });

  it("sends the core's send groups as the core describes them, with UDP_SEGMENT and expanded per datagram", () => {
    const tx = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false });
    const rx = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: false, nonBlocking: true });
    const core = makeCore(NODE1, NODE2, { vnetHdr: true });
    core.setNativeBase(nativeBase(core.memory.buffer));
    // Whole packets (one iovec each, in place) and super-packets ([headers, payload] per datagram) in one batch.
    const groups = core.encapPackets(COPY_PATH_INPUTS.mixed);
    const want = Array.from({ length: groups }, (_, g) => core.txDatagrams(core.txGroup(g))).flat();
    const to = tx.destination("10.250.0.2", rx.port);
    for (const expandSegments of [false, true]) {
      const batch = new MsgBatch({ capacity: 128, expandSegments });
      for (let g = 0; g < groups; g++) {
        const grp = core.txGroup(g);
        const at = core.at.txIov + grp.iov * IOVEC.STRIDE;
        const list = { address: nativeBase(core.memory.buffer) + at, view: core.view, at, count: grp.iovCount };
        expect(batch.addIov(to, list, grp.segCount > 1 ? grp.segSize : 0)).toBe(true);
      }
      expect(batch.count).toBe(expandSegments ? want.length : groups);
      expect(batch.sendBatch(tx.fd)).toBe(batch.count);
      const { got } = drain(rx, rxBatch(), want.length);
      expect(got.map((m) => Buffer.from(m.data))).toEqual(want.map((d) => Buffer.from(d)));
    }
  });

  it("skips an entry the kernel refuses and sends the rest; errors of the call itself throw", () => {
    const tx = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false });
    const rx = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: false, nonBlocking: true });
    const batch = new MsgBatch({ capacity: 4, region: region(TX_REGION, 4) });
    const to = tx.destination("10.250.0.2", rx.port);
    batch.add(to, base + TX_DATA, 100);
    batch.add(to, base + TX_DATA, 70000);
    batch.add(to, base + TX_DATA, 200);
    batch.add(to, base + TX_DATA, 300);
    expect(batch.sendBatch(tx.fd)).toBe(4);
    expect([batch.failed, batch.lastErrno]).toEqual([1, 90]);
    expect(drain(rx, rxBatch(), 3).got.map((m) => m.length)).toEqual([100, 200, 300]);
    expect(() => batch.sendBatch(-1)).toThrowError(/sendmmsg fd -1: EBADF/);
    expect(() => sockaddr(4, "fd00::1", 1)).toThrow(/IPv4 socket/);
  });

  it("on EAGAIN returns where it stopped and resumes from there: nothing lost, nothing twice", () => {
    nsExec(nsA, "tc", "qdisc", "add", "dev", `${p}a0`, "root", "tbf", "rate", "20mbit", "burst", "4kb", "limit", "4mb");
    try {
      const tx = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false, bufferBytes: 4096, nonBlocking: true });
      const rx = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: false, nonBlocking: true });
      const batch = new MsgBatch({ capacity: 64, region: region(TX_REGION, 64) });
      const to = tx.destination("10.250.0.2", rx.port);
      for (let i = 0; i < 64; i++) {
        u8.fill(i, TX_DATA + i * 1400, TX_DATA + (i + 1) * 1400);
        batch.add(to, base + TX_DATA + i * 1400, 1400);
      }
      const first = batch.sendBatch(tx.fd, 64, 0, 0);
      expect(first).toBeGreaterThan(0);
      expect(first).toBeLessThan(64);
      let at = first;
      let resumes = 0;
      while (at < 64 && resumes < 1000) {
        at = batch.sendBatch(tx.fd, 64, at, 2000);
        resumes++;
      }
      expect(at).toBe(64);
      expect(batch.failed).toBe(0);
      const { got } = drain(rx, rxBatch(), 64);
      expect(got.map((m) => m.data[0])).toEqual(Array.from({ length: 64 }, (_, i) => i));
      console.info(`EAGAIN: first sendmmsg took ${first} of 64 before the 4 KiB send buffer filled; resumed ${resumes}×`);
    } finally {
      nsExec(nsA, "tc", "qdisc", "del", "dev", `${p}a0`, "root");
    }
  });

  it("recvBatch returns 0 and recvFrom null when nothing is waiting", () => {
    const rx = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: true });
    expect(rxBatch().recvBatch(rx.fd, 8, MSG_DONTWAIT)).toBe(0);
    rx.setNonBlocking(true);
    expect(rx.recvFrom(new Uint8Array(100))).toBeNull();
    expect(() => rxBatch().recvBatch(-1, 1)).toThrowError(SysError);
  });

  it("a dual-stack IPv6 socket sees IPv4 senders as ::ffff:a.b.c.d; GSO and GRO work over an IPv6 underlay", () => {
    const rx = udp(nsB, { family: 6, address: "::", port: 0, gro: true, nonBlocking: true });
    const tx4 = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false });
    const tx6 = udp(nsA, { family: 6, address: "fd00:250::1", port: 0, gro: false });
    pattern(TX_DATA, 12000, 3);
    expect(tx4.sendTo(u8.subarray(TX_DATA, TX_DATA + 64), "10.250.0.2", rx.port)).toBe(64);
    const batch = new MsgBatch({ capacity: 2, region: region(TX_REGION, 2) });
    batch.add(tx6.destination("fd00:250::2", rx.port), base + TX_DATA, 12000, 1200);
    expect(batch.sendBatch(tx6.fd)).toBe(1);

    const { got } = drain(rx, rxBatch(4), 2);
    const from4 = got.find((m) => m.length === 64);
    const from6 = got.find((m) => m.length === 12000);
    expect(from4).toMatchObject({ seg: 0, source: "10.250.0.1", port: tx4.port });
    expect(from4!.addr16).toEqual(parseIPAny("::ffff:10.250.0.1"));
    expect(from6).toMatchObject({ seg: 1200, source: "fd00:250::1", port: tx6.port });
    expect(from6!.data).toEqual(u8.slice(TX_DATA, TX_DATA + 12000));
  });

  it("a batch in WASM memory keeps working after the memory grows, once rebound", () => {
    const tx = udp(nsA, { family: 4, address: "10.250.0.1", port: 0, gro: false });
    const rx = udp(nsB, { family: 4, address: "10.250.0.2", port: 0, gro: false, nonBlocking: true });
    const batch = new MsgBatch({ capacity: 2, region: region(TX_REGION, 2) });
    memory.grow(16);
    u8 = new Uint8Array(memory.buffer);
    base = nativeBase(memory.buffer);
    batch.rebind(region(TX_REGION, 2));
    pattern(TX_DATA, 800, 4);
    batch.add(tx.destination("10.250.0.2", rx.port), base + TX_DATA, 800);
    expect(batch.sendBatch(tx.fd)).toBe(1);
    const { got } = drain(rx, rxBatch(), 1);
    expect(got[0].data).toEqual(u8.slice(TX_DATA, TX_DATA + 800));
  });
});
