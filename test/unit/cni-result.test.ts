// Results per cniVersion, byte for byte (golden JSON in the key order the reference Go types print), and reading results
// of every version back (IPAM replies, prevResults).
import { describe, expect, it } from "vitest";
import { type CniResult, parseResult, shapeResult } from "../../src/cni/result.js";

const result: CniResult = {
  interfaces: [
    { name: "weft3b1f0c9a2de", mac: "4a:2e:11:90:00:01", mtu: 1450 },
    { name: "eth0", mac: "ba:5e:77:00:10:02", mtu: 1450, sandbox: "/var/run/netns/pod1" },
  ],
  ips: [
    { address: "10.244.1.2/24", gateway: "10.244.1.1", interface: 1 },
    { address: "fd00:10:244:1::2/64", gateway: "fd00:10:244:1::1", interface: 1 },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "::/0", gw: "fd00:10:244:1::1" }],
  dns: {},
};

const IFACES = '[{"name":"weft3b1f0c9a2de","mac":"4a:2e:11:90:00:01"},{"name":"eth0","mac":"ba:5e:77:00:10:02","sandbox":"/var/run/netns/pod1"}]';
const IFACES_MTU =
  '[{"name":"weft3b1f0c9a2de","mac":"4a:2e:11:90:00:01","mtu":1450},{"name":"eth0","mac":"ba:5e:77:00:10:02","mtu":1450,"sandbox":"/var/run/netns/pod1"}]';
const ROUTES = '[{"dst":"0.0.0.0/0","gw":"10.244.1.1"},{"dst":"::/0","gw":"fd00:10:244:1::1"}]';
const IPS_LEGACY = '[{"version":"4","interface":1,"address":"10.244.1.2/24","gateway":"10.244.1.1"},' +
  '{"version":"6","interface":1,"address":"fd00:10:244:1::2/64","gateway":"fd00:10:244:1::1"}]';
const IPS = '[{"interface":1,"address":"10.244.1.2/24","gateway":"10.244.1.1"},' +
  '{"interface":1,"address":"fd00:10:244:1::2/64","gateway":"fd00:10:244:1::1"}]';

const GOLDEN: Record<string, string> = {
  "0.3.0": `{"cniVersion":"0.3.0","interfaces":${IFACES},"ips":${IPS_LEGACY},"routes":${ROUTES},"dns":{}}`,
  "0.3.1": `{"cniVersion":"0.3.1","interfaces":${IFACES},"ips":${IPS_LEGACY},"routes":${ROUTES},"dns":{}}`,
  "0.4.0": `{"cniVersion":"0.4.0","interfaces":${IFACES},"ips":${IPS_LEGACY},"routes":${ROUTES},"dns":{}}`,
  "1.0.0": `{"cniVersion":"1.0.0","interfaces":${IFACES},"ips":${IPS},"routes":${ROUTES},"dns":{}}`,
  "1.1.0": `{"cniVersion":"1.1.0","interfaces":${IFACES_MTU},"ips":${IPS},"routes":${ROUTES},"dns":{}}`,
};

describe("shapeResult", () => {
  for (const [version, golden] of Object.entries(GOLDEN)) {
    it(`${version} result is exactly the golden JSON`, () => {
      expect(JSON.stringify(shapeResult(result, version as "1.0.0"))).toBe(golden);
    });
  }

  it("omits empty lists and empty DNS fields, keeps DNS that was given", () => {
    const bare: CniResult = { interfaces: [], ips: [{ address: "10.0.0.2/24" }], routes: [], dns: { nameservers: ["10.96.0.10"], search: [] } };
    expect(JSON.stringify(shapeResult(bare, "1.0.0"))).toBe('{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}],"dns":{"nameservers":["10.96.0.10"]}}');
  });

  it("round-trips through parseResult for every version", () => {
    for (const version of Object.keys(GOLDEN)) {
      const back = parseResult(JSON.parse(GOLDEN[version]), "prevResult");
      const expected = version === "1.1.0" ? result : { ...result, interfaces: result.interfaces.map(({ mtu: _, ...i }) => i) };
      expect(back).toEqual(expected);
    }
  });
});

describe("parseResult", () => {
  it("reads host-local's replies (0.4.0 with version, 1.0.0 without)", () => {
    const v040 = { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.9.0.3/24", gateway: "10.9.0.1" }], dns: {} };
    const v100 = { cniVersion: "1.0.0", ips: [{ address: "10.9.0.2/24", gateway: "10.9.0.1" }], dns: {} };
    expect(parseResult(v040, "ipam")).toEqual({ interfaces: [], ips: [{ address: "10.9.0.3/24", gateway: "10.9.0.1" }], routes: [], dns: {} });
    expect(parseResult(v100, "ipam").ips).toEqual([{ address: "10.9.0.2/24", gateway: "10.9.0.1" }]);
  });

  it("refuses what is not a result, with code 6 and the source named", () => {
    const cases: [unknown, RegExp][] = [
      ["text", /not a JSON object/],
      [{ ips: {} }, /"ips" is not a list/],
      [{ ips: [{ address: "10.0.0.2" }] }, /ips\[0\]\.address is not address\/prefix/],
      [{ ips: [{ address: "10.0.0.256/24" }] }, /ips\[0\]\.address is not address\/prefix/],
      [{ ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1/24" }] }, /gateway is not an address/],
      [{ ips: [{ version: "6", address: "10.0.0.2/24" }] }, /version "6" does not match/],
      [{ ips: [{ address: "10.0.0.2/24", gateway: 5 }] }, /gateway is not an address/],
      [{ routes: [{ gw: "10.0.0.1" }] }, /routes\[0\]\.dst/],
      [{ interfaces: [{ mac: "x" }] }, /interfaces\[0\] has no name/],
    ];
    for (const [value, msg] of cases) {
      expect(() => parseResult(value, "IPAM plugin x result")).toThrowError(msg);
      try {
        parseResult(value, "IPAM plugin x result");
      } catch (err) {
        expect(err).toMatchObject({ code: 6 });
        expect((err as Error).message).toMatch(/^IPAM plugin x result: /);
      }
    }
  });
});
