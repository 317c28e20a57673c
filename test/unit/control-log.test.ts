// Logs are one JSON object per line with an ISO time, the level as a word, the logger's name and the structured fields.
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/control/log.js";

describe("createLogger", () => {
  it("writes structured lines at or above its level", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "info", name: "weft-agent", destination: { write: (l: string) => lines.push(l) } });
    log.debug("hidden");
    log.warn({ file: "/etc/weft/peers.json", record: "record #2" }, "skipping invalid node record");
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]);
    expect(line).toMatchObject({ level: "warn", name: "weft-agent", file: "/etc/weft/peers.json", record: "record #2", msg: "skipping invalid node record" });
    expect(new Date(line.time).toISOString()).toBe(line.time);
  });
});
