// The etcd lease our subnet key is bound to (docs/registry-etcd.md): granted with registry.leaseTTL seconds, kept alive
// every third of its TTL (as etcd's own Go client does). A keepalive that fails is logged and retried sooner, never
// fatal: etcd may be down for a while, and it keeps leases alive across its own restarts. Only etcd saying the lease is
// gone (TTL 0, or "lease not found") calls onExpired, so the registry can take its key back under a new lease.
import { type Etcd3, EtcdLeaseInvalidError } from "etcd3";
import type { Logger } from "pino";

export interface KeepAliveOptions {
  client: Etcd3;
  /** Seconds. */
  ttl: number;
  log: Logger;
  callTimeoutMs: number;
  onExpired: () => void;
}

/**
 * Retries after a failed keepalive: quick at first (each try may reach another member: one dead member of three must not
 * cost a short lease), never slower than a third of the TTL.
 */
const RETRY_MS = [100, 250, 500, 1000, 2000, 5000, 10_000];
/** Failures logged at warn: the first, then one a minute. */
const WARN_EVERY_MS = 60_000;

export class KeepAlive {
  private leaseId?: Promise<string>;
  private timer?: NodeJS.Timeout;
  private running = false;
  private failures = 0;
  private lastWarnAt = 0;

  constructor(private readonly options: KeepAliveOptions) {}

  /** Our lease's ID, granted on first use. */
  id(): Promise<string> {
    if (this.leaseId) return this.leaseId;
    const granted = this.grant();
    this.leaseId = granted;
    granted.catch(() => {
      if (this.leaseId === granted) this.leaseId = undefined;
    });
    return granted;
  }

  /** A fresh lease in place of an expired one. */
  renew(): Promise<string> {
    this.leaseId = undefined;
    return this.id();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(this.intervalMs());
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  async revoke(): Promise<void> {
    this.stop();
    const pending = this.leaseId;
    this.leaseId = undefined;
    const id = await pending?.catch(() => undefined);
    if (id !== undefined) await this.options.client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
  }

  private async grant(): Promise<string> {
    const response = await this.options.client.leaseClient.leaseGrant({ TTL: this.options.ttl });
    return response.ID;
  }

  private intervalMs(): number {
    return Math.max(500, (this.options.ttl * 1000) / 3);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    this.timer = setTimeout(() => void this.beat(), ms);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    const log = this.options.log;
    let ttl: number;
    try {
      ttl = await this.keepAliveOnce(await this.id());
    } catch (err) {
      if (!this.running) return;
      if (err instanceof EtcdLeaseInvalidError) {
        this.expired();
        return;
      }
      this.failures++;
      const now = Date.now();
      const level = this.failures === 1 || now - this.lastWarnAt > WARN_EVERY_MS ? "warn" : "debug";
      if (level === "warn") this.lastWarnAt = now;
      log[level]({ err: (err as Error).message, failures: this.failures }, "etcd lease keepalive failed; forwarding goes on, retrying");
      this.schedule(Math.min(RETRY_MS[Math.min(this.failures - 1, RETRY_MS.length - 1)], this.intervalMs()));
      return;
    }
    if (!this.running) return;
    if (ttl <= 0) {
      this.expired();
      return;
    }
    if (this.failures > 0) log.info({ failures: this.failures, ttl }, "etcd lease keepalive works again");
    this.failures = 0;
    this.schedule(this.intervalMs());
  }

  private expired(): void {
    this.options.log.warn("etcd says our lease has expired");
    this.failures = 0;
    this.options.onExpired();
    this.schedule(this.intervalMs());
  }

  /**
   * One keepalive on its own stream; the remaining TTL etcd answers with (0: the lease is gone). It waits no longer than a
   * beat: with a short lease, waiting the whole call timeout on a member that died would let the lease run out before the
   * retry reaches a member that is left.
   */
  private async keepAliveOnce(id: string): Promise<number> {
    const stream = await this.options.client.leaseClient.leaseKeepAlive();
    const waitMs = Math.min(this.options.callTimeoutMs, this.intervalMs());
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<number>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no keepalive answer within ${waitMs} ms`)), waitMs);
        stream.on("data", (response) => resolve(Number(response.TTL)));
        stream.on("error", reject);
        stream.write({ ID: id });
      });
    } finally {
      clearTimeout(timer);
      stream.end();
    }
  }
}
