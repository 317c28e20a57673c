// The agent's local API: one JSON request per connection on a root-only unix socket, one JSON reply. `weft status` uses it
// today; the CNI front end will send its calls over the same socket. Requests are untrusted input: size- and time-limited.
import { chmodSync, mkdirSync, rmSync, statSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";

/** A CNI request carries the network config (with prevResult) JSON-escaped: the front end allows 1 MiB of stdin. */
export const MAX_REQUEST_BYTES = 8 * 1024 * 1024;
/** Time for the client to send its request line; after that the handler may take as long as it needs. */
const REQUEST_TIMEOUT_MS = 10_000;

export type Handler = (request: Record<string, unknown>) => Promise<unknown> | unknown;

export class ApiError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

function reply(sock: Socket, body: unknown): void {
  sock.end(JSON.stringify(body) + "\n");
}

function serve(sock: Socket, handlers: Record<string, Handler>): void {
  let buf = "";
  sock.setEncoding("utf8");
  sock.setTimeout(REQUEST_TIMEOUT_MS, () => sock.destroy());
  sock.on("error", () => sock.destroy());
  sock.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_REQUEST_BYTES) {
      reply(sock, { ok: false, code: 7, error: `request larger than ${MAX_REQUEST_BYTES} bytes` });
      sock.removeAllListeners("data");
      return;
    }
    const nl = buf.indexOf("\n");
    if (nl < 0) return;
    sock.removeAllListeners("data");
    sock.setTimeout(0);
    void handle(buf.slice(0, nl), handlers).then((body) => reply(sock, body));
  });
}

async function handle(line: string, handlers: Record<string, Handler>): Promise<unknown> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, code: 6, error: "request is not valid JSON" };
  }
  if (typeof req !== "object" || req === null || Array.isArray(req) || typeof (req as { op?: unknown }).op !== "string") {
    return { ok: false, code: 6, error: 'request must be a JSON object with a string "op"' };
  }
  const op = (req as { op: string }).op;
  const handler = Object.prototype.hasOwnProperty.call(handlers, op) ? handlers[op] : undefined;
  if (!handler) return { ok: false, code: 4, error: `unknown op ${JSON.stringify(op)}` };
  try {
    return { ok: true, result: await handler(req as Record<string, unknown>) };
  } catch (err) {
    const code = err instanceof ApiError ? err.code : 999;
    return { ok: false, code, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Listens on `path` (directory 0700, socket 0600), replacing a stale socket file left by a killed agent. */
export async function startApiServer(path: string, handlers: Record<string, Handler>): Promise<Server> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  try {
    if (statSync(path).isSocket()) rmSync(path);
  } catch {
    // nothing there
  }
  const server = createServer((sock) => serve(sock, handlers));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** One request to an agent's socket; rejects with a message naming the socket when it cannot be reached. */
export function callAgent(path: string, request: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = "";
    sock.setEncoding("utf8");
    sock.setTimeout(timeoutMs, () => {
      sock.destroy();
      reject(new Error(`weft agent at ${path} did not answer within ${timeoutMs} ms`));
    });
    sock.on("error", (err: NodeJS.ErrnoException) => reject(new Error(`cannot reach the weft agent at ${path}: ${err.code ?? err.message}`)));
    sock.on("data", (chunk: string) => (buf += chunk));
    sock.on("end", () => {
      try {
        const body = JSON.parse(buf) as { ok: boolean; result?: unknown; error?: string };
        if (body.ok) resolve(body.result);
        else reject(new Error(body.error ?? "agent error"));
      } catch {
        reject(new Error(`weft agent at ${path} sent an unreadable reply`));
      }
    });
    sock.write(JSON.stringify(request) + "\n");
  });
}
