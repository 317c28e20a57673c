// weft's own IPAM: Pod addresses from the agent's subnet, one file per reserved address (as host-local keeps them):
//
//   <stateDir>/ipam/10.244.1.0_24/10.244.1.7        "<containerID>\n<ifname>\n<network>\n"
//   <stateDir>/ipam/10.244.1.0_24/last_reserved_ip  where the next search starts (round robin)
//
// A reservation is made by writing the owner into a private temporary file (one made ahead, spares.ts) and hard-linking it
// to the address's name:
// link(2) fails with EEXIST when the name is taken, so two allocators (threads, processes, a restarted agent) can never
// hold one address, and the file appears complete or not at all, so a kill -9 never leaves a half-written owner.
// Nothing is fsynced: a killed process loses nothing the page cache holds, and a power loss takes every Pod (and veth)
// with it, after which GC reconciles the files with the attachments the runtime still knows. fsync would cost ~2 ms of
// disk flush per ADD here for no case that needs it.
import { closeSync, constants, ftruncateSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, unlinkSync,
  writeSync } from "node:fs";
import { join } from "node:path";
import { type Cidr, bigIntToBytes, bytesToBigInt, cidrToString, formatIPBytes, parseCIDR } from "../net/addr.js";
import { CniError, ERR } from "./errors.js";
import { SpareFiles, processAlive } from "./spares.js";
import type { Dns } from "./config.js";
import type { CniIp, CniRoute } from "./result.js";

/** One Pod interface on one network: the CNI spec's state key. */
export interface Attachment {
  network: string;
  containerID: string;
  ifname: string;
}

export const attachmentKey = (a: Attachment): string => `${a.network}/${a.containerID}/${a.ifname}`;

export interface Reservation {
  ip: string;
  /** Null when the file cannot be read as an owner (only after a power loss): an orphan. */
  owner: Attachment | null;
}

const HINT = "last_reserved_ip";
const TMP_PREFIX = ".tmp-";
const SPARE_PREFIX = ".spare-";

function parseOwner(text: string): Attachment | null {
  const [containerID, ifname, network] = text.split("\n");
  return containerID && ifname && network ? { network, containerID, ifname } : null;
}

const sameOwner = (a: Attachment | null, b: Attachment): boolean =>
  a !== null && a.network === b.network && a.containerID === b.containerID && a.ifname === b.ifname;


/** The reservations of one subnet: Pod addresses from gateway + 1 to the last address before broadcast. */
export class AddressPool {
  readonly subnet: Cidr;
  readonly gateway: string;
  readonly dir: string;
  private readonly first: bigint;
  private readonly last: bigint;
  private readonly width: 4 | 16;
  /** What this process knows is taken (refreshed by `scan`); the file system stays the arbiter. */
  private readonly owners = new Map<string, Attachment | null>();
  private readonly byKey = new Map<string, string>();
  private lastReserved: bigint | undefined;
  /** Owners' temporary files, made ahead (spares.ts): <stateDir>/.spare-<pid>-<n>, out of the reservations' directory. */
  private readonly spares: SpareFiles;

  constructor(subnetText: string, stateDir: string) {
    this.subnet = parseCIDR(subnetText);
    const bits = this.subnet.family === 4 ? 32 : 128;
    if (this.subnet.len > bits - 2) throw new Error(`subnet ${subnetText} is too small for a gateway and a Pod`);
    this.width = this.subnet.family === 4 ? 4 : 16;
    const network = bytesToBigInt(this.subnet.bytes);
    this.gateway = this.format(network + 1n);
    this.first = network + 2n;
    this.last = network + (1n << BigInt(bits - this.subnet.len)) - 2n;
    this.dir = join(stateDir, "ipam", cidrToString(this.subnet).replace("/", "_"));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.spares = new SpareFiles(stateDir, SPARE_PREFIX);
    this.removeAbandonedTemporaries();
    this.scan();
    this.lastReserved = this.readHint();
  }

  get size(): bigint {
    return this.last - this.first + 1n;
  }

  get prefixLen(): number {
    return this.subnet.len;
  }

  private format(v: bigint): string {
    return formatIPBytes(bigIntToBytes(v, this.width));
  }

  private parseMember(name: string): bigint | undefined {
    try {
      const c = parseCIDR(`${name}/${this.width * 8}`);
      if (c.family !== this.subnet.family) return undefined;
      const v = bytesToBigInt(c.bytes);
      return v >= this.first && v <= this.last && this.format(v) === name ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** Re-reads every reservation from disk; returns them. */
  scan(): Reservation[] {
    this.owners.clear();
    this.byKey.clear();
    const out: Reservation[] = [];
    for (const name of readdirSync(this.dir)) {
      if (this.parseMember(name) === undefined) continue;
      let owner: Attachment | null;
      try {
        owner = parseOwner(readFileSync(join(this.dir, name), "utf8"));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      this.owners.set(name, owner);
      if (owner) this.byKey.set(attachmentKey(owner), name);
      out.push({ ip: name, owner });
    }
    return out;
  }

  reservationOf(a: Attachment): string | undefined {
    return this.byKey.get(attachmentKey(a));
  }

  /** Reserves an address for `a` (its existing one, when an interrupted ADD left it); round robin after the last one. */
  reserve(a: Attachment): string {
    const existing = this.reservationOf(a);
    if (existing !== undefined && sameOwner(this.readOwner(existing) ?? null, a)) return existing;
    const tmp = this.spares.fill(`${a.containerID}\n${a.ifname}\n${a.network}\n`);
    try {
      const start = this.lastReserved === undefined || this.lastReserved >= this.last ? this.first : this.lastReserved + 1n;
      let candidate = start;
      for (let tried = 0n; tried < this.size; tried++) {
        const ip = this.format(candidate);
        if (!this.owners.has(ip) && this.tryLink(tmp, ip)) {
          this.owners.set(ip, a);
          this.byKey.set(attachmentKey(a), ip);
          this.lastReserved = candidate;
          this.writeHint(ip);
          return ip;
        }
        candidate = candidate === this.last ? this.first : candidate + 1n;
      }
    } finally {
      unlinkSync(tmp);
    }
    throw new CniError(ERR.TRY_AGAIN_LATER,
      `no free address in ${cidrToString(this.subnet)}: all ${this.size} Pod addresses are reserved (DEL or GC frees them)`);
  }

  private tryLink(tmp: string, ip: string): boolean {
    try {
      linkSync(tmp, join(this.dir, ip));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // Taken by another allocator since our last scan: remember it so the next search skips it.
      this.owners.set(ip, null);
      return false;
    }
  }

  private readOwner(ip: string): Attachment | null | undefined {
    try {
      return parseOwner(readFileSync(join(this.dir, ip), "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Frees `a`'s address; returns it, or undefined when `a` had none (DEL is idempotent). */
  release(a: Attachment): string | undefined {
    const ip = this.reservationOf(a);
    if (ip === undefined) return undefined;
    this.byKey.delete(attachmentKey(a));
    // Another allocator may have freed and re-reserved it meanwhile: only ever remove our owner's file.
    if (!sameOwner(this.readOwner(ip) ?? null, a)) return undefined;
    this.removeFile(ip);
    return ip;
  }

  /** Frees an address whatever its owner (GC of an orphan). */
  releaseAddress(ip: string): void {
    const owner = this.owners.get(ip);
    if (owner) this.byKey.delete(attachmentKey(owner));
    this.removeFile(ip);
  }

  private removeFile(ip: string): void {
    this.owners.delete(ip);
    rmSync(join(this.dir, ip), { force: true });
  }

  private readHint(): bigint | undefined {
    try {
      return this.parseMember(readFileSync(join(this.dir, HINT), "utf8").trim());
    } catch {
      return undefined;
    }
  }

  // Written over in place and cut to length, not replaced by rename: ext4 flushes a file renamed over another to disk at
  // once, which cost more than the rest of the reservation. A process killed between the write and the cut leaves the new
  // address followed by the tail of a longer old one: no address of the pool, or another one; either is only where the
  // next search starts.
  private writeHint(ip: string): void {
    const fd = openSync(join(this.dir, HINT), constants.O_WRONLY | constants.O_CREAT, 0o600);
    try {
      writeSync(fd, ip, 0);
      ftruncateSync(fd, Buffer.byteLength(ip));
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Temporaries of processes that died mid-reservation (kill -9) or with one made ahead; and those an earlier agent made
   * beside the reservations (<dir>/.tmp-<pid>-<n>).
   */
  removeAbandonedTemporaries(): void {
    this.spares.removeAbandoned();
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(TMP_PREFIX)) continue;
      const pid = Number(name.slice(TMP_PREFIX.length).split("-")[0]);
      if (pid !== process.pid && !processAlive(pid)) rmSync(join(this.dir, name), { force: true });
    }
  }
}

/** What an IPAM hands the wiring: addresses with their gateways, the routes to install, DNS. */
export interface IpamResult {
  ips: CniIp[];
  routes: CniRoute[];
  dns?: Dns;
}

/** The built-in IPAM over the agent's subnet(s): one IPv4 address, plus one IPv6 address when dual-stack. */
export class BuiltinIpam {
  readonly pools: AddressPool[];

  constructor(opts: { subnet: string; subnetV6?: string; stateDir: string }) {
    this.pools = [new AddressPool(opts.subnet, opts.stateDir)];
    if (opts.subnetV6) this.pools.push(new AddressPool(opts.subnetV6, opts.stateDir));
  }

  /** Reserves one address per family; all or nothing. */
  allocate(a: Attachment): IpamResult {
    const ips: CniIp[] = [];
    try {
      for (const pool of this.pools) ips.push({ address: `${pool.reserve(a)}/${pool.prefixLen}`, gateway: pool.gateway });
    } catch (err) {
      this.release(a);
      throw err;
    }
    const routes = this.pools.map((p) => ({ dst: p.subnet.family === 4 ? "0.0.0.0/0" : "::/0", gw: p.gateway }));
    return { ips, routes };
  }

  release(a: Attachment): string[] {
    return this.pools.map((p) => p.release(a)).filter((ip): ip is string => ip !== undefined);
  }

  /** The attachment's reserved addresses, bare. */
  addressesOf(a: Attachment): string[] {
    return this.pools.map((p) => p.reservationOf(a)).filter((ip): ip is string => ip !== undefined);
  }

  /**
   * Frees every reservation of `network` that `keep` rejects, and every unreadable one; returns the owners freed.
   * Reads the directories afresh: the disk, not this process's memory, is what GC reconciles.
   */
  collect(network: string, keep: (a: Attachment) => boolean): Attachment[] {
    const freed: Attachment[] = [];
    for (const pool of this.pools) {
      pool.removeAbandonedTemporaries();
      for (const r of pool.scan()) {
        if (r.owner !== null && (r.owner.network !== network || keep(r.owner))) continue;
        pool.releaseAddress(r.ip);
        if (r.owner) freed.push(r.owner);
      }
    }
    return freed;
  }
}
