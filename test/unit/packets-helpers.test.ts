import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  PROTO, TCP_FLAGS, buildICMPEcho, buildIPv4, buildIPv6, buildTCP, buildUDP, buildVXLAN, bytesToHex, bytesToIp,
  bytesToMac, concat, hexToBytes, internetChecksum, ipToBytes, ipv4HeaderChecksumOk, l4ChecksumOk, mulberry32,
  onesComplementSum, parseIPv4, parseIPv6, parseTCP, parseTCPSegment, parseUDP, parseUDPDatagram, randomBytes, virtioNetHdr,
} from '../helpers/packets.js';

interface FixturePacket {
  name: string; capture: string; direction: 'A->B' | 'B->A'; hex: string;
  outer: { family: 'ipv4' | 'ipv6'; src: string; dst: string; srcPort: number; dstPort: number; udpChecksum: number };
  vni: number; udpPayloadOffset: number; innerEthOffset: number; innerIpOffset: number; innerProto: string;
  inner: { family: string; src: string; dst: string; fragment?: { offset: number; more: boolean } };
}
const fixture = JSON.parse(fs.readFileSync(new URL('../fixtures/kernel-vxlan.json', import.meta.url), 'utf8')) as {
  kernel: string; config: { vni: number; vtepMACs: { A: string; B: string } }; packets: FixturePacket[];
};
const frame = (p: FixturePacket): Uint8Array => hexToBytes(p.hex);
const outerIp = (p: FixturePacket): Uint8Array => frame(p).subarray(14);
const innerIp = (p: FixturePacket): Uint8Array => frame(p).subarray(p.innerIpOffset);
const byName = (name: string): FixturePacket => {
  const p = fixture.packets.find((x) => x.name === name);
  if (!p) throw new Error(`fixture packet ${name} missing`);
  return p;
};
const unfragmented = fixture.packets.filter((p) => !p.inner.fragment);

describe('internetChecksum (RFC 1071)', () => {
  it('matches the RFC 1071 section 3 example', () => {
    const data = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(onesComplementSum(data)).toBe(0xddf2);
    expect(internetChecksum(data)).toBe(0x220d);
  });
  it('pads an odd trailing byte as the high byte and folds carries of `initial`', () => {
    expect(internetChecksum(Uint8Array.from([0x01]))).toBe(0xfeff);
    expect(internetChecksum(Uint8Array.from([0xff, 0xff]), 0x0001)).toBe(0xfffe);
    expect(onesComplementSum(new Uint8Array(0), 0x3_0002)).toBe(0x0005);
  });
  it('verifies and recomputes a well-known IPv4 header (checksum 0xb861)', () => {
    const hdr = hexToBytes('450000730000400040 11b861c0a80001c0a800c7'.replace(/ /g, ''));
    expect(ipv4HeaderChecksumOk(hdr)).toBe(true);
    const zeroed = Uint8Array.from(hdr);
    zeroed[10] = zeroed[11] = 0;
    expect(internetChecksum(zeroed)).toBe(0xb861);
    zeroed[10] = 0xb8; zeroed[11] = 0x62;
    expect(ipv4HeaderChecksumOk(zeroed)).toBe(false);
  });
});

describe('kernel VXLAN fixture', () => {
  it('has the expected packets', () => {
    const names = fixture.packets.map((p) => p.name);
    for (const n of ['icmp-echo-v4', 'icmp-echo-reply-v4', 'icmp-echo-v6', 'icmp-echo-v4-mtu', 'udp-v4', 'udp-v6',
      'udp-frag-v4-1', 'udp-frag-v4-3', 'udp-frag-v6-1', 'tcp-v4-syn', 'tcp-v4-syn-ack', 'tcp-v4-data-a2b-1',
      'tcp-v4-fin-a2b', 'tcp-v6-syn', 'port4789-icmp-echo-v4', 'underlay6-icmp-echo-v4', 'underlay6-icmp-echo-v6']) {
      expect(names).toContain(n);
    }
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(fixture.packets.map((p) => [p.name, p] as const))('%s: VXLAN header, inner MACs and offsets', (_, p) => {
    const f = frame(p);
    const vx = f.subarray(p.udpPayloadOffset);
    expect(vx[0]).toBe(0x08);
    expect((vx[4] << 16) | (vx[5] << 8) | vx[6]).toBe(fixture.config.vni);
    expect(p.innerEthOffset).toBe(p.udpPayloadOffset + 8);
    expect(p.innerIpOffset).toBe(p.innerEthOffset + 14);
    const [from, to] = p.direction === 'A->B' ? ['A', 'B'] as const : ['B', 'A'] as const;
    expect(bytesToMac(f.subarray(p.innerEthOffset))).toBe(fixture.config.vtepMACs[to]);
    expect(bytesToMac(f.subarray(p.innerEthOffset + 6))).toBe(fixture.config.vtepMACs[from]);
    expect(p.outer.dstPort).toBe(p.capture === 'port4789' ? 4789 : 8472);
  });

  it.each(fixture.packets.map((p) => [p.name, p] as const))('%s: outer checksums verify', (_, p) => {
    const ip = outerIp(p);
    if (p.outer.family === 'ipv4') {
      expect(ipv4HeaderChecksumOk(ip)).toBe(true);
      expect(parseIPv4(ip).protocol).toBe(PROTO.UDP);
    } else {
      expect(parseIPv6(ip).upperProtocol).toBe(PROTO.UDP);
    }
    expect(l4ChecksumOk(ip)).toBe(true); // outer UDP checksum (kernel fills it, also on IPv4 here)
  });

  it.each(unfragmented.map((p) => [p.name, p] as const))('%s: inner checksums verify', (_, p) => {
    const ip = innerIp(p);
    if (p.inner.family === 'ipv4') expect(ipv4HeaderChecksumOk(ip)).toBe(true);
    expect(l4ChecksumOk(ip)).toBe(true);
  });

  it('detects corruption of captured packets', () => {
    const tcp = Uint8Array.from(innerIp(byName('tcp-v4-data-a2b-1')));
    tcp[100] ^= 0x01;
    expect(l4ChecksumOk(tcp)).toBe(false);
    expect(ipv4HeaderChecksumOk(tcp)).toBe(true);
    tcp[8] -= 1; // TTL decrement without header checksum update
    expect(ipv4HeaderChecksumOk(tcp)).toBe(false);
    const icmp6 = Uint8Array.from(innerIp(byName('icmp-echo-v6')));
    icmp6[23] ^= 0x10; // source address is covered by the ICMPv6 pseudo-header
    expect(l4ChecksumOk(icmp6)).toBe(false);
  });

  it('reassembled inner fragments carry a valid UDP checksum (v4 and v6)', () => {
    for (const fam of ['v4', 'v6']) {
      const frags = fixture.packets.filter((p) => p.name.startsWith(`udp-frag-${fam}-`)).map(innerIp);
      expect(frags.length).toBeGreaterThan(1);
      let data: Uint8Array = new Uint8Array(0);
      let src = '', dst = '';
      for (const f of frags) {
        if (fam === 'v4') {
          const ip = parseIPv4(f);
          expect(ipv4HeaderChecksumOk(f)).toBe(true);
          expect(ip.fragmentOffset).toBe(data.length);
          ({ src, dst } = ip);
          data = concat(data, ip.payload);
        } else {
          const ip = parseIPv6(f);
          expect(ip.extHeaders.map((e) => e.type)).toEqual([PROTO.FRAGMENT]);
          expect(ip.fragment?.offset).toBe(data.length);
          ({ src, dst } = ip);
          data = concat(data, ip.payload);
        }
        expect(() => l4ChecksumOk(f)).toThrow(/fragment/);
      }
      expect(data.length).toBe(3008);
      const whole = fam === 'v4'
        ? buildIPv4({ src, dst, proto: PROTO.UDP, payload: data })
        : buildIPv6({ src, dst, nextHeader: PROTO.UDP, payload: data });
      expect(l4ChecksumOk(whole)).toBe(true);
      expect(parseUDPDatagram(data).length).toBe(3008);
      expect(parseUDP(whole).payload.length).toBe(3000);
    }
  });

  it('rebuilds captured inner packets byte for byte from their parsed fields', () => {
    for (const p of unfragmented.filter((x) => x.innerProto === 'tcp' || x.innerProto === 'udp' || x.innerProto.startsWith('icmp'))) {
      const orig = innerIp(p);
      const v4 = p.inner.family === 'ipv4';
      const ip4 = v4 ? parseIPv4(orig) : undefined;
      const ip6 = v4 ? undefined : parseIPv6(orig);
      const l4 = (ip4 ?? ip6)!.payload;
      const { src, dst } = (ip4 ?? ip6)!;
      const ipf = ip4
        ? { id: ip4.id, ttl: ip4.ttl, df: ip4.df, tos: ip4.tos }
        : { hopLimit: ip6!.hopLimit, trafficClass: ip6!.trafficClass, flowLabel: ip6!.flowLabel };
      let rebuilt: Uint8Array;
      if (p.innerProto === 'tcp') {
        const t = parseTCPSegment(l4);
        expect(parseTCP(orig)).toMatchObject({ seq: t.seq, ack: t.ack, flags: t.flags, ip: { src, dst } });
        rebuilt = buildTCP({ ...t, options: t.options, payload: t.payload }, src, dst, ipf);
      } else if (p.innerProto === 'udp') {
        const u = parseUDP(orig);
        rebuilt = buildUDP({ srcPort: u.srcPort, dstPort: u.dstPort, payload: u.payload }, src, dst, ipf);
      } else {
        const id = (l4[4] << 8) | l4[5], seq = (l4[6] << 8) | l4[7];
        rebuilt = buildICMPEcho({ id, seq, reply: l4[0] === 0 || l4[0] === 129, payload: l4.subarray(8) }, src, dst, ipf);
      }
      expect(bytesToHex(rebuilt), p.name).toBe(bytesToHex(orig));
    }
  });

  it('rebuilds a whole captured VXLAN frame (outer IPv4 and IPv6)', () => {
    for (const name of ['icmp-echo-v4', 'underlay6-icmp-echo-v6']) {
      const p = byName(name);
      const f = frame(p);
      const outer = outerIp(p);
      const vxlan = buildVXLAN({
        vni: p.vni, innerDstMac: f.subarray(p.innerEthOffset, p.innerEthOffset + 6),
        innerSrcMac: f.subarray(p.innerEthOffset + 6, p.innerEthOffset + 12), inner: innerIp(p),
      });
      let rebuilt: Uint8Array;
      if (p.outer.family === 'ipv4') {
        const o = parseIPv4(outer);
        rebuilt = buildUDP({ srcPort: p.outer.srcPort, dstPort: p.outer.dstPort, payload: vxlan }, o.src, o.dst, { id: o.id, ttl: o.ttl, df: o.df, tos: o.tos });
      } else {
        const o = parseIPv6(outer);
        rebuilt = buildUDP({ srcPort: p.outer.srcPort, dstPort: p.outer.dstPort, payload: vxlan }, o.src, o.dst, { hopLimit: o.hopLimit, trafficClass: o.trafficClass, flowLabel: o.flowLabel });
      }
      expect(bytesToHex(rebuilt), name).toBe(bytesToHex(outer));
    }
  });

  it('keeps the kernel UDP checksum valid when IPv6 extension headers are inserted (upper-layer length)', () => {
    const orig = parseIPv6(innerIp(byName('udp-v6')));
    const withExt = buildIPv6({
      src: orig.src, dst: orig.dst, nextHeader: PROTO.UDP, payload: orig.payload,
      extHeaders: [{ type: 0, data: Uint8Array.from([1, 2, 0, 0]) }, { type: 60 }, { type: 44, offset: 0, more: false, id: 7 }],
    });
    const parsed = parseIPv6(withExt);
    expect(parsed.extHeaders.map((e) => e.type)).toEqual([0, 60, 44]);
    expect(parsed.upperProtocol).toBe(PROTO.UDP);
    expect(parsed.upperOffset).toBe(40 + 8 + 8 + 8);
    expect(bytesToHex(parsed.payload)).toBe(bytesToHex(orig.payload));
    expect(l4ChecksumOk(withExt)).toBe(true);
  });
});

describe('builders and parsers', () => {
  it('TCP over IPv4 round-trips', () => {
    const payload = randomBytes(mulberry32(7), 333);
    const opts = Uint8Array.from([2, 4, 0x05, 0xb4, 1, 1, 4, 2]);
    const pkt = buildTCP({ srcPort: 40000, dstPort: 443, seq: 0xfffffff0, ack: 12345, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH, window: 512, options: opts, payload },
      '10.244.1.5', '10.244.2.7', { id: 0x1234, ttl: 63, df: true, tos: 0x10 });
    expect(ipv4HeaderChecksumOk(pkt)).toBe(true);
    expect(l4ChecksumOk(pkt)).toBe(true);
    const ip = parseIPv4(pkt);
    expect(ip).toMatchObject({ version: 4, headerLength: 20, totalLength: 20 + 28 + 333, id: 0x1234, ttl: 63, df: true, mf: false, tos: 0x10, protocol: 6, src: '10.244.1.5', dst: '10.244.2.7' });
    const t = parseTCP(pkt);
    expect(t.ip).toEqual(ip);
    expect(t).toMatchObject({ srcPort: 40000, dstPort: 443, seq: 0xfffffff0, ack: 12345, flags: 0x18, window: 512, dataOffset: 28 });
    expect(bytesToHex(t.options)).toBe(bytesToHex(opts));
    expect(bytesToHex(t.payload)).toBe(bytesToHex(payload));
  });

  it('TCP over IPv6 round-trips; changing the pseudo-header breaks the checksum', () => {
    const pkt = buildTCP({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TCP_FLAGS.SYN, payload: new Uint8Array(5) }, 'fd00:244:1::5', 'fd00:244:2::7', { hopLimit: 9 });
    const ip = parseIPv6(pkt);
    expect(ip).toMatchObject({ version: 6, hopLimit: 9, upperProtocol: 6, src: 'fd00:244:1::5', dst: 'fd00:244:2::7', payloadLength: 25 });
    expect(parseTCP(pkt).flags).toBe(TCP_FLAGS.SYN);
    expect(() => parseUDP(pkt)).toThrow();
    expect(l4ChecksumOk(pkt)).toBe(true);
    pkt[39] ^= 1; // destination address
    expect(l4ChecksumOk(pkt)).toBe(false);
  });

  it('UDP: 0 checksum is "none" on IPv4 only; a computed 0 is sent as 0xffff', () => {
    const v4 = buildUDP({ srcPort: 1, dstPort: 2, payload: Uint8Array.from([9]), noChecksum: true }, '10.0.0.1', '10.0.0.2');
    expect(parseUDP(v4).checksum).toBe(0);
    expect(l4ChecksumOk(v4)).toBe(true);
    const v6 = buildUDP({ srcPort: 1, dstPort: 2 }, 'fd00::1', 'fd00::2');
    expect(l4ChecksumOk(v6)).toBe(true);
    v6[46] = v6[47] = 0;
    expect(l4ChecksumOk(v6)).toBe(false);
    // pick the payload word so that the ones' complement sum is 0xffff: the computed checksum is then 0 → sent as 0xffff
    const base = buildUDP({ srcPort: 5, dstPort: 6, payload: Uint8Array.from([0, 0]) }, '10.0.0.1', '10.0.0.2');
    const sum0 = ~parseUDP(base).checksum & 0xffff;
    const x = 0xffff - sum0;
    const pkt = buildUDP({ srcPort: 5, dstPort: 6, payload: Uint8Array.from([x >> 8, x & 0xff]) }, '10.0.0.1', '10.0.0.2');
    expect(parseUDP(pkt).checksum).toBe(0xffff);
    expect(l4ChecksumOk(pkt)).toBe(true);
  });

  it('IPv6 routing header: pseudo-header uses the final destination', () => {
    const final = ipToBytes('fd00:9::9');
    const srh = new Uint8Array(6 + 16); // routing type 4, segments left 1, Segment List[0] = final
    srh[0] = 4; srh[1] = 1; srh.set(final, 6);
    const udp = parseIPv4(buildUDP({ srcPort: 7, dstPort: 8, payload: Uint8Array.from([1, 2, 3]) }, '10.0.0.1', '10.0.0.2')).payload;
    const pkt = buildIPv6({ src: 'fd00::1', dst: 'fd00::2', nextHeader: PROTO.UDP, payload: Uint8Array.from(udp), extHeaders: [{ type: 43, data: srh }] });
    expect(parseIPv6(pkt).finalDst).toBe('fd00:9::9');
    // compute the expected checksum by hand over src + final dst
    const ph = concat(ipToBytes('fd00::1'), final, Uint8Array.from([0, 0, 0, 11, 0, 0, 0, 17]));
    const l4 = parseIPv6(pkt).payload;
    l4[6] = l4[7] = 0;
    const c = internetChecksum(l4, onesComplementSum(ph));
    l4[6] = c >> 8; l4[7] = c & 0xff;
    expect(l4ChecksumOk(pkt)).toBe(true);
    pkt[40 + 8 + 15] ^= 0xff; // last byte of Segment List[0]: the final destination changes
    expect(l4ChecksumOk(pkt)).toBe(false);
  });

  it('ICMP echo: v4 has no pseudo-header, ICMPv6 does', () => {
    const v4 = buildICMPEcho({ id: 1, seq: 2, payload: Uint8Array.from([0xab]) }, '10.0.0.1', '10.0.0.2');
    expect(parseIPv4(v4).payload[0]).toBe(8);
    expect(l4ChecksumOk(v4)).toBe(true);
    const moved = Uint8Array.from(v4);
    moved.set(ipToBytes('10.9.9.9'), 16);
    moved[10] = moved[11] = 0;
    const hc = internetChecksum(moved.subarray(0, 20));
    moved[10] = hc >> 8; moved[11] = hc & 0xff;
    expect(l4ChecksumOk(moved)).toBe(true);
    const v6 = buildICMPEcho({ id: 1, seq: 2, reply: true }, 'fd00::1', 'fd00::2');
    expect(parseIPv6(v6).payload[0]).toBe(129);
    expect(l4ChecksumOk(v6)).toBe(true);
  });

  it('buildVXLAN lays out header, inner Ethernet and packet', () => {
    const inner = buildICMPEcho({ id: 1, seq: 1 }, 'fd00::1', 'fd00::2');
    const v = buildVXLAN({ vni: 0xabcdef, innerDstMac: '02:5e:00:00:00:02', innerSrcMac: '02:5e:00:00:00:01', inner });
    expect(v.length).toBe(8 + 14 + inner.length);
    expect(bytesToHex(v.subarray(0, 22))).toBe('08000000abcdef00' + '025e00000002' + '025e00000001' + '86dd');
    expect(bytesToHex(v.subarray(22))).toBe(bytesToHex(inner));
  });

  it('virtioNetHdr is 10 bytes little-endian', () => {
    const h = virtioNetHdr({ flags: 1, gsoType: 1, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
    expect(bytesToHex(h)).toBe('01014200a80522001000');
    expect(bytesToHex(virtioNetHdr())).toBe('00'.repeat(10));
  });

  it('IP string helpers follow RFC 5952', () => {
    const cases: [string, string][] = [
      ['::', '::'], ['::1', '::1'], ['fd00:244:1::5', 'fd00:244:1::5'], ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:DB8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], ['fe80::', 'fe80::'], ['::ffff:192.168.0.1', '::ffff:c0a8:1'],
    ];
    for (const [input, want] of cases) expect(bytesToIp(ipToBytes(input))).toBe(want);
    expect(bytesToIp(ipToBytes('192.168.77.1'))).toBe('192.168.77.1');
    expect(() => ipToBytes('1::2::3')).toThrow();
    expect(() => ipToBytes('1.2.3.256')).toThrow();
    expect(() => ipToBytes('1:2:3:4:5:6:7')).toThrow();
  });

  it('mulberry32 is deterministic and in [0, 1)', () => {
    const a = mulberry32(42), b = mulberry32(42), c = mulberry32(43);
    const sa = Array.from({ length: 1000 }, a);
    expect(Array.from({ length: 1000 }, b)).toEqual(sa);
    expect(Array.from({ length: 1000 }, c)).not.toEqual(sa);
    expect(sa.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Math.abs(sa.reduce((s, x) => s + x, 0) / 1000 - 0.5)).toBeLessThan(0.05);
  });
});
