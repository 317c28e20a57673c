// The built-in IPAM without root: round robin, exhaustion, reuse by attachment, restart, GC, and no address ever given
// twice, neither to 50 allocators with stale views in one process nor to 8 processes racing on one directory.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AddressPool, type Attachment, BuiltinIpam } from "../../src/cni/ipam.js";
import { PACKAGE_ROOT } from "../../src/paths.js";

let stateDir = "";
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "weft-cni-ipam-"));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

const pod = (n: number | string, network = "weft", ifname = "eth0"): Attachment => ({ network, containerID: `c${n}`, ifname });
const reservedFiles = (pool: AddressPool) => readdirSync(pool.dir).filter((f) => /^[0-9a-f.:]+$/.test(f)).sort();

describe("AddressPool", () => {
  it("keeps one file per address under <stateDir>/ipam/<subnet>, holding containerID, ifname and network", () => {
    const pool = new AddressPool("10.244.1.0/24", stateDir);
    expect(pool.gateway).toBe("10.244.1.1");
    expect(pool.reserve(pod(1))).toBe("10.244.1.2");
    expect(pool.dir).toBe(join(stateDir, "ipam", "10.244.1.0_24"));
    expect(readFileSync(join(pool.dir, "10.244.1.2"), "utf8")).toBe("c1\neth0\nweft\n");
    expect(readFileSync(join(pool.dir, "last_reserved_ip"), "utf8")).toBe("10.244.1.2");
    expect(readdirSync(pool.dir).sort()).toEqual(["10.244.1.2", "last_reserved_ip"]);
  });

  it("round robin: a freed address is not handed out again at once", () => {
    const pool = new AddressPool("10.244.1.0/24", stateDir);
    expect([pool.reserve(pod(1)), pool.reserve(pod(2))]).toEqual(["10.244.1.2", "10.244.1.3"]);
    expect(pool.release(pod(1))).toBe("10.244.1.2");
    expect(pool.reserve(pod(3))).toBe("10.244.1.4");
    expect(reservedFiles(pool)).toEqual(["10.244.1.3", "10.244.1.4"]);
  });

  it("wraps around to the freed addresses, and says so clearly when every address is taken (11)", () => {
    const pool = new AddressPool("10.244.1.0/29", stateDir);
    expect(pool.size).toBe(5n);
    expect([1, 2, 3, 4, 5].map((n) => pool.reserve(pod(n)))).toEqual(["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"]);
    expect(() => pool.reserve(pod(6))).toThrowError(/no free address in 10\.244\.1\.0\/29: all 5 Pod addresses are reserved/);
    try {
      pool.reserve(pod(6));
    } catch (err) {
      expect(err).toMatchObject({ code: 11 });
    }
    pool.release(pod(2));
    expect(pool.reserve(pod(6))).toBe("10.244.1.3");
    expect(readdirSync(pool.dir).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("gives an attachment its existing reservation again (an ADD retried after an interruption)", () => {
    const pool = new AddressPool("10.244.1.0/24", stateDir);
    const first = pool.reserve(pod(1));
    expect(pool.reserve(pod(1))).toBe(first);
    expect(pool.reserve(pod(1, "weft", "net1"))).not.toBe(first);
    expect(pool.reserve(pod(1, "other"))).not.toBe(first);
  });

  it("release is idempotent and never removes another owner's file", () => {
    const pool = new AddressPool("10.244.1.0/24", stateDir);
    const ip = pool.reserve(pod(1));
    writeFileSync(join(pool.dir, ip), "someone\neth0\nweft\n");
    expect(pool.release(pod(1))).toBeUndefined();
    expect(existsSync(join(pool.dir, ip))).toBe(true);
    expect(pool.release(pod(1))).toBeUndefined();
  });

  it("survives a restart: a new instance sees the reservations and continues the round robin", () => {
    const before = new AddressPool("10.244.1.0/24", stateDir);
    for (let n = 1; n <= 5; n++) before.reserve(pod(n));
    before.release(pod(5));
    const after = new AddressPool("10.244.1.0/24", stateDir);
    expect(after.reservationOf(pod(3))).toBe("10.244.1.4");
    expect(after.reservationOf(pod(5))).toBeUndefined();
    expect(after.reserve(pod(6))).toBe("10.244.1.7");
    expect(after.release(pod(1))).toBe("10.244.1.2");
  });

  it("keeps the round-robin hint the bare last address, also when a shorter one follows a longer one", () => {
    const pool = new AddressPool("10.244.1.0/24", stateDir);
    for (let i = 0; i < 99; i++) pool.reserve(pod(i));
    expect(readFileSync(join(pool.dir, "last_reserved_ip"), "utf8")).toBe("10.244.1.100");
    for (let i = 0; i < 99; i++) pool.release(pod(i));
    writeFileSync(join(pool.dir, "last_reserved_ip"), "10.244.1.98");
    expect(new AddressPool("10.244.1.0/24", stateDir).reserve(pod("x"))).toBe("10.244.1.99");
    expect(readFileSync(join(pool.dir, "last_reserved_ip"), "utf8")).toBe("10.244.1.99");
  });

  it("ignores a damaged round-robin hint and removes temporaries of dead processes", () => {
    const dir = join(stateDir, "ipam", "10.244.1.0_24");
    new AddressPool("10.244.1.0/24", stateDir);
    writeFileSync(join(dir, "last_reserved_ip"), "10.244.1.");
    writeFileSync(join(dir, ".tmp-999999999-1"), "c9\neth0\nweft\n");
    writeFileSync(join(dir, `.tmp-${process.pid}-999`), "");
    const pool = new AddressPool("10.244.1.0/24", stateDir);
    expect(pool.reserve(pod(1))).toBe("10.244.1.2");
    expect(readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([`.tmp-${process.pid}-999`]);
  });

  it("50 allocators with stale views of one directory get 50 distinct addresses (link(2) decides)", () => {
    const pools = Array.from({ length: 50 }, () => new AddressPool("10.244.1.0/24", stateDir));
    const ips = pools.map((p, n) => p.reserve(pod(n)));
    expect(new Set(ips).size).toBe(50);
    expect(reservedFiles(pools[0])).toHaveLength(50);
    for (const [n, ip] of ips.entries()) expect(readFileSync(join(pools[0].dir, ip), "utf8")).toBe(`c${n}\neth0\nweft\n`);
  });

  it("handles IPv6 subnets", () => {
    const pool = new AddressPool("fd00:10:244:1::/64", stateDir);
    expect(pool.gateway).toBe("fd00:10:244:1::1");
    expect([pool.reserve(pod(1)), pool.reserve(pod(2))]).toEqual(["fd00:10:244:1::2", "fd00:10:244:1::3"]);
    expect(pool.dir).toBe(join(stateDir, "ipam", "fd00:10:244:1::_64"));
  });

  it("refuses subnets with no room for a gateway and a Pod", () => {
    expect(() => new AddressPool("10.244.1.0/31", stateDir)).toThrowError(/too small/);
    expect(() => new AddressPool("fd00::/127", stateDir)).toThrowError(/too small/);
  });
});

describe("BuiltinIpam", () => {
  it("gives one address per family with its gateway and default routes", () => {
    const ipam = new BuiltinIpam({ subnet: "10.244.1.0/24", subnetV6: "fd00:10:244:1::/64", stateDir });
    expect(ipam.allocate(pod(1))).toEqual({
      ips: [{ address: "10.244.1.2/24", gateway: "10.244.1.1" }, { address: "fd00:10:244:1::2/64", gateway: "fd00:10:244:1::1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "::/0", gw: "fd00:10:244:1::1" }],
    });
    expect(ipam.addressesOf(pod(1))).toEqual(["10.244.1.2", "fd00:10:244:1::2"]);
    expect(ipam.release(pod(1))).toEqual(["10.244.1.2", "fd00:10:244:1::2"]);
    expect(ipam.release(pod(1))).toEqual([]);
  });

  it("is all or nothing: an exhausted IPv6 pool gives back the IPv4 address", () => {
    const ipam = new BuiltinIpam({ subnet: "10.244.1.0/24", subnetV6: "fd00::/126", stateDir });
    ipam.allocate(pod(1));
    expect(() => ipam.allocate(pod(2))).toThrowError(/no free address in fd00::\/126/);
    expect(ipam.addressesOf(pod(2))).toEqual([]);
    expect(reservedFiles(ipam.pools[0])).toEqual(["10.244.1.2"]);
  });

  it("collect() frees this network's reservations that are not kept, and unreadable ones, from what is on disk", () => {
    const ipam = new BuiltinIpam({ subnet: "10.244.1.0/24", stateDir });
    for (const a of [pod(1), pod(2), pod(3), pod(4, "other")]) ipam.allocate(a);
    writeFileSync(join(ipam.pools[0].dir, "10.244.1.200"), "");
    const other = new BuiltinIpam({ subnet: "10.244.1.0/24", stateDir });
    other.allocate(pod(5));
    const freed = ipam.collect("weft", (a) => a.containerID === "c1");
    expect(freed.map((a) => a.containerID).sort()).toEqual(["c2", "c3", "c5"]);
    expect(reservedFiles(ipam.pools[0])).toEqual(["10.244.1.2", "10.244.1.5"]);
    expect(ipam.addressesOf(pod(1))).toEqual(["10.244.1.2"]);
    expect(ipam.addressesOf(pod(2))).toEqual([]);
  });
});

// ---- across processes: the built dist/ module in 8 children, started together -----------------------------------------

const BUILT = join(PACKAGE_ROOT, "dist/src/cni/ipam.js");
function distProblem(): string | undefined {
  for (const f of ["ipam.js", "errors.js"]) {
    const built = join(PACKAGE_ROOT, "dist/src/cni", f);
    const source = join(PACKAGE_ROOT, "src/cni", f.replace(/\.js$/, ".ts"));
    if (!existsSync(built)) return `${built} is missing`;
    if (statSync(built).mtimeMs < statSync(source).mtimeMs) return `${built} is older than its source`;
  }
  return undefined;
}

const CHILD = `
import { AddressPool } from ${JSON.stringify(BUILT)};
const [stateDir, who, count] = process.argv.slice(1);
const pool = new AddressPool("10.244.1.0/24", stateDir);
process.stdin.once("data", () => {
  const ips = [];
  for (let i = 0; i < Number(count); i++) ips.push(pool.reserve({ network: "weft", containerID: who + "-" + i, ifname: "eth0" }));
  process.stdout.write(JSON.stringify(ips));
  process.exit(0);
});
process.stdout.write("READY\\n");
`;

function child(who: string, count: number): { ready: Promise<void>; go: () => void; done: Promise<string[]> } {
  const proc = spawn(process.execPath, ["--input-type=module", "-e", CHILD, stateDir, who, String(count)], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let readyResolve!: () => void;
  const ready = new Promise<void>((res) => (readyResolve = res));
  proc.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    if (out.startsWith("READY\n")) readyResolve();
  });
  proc.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const done = new Promise<string[]>((res, rej) => proc.once("close", (code) =>
    code === 0 ? res(JSON.parse(out.slice("READY\n".length)) as string[]) : rej(new Error(`child ${who} exited ${code}: ${err}`))));
  return { ready, go: () => proc.stdin.write("go\n"), done };
}

const problem = distProblem();
if (problem) console.warn(`weft: skipping the cross-process IPAM race: ${problem} (run 'npx tsc -p tsconfig.json')`);

describe.skipIf(problem !== undefined)("across processes (built dist/)", () => {
  it("8 processes reserving 25 addresses each at once get 200 distinct addresses", async () => {
    const children = Array.from({ length: 8 }, (_, i) => child(`p${i}`, 25));
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.go();
    const ips = (await Promise.all(children.map((c) => c.done))).flat();
    expect(ips).toHaveLength(200);
    expect(new Set(ips).size).toBe(200);
    const pool = new AddressPool("10.244.1.0/24", stateDir);
    expect(reservedFiles(pool)).toHaveLength(200);
    expect(readdirSync(pool.dir).filter((f) => f.startsWith("."))).toEqual([]);
  });
});
