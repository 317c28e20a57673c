// The few Kubernetes API calls the kube registry makes (docs/registry-kube.md), over the official client
// (@kubernetes/client-node): it reads the kubeconfig or the in-cluster service account, does TLS and authentication,
// streams watches and sends the patches. Lists are the exception: the client turns every object into its model classes,
// ~0.2 ms a Node, too slow for 5,000; they are read as plain JSON over a connection the client configured. The client is
// loaded on first use, so agents on other registries never pay for it.
import http from "node:http";
import https from "node:https";
import type * as k8s from "@kubernetes/client-node";

/** The parts of a Node the registry reads; the API sends more, which is ignored. */
export interface KubeNode {
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { conditions?: { type: string; status: string; reason?: string }[] };
}

export interface NodePage {
  items: KubeNode[];
  resourceVersion: string;
  continueToken?: string;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface NodeWatch {
  /** Resolves when the stream ends: null when the server closed it, else the error. */
  ended: Promise<Error | null>;
  stop(): void;
}

/** An error the API server answered with (or a transport failure, status 0). */
export class KubeApiError extends Error {
  constructor(readonly status: number, message: string, readonly reason?: string) {
    super(message);
    this.name = "KubeApiError";
  }
}

export interface KubeClient {
  /** Where the client talks to, for logs. */
  readonly server: string;
  listNodes(limit: number, continueToken?: string): Promise<NodePage>;
  watchNodes(resourceVersion: string, timeoutSeconds: number, onEvent: (type: WatchEventType, object: unknown) => void): NodeWatch;
  /** A strategic merge patch of the nodes/status subresource (the only write RBAC grants weft). */
  patchNodeStatus(name: string, patch: object): Promise<KubeNode>;
}

/** Requests that take longer than this are abandoned and retried: a silent API server must not stall the agent. */
const REQUEST_TIMEOUT_MS = 30_000;

/** A client for the kubeconfig at `kubeconfig`, or for the in-cluster service account when it is undefined. */
export async function connectKube(kubeconfig: string | undefined): Promise<KubeClient> {
  const lib = await import("@kubernetes/client-node");
  const config = new lib.KubeConfig();
  if (kubeconfig === undefined) {
    if (!process.env.KUBERNETES_SERVICE_HOST) {
      throw new Error("registry.kubeconfig is not set and this is not a Pod (KUBERNETES_SERVICE_HOST is unset): give registry.kubeconfig");
    }
    config.loadFromCluster();
  } else {
    config.loadFromFile(kubeconfig);
  }
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error(`registry.kubeconfig: ${kubeconfig ?? "the in-cluster config"} names no current cluster`);
  return new OfficialClient(lib, config, cluster.server);
}

class OfficialClient implements KubeClient {
  private readonly core: k8s.CoreV1Api;
  private readonly watcher: k8s.Watch;
  private readonly strategicMerge: k8s.ConfigurationOptions;

  constructor(lib: typeof k8s, private readonly config: k8s.KubeConfig, readonly server: string) {
    this.core = config.makeApiClient(lib.CoreV1Api);
    this.watcher = new lib.Watch(config);
    this.strategicMerge = lib.setHeaderOptions("Content-Type", lib.PatchStrategy.StrategicMergePatch);
  }

  async listNodes(limit: number, continueToken?: string): Promise<NodePage> {
    const url = new URL(`${this.server.replace(/\/$/, "")}/api/v1/nodes`);
    url.searchParams.set("limit", String(limit));
    if (continueToken !== undefined) url.searchParams.set("continue", continueToken);
    const list = (await this.getJSON(url, "list nodes")) as { items?: KubeNode[]; metadata?: { resourceVersion?: string; continue?: string } };
    return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? "", continueToken: list.metadata?.continue || undefined };
  }

  watchNodes(resourceVersion: string, timeoutSeconds: number, onEvent: (type: WatchEventType, object: unknown) => void): NodeWatch {
    let stopped = false;
    let controller: AbortController | undefined;
    let finish!: (err: Error | null) => void;
    const ended = new Promise<Error | null>((res) => (finish = res));
    const query = { resourceVersion, allowWatchBookmarks: true, timeoutSeconds };
    this.watcher.watch("/api/v1/nodes", query, (type: string, object: unknown) => {
      if (!stopped) onEvent(type as WatchEventType, object);
    }, (err: unknown) => finish(err ? asApiError(err) : null)).then((c) => {
      controller = c;
      if (stopped) c.abort();
    }, (err: unknown) => finish(asApiError(err)));
    return {
      ended,
      stop: () => {
        stopped = true;
        controller?.abort();
        finish(null);
      },
    };
  }

  private async getJSON(url: URL, what: string): Promise<unknown> {
    const options: https.RequestOptions = { method: "GET", headers: { Accept: "application/json" } };
    await this.config.applyToHTTPSOptions(options);
    if (url.protocol === "http:") delete options.agent;
    return new Promise((resolve, reject) => {
      const request = (url.protocol === "http:" ? http : https).request(url, options, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", (err) => reject(asApiError(err, what)));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (response.statusCode === 200) {
            try {
              resolve(JSON.parse(text));
            } catch (err) {
              reject(new KubeApiError(0, `${what}: the answer is not JSON (${(err as Error).message})`));
            }
            return;
          }
          const status = statusBody(text);
          reject(new KubeApiError(response.statusCode ?? 0, `${what}: ${status?.message ?? (text.slice(0, 200) || `HTTP ${response.statusCode}`)}`, status?.reason));
        });
      });
      request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new KubeApiError(0, `${what}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
      request.on("error", (err) => reject(asApiError(err, what)));
      request.end();
    });
  }

  async patchNodeStatus(name: string, patch: object): Promise<KubeNode> {
    const node = await call(`patch nodes/${name}/status`, () => this.core.patchNodeStatus({ name, body: patch }, this.strategicMerge));
    return node as unknown as KubeNode;
  }
}

async function call<T>(what: string, request: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new KubeApiError(0, `${what}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
  });
  try {
    return await Promise.race([request(), timeout]);
  } catch (err) {
    throw asApiError(err, what);
  } finally {
    clearTimeout(timer);
  }
}

/** The client's errors (ApiException with a Status body, fetch errors with a statusCode or none) as one type. */
function asApiError(err: unknown, what?: string): KubeApiError {
  if (err instanceof KubeApiError) return err;
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: string };
  const status = typeof e.statusCode === "number" ? e.statusCode : typeof e.code === "number" ? e.code : 0;
  const body = statusBody(e.body);
  const message = body?.message ?? firstLine(e.message ?? String(err));
  return new KubeApiError(status, what ? `${what}: ${message}` : message, body?.reason);
}

function statusBody(body: unknown): { message?: string; reason?: string } | undefined {
  let value = body;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  return typeof value === "object" && value !== null ? (value as { message?: string; reason?: string }) : undefined;
}

function firstLine(text: string): string {
  return text.split("\n")[0];
}
