// The API socket's bounds (docs/agent.md, "The API socket"), on a real unix socket: an absolute request deadline (a client
// trickling bytes is cut off), the connection closed after the reply (a client that keeps its end open does not keep
// ours), a bound on connections and on buffered bytes, and requests served while slow clients sit at those bounds.
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ApiLimits, type ApiServer, type ServedHook, callAgent, startApiServer } from "../../src/control/api-server.js";

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A client socket and whether the server has closed it. */
interface Client {
  sock: Socket;
  closed: boolean;
  received: string;
}

function connect(path: string, opts: { allowHalfOpen?: boolean } = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path, allowHalfOpen: opts.allowHalfOpen });
    const client: Client = { sock, closed: false, received: "" };
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => (client.received += chunk));
    sock.on("error", () => undefined);
    sock.on("close", () => (client.closed = true));
    sock.once("connect", () => resolve(client));
    sock.once("error", reject);
  });
}

describe("API socket bounds", () => {
  let dir: string;
  let path: string;
  let server: ApiServer | undefined;
  let gate: () => void = () => undefined;
  const clients: Client[] = [];

  async function serve(limits: Partial<ApiLimits>, onServed?: ServedHook): Promise<ApiServer> {
    server = await startApiServer(path, {
      ping: () => "pong",
      slow: () => new Promise((res) => (gate = () => res("done"))),
      big: () => "x".repeat(16 << 20),
      fail: () => {
        throw new Error("no");
      },
    }, limits, onServed);
    return server;
  }

  async function client(opts: { allowHalfOpen?: boolean } = {}): Promise<Client> {
    const c = await connect(path, opts);
    clients.push(c);
    return c;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "weft-api-"));
    path = join(dir, "weft.sock");
  });
  afterEach(async () => {
    clients.splice(0).forEach((c) => c.sock.destroy());
    gate();
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers one request per connection", async () => {
    await serve({});
    expect(await callAgent(path, { op: "ping" })).toBe("pong");
  });

  it("tells the served hook of each handled request (failed ones too) with its time, and of nothing it could not parse", async () => {
    const served: { request: Record<string, unknown>; seconds: number }[] = [];
    await serve({}, (request, seconds) => served.push({ request, seconds }));
    expect(await callAgent(path, { op: "ping", n: 1 })).toBe("pong");
    await expect(callAgent(path, { op: "fail" })).rejects.toThrow("no");
    await expect(callAgent(path, { op: "nonesuch" })).rejects.toThrow("unknown op");
    const c = await client();
    c.sock.write("not json\n");
    await until(() => c.closed, "the refusal of a line that is not JSON");
    await until(() => served.length >= 2, "the served hook");
    expect(served.map((s) => s.request)).toEqual([{ op: "ping", n: 1 }, { op: "fail" }]);
    for (const s of served) expect(s.seconds).toBeGreaterThan(0);
  });

  it("a client trickling a byte at a time is cut off at the request deadline, however recently it sent", async () => {
    await serve({ requestDeadlineMs: 500 });
    const c = await client();
    const bytes = 60;
    let sent = 0;
    for (; sent < bytes && !c.closed; sent++) {
      c.sock.write(sent === 0 ? "{" : " ");
      await sleep(100);
    }
    // 60 bytes 100 ms apart outlast the 500 ms deadline many times over: the server must have closed it on the way.
    expect(c.closed).toBe(true);
    expect(sent).toBeLessThan(bytes);
  }, 30_000);

  it("closes the connection after the reply even when the client keeps its end open", async () => {
    const s = await serve({});
    const c = await client({ allowHalfOpen: true });
    let ended = false;
    c.sock.on("end", () => (ended = true));
    c.sock.write(JSON.stringify({ op: "ping" }) + "\n");
    await until(() => ended, "the reply");
    expect(JSON.parse(c.received)).toEqual({ ok: true, result: "pong" });
    // The client never ends its side; the server's side must be gone anyway: writing to it fails.
    let failed: string | undefined;
    c.sock.on("error", (err: NodeJS.ErrnoException) => (failed = err.code));
    for (let i = 0; i < 100 && failed === undefined; i++) {
      c.sock.write("x");
      await sleep(20);
    }
    expect(failed).toMatch(/EPIPE|ECONNRESET/);
    await until(() => s.load().connections === 0, "no connections left");
  });

  it("a client that does not read its reply loses the connection at the reply deadline", async () => {
    const s = await serve({ replyDeadlineMs: 500 });
    const c = await client();
    c.sock.pause();
    c.sock.write(JSON.stringify({ op: "big" }) + "\n");
    await until(() => s.load().connections === 0, "the unread reply's connection to be dropped");
    c.sock.resume();
    await until(() => c.closed, "the client to see the close");
    expect(c.received.length).toBeLessThan(16 << 20);
  });

  it("bounds open connections; a request in progress is kept and a new request is served while slow clients fill the rest", async () => {
    const s = await serve({ maxConnections: 8, requestDeadlineMs: 60_000 });
    const busy = await client();
    busy.sock.write(JSON.stringify({ op: "slow" }) + "\n");
    await sleep(50);
    const slow: Client[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await client();
      c.sock.write('{"op":"ping"');
      slow.push(c);
    }
    await until(() => slow.filter((c) => c.closed).length >= 20 - 7, "the oldest slow clients to be dropped");
    expect(s.load().connections).toBeLessThanOrEqual(8);
    expect(await callAgent(path, { op: "ping" })).toBe("pong");
    expect(busy.closed).toBe(false);
    gate();
    await until(() => busy.closed, "the request in progress to be answered");
    expect(JSON.parse(busy.received)).toEqual({ ok: true, result: "done" });
  });

  it("when every connection is handling a request, a new one is told to try again later (code 11)", async () => {
    await serve({ maxConnections: 1 });
    const busy = await client();
    busy.sock.write(JSON.stringify({ op: "slow" }) + "\n");
    await sleep(50);
    await expect(callAgent(path, { op: "ping" })).rejects.toThrow(/busy/);
  });

  it("bounds the bytes buffered across connections; a new request is served while hoarders hold the budget", async () => {
    const s = await serve({ maxBufferedBytes: 4 << 20, maxRequestBytes: 2 << 20, requestDeadlineMs: 60_000 });
    const hoarders: Client[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await client();
      c.sock.write("{" + " ".repeat(1.5 * (1 << 20)));
      hoarders.push(c);
    }
    // 9 MiB offered, 4 MiB allowed: at most two 1.5 MiB requests can stay.
    await until(() => hoarders.filter((c) => c.closed).length >= 4, "hoarders to be dropped");
    expect(s.load().bufferedBytes).toBeLessThanOrEqual(4 << 20);
    expect(await callAgent(path, { op: "ping" })).toBe("pong");
  });

  it("a request above maxRequestBytes is refused with code 7", async () => {
    await serve({ maxRequestBytes: 1 << 20 });
    await expect(callAgent(path, { op: "ping", pad: "x".repeat(2 << 20) })).rejects.toThrow(/larger than 1048576 bytes/);
  });
});
