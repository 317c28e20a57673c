// `weft bench --queues` and `--modes`: what they accept, and the message a bad list gets.
import { describe, expect, it } from "vitest";
import { parseModeList, parseQueueCounts } from "../../src/cli/bench-flags.js";
import { MAX_QUEUES } from "../../src/control/config.js";

describe("--queues", () => {
  it("takes distinct queue counts in the order given", () => {
    expect(parseQueueCounts("1")).toEqual([1]);
    expect(parseQueueCounts("2, 1,4")).toEqual([2, 1, 4]);
    expect(parseQueueCounts(String(MAX_QUEUES))).toEqual([MAX_QUEUES]);
  });

  it("refuses what is not a count from 1 to the maximum, naming it", () => {
    for (const bad of ["0", "-1", "1.5", "two", "", "1,,2", String(MAX_QUEUES + 1), "0x2"]) {
      expect(() => parseQueueCounts(bad)).toThrow(/^--queues: .* is not a queue count/);
    }
    expect(() => parseQueueCounts("1,2,1")).toThrow("--queues: 1 is listed twice");
  });
});

describe("--modes", () => {
  const known = ["routed", "kernel-vxlan", "weft"] as const;

  it("takes a subset in the order given", () => {
    expect(parseModeList("weft, kernel-vxlan", known)).toEqual(["weft", "kernel-vxlan"]);
  });

  it("names unknown and repeated modes", () => {
    expect(() => parseModeList("weft,vxlan", known)).toThrow('--modes: unknown mode "vxlan"; expected some of routed, kernel-vxlan, weft');
    expect(() => parseModeList("weft,weft", known)).toThrow("--modes: weft is listed twice");
  });
});
