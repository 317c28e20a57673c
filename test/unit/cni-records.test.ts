// weft's attachment records (docs/cni.md, "Attachment records") without root: one JSON line per version in one file per
// attachment, the last whole line being the record, so that an agent killed in the middle of a write leaves the version
// before it readable; files of other attachments and of other shapes are nobody's record.
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AttachmentRecord, AttachmentRecords } from "../../src/cni/records.js";

let stateDir = "";
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "weft-cni-records-"));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

const adding = (containerID: string, network = "weft"): AttachmentRecord => ({ network, containerID, ifname: "eth0", phase: "adding",
  hostVeth: { name: "weft0123456789a" }, netns: "/var/run/netns/p", addresses: [], gateways: [], podRoutes: [], hostRoutes: [] });
const added = (r: AttachmentRecord): AttachmentRecord => ({ ...r, phase: "added", hostVeth: { ...r.hostVeth, ifindex: 41 },
  addresses: ["10.244.1.7/24"], gateways: ["10.244.1.1"], podRoutes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }], hostRoutes: ["10.244.1.7/32"] });
const onlyFile = (records: AttachmentRecords) => {
  const files = readdirSync(records.dir);
  expect(files).toHaveLength(1);
  return join(records.dir, files[0]);
};

describe("AttachmentRecords", () => {
  it("keeps each version as a JSON line of one file per attachment; the newest is the record", () => {
    const records = new AttachmentRecords(stateDir);
    const first = adding("c1");
    records.create(first);
    expect(records.read(first)).toEqual(first);
    records.update(added(first));
    expect(records.read(first)).toEqual(added(first));
    expect(readFileSync(onlyFile(records), "utf8")).toBe(`${JSON.stringify(first)}\n${JSON.stringify(added(first))}\n`);
    expect(records.list("weft")).toEqual([added(first)]);
  });

  it("a last line cut short (a kill -9 mid-write) leaves the version before it", () => {
    const records = new AttachmentRecords(stateDir);
    const r = adding("c1");
    records.create(r);
    const line = JSON.stringify(added(r));
    for (const cut of [1, line.length / 2, line.length - 1]) {
      const file = onlyFile(records);
      writeFileSync(file, `${JSON.stringify(r)}\n`);
      appendFileSync(file, line.slice(0, cut));
      expect(records.read(r)).toEqual(r);
      expect(records.list("weft")).toEqual([r]);
    }
  });

  it("create starts afresh over a file no version of which is readable", () => {
    const records = new AttachmentRecords(stateDir);
    const r = adding("c1");
    records.create(r);
    writeFileSync(onlyFile(records), '{"network":"weft","contai');
    expect(records.read(r)).toBeNull();
    records.create(r);
    expect(readFileSync(onlyFile(records), "utf8")).toBe(`${JSON.stringify(r)}\n`);
  });

  it("reads a record written as one JSON object without a newline (an earlier agent's)", () => {
    const records = new AttachmentRecords(stateDir);
    const r = added(adding("c1"));
    records.create(r);
    writeFileSync(onlyFile(records), JSON.stringify(r));
    expect(records.read(r)).toEqual(r);
  });

  it("is nobody's record: another attachment's file, another network's, or a file that is not a record", () => {
    const records = new AttachmentRecords(stateDir);
    const mine = adding("c1");
    const theirs = adding("c2", "other");
    records.create(mine);
    records.create(theirs);
    writeFileSync(join(records.dir, "notes.txt"), "hello\n");
    expect(records.read({ network: "weft", containerID: "c2", ifname: "eth0" })).toBeNull();
    expect(records.list("weft")).toEqual([mine]);
    records.remove(mine);
    expect(records.read(mine)).toBeNull();
    expect(records.list("other")).toEqual([theirs]);
  });
});
