// RX: consecutive datagrams of one UDP flow coalesced into one UDP super-packet (GSO_UDP_L4) for a TUN device that takes
// them (USO): one write instead of one per datagram. The kernel cuts it again at gso_size, so what the Pod receives must
// be the datagrams that were sent, byte for byte.
import { describe, expect, it } from "vitest";
import { be16, le16, makeCore, NODE1, NODE2, POD1, POD1_6, POD2, POD2_6 } from "../helpers/nodes.js";
import { buildUDP, buildVXLAN, internetChecksum, parseUDP } from "../helpers/packets.js";

const GSO_UDP_L4 = 5;
const NEEDS_CSUM = 1;
const DATA_VALID = 2;

interface Spec { len: number; srcPort?: number; ttl?: number; corrupt?: boolean; v6?: boolean }

function datagrams(specs: Spec[]): Uint8Array[] {
  return specs.map((s, i) => {
    const payload = new Uint8Array(s.len).map((_, k) => (k * 7 + i * 13) & 0xff);
    const p = buildUDP({ srcPort: s.srcPort ?? 5001, dstPort: 5201, payload }, s.v6 ? POD1_6 : POD1, s.v6 ? POD2_6 : POD2, { id: 100 + i, ttl: s.ttl });
    if (s.corrupt) p[p.length - 1] ^= 0xff;
    return p;
  });
}

function receive(inner: Uint8Array[], udpSuperPackets = true) {
  const rx = makeCore(NODE2, NODE1, { vnetHdr: true, udpSuperPackets });
  const messages = inner.map((p) => ({ data: buildVXLAN({ vni: 1, innerDstMac: NODE2.vtepMAC, innerSrcMac: NODE1.vtepMAC, inner: p }), source: NODE1.underlay }));
  const n = rx.decapMessages(messages);
  return { n, rx, out: rx.rxPackets(n) };
}

/**
 * What the kernel makes of a GSO_UDP_L4 packet: the first `hdr_len` bytes as every segment's headers, the rest cut at
 * gso_size, each segment's lengths set and its checksum computed.
 */
function segment(vnetAndPacket: Uint8Array): Uint8Array[] {
  const hdrLen = le16(vnetAndPacket, 2);
  const gsoSize = le16(vnetAndPacket, 4);
  const pkt = vnetAndPacket.subarray(10);
  const l4 = le16(vnetAndPacket, 6);
  const v6 = pkt[0] >> 4 === 6;
  const out: Uint8Array[] = [];
  for (let off = hdrLen; off < pkt.length; off += gsoSize) {
    const payload = pkt.subarray(off, Math.min(off + gsoSize, pkt.length));
    const seg = new Uint8Array(hdrLen + payload.length);
    seg.set(pkt.subarray(0, hdrLen));
    seg.set(payload, hdrLen);
    const udpLen = seg.length - l4;
    seg[l4 + 4] = udpLen >> 8;
    seg[l4 + 5] = udpLen & 0xff;
    if (v6) {
      seg[4] = udpLen >> 8;
      seg[5] = udpLen & 0xff;
    } else {
      seg[2] = seg.length >> 8;
      seg[3] = seg.length & 0xff;
    }
    const pseudo = new Uint8Array(v6 ? 40 : 12);
    if (v6) {
      pseudo.set(seg.subarray(8, 40), 0);
      pseudo[34] = udpLen >> 8;
      pseudo[35] = udpLen & 0xff;
      pseudo[39] = 17;
    } else {
      pseudo.set(seg.subarray(12, 20), 0);
      pseudo[9] = 17;
      pseudo[10] = udpLen >> 8;
      pseudo[11] = udpLen & 0xff;
    }
    seg[l4 + 6] = 0;
    seg[l4 + 7] = 0;
    const c = internetChecksum(new Uint8Array([...pseudo, ...seg.subarray(l4)]));
    seg[l4 + 6] = (c || 0xffff) >> 8;
    seg[l4 + 7] = (c || 0xffff) & 0xff;
    out.push(seg);
  }
  return out;
}

describe("core RX: UDP GRO into UDP super-packets", () => {
  for (const v6 of [false, true]) {
    it(`coalesces equal-size datagrams of one flow and a shorter last one into one GSO_UDP_L4 packet (IPv${v6 ? 6 : 4})`, () => {
      const sent = datagrams([{ len: 1000, v6 }, { len: 1000, v6 }, { len: 1000, v6 }, { len: 300, v6 }]);
      const { n, rx, out } = receive(sent);
      expect(n).toBe(1);
      const p = out[0];
      expect(p[0]).toBe(NEEDS_CSUM);
      expect(p[1]).toBe(GSO_UDP_L4);
      const l4 = v6 ? 40 : 20;
      expect(le16(p, 2)).toBe(l4 + 8); // hdr_len
      expect(le16(p, 4)).toBe(1000); // gso_size: the first datagram's payload
      expect(le16(p, 6)).toBe(l4); // csum_start
      expect(le16(p, 8)).toBe(6); // csum_offset: the UDP checksum field
      const ip = p.subarray(10);
      expect(ip.length).toBe(l4 + 8 + 3300);
      expect(be16(ip, l4 + 4)).toBe(8 + 3300); // UDP length covers the whole super-packet
      expect(be16(ip, v6 ? 4 : 2)).toBe(v6 ? 8 + 3300 : l4 + 8 + 3300);
      // Cut again as the kernel does, the segments are the datagrams that were sent, payloads and checksums exact (IPv4
      // ids aside: the kernel numbers the segments from the first one's).
      const cut = segment(p);
      expect(cut).toHaveLength(4);
      cut.forEach((seg, i) => {
        const a = parseUDP(seg);
        const b = parseUDP(sent[i]);
        expect(a.payload).toEqual(b.payload);
        expect(a.checksum).toBe(b.checksum);
        expect(seg.length).toBe(sent[i].length);
      });
      expect(rx.counters().rx_coalesced).toBe(3);
      expect(rx.counters().rx_packets_out).toBe(1);
      expect(rx.counters().rx_bytes_out).toBe(10 + l4 + 8 + 3300);
    });
  }

  it("keeps datagrams apart for a device without USO, and vouches for each (DATA_VALID)", () => {
    const { n, out } = receive(datagrams([{ len: 1000 }, { len: 1000 }]), false);
    expect(n).toBe(2);
    for (const p of out) expect(p[0]).toBe(DATA_VALID);
  });

  it("starts a new packet after a shorter datagram, for another flow, another TTL, or a larger datagram", () => {
    expect(receive(datagrams([{ len: 1000 }, { len: 500 }, { len: 500 }])).n).toBe(2);
    expect(receive(datagrams([{ len: 1000 }, { len: 1000, srcPort: 5002 }])).n).toBe(2);
    expect(receive(datagrams([{ len: 1000 }, { len: 1000, ttl: 3 }])).n).toBe(2);
    expect(receive(datagrams([{ len: 500 }, { len: 1000 }])).n).toBe(2);
  });

  it("never merges a datagram whose checksum is wrong, and does not vouch for it", () => {
    const { n, rx, out } = receive(datagrams([{ len: 1000 }, { len: 1000, corrupt: true }, { len: 1000 }]));
    expect(n).toBe(3);
    expect(out[1][0]).toBe(0);
    expect(rx.counters().rx_l4_checksum_bad).toBe(1);
  });

  it("stops at 64 datagrams per super-packet, the kernel's own bound", () => {
    const { n, out } = receive(datagrams(Array.from({ length: 64 }, () => ({ len: 200 }))));
    expect(n).toBe(1);
    expect(segment(out[0])).toHaveLength(64);
    // 64 datagrams of 1,400 bytes pass the 65,535-byte IPv4 total length: the first packet closes at 46 of them.
    const more = receive(datagrams(Array.from({ length: 64 }, () => ({ len: 1400 }))));
    expect(more.n).toBe(2);
    expect(more.out.map((p) => segment(p).length)).toEqual([46, 18]);
  });
});
