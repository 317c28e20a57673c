// Files made ahead of need (src/cni/spares.ts): a fill writes into the spare made while nothing waited, the next spare is
// made after the caller's turn of the event loop, a spare removed meanwhile costs only a file made on the spot, and the
// spares of processes that are gone are removed by whoever opens the directory next.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SpareFiles } from "../../src/cni/spares.js";

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "weft-cni-spares-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const spares = () => readdirSync(dir).filter((n) => n.startsWith(".spare-")).sort();

describe("SpareFiles", () => {
  it("fills the file it made ahead, then makes the next one after the caller's turn", async () => {
    const files = new SpareFiles(dir, ".spare-");
    const first = files.fill("one");
    expect(readFileSync(first, "utf8")).toBe("one");
    expect(spares()).toEqual([first.split("/").pop()]);
    await turn();
    const [ready] = spares().filter((n) => join(dir, n) !== first);
    expect(ready).toMatch(new RegExp(`^\\.spare-${process.pid}-\\d+$`));
    expect(readFileSync(join(dir, ready), "utf8")).toBe("");
    const second = files.fill("two");
    expect(second).toBe(join(dir, ready));
    expect(readFileSync(second, "utf8")).toBe("two");
  });

  it("a spare removed meanwhile costs only a file made on the spot", async () => {
    const files = new SpareFiles(dir, ".spare-");
    rmSync(files.fill("one"));
    await turn();
    for (const n of spares()) rmSync(join(dir, n));
    const path = files.fill("two");
    expect(readFileSync(path, "utf8")).toBe("two");
  });

  it("removes the spares of processes that are gone, and no one else's", () => {
    const gone = spawnSync("true").pid!;
    writeFileSync(join(dir, `.spare-${gone}-1`), "");
    writeFileSync(join(dir, `.spare-${gone}-2`), "half a record");
    writeFileSync(join(dir, `.spare-${process.pid}-99`), "");
    writeFileSync(join(dir, `.other-${gone}-1`), "");
    new SpareFiles(dir, ".spare-");
    expect(readdirSync(dir).sort()).toEqual([`.other-${gone}-1`, `.spare-${process.pid}-99`]);
  });

  it("gives up quietly on making a spare when its directory is gone", async () => {
    const files = new SpareFiles(dir, ".spare-");
    files.fill("one");
    rmSync(dir, { recursive: true });
    await turn();
    expect(existsSync(dir)).toBe(false);
  });
});
