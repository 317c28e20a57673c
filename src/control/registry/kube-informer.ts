// List-and-watch of the cluster's Nodes with the semantics of client-go's reflector (docs/registry-kube.md): a paged list
// gives the full set and a resourceVersion; a watch from that version streams every change after it, and each event (and
// each bookmark) moves the version on, so a watch that ends is resumed exactly where it stopped. When the server no longer
// has that version (410 Gone) the set is listed again and handed over whole, for the consumer to diff. Errors back off
// exponentially; what was last known stays in force meanwhile.
import type { Logger } from "pino";
import { type KubeClient, KubeApiError, type KubeNode, type WatchEventType } from "./kube-client.js";

export interface InformerHandlers {
  /** The complete set of Nodes, from a list (the first one, or a re-list after the watch could not resume). */
  replace(nodes: KubeNode[]): void;
  upsert(node: KubeNode): void;
  remove(node: KubeNode): void;
}

export interface InformerOptions {
  /** Nodes per list page. */
  pageSize: number;
  /** How long the server keeps one watch open; it is then resumed from the last version. */
  watchSeconds: number;
  /** First and largest pause after a failure. */
  backoffMs: { initial: number; max: number };
  /** Told after every complete list was applied: how many Nodes, how long fetching it (all pages) and handing it over took. */
  onListed?: (info: ListInfo) => void;
}

export interface ListInfo {
  nodes: number;
  /** Fetch and parse of every page. */
  fetchMs: number;
  /** `replace`: the consumer's diff against what it had. */
  applyMs: number;
  relist: boolean;
}

export const INFORMER_DEFAULTS: InformerOptions = { pageSize: 500, watchSeconds: 300, backoffMs: { initial: 250, max: 8000 } };

/** A watch ends with: the server closing it (resume), 410 Gone (list again), or an error (back off, resume). */
type WatchEnd = { kind: "closed"; events: number } | { kind: "gone" } | { kind: "failed"; error: Error };

export class NodeInformer {
  private resourceVersion: string | undefined;
  private stopped = false;
  private currentWatch?: { stop(): void };
  private wake?: () => void;
  private failures = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly handlers: InformerHandlers,
    private readonly log: Logger,
    private readonly options: InformerOptions = INFORMER_DEFAULTS,
  ) {}

  /** Resolves after the first complete list has been handed to `replace`; then keeps the set current until stop(). */
  start(): Promise<void> {
    return new Promise<void>((synced, failed) => {
      let done = false;
      void this.run(() => {
        done = true;
        synced();
      }).finally(() => {
        if (!done) failed(new Error("Node informer stopped before the first list"));
      });
    });
  }

  /** Ends the watch and any backoff wait; a list request in flight is abandoned (its answer is dropped). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.currentWatch?.stop();
    this.wake?.();
  }

  private async run(synced: () => void): Promise<void> {
    let listed = false;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) {
          const began = performance.now();
          const nodes = await this.listAll();
          if (this.stopped) return;
          const fetched = performance.now();
          this.handlers.replace(nodes);
          const info = { nodes: nodes.length, fetchMs: Math.round(fetched - began), applyMs: Math.round(performance.now() - fetched), relist: listed };
          this.log.info({ ...info, resourceVersion: this.resourceVersion }, listed ? "Nodes listed again" : "Nodes listed");
          this.options.onListed?.(info);
          listed = true;
          synced();
          this.recovered();
        }
        const end = await this.watchOnce(this.resourceVersion!);
        if (end.kind === "gone") {
          this.log.info({ resourceVersion: this.resourceVersion }, "Node watch cannot resume from its version (410 Gone); listing again");
          this.resourceVersion = undefined;
        } else if (end.kind === "failed") {
          throw end.error;
        } else if (end.events > 0) {
          this.recovered();
        }
      } catch (err) {
        if (this.stopped) return;
        await this.backOff(err as Error);
      }
    }
  }

  /** Every Node, page by page; an expired continue token starts the list over. */
  private async listAll(): Promise<KubeNode[]> {
    for (;;) {
      const nodes: KubeNode[] = [];
      let token: string | undefined;
      let version = "";
      try {
        do {
          const page = await this.client.listNodes(this.options.pageSize, token);
          for (const n of page.items) nodes.push(n);
          token = page.continueToken;
          version = page.resourceVersion;
        } while (token !== undefined && !this.stopped);
      } catch (err) {
        if (token !== undefined && err instanceof KubeApiError && err.status === 410) continue;
        throw err;
      }
      this.resourceVersion = version;
      return nodes;
    }
  }

  private watchOnce(version: string): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let events = 0;
      let gone = false;
      let failure: Error | undefined;
      const onEvent = (type: WatchEventType, object: unknown) => {
        if (type === "ERROR") {
          const status = object as { code?: number; message?: string; reason?: string };
          if (status.code === 410) gone = true;
          else failure = new KubeApiError(status.code ?? 0, `watch nodes: ${status.message ?? "error event"}`, status.reason);
          watch.stop();
          return;
        }
        const node = object as KubeNode;
        if (node?.metadata?.resourceVersion) this.resourceVersion = node.metadata.resourceVersion;
        events++;
        if (type === "ADDED" || type === "MODIFIED") this.handlers.upsert(node);
        else if (type === "DELETED") this.handlers.remove(node);
      };
      const watch = this.client.watchNodes(version, this.options.watchSeconds, onEvent);
      this.currentWatch = watch;
      // The server ends the watch after watchSeconds; one that goes silent past that (a hung server, a lost connection
      // no one reset) is ended here.
      const guard = setTimeout(() => {
        failure = new Error(`watch nodes: nothing heard for ${this.options.watchSeconds + 30} s`);
        watch.stop();
      }, (this.options.watchSeconds + 30) * 1000);
      guard.unref();
      watch.ended.then((err) => {
        clearTimeout(guard);
        this.currentWatch = undefined;
        const statusGone = err instanceof KubeApiError && err.status === 410;
        if (gone || statusGone) resolve({ kind: "gone" });
        else if (failure ?? err) resolve({ kind: "failed", error: (failure ?? err)! });
        else resolve({ kind: "closed", events });
      });
    });
  }

  private recovered(): void {
    if (this.failures > 0) this.log.info({ server: this.client.server, failures: this.failures }, "Kubernetes API reachable again; Nodes in sync");
    this.failures = 0;
  }

  private async backOff(err: Error): Promise<void> {
    this.failures++;
    const { initial, max } = this.options.backoffMs;
    const base = Math.min(max, initial * 2 ** Math.min(this.failures - 1, 20));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    const forbidden = err instanceof KubeApiError && (err.status === 401 || err.status === 403);
    this.log[forbidden || this.failures % 10 === 1 ? "warn" : "debug"]({ server: this.client.server, err: err.message, retryInMs: delay,
      failures: this.failures }, forbidden
      ? "Kubernetes API refused the Node list/watch (a server just started may do so briefly; otherwise weft's credential lacks nodes get/list/watch, docs/registry-kube.md); retrying"
      : "Kubernetes API unreachable; keeping the last known peers and retrying");
    await new Promise<void>((res) => {
      const timer = setTimeout(res, delay);
      this.wake = () => {
        clearTimeout(timer);
        res();
      };
    });
    this.wake = undefined;
  }
}
