// The CNI service's refusals, without root: every malformed config, environment or command becomes the spec's error
// code with a message naming what to fix, as JSON with exit code 1, and nothing is thrown out of handle().
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { parseCniArgs } from "../../src/cni/config.js";
import { createCniService } from "../../src/cni/service.js";

const stateDir = mkdtempSync(join(tmpdir(), "weft-cni-config-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

let ready = true;
const service = createCniService({ subnet: "10.244.1.0/24", mtu: 1450, stateDir, log: pino({ level: "silent" }), ready: () => ready });

const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: "1.0.0", name: "weft", type: "weft", ...extra });
const env = (extra: Record<string, string> = {}) => ({
  CNI_COMMAND: "ADD", CNI_CONTAINERID: "c0ffee", CNI_IFNAME: "eth0", CNI_NETNS: "/var/run/netns/weft-cni-test-absent",
  CNI_PATH: "/usr/lib/cni", ...extra,
});

async function call(e: Record<string, string>, stdin: string) {
  const reply = await service.handle({ env: e, stdin });
  return { ...reply, json: reply.output ? JSON.parse(reply.output) : undefined };
}

async function expectError(e: Record<string, string>, stdin: string, code: number, msg: RegExp) {
  const r = await call(e, stdin);
  expect(r.code).toBe(1);
  expect(r.json.code).toBe(code);
  expect(r.json.msg).toMatch(msg);
  expect(Object.keys(r.json).slice(0, 3)).toEqual(["cniVersion", "code", "msg"]);
  return r.json;
}

describe("network config", () => {
  it("malformed JSON → 6", async () => {
    await expectError(env(), "{not json", 6, /not valid JSON/);
    await expectError(env(), "[1,2]", 6, /JSON object/);
  });

  it("unknown or missing cniVersion → 1, naming the supported ones; the error is labelled 1.1.0", async () => {
    const e = await expectError(env(), conf({ cniVersion: "0.2.0" }), 1, /"0\.2\.0" is not supported; use one of 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
    expect(e.cniVersion).toBe("1.1.0");
    await expectError(env(), JSON.stringify({ name: "weft", type: "weft" }), 1, /cniVersion null/);
    await expectError(env(), conf({ cniVersion: "2.0.0" }), 1, /not supported/);
  });

  it("missing or malformed name or type → 7; the error carries the config's version", async () => {
    const e = await expectError(env(), JSON.stringify({ cniVersion: "0.4.0", type: "weft" }), 7, /"name"/);
    expect(e.cniVersion).toBe("0.4.0");
    await expectError(env(), conf({ name: "has space" }), 7, /"name"/);
    await expectError(env(), JSON.stringify({ cniVersion: "1.0.0", name: "weft" }), 7, /"type"/);
    await expectError(env(), conf({ type: "" }), 7, /"type"/);
  });

  it("mtu, ipam and dns are validated (7); ipMasq is unsupported (2)", async () => {
    await expectError(env(), conf({ mtu: 9.5 }), 7, /"mtu" must be an integer from 68 to 65535/);
    await expectError(env(), conf({ mtu: 40 }), 7, /"mtu"/);
    await expectError(env(), conf({ ipam: "host-local" }), 7, /"ipam" must be an object/);
    await expectError(env(), conf({ ipam: { type: "../../bin/sh" } }), 7, /"ipam.type"/);
    await expectError(env(), conf({ dns: { nameservers: "10.0.0.10" } }), 7, /dns.nameservers/);
    await expectError(env(), conf({ ipMasq: true }), 2, /ipMasq/);
  });

  it("accepts runtime keys it does not use (capabilities, runtimeConfig, args, prevResult, socket)", async () => {
    // Gets past the config to the netns check, which fails here: the config itself was fine.
    await expectError(env(), conf({ socket: "/run/weft/weft.sock", capabilities: { portMappings: true }, runtimeConfig: {}, args: {},
      prevResult: { cniVersion: "1.0.0" }, ipam: {} }), 3, /CNI_NETNS/);
  });
});

describe("environment", () => {
  it("CNI_COMMAND missing or unknown → 4", async () => {
    await expectError({ ...env(), CNI_COMMAND: "" }, conf(), 4, /CNI_COMMAND is missing/);
    await expectError(env({ CNI_COMMAND: "INIT" }), conf(), 4, /CNI_COMMAND "INIT"/);
  });

  it("CNI_CONTAINERID missing or malformed → 4", async () => {
    await expectError({ ...env(), CNI_CONTAINERID: "" }, conf(), 4, /CNI_CONTAINERID is missing/);
    await expectError(env({ CNI_CONTAINERID: "-bad" }), conf(), 4, /CNI_CONTAINERID "-bad" is invalid/);
  });

  it("CNI_IFNAME missing, too long or malformed → 4", async () => {
    await expectError({ ...env(), CNI_IFNAME: "" }, conf(), 4, /CNI_IFNAME is missing/);
    await expectError(env({ CNI_IFNAME: "a23456789012345x" }), conf(), 4, /16 bytes long in UTF-8; Linux allows interface names of at most 15 bytes/);
  });

  it("CNI_IFNAME of at most 15 characters but more than 15 bytes (multi-byte UTF-8) → 4 naming the limit, for ADD, CHECK and DEL", async () => {
    for (const name of ["ééééééééé", "网络接口一二三", "eth0😀😀😀"]) {
      for (const command of ["ADD", "CHECK", "DEL"]) {
        await expectError(env({ CNI_COMMAND: command, CNI_IFNAME: name }), conf(), 4,
          new RegExp(`${Buffer.byteLength(name)} bytes long in UTF-8; Linux allows interface names of at most 15 bytes`));
      }
    }
    for (const bad of ["..", "a/b", "a:b", "a b"]) await expectError(env({ CNI_IFNAME: bad }), conf(), 4, /not a valid interface name/);
  });

  it("CNI_NETNS missing → 4, absent → 3 (container unknown), not a namespace → 4", async () => {
    await expectError({ ...env(), CNI_NETNS: "" }, conf(), 4, /CNI_NETNS is missing/);
    await expectError(env(), conf(), 3, /CNI_NETNS \/var\/run\/netns\/weft-cni-test-absent does not exist/);
    const file = join(stateDir, "not-a-netns");
    writeFileSync(file, "");
    await expectError(env({ CNI_NETNS: file }), conf(), 4, /is not a network namespace/);
  });

  it("CNI_ARGS: known keys in any order; unknown → 2 unless IgnoreUnknown=1/true; malformed → 4", async () => {
    expect(parseCniArgs("K8S_POD_UID=u;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c")).toEqual({
      K8S_POD_UID: "u", K8S_POD_NAMESPACE: "ns", K8S_POD_NAME: "p", K8S_POD_INFRA_CONTAINER_ID: "c" });
    expect(parseCniArgs("FOO=bar;IgnoreUnknown=true;K8S_POD_NAME=p")).toEqual({ K8S_POD_NAME: "p" });
    expect(parseCniArgs("IgnoreUnknown=1;FOO=bar")).toEqual({});
    expect(parseCniArgs(undefined)).toEqual({});
    await expectError(env({ CNI_ARGS: "K8S_POD_NAME=p;FOO=bar" }), conf(), 2, /unknown key FOO=bar/);
    await expectError(env({ CNI_ARGS: "IgnoreUnknown=0;FOO=bar" }), conf(), 2, /FOO/);
    await expectError(env({ CNI_ARGS: "FOO=bar;IgnoreUnknown=1" }), conf(), 3, /CNI_NETNS/);
    await expectError(env({ CNI_ARGS: "K8S_POD_NAME" }), conf(), 4, /CNI_ARGS: "K8S_POD_NAME" is not KEY=VALUE/);
  });

  it("DEL needs no namespace and ignores CNI_ARGS; twice is fine", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await call({ ...env({ CNI_COMMAND: "DEL", CNI_ARGS: "FOO=bar" }), CNI_NETNS: "" }, conf());
      expect(r).toMatchObject({ code: 0, output: "" });
    }
  });

  it("a delegated IPAM needs CNI_PATH (4) and a plugin found in it (7)", async () => {
    const ipamConf = conf({ ipam: { type: "no-such-ipam" } });
    await expectError({ ...env({ CNI_COMMAND: "DEL" }), CNI_PATH: "" }, ipamConf, 4, /CNI_PATH is missing/);
    await expectError(env({ CNI_COMMAND: "DEL", CNI_PATH: `${stateDir}:/nonexistent` }), ipamConf, 7,
      /IPAM plugin "no-such-ipam" not found in CNI_PATH/);
  });
});

describe("commands by version", () => {
  it("CHECK before 0.4.0 → 1; without prevResult → 7", async () => {
    await expectError(env({ CNI_COMMAND: "CHECK" }), conf({ cniVersion: "0.3.1" }), 1, /CHECK needs cniVersion 0\.4\.0/);
    await expectError(env({ CNI_COMMAND: "CHECK" }), conf(), 7, /CHECK needs prevResult/);
  });

  it("GC and STATUS before 1.1.0 → 1", async () => {
    await expectError(env({ CNI_COMMAND: "GC" }), conf({ "cni.dev/valid-attachments": [] }), 1, /GC needs cniVersion 1\.1\.0/);
    await expectError(env({ CNI_COMMAND: "STATUS" }), conf(), 1, /STATUS needs cniVersion 1\.1\.0/);
  });

  it("GC without an attachment list, or with a malformed one → 7", async () => {
    await expectError(env({ CNI_COMMAND: "GC" }), conf({ cniVersion: "1.1.0" }), 7, /GC needs cni.dev\/valid-attachments/);
    await expectError(env({ CNI_COMMAND: "GC" }), conf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: "x" }] }), 7,
      /valid-attachments\[0\]/);
  });

  it("STATUS: 50 while the agent is not ready, then success with empty output", async () => {
    ready = false;
    await expectError(env({ CNI_COMMAND: "STATUS" }), conf({ cniVersion: "1.1.0" }), 50, /not ready/);
    ready = true;
    expect(await call(env({ CNI_COMMAND: "STATUS" }), conf({ cniVersion: "1.1.0" }))).toMatchObject({ code: 0, output: "" });
  });

  it("VERSION lists the supported versions, whatever stdin holds", async () => {
    const supportedVersions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
    expect((await call({ CNI_COMMAND: "VERSION" }, conf({ cniVersion: "0.4.0" }))).json).toEqual({ cniVersion: "0.4.0", supportedVersions });
    expect(await call({ CNI_COMMAND: "VERSION" }, "")).toEqual({ code: 0, output: JSON.stringify({ cniVersion: "1.1.0", supportedVersions }),
      json: { cniVersion: "1.1.0", supportedVersions } });
  });

  it("never throws, even for a request that is not one", async () => {
    const r = await service.handle(null as unknown as { env: Record<string, string>; stdin: string });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.output).code).toBe(4);
  });

  it("after close(), calls are refused with 11 (try again later)", async () => {
    const closing = createCniService({ subnet: "10.244.1.0/24", mtu: 1450, stateDir, log: pino({ level: "silent" }), ready: () => true });
    await closing.close();
    const r = await closing.handle({ env: env({ CNI_COMMAND: "DEL" }), stdin: conf() });
    expect(JSON.parse(r.output)).toMatchObject({ code: 11 });
  });
});
