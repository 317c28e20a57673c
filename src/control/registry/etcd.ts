// registry.type "etcd": weft stores itself where and as flanneld does (docs/registry-etcd.md), so weft nodes and flanneld
// nodes of one cluster are peers. `<prefix>/config` is flannel's network config; every node is a key
// `<prefix>/subnets/<net>-<len>` holding flannel's lease JSON and bound to an etcd lease that its node keeps alive: a key
// that expires is a node that left.
//
// The view is the list of `<prefix>/subnets/` at one revision, then the watch from the next revision, so nothing between
// the two is missed. A watch that breaks resumes from the last revision it delivered; one whose revision etcd has compacted
// away is replaced by a fresh list, diffed against the view (a list that changes nothing emits nothing).
//
// While etcd is unreachable the view stays as it was (the dataplane keeps forwarding to the last known peers), keepalive
// failures are logged, and our key is taken back when etcd returns. Our subnet is only ever taken by a create-if-absent
// transaction, so two nodes never hold one subnet; if another node holds our key when we come back, we report `lost`.
import { EventEmitter } from "node:events";
import { Etcd3, type Watcher } from "etcd3";
import type { Logger } from "pino";
import type { EtcdRegistryConfig } from "../config.js";
import { clientOptions, RESUME_BACKOFF_MS, sleep, untilReachable } from "./etcd-client.js";
import {
  checkNetworkConfig, leaseValueFor, type NetworkWanted, networkConfigFor, parseLease, parseSubnetKeyName, subnetKeyName,
} from "./flannel.js";
import { KeepAlive } from "./etcd-keepalive.js";
import { type NodeRecord, type Registry, type RegistryEvents, checkOwnRecord, RecordError, sameRecord } from "./record.js";

export interface EtcdRegistryOptions {
  config: EtcdRegistryConfig;
  /** Our node: its lease is the one with our publicIP (as flanneld finds its own after a restart). */
  nodeName: string;
  publicIP: string;
  network: NetworkWanted;
  log: Logger;
  /** How long start() keeps trying to reach etcd before it gives up (default 60 s). */
  startTimeoutMs?: number;
  /** Deadline of one unary call (default 5 s). */
  callTimeoutMs?: number;
}

/** A key under `<prefix>/subnets/` as last seen. */
interface StoredLease {
  value: string;
  modRevision: number;
  /** The peer it describes, named later; undefined when the value cannot be a peer (problem says why). */
  record?: NodeRecord;
  problem?: string;
}

interface Snapshot {
  revision: number;
  leases: Map<string, StoredLease>;
}

const CLAIM_ATTEMPTS = 20;

export class EtcdRegistry extends EventEmitter<RegistryEvents> implements Registry {
  private client?: Etcd3;
  private readonly configKey: string;
  private readonly subnetsPrefix: string;
  private leases = new Map<string, StoredLease>();
  private view = new Map<string, NodeRecord>();
  /** The last revision whose events are in the view. */
  private revision = 0;
  private watcher?: Watcher;
  private resumeTimer?: NodeJS.Timeout;
  private resumeFailures = 0;
  private keepAlive?: KeepAlive;
  /** The key name (`10.244.3.0-24`) of our lease and the record in it, once claimed. */
  private own?: { keyName: string; record: NodeRecord };
  private closed = false;
  /** A retake of our key is under way (keepalive and watch may both ask for one). */
  private retaking = false;
  /** `<key>@<modRevision>` of unusable values already warned about. */
  private readonly warned = new Set<string>();

  constructor(private readonly options: EtcdRegistryOptions) {
    super();
    const prefix = options.config.prefix;
    this.configKey = `${prefix}/config`;
    this.subnetsPrefix = `${prefix}/subnets/`;
  }

  async start(): Promise<void> {
    this.client = new Etcd3(clientOptions(this.options.config, this.options.callTimeoutMs ?? 5000));
    const snapshot = await untilReachable(this.options.config.endpoints, this.options.startTimeoutMs ?? 60_000, this.options.log, async () => {
      await this.ensureNetworkConfig();
      return this.listLeases();
    });
    this.leases = snapshot.leases;
    this.revision = snapshot.revision;
    this.view = this.nameRecords();
    this.watchFrom(this.revision + 1);
  }

  list(): NodeRecord[] {
    return [...this.view.values()];
  }

  /**
   * Lists the leases, lets `decide` pick our record (ours from before = the lease with our publicIP), and stores it with a
   * transaction that succeeds only if nobody took that key since the list; on a lost race it lists again.
   */
  async claimSelf(decide: (records: readonly NodeRecord[]) => NodeRecord | Promise<NodeRecord>): Promise<NodeRecord> {
    const client = this.connected();
    for (let attempt = 1; attempt <= CLAIM_ATTEMPTS; attempt++) {
      const { leases } = await this.listLeases();
      const ownKeys = [...leases].filter(([name, l]) => this.isOwnKey(name, l)).map(([name]) => name);
      const mine = this.checkOwnRecord(await decide(this.recordsForClaim(leases, ownKeys)));
      const keyName = subnetKeyName(mine);
      const key = this.subnetsPrefix + keyName;
      const leaseId = await this.leaseId();
      const existing = leases.get(keyName);
      let txn = existing && ownKeys.includes(keyName)
        ? client.if(key, "Mod", "==", existing.modRevision)
        : client.if(key, "Create", "==", 0);
      const stale = ownKeys.filter((k) => k !== keyName);
      for (const k of stale) txn = txn.and(this.subnetsPrefix + k, "Mod", "==", leases.get(k)!.modRevision);
      const result = await txn
        .then(client.put(key).value(leaseValueFor(mine)).lease(leaseId), ...stale.map((k) => client.delete().key(this.subnetsPrefix + k)))
        .commit();
      if (result.succeeded) {
        this.own = { keyName, record: mine };
        const revision = Number(result.header.revision);
        for (const k of stale) this.leases.delete(k);
        this.leases.set(keyName, { value: leaseValueFor(mine), modRevision: revision, record: { ...mine, nodeName: keyName } });
        this.refreshView();
        for (const k of stale) this.options.log.info({ key: this.subnetsPrefix + k }, "removed our previous lease");
        this.options.log.info({ key, leaseTTL: this.options.config.leaseTTL }, "subnet lease stored in etcd");
        this.keepAlive!.start();
        return mine;
      }
      this.options.log.debug({ key, attempt }, "another node changed the leases while we claimed; listing again");
      await sleep(10 + Math.random() * 100 * attempt);
    }
    throw new Error(`could not store our lease in etcd after ${CLAIM_ATTEMPTS} attempts: other nodes kept taking the same subnets`);
  }

  async upsertSelf(record: NodeRecord): Promise<void> {
    await this.claimSelf(() => record);
  }

  async removeSelf(): Promise<void> {
    const client = this.connected();
    if (this.own) {
      const key = this.subnetsPrefix + this.own.keyName;
      await client.if(key, "Value", "==", leaseValueFor(this.own.record)).then(client.delete().key(key)).commit();
      this.own = undefined;
    }
    await this.keepAlive?.revoke();
  }

  /** Stops watching and keeping the lease alive. Our key stays until its lease expires, so a restart finds it again. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.resumeTimer);
    this.keepAlive?.stop();
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
    this.client?.close();
  }

  private connected(): Etcd3 {
    if (!this.client) throw new Error("the etcd registry is not started");
    return this.client;
  }

  private async leaseId(): Promise<string> {
    this.keepAlive ??= new KeepAlive({
      client: this.connected(),
      ttl: this.options.config.leaseTTL,
      log: this.options.log,
      callTimeoutMs: this.options.callTimeoutMs ?? 5000,
      onExpired: () => this.retakeOwnKey("our etcd lease expired"),
    });
    return this.keepAlive.id();
  }

  /** Reads `<prefix>/config`, writing ours when there is none; a config that disagrees with the agent's is refused. */
  private async ensureNetworkConfig(): Promise<void> {
    const client = this.connected();
    let text = await client.get(this.configKey).string();
    if (text === null) {
      const wrote = await client.if(this.configKey, "Create", "==", 0)
        .then(client.put(this.configKey).value(networkConfigFor(this.options.network))).commit();
      if (wrote.succeeded) this.options.log.info({ key: this.configKey }, "no network config in etcd: wrote ours");
      text = await client.get(this.configKey).string();
      if (text === null) throw new Error(`etcd key ${this.configKey} vanished right after it was written`);
    }
    for (const warning of checkNetworkConfig(this.configKey, text, this.options.network)) this.options.log.warn(warning);
  }

  private async listLeases(): Promise<Snapshot> {
    const response = await this.connected().getAll().prefix(this.subnetsPrefix).exec();
    const leases = new Map<string, StoredLease>();
    for (const kv of response.kvs) {
      const name = kv.key.toString().slice(this.subnetsPrefix.length);
      leases.set(name, this.parseStored(name, kv.value.toString(), Number(kv.mod_revision)));
    }
    return { revision: Number(response.header.revision), leases };
  }

  private parseStored(name: string, value: string, modRevision: number): StoredLease {
    try {
      return { value, modRevision, record: parseLease(name, value, name).record };
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      return { value, modRevision, problem: e.message };
    }
  }

  private isOwnKey(name: string, lease: StoredLease): boolean {
    if (this.own) return name === this.own.keyName;
    return lease.record?.publicIP === this.options.publicIP;
  }

  /**
   * The records `decide` chooses against: every peer, ours under our nodeName, and a stand-in for each key whose value is
   * no peer of ours (another backend, bad JSON) so that its subnet still counts as taken.
   */
  private recordsForClaim(leases: Map<string, StoredLease>, ownKeys: string[]): NodeRecord[] {
    return [...leases].flatMap(([name, lease]) => {
      if (lease.record) return [{ ...lease.record, nodeName: ownKeys[0] === name ? this.options.nodeName : name }];
      const subnets = parseSubnetKeyName(name);
      return subnets ? [{ nodeName: name, publicIP: "0.0.0.0", vtepMAC: "02:00:00:00:00:00", vni: 0, ...subnets }] : [];
    });
  }

  private checkOwnRecord(chosen: NodeRecord): NodeRecord {
    const mine = checkOwnRecord(chosen, this.options.nodeName);
    if (mine.publicIP !== this.options.publicIP) throw new Error(`our record's publicIP ${mine.publicIP} is not ${this.options.publicIP}`);
    return mine;
  }

  /** The view: peers named by their subnet key, ours by our nodeName. Values that cannot be peers are logged once. */
  private nameRecords(): Map<string, NodeRecord> {
    const named = new Map<string, NodeRecord>();
    let ownNamed = false;
    for (const [name, lease] of this.leases) {
      if (!lease.record) {
        this.warnUnusable(name, lease);
        continue;
      }
      const ours: boolean = !ownNamed && this.isOwnKey(name, lease);
      ownNamed ||= ours;
      const nodeName = ours ? this.options.nodeName : name;
      named.set(nodeName, { ...lease.record, nodeName });
    }
    return named;
  }

  /** Replaces the view, emitting removed, changed, added for what differs. */
  private refreshView(): void {
    const previous = this.view;
    this.view = this.nameRecords();
    for (const [name, old] of previous) if (!this.view.has(name)) this.emit("removed", old);
    for (const [name, record] of this.view) {
      const old = previous.get(name);
      if (old && !sameRecord(old, record)) this.emit("changed", record, old);
    }
    for (const [name, record] of this.view) if (!previous.has(name)) this.emit("added", record);
  }

  /**
   * Applies changed keys to the view without touching the rest (a watch event costs O(1), not O(leases)), emitting
   * removed, changed, added. Once our own key is known, a key's name no longer depends on the other keys.
   */
  private updateView(keys: Set<string>): void {
    const removed: NodeRecord[] = [];
    const changed: [NodeRecord, NodeRecord][] = [];
    const added: NodeRecord[] = [];
    for (const key of keys) {
      const nodeName = key === this.own?.keyName ? this.options.nodeName : key;
      const old = this.view.get(nodeName);
      const lease = this.leases.get(key);
      if (lease && !lease.record) this.warnUnusable(key, lease);
      const next = lease?.record ? { ...lease.record, nodeName } : undefined;
      if (next) this.view.set(nodeName, next);
      else this.view.delete(nodeName);
      if (old && !next) removed.push(old);
      else if (old && next && !sameRecord(old, next)) changed.push([next, old]);
      else if (!old && next) added.push(next);
    }
    for (const r of removed) this.emit("removed", r);
    for (const [r, old] of changed) this.emit("changed", r, old);
    for (const r of added) this.emit("added", r);
  }

  private warnUnusable(key: string, lease: StoredLease): void {
    const note = `${key}@${lease.modRevision}`;
    if (this.warned.has(note)) return;
    this.warned.add(note);
    this.options.log.warn({ key: this.subnetsPrefix + key, problem: lease.problem }, "skipping a lease that cannot be a peer");
  }

  private watchFrom(startRevision: number): void {
    if (this.closed) return;
    const watcher = this.connected().watch().prefix(this.subnetsPrefix).startRevision(String(startRevision)).watcher();
    this.watcher = watcher;
    watcher.on("connected", () => {
      if (this.resumeFailures > 0) this.options.log.info({ revision: startRevision }, "etcd watch resumed");
      this.resumeFailures = 0;
    });
    watcher.on("data", (response) => {
      if (this.watcher !== watcher) return;
      const events = response.events;
      if (events.length === 0) {
        this.revision = Math.max(this.revision, Number(response.header.revision));
        return;
      }
      const changed = new Set<string>();
      for (const event of events) {
        const name = event.kv.key.toString().slice(this.subnetsPrefix.length);
        const modRevision = Number(event.kv.mod_revision);
        // Our own claim is in the view before its event comes back; what the watch still replays before it is older.
        if ((this.leases.get(name)?.modRevision ?? 0) > modRevision) continue;
        if (event.type === "Delete") this.leases.delete(name);
        else this.leases.set(name, this.parseStored(name, event.kv.value.toString(), modRevision));
        this.revision = Math.max(this.revision, modRevision);
        changed.add(name);
      }
      if (this.own) this.updateView(changed);
      else this.refreshView();
      this.checkOwnKey();
    });
    watcher.on("disconnected", (err: Error) => this.rewatch(watcher, "disconnected", err));
    watcher.on("error", (err: Error) => this.rewatch(watcher, "canceled", err));
  }

  /** A broken watch resumes from the last revision in the view; a canceled one (compaction) starts over from a list. */
  private rewatch(watcher: Watcher, why: "disconnected" | "canceled", err: Error): void {
    if (this.watcher !== watcher || this.closed) return;
    this.watcher = undefined;
    // A watch etcd canceled is already gone from the client; cancelling it again would write to a closed stream.
    if (why === "disconnected") watcher.cancel().catch(() => undefined);
    const log = this.resumeFailures === 0 ? this.options.log.warn.bind(this.options.log) : this.options.log.debug.bind(this.options.log);
    log({ err: err.message, revision: this.revision }, why === "canceled"
      ? "etcd canceled the watch (its revision may be compacted); listing again"
      : "etcd watch broke; forwarding goes on with the last known peers while it resumes");
    const delay = RESUME_BACKOFF_MS[Math.min(this.resumeFailures, RESUME_BACKOFF_MS.length - 1)];
    this.resumeFailures++;
    this.resumeTimer = setTimeout(() => {
      if (why === "disconnected") this.watchFrom(this.revision + 1);
      else void this.relistAndWatch();
    }, delay);
    this.resumeTimer.unref();
  }

  private async relistAndWatch(): Promise<void> {
    let snapshot: Snapshot;
    try {
      snapshot = await this.listLeases();
    } catch (err) {
      if (this.closed) return;
      this.resumeTimer = setTimeout(() => void this.relistAndWatch(), RESUME_BACKOFF_MS.at(-1));
      this.resumeTimer.unref();
      this.options.log.debug({ err: (err as Error).message }, "listing the leases failed; trying again");
      return;
    }
    if (this.closed) return;
    this.leases = snapshot.leases;
    this.revision = snapshot.revision;
    this.refreshView();
    this.options.log.info({ leases: snapshot.leases.size, revision: snapshot.revision }, "listed the leases again");
    this.checkOwnKey();
    this.watchFrom(this.revision + 1);
  }

  /** Our key deleted (revoked, expired) is taken back; our key rewritten by another node is lost. */
  private checkOwnKey(): void {
    if (!this.own || this.closed) return;
    const stored = this.leases.get(this.own.keyName);
    if (!stored) void this.retakeOwnKey("our lease key was deleted");
    else if (stored.record?.publicIP !== this.options.publicIP) this.lose(`another node (publicIP ${stored.record?.publicIP ?? "unknown"}) now holds our subnet key`);
  }

  /** Stores our record again under a fresh etcd lease, only where nobody else took the key meanwhile. */
  private async retakeOwnKey(why: string): Promise<void> {
    if (!this.own || this.retaking || this.closed) return;
    this.retaking = true;
    const own = this.own;
    const key = this.subnetsPrefix + own.keyName;
    try {
      for (;;) {
        try {
          const client = this.connected();
          const leaseId = await this.keepAlive!.renew();
          const put = client.put(key).value(leaseValueFor(own.record)).lease(leaseId);
          const result = await client.if(key, "Create", "==", 0).then(put).else(client.get(key)).commit();
          if (result.succeeded) {
            this.options.log.warn({ key, reason: why }, "took our subnet lease back");
            return;
          }
          const kv = result.responses[0]?.response_range?.kvs[0];
          const holder = kv ? this.parseStored(own.keyName, kv.value.toString(), Number(kv.mod_revision)) : undefined;
          if (holder?.record?.publicIP === this.options.publicIP) {
            const rebound = await client.if(key, "Mod", "==", holder.modRevision).then(put).commit();
            if (rebound.succeeded) return;
            continue;
          }
          this.lose(`${why}, and another node (publicIP ${holder?.record?.publicIP ?? "unknown"}) took ${own.record.subnet} meanwhile`);
          return;
        } catch (err) {
          if (this.closed) return;
          this.options.log.warn({ key, err: (err as Error).message }, "cannot take our subnet lease back yet; trying again");
          await sleep(RESUME_BACKOFF_MS.at(-1)!);
        }
      }
    } finally {
      this.retaking = false;
    }
  }

  private lose(why: string): void {
    if (this.closed || !this.own) return;
    const subnet = this.own.record.subnet;
    this.own = undefined;
    this.keepAlive?.stop();
    this.options.log.error({ subnet, reason: why }, "our subnet lease is lost");
    this.emit("lost", new Error(`our subnet lease ${subnet} is lost: ${why}; a restart leases a subnet again`));
  }
}
