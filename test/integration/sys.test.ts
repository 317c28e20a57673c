// src/sys against the real kernel: libc errors and addresses, namespaces, rtnetlink (checked with `ip -j`), and the
// TUN device with its virtio_net_hdr. The UDP batch paths are in sys-udp.test.ts. Everything runs in namespaces named
// with one random prefix and is deleted in afterAll, also on failure.
import { openSync, closeSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CURRENT_NETNS, POLLIN, SysError, TUN_MODES, type TunDevice, type TunMode, type UdpSocket, addrAdd, addrDel, check, errnoName, libc,
  linkAddresses, linkDelete, linkFind, linkGet, linkGetMtu, linkIndex, linkList, linkRename, linkSetMtu, linkSetNetns,
  linkSetUp, nativeBase, openTun, openUdp, pollFd, routeAdd, routeDel, routeList, routeReplace, underlayFor, vethCreate,
  withNetns, rtnl, changeLinkRequest, UP, addAddressRequest, addRouteRequest, getLinkRequest,
} from "../../src/sys/index.js";
import { VIRTIO_NET, buildUDP, concat, onesComplementSum, parseUDP, virtioNetHdr } from "../helpers/packets.js";
import { Sandbox, ip, ipJson } from "./lib/netns.js";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("integration tests need root: skipped");
const suite = isRoot ? describe : describe.skip;

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

interface VnetHdr { flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number }
function parseVnet(b: Uint8Array): VnetHdr {
  const dv = new DataView(b.buffer, b.byteOffset, 10);
  return { flags: b[0], gsoType: b[1], hdrLen: dv.getUint16(2, true), gsoSize: dv.getUint16(4, true),
    csumStart: dv.getUint16(6, true), csumOffset: dv.getUint16(8, true) };
}

/** Reads TUN packets until one satisfies `want` (neighbour discovery and the like are skipped); null after timeoutMs. */
function readMatching(tun: TunDevice, want: (pkt: Uint8Array) => boolean, timeoutMs = 2000): Uint8Array | null {
  const buf = new Uint8Array(70000);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pollFd(tun.fd, POLLIN, Math.max(1, deadline - Date.now())) === 0) continue;
    const n = tun.readInto(buf);
    if (n > 0 && want(buf.subarray(0, n))) return buf.slice(0, n);
  }
  return null;
}

const isUdpTo = (offset: number, dst: string, port: number) => (pkt: Uint8Array) => {
  const ipPkt = pkt.subarray(offset);
  if (ipPkt[0] >> 4 !== 4 || ipPkt[9] !== 17) return false;
  const dstText = Array.from(ipPkt.subarray(16, 20)).join(".");
  return dstText === dst && ((ipPkt[22] << 8) | ipPkt[23]) === port;
};

suite("src/sys against the kernel", () => {
  const sandbox = isRoot ? new Sandbox() : (null as unknown as Sandbox);
  const p = sandbox?.prefix;
  let nsT = "";
  let nsA = "";
  let nsB = "";

  beforeAll(() => {
    nsT = sandbox.netns("t");
    nsA = sandbox.netns("a");
    nsB = sandbox.netns("b");
  });
  afterAll(() => sandbox?.cleanup());

  describe("libc", () => {
    it("throws SysError with the call, the errno number and its name", () => {
      expect(() => check("close", libc.close(-1), "fd -1")).toThrowError(/^close fd -1: EBADF \(Bad file descriptor\)$/);
      try {
        check("close", libc.close(-1));
      } catch (err) {
        expect(err).toBeInstanceOf(SysError);
        expect(err).toMatchObject({ call: "close", errno: 9, code: "EBADF", name: "SysError" });
      }
      expect([errnoName(11), errnoName(95), errnoName(17)]).toEqual(["EAGAIN", "EOPNOTSUPP", "EEXIST"]);
    });

    it("nativeBase addresses WASM memory, plain and shared, with no copy", () => {
      const file = join(tmpdir(), `${p}-native`);
      for (const memory of [new WebAssembly.Memory({ initial: 1 }), new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true })]) {
        const view = new Uint8Array(memory.buffer);
        view.set(bytes(300, 5), 1000);
        const fd = openSync(file, "w");
        try {
          expect(libc.write(fd, nativeBase(memory.buffer) + 1000, 300)).toBe(300);
        } finally {
          closeSync(fd);
        }
        expect(new Uint8Array(readFileSync(file))).toEqual(bytes(300, 5));
      }
      rmSync(file);
    });

    it("pollFd times out with 0 and reports readiness", () => {
      const sock = withNetns(nsT, () => openUdp({ family: 4, address: "127.0.0.1", port: 0, gro: false }));
      try {
        const t0 = Date.now();
        expect(pollFd(sock.fd, POLLIN, 50)).toBe(0);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(40);
        sock.sendTo(bytes(10, 1), "127.0.0.1", sock.port);
        expect(pollFd(sock.fd, POLLIN, 1000) & POLLIN).toBe(POLLIN);
      } finally {
        sock.close();
      }
    });
  });

  describe("network namespaces", () => {
    it("withNetns runs inside the namespace and switches back, also when fn throws", () => {
      const home = readlinkSync(CURRENT_NETNS);
      const inside = withNetns(nsT, () => ({ ns: readlinkSync(CURRENT_NETNS), links: linkList().map((l) => l.name) }));
      expect(inside.ns).not.toBe(home);
      expect(inside.links).toEqual(["lo"]);
      expect(readlinkSync(CURRENT_NETNS)).toBe(home);
      expect(() => withNetns(nsT, () => { throw new Error("boom"); })).toThrow("boom");
      expect(readlinkSync(CURRENT_NETNS)).toBe(home);
      expect(() => withNetns(`${p}missing`, () => 1)).toThrow(/open .*: ENOENT/);
      expect(readlinkSync(CURRENT_NETNS)).toBe(home);
    });
  });

  describe("rtnetlink", () => {
    it("creates a veth with its peer in another namespace, configures it, moves, renames and deletes it", () => {
      const host = `${p}h0`;
      const peer = `${p}c0`;
      withNetns(nsA, () => {
        vethCreate({ name: host, peer, peerNetns: nsB, mtu: 1400 });
        expect(linkGet(host)).toMatchObject({ name: host, mtu: 1400, up: false, kind: "veth" });
        expect(linkFind(peer)).toBeNull();
        linkSetMtu(host, 1450);
        linkSetUp(host);
        addrAdd(host, "10.231.0.1/24");
        addrAdd(host, "fd00:231::1/64", { nodad: true });
        routeAdd({ dst: "10.232.0.0/16", dev: host });
        routeAdd({ dst: "10.233.0.0/16", via: "10.231.0.2", dev: host });
        routeAdd({ dst: "10.234.0.0/24", via: "10.99.0.9", dev: host, onlink: true });
        routeAdd({ dst: "10.235.0.7", dev: host, scope: "link", src: "10.231.0.1" });
        routeAdd({ dst: "fd00:232::/64", via: "fd00:231::2", dev: host });
        routeReplace({ dst: "10.233.0.0/16", via: "10.231.0.3", dev: host });
      });
      withNetns(nsB, () => {
        expect(linkGet(peer)).toMatchObject({ mtu: 1400, kind: "veth" });
        linkSetUp(peer);
        addrAdd(peer, "10.231.0.2/24");
        routeAdd({ dst: "default", via: "10.231.0.1", dev: peer });
      });

      const [hostLink] = ipJson<{ mtu: number; operstate: string; addr_info: { local: string; prefixlen: number }[] }[]>(
        nsA, "addr", "show", "dev", host);
      expect(hostLink.mtu).toBe(1450);
      expect(hostLink.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(
        expect.arrayContaining(["10.231.0.1/24", "fd00:231::1/64"]));
      const routes = ipJson<{ dst: string; gateway?: string; dev: string; flags: string[]; prefsrc?: string; scope?: string }[]>(
        nsA, "route", "show", "dev", host);
      const byDst = new Map(routes.map((r) => [r.dst, r]));
      expect(byDst.get("10.232.0.0/16")).toMatchObject({ scope: "link" });
      expect(byDst.get("10.233.0.0/16")).toMatchObject({ gateway: "10.231.0.3" });
      expect(byDst.get("10.234.0.0/24")).toMatchObject({ gateway: "10.99.0.9", flags: ["onlink"] });
      expect(byDst.get("10.235.0.7")).toMatchObject({ prefsrc: "10.231.0.1", scope: "link" });
      expect(ipJson<{ dst: string; gateway: string }[]>(nsA, "-6", "route", "show", "dev", host))
        .toEqual(expect.arrayContaining([expect.objectContaining({ dst: "fd00:232::/64", gateway: "fd00:231::2" })]));
      expect(ipJson<{ dst: string; gateway: string }[]>(nsB, "route", "show", "default"))
        .toEqual([expect.objectContaining({ dst: "default", gateway: "10.231.0.1" })]);

      withNetns(nsA, () => {
        expect(linkAddresses(host).map((a) => a.cidr)).toEqual(expect.arrayContaining(["10.231.0.1/24", "fd00:231::1/64"]));
        expect(routeList({ family: 4, dev: host }).find((r) => r.dst === "10.234.0.0/24"))
          .toMatchObject({ via: "10.99.0.9", onlink: true, dev: host });
        routeDel({ dst: "10.233.0.0/16" });
        routeDel({ dst: "10.232.0.0/16", dev: host });
        addrDel(host, "10.231.0.1/24");
      });
      const after = ipJson<{ dst: string }[]>(nsA, "route", "show", "dev", host).map((r) => r.dst);
      expect(after).not.toContain("10.233.0.0/16");
      expect(after).not.toContain("10.232.0.0/16");
      expect(ip("-n", nsA, "-4", "addr", "show", "dev", host)).not.toContain("10.231.0.1");

      withNetns(nsB, () => {
        linkSetUp(peer);
        ip("-n", nsB, "link", "set", peer, "down");
        linkRename(peer, `${p}c1`);
        linkSetNetns(`${p}c1`, nsT);
      });
      expect(ipJson<{ ifname: string }[]>(nsT, "link", "show", `${p}c1`)[0].ifname).toBe(`${p}c1`);
      withNetns(nsA, () => {
        expect(linkIndex(host)).toBeGreaterThan(1);
        linkDelete(host);
        expect(linkFind(host)).toBeNull();
      });
      expect(ipJson(nsT, "link", "show", "type", "veth")).toEqual([]);
    });

    it("names the errno and passes on the kernel's explanation", () => {
      withNetns(nsT, () => {
        expect(() => linkGet("nonesuch0")).toThrowError(/RTM_GETLINK link nonesuch0: ENODEV/);
        expect(() => addrAdd("lo", "127.0.0.1/8")).toThrowError(/RTM_NEWADDR .*EEXIST/);
        try {
          routeAdd({ dst: "10.236.0.5/16", dev: "lo" });
          expect.unreachable();
        } catch (err) {
          expect(err).toMatchObject({ code: "EINVAL", call: "RTM_NEWROUTE" });
          expect((err as Error).message).toMatch(/Invalid prefix/);
        }
        expect(() => routeDel({ dst: "10.237.0.0/16" })).toThrowError(/ESRCH/);
      });
    });

    it("a batch goes in one datagram: every request is answered on its own, a refusal does not stop the ones after it", () => {
      withNetns(nsT, () => {
        vethCreate({ name: `${p}b0`, peer: `${p}b1` });
        const index = linkIndex(`${p}b0`);
        const outcomes = rtnl((nl) => nl.batch([
          { req: changeLinkRequest(index, undefined, UP), what: "up" },
          { req: addAddressRequest(index, "10.239.0.1/24", { noPrefixRoute: true }), what: "address without its subnet route" },
          { req: addAddressRequest(index, "10.239.0.1/24"), what: "the same address again" },
          { req: addRouteRequest({ dst: "10.239.5.0/24", dev: `${p}b0`, scope: "link" }, index), what: "a route" },
          { req: getLinkRequest(`${p}b0`), what: "the link" },
          { req: getLinkRequest("nonesuch0"), what: "no link" },
        ]));
        expect(outcomes.map((o) => o.error?.code ?? "ok")).toEqual(["ok", "ok", "EEXIST", "ok", "ok", "ENODEV"]);
        expect(outcomes[2].error!.message).toContain("the same address again");
        expect(outcomes[4].replies).toHaveLength(1);
        expect(outcomes[5].replies).toEqual([]);
      });
      expect(ipJson<{ flags: string[] }[]>(nsT, "link", "show", `${p}b0`)[0].flags).toContain("UP");
      expect(ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(nsT, "-4", "addr", "show", `${p}b0`)[0].addr_info)
        .toMatchObject([{ local: "10.239.0.1", prefixlen: 24 }]);
      // IFA_F_NOPREFIXROUTE: no connected route for the address's subnet; the batch's route is there.
      expect(ipJson<{ dst: string }[]>(nsT, "route", "show", "dev", `${p}b0`).map((r) => r.dst)).toEqual(["10.239.5.0/24"]);
      ip("-n", nsT, "link", "del", `${p}b0`);
    });

    it("underlayFor finds the interface with an address, its MTU and the overlay MTU", () => {
      sandbox.veth({ ns: nsT, name: `${p}u0`, addresses: ["10.238.0.1/24", "fd00:238::1/64"] },
        { ns: nsB, name: `${p}u1` });
      ip("-n", nsT, "link", "set", `${p}u0`, "mtu", "9000");
      withNetns(nsT, () => {
        expect(underlayFor("10.238.0.1")).toMatchObject({ name: `${p}u0`, mtu: 9000, family: 4, overlayMtu: 8950 });
        expect(underlayFor("fd00:238:0::1")).toMatchObject({ name: `${p}u0`, family: 6, overlayMtu: 8930 });
        expect(underlayFor("127.0.0.1")).toMatchObject({ name: "lo", index: 1 });
        expect(underlayFor("10.238.0.2")).toBeNull();
        expect(linkGetMtu(`${p}u0`)).toBe(9000);
      });
    });
  });

  describe("TUN", () => {
    const route = (tun: TunDevice, self: string, prefix: string) => {
      ip("-n", nsT, "addr", "add", self, "dev", tun.name);
      ip("-n", nsT, "link", "set", tun.name, "up");
      ip("-n", nsT, "route", "add", prefix, "dev", tun.name);
    };

    it("opens in every mode, falling back below the mode asked for; several queues share one device", () => {
      const seen: Record<string, TunMode> = {};
      for (const maxMode of TUN_MODES) {
        const tun = withNetns(nsT, () => openTun({ name: `${p}m%d`, vnetHdr: maxMode !== "plain", maxMode }));
        try {
          seen[maxMode] = tun.mode;
          expect(TUN_MODES.indexOf(tun.mode)).toBeGreaterThanOrEqual(TUN_MODES.indexOf(maxMode));
          expect(tun.name).toMatch(new RegExp(`^${p}m\\d+$`));
          expect(tun.vnetHdr).toBe(tun.mode !== "plain");
          expect(tun.offloads.uso4).toBe(tun.mode === "vnet+tso+uso");
          expect(tun.offloads.tso4).toBe(tun.mode.startsWith("vnet+tso"));
          expect(ipJson<{ ifname: string }[]>(nsT, "link", "show", tun.name)[0].ifname).toBe(tun.name);
        } finally {
          tun.close();
        }
      }
      console.info(`TUN modes accepted (asked → got): ${JSON.stringify(seen)}`);
      const q = withNetns(nsT, () => [0, 1].map(() => openTun({ name: `${p}mq`, vnetHdr: true, multiQueue: true })));
      try {
        expect(q[0].fd).not.toBe(q[1].fd);
        expect(q.map((t) => t.name)).toEqual([`${p}mq`, `${p}mq`]);
        expect(q[1].mode).toBe(q[0].mode);
      } finally {
        q.forEach((t) => t.close());
      }
      expect(() => withNetns(nsT, () => openTun({ name: "lo", vnetHdr: true }))).toThrowError(/TUNSETIFF lo .*EINVAL/);
      expect(ipJson(nsT, "link", "show", "type", "tun")).toEqual([]);
    });

    it("reads what the kernel routes to it: a datagram with its virtio_net_hdr, a UDP_SEGMENT train as one super-packet", () => {
      const tun = withNetns(nsT, () => openTun({ name: `${p}r0`, vnetHdr: true, nonBlocking: true }));
      const sock = withNetns(nsT, () => openUdp({ family: 4, address: "0.0.0.0", port: 0, gro: false }));
      try {
        route(tun, "10.240.0.1/24", "10.241.0.0/24");
        expect(sock.sendTo(bytes(100, 1), "10.241.0.5", 7000)).toBe(100);
        const one = readMatching(tun, isUdpTo(10, "10.241.0.5", 7000));
        expect(one).not.toBeNull();
        const hdr = parseVnet(one!);
        expect(hdr.gsoType).toBe(VIRTIO_NET.GSO_NONE);
        if (hdr.flags & VIRTIO_NET.F_NEEDS_CSUM) expect([hdr.csumStart, hdr.csumOffset]).toEqual([20, 6]);
        expect(parseUDP(one!.subarray(10))).toMatchObject({ dstPort: 7000, srcPort: sock.port, payload: bytes(100, 1) });

        expect(sock.sendTo(bytes(4000, 2), "10.241.0.5", 7001, 1000)).toBe(4000);
        const trains: Uint8Array[] = [];
        for (let k = 0; k < 4; k++) {
          const pkt = readMatching(tun, isUdpTo(10, "10.241.0.5", 7001), trains.length ? 200 : 2000);
          if (!pkt) break;
          trains.push(pkt);
        }
        if (tun.mode === "vnet+tso+uso") {
          expect(trains).toHaveLength(1);
          expect(parseVnet(trains[0])).toMatchObject({ gsoType: VIRTIO_NET.GSO_UDP_L4, gsoSize: 1000, csumStart: 20 });
          expect(trains[0].length).toBe(10 + 28 + 4000);
        } else {
          expect(trains.map((t) => t.length)).toEqual([1038, 1038, 1038, 1038]);
        }
      } finally {
        sock?.close();
        tun.close();
      }
    });

    it("writes packets with a virtio_net_hdr: a plain one, and a UDP_L4 super-packet the kernel splits", () => {
      const tun = withNetns(nsT, () => openTun({ name: `${p}w0`, vnetHdr: true }));
      let sock: UdpSocket | undefined;
      const receive = () => (pollFd(sock!.fd, POLLIN, 2000) ? sock!.recvFrom(new Uint8Array(2000)) : null);
      try {
        route(tun, "10.242.0.1/24", "10.243.0.0/24");
        sock = withNetns(nsT, () => openUdp({ family: 4, address: "10.242.0.1", port: 0, gro: false, nonBlocking: true }));
        const pkt = buildUDP({ srcPort: 9999, dstPort: sock.port, payload: bytes(200, 3) }, "10.243.0.5", "10.242.0.1");
        expect(tun.writeFrom(concat(virtioNetHdr(), pkt))).toBe(10 + pkt.length);
        expect(receive()).toMatchObject({ length: 200, address: "10.243.0.5", port: 9999, segmentSize: 0 });

        // One 1500-byte UDP payload, cut by the kernel into 3 × 500: the checksum field holds the pseudo-header sum.
        const big = buildUDP({ srcPort: 9998, dstPort: sock.port, payload: bytes(1500, 4) }, "10.243.0.5", "10.242.0.1");
        const pseudo = concat(big.subarray(12, 20), Uint8Array.of(0, 17, (1508 >> 8) & 0xff, 1508 & 0xff));
        const sum = onesComplementSum(pseudo);
        big.set([sum >> 8, sum & 0xff], 26);
        const vnet = virtioNetHdr({ flags: VIRTIO_NET.F_NEEDS_CSUM, gsoType: VIRTIO_NET.GSO_UDP_L4, hdrLen: 28, gsoSize: 500,
          csumStart: 20, csumOffset: 6 });
        expect(tun.writeFrom(concat(vnet, big))).toBe(10 + big.length);
        const parts = [receive(), receive(), receive()];
        expect(parts.map((d) => d?.length)).toEqual([500, 500, 500]);
        expect(parts.every((d) => d?.port === 9998)).toBe(true);
      } finally {
        sock?.close();
        tun.close();
      }
    });

    it("in plain mode reads and writes bare IP packets", () => {
      const tun = withNetns(nsT, () => openTun({ name: `${p}p0`, vnetHdr: false, nonBlocking: true }));
      let sock: UdpSocket | undefined;
      try {
        expect(tun.mode).toBe("plain");
        route(tun, "10.244.9.1/24", "10.245.0.0/24");
        sock = withNetns(nsT, () => openUdp({ family: 4, address: "10.244.9.1", port: 0, gro: false, nonBlocking: true }));
        sock.sendTo(bytes(64, 6), "10.245.0.9", 5000);
        const pkt = readMatching(tun, isUdpTo(0, "10.245.0.9", 5000));
        expect(parseUDP(pkt!).payload).toEqual(bytes(64, 6));
        const reply = buildUDP({ srcPort: 5000, dstPort: sock.port, payload: bytes(32, 7) }, "10.245.0.9", "10.244.9.1");
        expect(tun.writeFrom(reply)).toBe(reply.length);
        expect(pollFd(sock.fd, POLLIN, 2000)).toBe(POLLIN);
        expect(sock.recvFrom(new Uint8Array(100))).toMatchObject({ length: 32, address: "10.245.0.9", port: 5000 });
      } finally {
        sock?.close();
        tun.close();
      }
    });
  });
});
