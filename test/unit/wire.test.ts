// The core's wire views and checksum, against byte fixtures: packets captured from the kernel and packets built by the
// independent helpers (IPv4 options and fragments, IPv6 extension headers, virtio_net_hdr).
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { Core } from "../../src/core/index.js";
import { buildIPv4, buildIPv6, buildTCP, buildUDP, concat, internetChecksum, mulberry32, virtioNetHdr } from "../helpers/packets.js";

const core = Core.load({ txSlots: 1, rxSlots: 1, maxPeers: 1 });
const fixtures: { name: string; hex: string; innerIpOffset: number; inner: Record<string, any> }[] = JSON.parse(
  readFileSync(new URL("../fixtures/kernel-vxlan.json", import.meta.url), "utf8"),
).packets;
const inner = (name: string) => {
  const f = fixtures.find((x) => x.name === name)!;
  return { bytes: Buffer.from(f.hex, "hex").subarray(f.innerIpOffset), f };
};

describe("checksum", () => {
  it("matches RFC 1071's worked example", () => {
    // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2, so the checksum is 0x220d.
    expect(core.checksum(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
  });

  it("matches the independent implementation on random data of every length up to 2 KiB and on 64 KiB", () => {
    const rand = mulberry32(7);
    for (let len = 0; len <= 2048; len++) {
      const b = Uint8Array.from({ length: len }, () => (rand() * 256) | 0);
      expect(core.checksum(b)).toBe(internetChecksum(b));
    }
    const big = Uint8Array.from({ length: 65535 }, () => (rand() * 256) | 0);
    expect(core.checksum(big)).toBe(internetChecksum(big));
    expect(core.checksum(new Uint8Array(65535).fill(0xff))).toBe(internetChecksum(new Uint8Array(65535).fill(0xff)));
  });
});

describe("IPv4 view", () => {
  it("reads a kernel-captured TCP segment: header length, total length, ports, seq, ack, flags, options", () => {
    const { bytes, f } = inner("tcp-v4-data-a2b-1");
    const r = core.inspect(bytes)!;
    expect(r).toMatchObject({ version: 4, l3Len: 20, totalLen: f.inner.totalLen, l4Proto: 6, fragment: 0, ipChecksumOk: true });
    expect(r.srcPort).toBe(f.inner.tcp.srcPort);
    expect(r.dstPort).toBe(f.inner.tcp.dstPort);
    expect(r.tcpSeq).toBe(f.inner.tcp.seq);
    expect(r.tcpAck).toBe(f.inner.tcp.ack);
    expect(r.tcpFlags).toBe(0x10);
    expect(r.tcpHdrLen).toBe(32); // timestamps
  });

  it("reads kernel-captured fragments: the first has ports, later ones have no L4 header", () => {
    expect(core.inspect(inner("udp-frag-v4-1").bytes)).toMatchObject({ fragment: 1, l4Proto: 17, dstPort: 7002 });
    expect(core.inspect(inner("udp-frag-v4-2").bytes)).toMatchObject({ fragment: 2, l4Proto: 17, srcPort: 0, dstPort: 0 });
  });

  it("honours options in the header length and rejects impossible lengths", () => {
    const opts = buildIPv4({ src: "10.0.0.1", dst: "10.0.0.2", proto: 17, options: new Uint8Array([7, 7, 4, 0, 0, 0, 0, 1]), payload: new Uint8Array(12).fill(1) });
    expect(core.inspect(opts)).toMatchObject({ l3Len: 28, totalLen: 40, ipChecksumOk: true });
    const ihlTooSmall = opts.slice();
    ihlTooSmall[0] = 0x44;
    expect(core.inspect(ihlTooSmall)).toBeNull();
    const totalPastEnd = opts.slice();
    totalPastEnd[3] = 41;
    expect(core.inspect(totalPastEnd)).toBeNull();
    const headerPastTotal = opts.slice();
    headerPastTotal[0] = 0x4f; // 60-byte header in a 40-byte packet
    expect(core.inspect(headerPastTotal)).toBeNull();
    const badSum = opts.slice();
    badSum[10] ^= 1;
    expect(core.inspect(badSum)!.ipChecksumOk).toBe(false);
  });

  it("takes the IP total length as the packet's end, not the buffer's", () => {
    const p = buildUDP({ srcPort: 1, dstPort: 2, payload: new Uint8Array(4) }, "10.0.0.1", "10.0.0.2");
    expect(core.inspect(concat(p, new Uint8Array(20)))).toMatchObject({ totalLen: 32, udpLen: 12 });
  });
});

describe("IPv6 view", () => {
  it("reads a kernel-captured TCP segment and a fragment header", () => {
    expect(core.inspect(inner("tcp-v6-data-a2b-1").bytes)).toMatchObject({ version: 6, l3Len: 40, l4Proto: 6, tcpFlags: 0x18 });
    expect(core.inspect(inner("udp-frag-v6-1").bytes)).toMatchObject({ l3Len: 48, l4Proto: 17, fragment: 1, dstPort: 7012 });
    expect(core.inspect(inner("udp-frag-v6-2").bytes)).toMatchObject({ l3Len: 48, fragment: 2, dstPort: 0 });
  });

  it("walks hop-by-hop, routing and destination-options headers to the upper layer", () => {
    const udp = buildUDP({ srcPort: 4000, dstPort: 4001, payload: new Uint8Array(5) }, "fd00::1", "fd00::2").subarray(40);
    const pkt = buildIPv6({
      src: "fd00::1",
      dst: "fd00::2",
      nextHeader: 17,
      payload: udp,
      extHeaders: [
        { type: 0, data: new Uint8Array(6) },
        { type: 43, data: new Uint8Array(14) },
        { type: 60, data: new Uint8Array(6) },
      ],
    });
    expect(core.inspect(pkt)).toMatchObject({ version: 6, l3Len: 40 + 8 + 16 + 8, l4Proto: 17, srcPort: 4000, dstPort: 4001, udpLen: 13 });
  });

  it("rejects an extension header that runs past the packet, and a payload length past the buffer", () => {
    const pkt = buildIPv6({ src: "fd00::1", dst: "fd00::2", nextHeader: 17, payload: new Uint8Array(8), extHeaders: [{ type: 0, data: new Uint8Array(6) }] });
    const longExt = pkt.slice();
    longExt[41] = 5; // hop-by-hop claims 48 bytes
    expect(core.inspect(longExt)).toBeNull();
    const longPayload = pkt.slice();
    longPayload[5] += 1;
    expect(core.inspect(longPayload)).toBeNull();
  });
});

describe("virtio_net_hdr view", () => {
  it("reads every field, little-endian", () => {
    const tcp = buildTCP({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0x10, payload: new Uint8Array(3000) }, "10.0.0.1", "10.0.0.2");
    const hdr = virtioNetHdr({ flags: 1, gsoType: 0x81, hdrLen: 0x1234, gsoSize: 1448, csumStart: 20, csumOffset: 16 });
    expect(core.inspect(concat(hdr, tcp), true)!.vnet).toEqual({ flags: 1, gsoType: 0x81, gsoSize: 1448, csumStart: 20, csumOffset: 16 });
  });
});
