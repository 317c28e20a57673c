// The agent's local API (docs/agent.md, "The API socket"): one JSON request line per connection on a root-only unix socket,
// one JSON reply, then the agent closes the connection. `weft status` and the CNI front end use it. Requests are untrusted
// input, so every connection is bounded: a deadline for its request and one for its reply (absolute, not idle timers: a
// client trickling a byte at a time gains nothing), a size limit per request, a limit on open connections and one on the
// bytes buffered across all of them. At a bound the agent makes room by dropping the connection that holds the resource
// longest or most, never one whose request is being handled, so a fresh ADD is served while slow clients are at the limits.
import { createConnection, createServer, type Socket } from "node:net";
import { claimSocket } from "./api-socket.js";

export interface ApiLimits {
  /** From accepting a connection to its request's newline. */
  requestDeadlineMs: number;
  /** From the handler's answer to the reply's last byte handed to the kernel. */
  replyDeadlineMs: number;
  /** A CNI request carries the network config (with prevResult) JSON-escaped: the front end allows 1 MiB of stdin. */
  maxRequestBytes: number;
  maxConnections: number;
  /** Request bytes held across all connections still sending theirs. */
  maxBufferedBytes: number;
}

export const DEFAULT_API_LIMITS: ApiLimits = {
  requestDeadlineMs: 10_000,
  replyDeadlineMs: 10_000,
  maxRequestBytes: 8 * 1024 * 1024,
  maxConnections: 64,
  maxBufferedBytes: 32 * 1024 * 1024,
};

export type Handler = (request: Record<string, unknown>) => Promise<unknown> | unknown;

/**
 * Told of every request that was handled: the request, and the seconds from its first bytes read off the socket to the
 * reply's last byte handed to the kernel (the agent's part of what the client waited for).
 */
export type ServedHook = (request: Record<string, unknown>, seconds: number) => void;

export class ApiError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export interface ApiServer {
  /** Open connections and request bytes buffered right now. */
  load(): { connections: number; bufferedBytes: number };
  /** Stops listening, drops open connections, removes the socket file if it is still this server's. */
  close(): Promise<void>;
}

/** CNI's "try again later": the front end passes it on to the runtime, which retries. */
const CODE_TRY_AGAIN = 11;

type Phase = "request" | "handling" | "reply";

interface Connection {
  sock: Socket;
  /** performance.now() when the request's first bytes were read. */
  arrived: number;
  phase: Phase;
  chunks: Buffer[];
  bytes: number;
  timer?: NodeJS.Timeout;
}

class ConnectionTable {
  /** Insertion order is accept order: the first entry is the oldest. */
  private readonly open = new Set<Connection>();
  private buffered = 0;

  constructor(private readonly limits: ApiLimits, private readonly handlers: Record<string, Handler>,
    private readonly onServed?: ServedHook) {}

  load() {
    return { connections: this.open.size, bufferedBytes: this.buffered };
  }

  accept(sock: Socket): void {
    const conn: Connection = { sock, arrived: 0, phase: "request", chunks: [], bytes: 0 };
    this.open.add(conn);
    sock.on("error", () => sock.destroy());
    sock.on("close", () => this.forget(conn));
    sock.on("end", () => {
      if (conn.phase === "request") sock.destroy();
    });
    conn.timer = setTimeout(() => sock.destroy(), this.limits.requestDeadlineMs);
    if (this.open.size > this.limits.maxConnections && !this.drop(this.oldestUnbusy(conn))) {
      this.reply(conn, { ok: false, code: CODE_TRY_AGAIN, error: `weft agent busy: ${this.open.size - 1} requests in progress` });
      return;
    }
    sock.on("data", (chunk: Buffer) => this.receive(conn, chunk));
  }

  destroyAll(): void {
    for (const conn of this.open) conn.sock.destroy();
  }

  private receive(conn: Connection, chunk: Buffer): void {
    if (conn.phase !== "request") return;
    if (conn.chunks.length === 0) conn.arrived = performance.now();
    const nl = chunk.indexOf(0x0a);
    const taken = nl < 0 ? chunk : chunk.subarray(0, nl);
    if (conn.bytes + taken.length > this.limits.maxRequestBytes) {
      this.reply(conn, { ok: false, code: 7, error: `request larger than ${this.limits.maxRequestBytes} bytes` });
      return;
    }
    conn.chunks.push(taken);
    conn.bytes += taken.length;
    this.buffered += taken.length;
    if (nl >= 0) {
      this.handle(conn);
      return;
    }
    while (this.buffered > this.limits.maxBufferedBytes && this.drop(this.largestRequest()));
  }

  private handle(conn: Connection): void {
    const line = Buffer.concat(conn.chunks).toString("utf8");
    this.release(conn);
    conn.phase = "handling";
    clearTimeout(conn.timer);
    // Whatever the client sends after its request line stays in the kernel, not here.
    conn.sock.pause();
    void dispatch(line, this.handlers).then(({ request, body }) => this.reply(conn, body, request));
  }

  /**
   * Writes the reply and closes the connection once the kernel has it; a client that does not read loses it at the
   * deadline. `request`: the handled request, for the served hook.
   */
  private reply(conn: Connection, body: unknown, request?: Record<string, unknown>): void {
    this.release(conn);
    conn.phase = "reply";
    clearTimeout(conn.timer);
    if (conn.sock.destroyed) return;
    conn.timer = setTimeout(() => conn.sock.destroy(), this.limits.replyDeadlineMs);
    conn.sock.end(JSON.stringify(body) + "\n", () => {
      if (request) this.onServed?.(request, (performance.now() - conn.arrived) / 1000);
      conn.sock.destroy();
    });
  }

  private release(conn: Connection): void {
    this.buffered -= conn.bytes;
    conn.bytes = 0;
    conn.chunks = [];
  }

  private forget(conn: Connection): void {
    clearTimeout(conn.timer);
    this.release(conn);
    this.open.delete(conn);
  }

  /** The longest-open connection that is not being handled, other than `except`. */
  private oldestUnbusy(except: Connection): Connection | undefined {
    for (const conn of this.open) if (conn !== except && conn.phase !== "handling") return conn;
    return undefined;
  }

  private largestRequest(): Connection | undefined {
    let largest: Connection | undefined;
    for (const conn of this.open) if (conn.phase === "request" && conn.bytes > (largest?.bytes ?? 0)) largest = conn;
    return largest;
  }

  private drop(conn: Connection | undefined): boolean {
    if (!conn) return false;
    conn.sock.destroy();
    this.forget(conn);
    return true;
  }
}

/** The reply to one request line, and the request when it named a handler. */
async function dispatch(line: string, handlers: Record<string, Handler>): Promise<{ request?: Record<string, unknown>; body: unknown }> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { body: { ok: false, code: 6, error: "request is not valid JSON" } };
  }
  if (typeof req !== "object" || req === null || Array.isArray(req) || typeof (req as { op?: unknown }).op !== "string") {
    return { body: { ok: false, code: 6, error: 'request must be a JSON object with a string "op"' } };
  }
  const request = req as Record<string, unknown> & { op: string };
  const handler = Object.prototype.hasOwnProperty.call(handlers, request.op) ? handlers[request.op] : undefined;
  if (!handler) return { body: { ok: false, code: 4, error: `unknown op ${JSON.stringify(request.op)}` } };
  try {
    return { request, body: { ok: true, result: await handler(request) } };
  } catch (err) {
    const code = err instanceof ApiError ? err.code : 999;
    return { request, body: { ok: false, code, error: err instanceof Error ? err.message : String(err) } };
  }
}

/** Serves `handlers` on the unix socket `path` (see api-socket.ts for how the path is claimed). */
export async function startApiServer(path: string, handlers: Record<string, Handler>, limits: Partial<ApiLimits> = {},
  onServed?: ServedHook): Promise<ApiServer> {
  const table = new ConnectionTable({ ...DEFAULT_API_LIMITS, ...limits }, handlers, onServed);
  const server = createServer((sock) => table.accept(sock));
  const claimed = await claimSocket(path, server);
  return {
    load: () => table.load(),
    close: async () => {
      const closed = claimed.release();
      table.destroyAll();
      await closed;
    },
  };
}

/** One request to an agent's socket; rejects with a message naming the socket when it cannot be reached. */
export function callAgent(path: string, request: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = "";
    const settle = () => {
      try {
        const body = JSON.parse(buf) as { ok: boolean; result?: unknown; error?: string };
        if (body.ok) resolve(body.result);
        else reject(new Error(body.error ?? "agent error"));
      } catch {
        reject(new Error(`weft agent at ${path} sent an unreadable reply`));
      }
    };
    sock.setEncoding("utf8");
    sock.setTimeout(timeoutMs, () => {
      sock.destroy();
      reject(new Error(`weft agent at ${path} did not answer within ${timeoutMs} ms`));
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      // An agent that answers before reading all of a request (refusing it) closes while we still write: its answer counts.
      if (buf.endsWith("\n")) settle();
      else reject(new Error(`cannot reach the weft agent at ${path}: ${err.code ?? err.message}`));
    });
    sock.on("data", (chunk: string) => (buf += chunk));
    sock.on("end", settle);
    sock.write(JSON.stringify(request) + "\n");
  });
}
