// IPAM delegation without root, against a fake IPAM plugin (a shell script that records what it was given): the same
// CNI_* environment and the config verbatim, errors passed on as the plugin said them, the version fallback for plugins
// older than the config, and GC/STATUS only for plugins that speak 1.1.0.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { createCniService } from "../../src/cni/service.js";

const root = mkdtempSync(join(tmpdir(), "weft-cni-delegate-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const service = createCniService({ subnet: "10.244.1.0/24", mtu: 1450, stateDir: join(root, "state"), log: pino({ level: "silent" }), ready: () => true });

// Records each call (command, CNI_* environment, stdin); answers per the files beside it: "versions" (its VERSION list),
// "reply.<COMMAND>" (stdout, with exit status 1 when it holds a "code"). Refuses configs of versions it does not list.
const FAKE = `#!/bin/bash
dir=$(dirname "$0")
input=$(cat)
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 )); echo $n > "$dir/count"
echo "$CNI_COMMAND" >> "$dir/calls"
env | grep -E '^(CNI_|PATH=)' | sort > "$dir/env.$n"
printf '%s' "$input" > "$dir/stdin.$n"
versions=$(cat "$dir/versions")
if [ "$CNI_COMMAND" = VERSION ]; then echo "{\\"cniVersion\\":\\"1.0.0\\",\\"supportedVersions\\":$versions}"; exit 0; fi
version=$(printf '%s' "$input" | grep -o '"cniVersion": *"[^"]*"' | head -1 | cut -d'"' -f4)
case "$versions" in *"\\"$version\\""*) ;; *) echo "{\\"code\\":1,\\"msg\\":\\"incompatible CNI versions\\"}"; exit 1;; esac
reply="$dir/reply.$CNI_COMMAND"
if [ -f "$reply" ]; then cat "$reply"; grep -q '"code"' "$reply" && exit 1; [ -f "$reply.exit" ] && exit $(cat "$reply.exit"); fi
exit 0
`;

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(root, "plugins-"));
  writeFileSync(join(dir, "fake"), FAKE);
  chmodSync(join(dir, "fake"), 0o755);
  writeFileSync(join(dir, "versions"), '["0.3.1","0.4.0","1.0.0"]');
});

const calls = () => readFileSync(join(dir, "calls"), "utf8").trim().split("\n");
const envOf = (n: number) => readFileSync(join(dir, `env.${n}`), "utf8").trim().split("\n");
const stdinOf = (n: number) => readFileSync(join(dir, `stdin.${n}`), "utf8");
const env = (command: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: "c0ffee", CNI_IFNAME: "eth0", CNI_PATH: `/nonexistent:${dir}`,
  CNI_ARGS: "K8S_POD_NAME=p" });
const config = (version: string, extra: object = {}) =>
  JSON.stringify({ cniVersion: version, name: "net", type: "weft", ipam: { type: "fake", custom: [1, 2] }, ...extra }, null, 1);

async function call(command: string, stdin: string, e: Record<string, string> = env(command)) {
  const r = await service.handle({ env: e, stdin });
  return { ...r, json: r.output ? JSON.parse(r.output) : undefined };
}

describe("delegated IPAM", () => {
  it("gets our CNI_* environment with its command, PATH, and the config verbatim", async () => {
    const stdin = config("1.0.0");
    expect(await call("DEL", stdin)).toMatchObject({ code: 0, output: "" });
    expect(calls()).toEqual(["DEL"]);
    expect(envOf(1)).toEqual([
      "CNI_ARGS=K8S_POD_NAME=p", "CNI_COMMAND=DEL", "CNI_CONTAINERID=c0ffee", "CNI_IFNAME=eth0", `CNI_PATH=/nonexistent:${dir}`,
      `PATH=${process.env.PATH}`]);
    expect(stdinOf(1)).toBe(stdin);
  });

  it("passes the plugin's own error on (code, msg, details)", async () => {
    writeFileSync(join(dir, "reply.DEL"), '{"cniVersion":"1.0.0","code":11,"msg":"store locked","details":"try later"}');
    expect((await call("DEL", config("1.0.0"))).json).toEqual({ cniVersion: "1.0.0", code: 11, msg: "IPAM plugin fake (DEL): store locked",
      details: "try later" });
  });

  it("a plugin that fails without a CNI error is an I/O failure (5) with what it printed", async () => {
    writeFileSync(join(dir, "reply.DEL"), "panic: oops");
    writeFileSync(join(dir, "reply.DEL.exit"), "2");
    expect((await call("DEL", config("1.0.0"))).json).toEqual({ cniVersion: "1.0.0", code: 5, msg: "IPAM plugin fake (DEL) exited with 2",
      details: "panic: oops" });
  });

  // ADD looks inside CNI_NETNS (a namespace of this test's) before it calls the IPAM plugin: that needs root.
  it.skipIf(process.getuid?.() !== 0)("an ADD answer that is not a result is a decode error (6); no address is a config error (7); both are undone", async () => {
    const pod = `wcd${randomBytes(2).toString("hex")}pod`;
    execFileSync("ip", ["netns", "add", pod]);
    onTestFinished(() => {
      execFileSync("ip", ["netns", "del", pod]);
    });
    const addEnv = { ...env("ADD"), CNI_NETNS: `/var/run/netns/${pod}`, CNI_IFNAME: "wcnnotthere0" };
    writeFileSync(join(dir, "reply.ADD"), "not json");
    expect((await call("ADD", config("1.0.0"), addEnv)).json).toMatchObject({ code: 6, msg: "IPAM plugin fake (ADD) printed something that is not JSON" });
    writeFileSync(join(dir, "reply.ADD"), '{"cniVersion":"1.0.0","ips":[],"dns":{}}');
    expect((await call("ADD", config("1.0.0"), addEnv)).json).toMatchObject({ code: 7, msg: "IPAM plugin fake returned no address" });
    expect(calls()).toEqual(["ADD", "DEL", "ADD", "DEL"]);
  });

  it("speaks an older version to a plugin that refuses the config's (asking VERSION once), keeping every other key", async () => {
    const stdin = config("1.1.0");
    expect(await call("DEL", stdin)).toMatchObject({ code: 0 });
    expect(await call("DEL", stdin)).toMatchObject({ code: 0 });
    expect(calls()).toEqual(["DEL", "VERSION", "DEL", "DEL"]);
    expect(JSON.parse(stdinOf(3))).toEqual({ ...JSON.parse(stdin), cniVersion: "1.0.0" });
    expect(JSON.parse(stdinOf(4)).cniVersion).toBe("1.0.0");
  });

  it("keeps the refusal when the plugin shares no version with the config", async () => {
    writeFileSync(join(dir, "versions"), '["0.1.0","0.2.0"]');
    expect((await call("DEL", config("0.4.0"))).json).toMatchObject({ code: 1, msg: "IPAM plugin fake (DEL): incompatible CNI versions" });
  });

  it("GC and STATUS are not sent to a plugin that does not speak 1.1.0", async () => {
    const gc = config("1.1.0", { "cni.dev/valid-attachments": [] });
    expect(await call("GC", gc, { CNI_COMMAND: "GC", CNI_PATH: dir })).toMatchObject({ code: 0, output: "" });
    expect(await call("STATUS", config("1.1.0"), { CNI_COMMAND: "STATUS", CNI_PATH: dir })).toMatchObject({ code: 0, output: "" });
    expect(calls()).toEqual(["VERSION"]);
  });

  it("GC and STATUS are delegated to a plugin that speaks 1.1.0, and its STATUS refusal is ours", async () => {
    writeFileSync(join(dir, "versions"), '["1.0.0","1.1.0"]');
    const gc = config("1.1.0", { "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }] });
    expect(await call("GC", gc, { CNI_COMMAND: "GC", CNI_PATH: dir })).toMatchObject({ code: 0, output: "" });
    expect(stdinOf(2)).toBe(gc);
    writeFileSync(join(dir, "reply.STATUS"), '{"code":50,"msg":"datastore unreachable"}');
    expect((await call("STATUS", config("1.1.0"), { CNI_COMMAND: "STATUS", CNI_PATH: dir })).json)
      .toMatchObject({ code: 50, msg: "IPAM plugin fake (STATUS): datastore unreachable" });
    expect(calls()).toEqual(["VERSION", "GC", "STATUS"]);
  });
});
