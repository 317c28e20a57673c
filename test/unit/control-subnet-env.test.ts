// subnet.env beside the socket, flannel-style: network, gateway/len, MTU, no masquerading (+ IPv6 keys when dual-stack).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatSubnetEnv, gatewayWithPrefix, writeSubnetEnv } from "../../src/control/subnet-env.js";
import { tempDir } from "./fixtures-control/helpers.js";

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir("subnet-env");
});
afterEach(() => tmp.cleanup());

describe("subnet.env", () => {
  it("is written atomically beside the socket", () => {
    const socket = join(tmp.dir, "run", "node1", "weft.sock");
    const path = writeSubnetEnv({ socket, clusterCIDR: "10.244.0.0/16" }, { subnet: "10.244.1.0/24" }, 1450);
    expect(path).toBe(join(tmp.dir, "run", "node1", "subnet.env"));
    expect(readFileSync(path, "utf8")).toBe("WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=10.244.1.1/24\nWEFT_MTU=1450\nWEFT_IPMASQ=false\n");
    writeSubnetEnv({ socket, clusterCIDR: "10.244.0.0/16" }, { subnet: "10.244.2.0/24" }, 1430);
    expect(readFileSync(path, "utf8")).toContain("WEFT_SUBNET=10.244.2.1/24\nWEFT_MTU=1430\n");
    expect(readdirSync(join(tmp.dir, "run", "node1"))).toEqual(["subnet.env"]);
  });

  it("adds the IPv6 network and subnet when dual-stack", () => {
    const text = formatSubnetEnv(
      { clusterCIDR: "10.244.0.0/16", clusterCIDRv6: "fd00:10:244::/56" },
      { subnet: "10.244.1.0/24", subnetV6: "fd00:10:244:1::/64" },
      1430,
    );
    expect(text).toBe([
      "WEFT_NETWORK=10.244.0.0/16", "WEFT_SUBNET=10.244.1.1/24", "WEFT_MTU=1430", "WEFT_IPMASQ=false",
      "WEFT_IPV6_NETWORK=fd00:10:244::/56", "WEFT_IPV6_SUBNET=fd00:10:244:1::1/64", "",
    ].join("\n"));
  });

  it("names the gateway with the subnet's prefix length", () => {
    expect(gatewayWithPrefix("10.244.255.0/24")).toBe("10.244.255.1/24");
    expect(gatewayWithPrefix("10.244.0.4/30")).toBe("10.244.0.5/30");
  });

  it("refuses a nonsense MTU", () => {
    expect(() => formatSubnetEnv({ clusterCIDR: "10.244.0.0/16" }, { subnet: "10.244.1.0/24" }, 0)).toThrow(/MTU 0/);
  });
});
