// The API socket's place in the file system (docs/agent.md, "The API socket"). The socket's own directory is created 0700 when
// it is absent and never chmod-ed otherwise (it may be a shared 1777 directory). The socket is bound under a temporary name,
// made 0600 and renamed into place, so it is never reachable with looser permissions and a stale file is replaced atomically.
// A socket file some process still answers on is never taken over: that is another agent, and starting would cut it off.
import { randomBytes } from "node:crypto";
import { chmodSync, lstatSync, renameSync, statSync, unlinkSync, type Stats } from "node:fs";
import { createConnection, type Server } from "node:net";
import { basename, dirname, join } from "node:path";
import { ConfigError } from "./config.js";
import { makeDirectories, removeDirectories } from "./directories.js";
import { withFileLock } from "./registry/lock.js";

/** sun_path holds 108 bytes, the last one a NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
const PROBE_TIMEOUT_MS = 2000;

/**
 * A socket bound at its final path. `release` closes it, removes the path only while it is still this socket, and removes
 * the directories the claim created when they are empty again.
 */
export interface ClaimedSocket {
  release(): Promise<void>;
}

/**
 * Binds the API socket at `path` with `server`. Refuses (ConfigError naming `socket`) when the path is not a socket, when
 * an agent answers on it, or when it cannot be bound; a socket file nobody answers on is a killed agent's and is replaced.
 */
export async function claimSocket(path: string, server: Server): Promise<ClaimedSocket> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError("socket", `${path} is ${Buffer.byteLength(path)} bytes long`, `a path of at most ${MAX_SOCKET_PATH_BYTES} bytes (a unix socket's limit)`);
  }
  const dir = dirname(path);
  let made: string[];
  try {
    made = makeDirectories(dir, 0o700);
  } catch (e) {
    throw new ConfigError("socket", `cannot create its directory ${dir}: ${(e as Error).message}`, "a path in a writable directory");
  }
  try {
    // Two agents starting together must not both judge the same stale file and replace each other's socket.
    const ino = await withFileLock(`${path}.lock`, {}, async () => {
      await refuseIfInUse(path);
      return bindInPlace(path, server);
    });
    return {
      release: async () => {
        await release(server, path, ino);
        removeDirectories(made);
      },
    };
  } catch (e) {
    removeDirectories(made);
    if (e instanceof ConfigError) throw e;
    throw new ConfigError("socket", `cannot bind ${path}: ${(e as Error).message}`, "a path in a writable directory");
  }
}

async function refuseIfInUse(path: string): Promise<void> {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  if (!st.isSocket()) {
    throw new ConfigError("socket", `${path} exists and is ${fileKind(st)}, not a socket; weft will not replace it`, "a free path or a weft agent's old socket");
  }
  const other = await probe(path);
  if (other !== null) {
    throw new ConfigError("socket", `${path} is in use: ${other} answers on it`, "a socket path no running agent serves (each agent on a machine needs its own)");
  }
}

/** Who answers on `path`: a description of the live listener, or null for a stale socket file. */
function probe(path: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let text = "";
    let connected = false;
    const done = (answer: string | null) => {
      sock.destroy();
      resolve(answer);
    };
    sock.setTimeout(PROBE_TIMEOUT_MS, () => done("a process that accepts connections but does not answer"));
    sock.on("connect", () => {
      connected = true;
      sock.end(JSON.stringify({ op: "status" }) + "\n");
    });
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => (text += chunk));
    sock.on("end", () => done(describeAnswer(text)));
    sock.on("error", (err: NodeJS.ErrnoException) => {
      if (connected) done("a process that accepted and dropped the connection");
      else if (err.code === "ECONNREFUSED") resolve(null);
      else reject(new ConfigError("socket", `cannot tell whether ${path} is in use: ${err.code ?? err.message}`, "a socket path weft can connect to"));
      sock.destroy();
    });
  });
}

/** Who sent `text` in answer to a status request. */
function describeAnswer(text: string): string {
  let body: { ok?: unknown; result?: { nodeName?: unknown }; error?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    return "a process that is not a weft agent";
  }
  if (typeof body.result?.nodeName === "string") return `the weft agent of node ${JSON.stringify(body.result.nodeName)}`;
  if (typeof body.ok === "boolean") return `a weft agent (it answered: ${String(body.error ?? "no status")})`;
  return "a process that is not a weft agent";
}

/** Listens on a temporary name/** Listens on a temporary name beside `path`, makes it 0600, renames it over `path`; returns the socket's inode. */
async function bindInPlace(path: string, server: Server): Promise<number> {
  const temp = join(dirname(path), `.${randomBytes(8).toString("hex").slice(0, Math.max(1, basename(path).length - 1))}`);
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    server.once("error", fail);
    server.listen(temp, () => {
      server.off("error", fail);
      resolve();
    });
  });
  try {
    chmodSync(temp, 0o600);
    renameSync(temp, path);
    return statSync(path).ino;
  } catch (e) {
    await closeServer(server);
    throw e;
  }
}

async function release(server: Server, path: string, ino: number): Promise<void> {
  await closeServer(server);
  try {
    if (lstatSync(path).ino === ino) unlinkSync(path);
  } catch {
    // already gone
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

function fileKind(st: Stats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a directory";
  if (st.isSymbolicLink()) return "a symbolic link";
  return "a special file";
}
