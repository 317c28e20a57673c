// The agent's CNI service (docs/cni.md): the native front end forwards each plugin call (its CNI_* environment and stdin) and prints
// what comes back. Calls route to one handler per command; whatever goes wrong comes back as the spec's error JSON with
// exit code 1, never as an exception.
import { cmdAdd } from "./add.js";
import { cmdCheck } from "./check.js";
import { CURRENT_NETNS } from "../sys/netns.js";
import { Rtnl } from "../sys/netlink.js";
import { type Env, LATEST_VERSION, netnsIdOf, parseNetConf, peekVersion } from "./config.js";
import type { CniContext, CniServiceOptions } from "./context.js";
import { cmdDel } from "./del.js";
import { CniError, ERR, asCniError, errorOutput } from "./errors.js";
import { cmdGc } from "./gc.js";
import { BuiltinIpam } from "./ipam.js";
import { Phases } from "./phases.js";
import { VethReaper } from "./reaper.js";
import { AttachmentRecords } from "./records.js";
import { cmdStatus, versionInfo } from "./status.js";

export type { CniServiceOptions } from "./context.js";

export interface CniRequest {
  env: Record<string, string>;
  stdin: string;
}

export interface CniReply {
  code: 0 | 1;
  /** A result JSON, an error JSON, or "" (DEL, CHECK, GC, STATUS succeed silently). */
  output: string;
}

export interface CniService {
  handle(req: CniRequest): Promise<CniReply>;
  /** Refuses new calls (code 11) and waits for those under way. */
  close(): Promise<void>;
}

/** Calls for one attachment run one at a time (the runtime should not overlap them; if it does, they queue). */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}

export function createCniService(opts: CniServiceOptions): CniService {
  const ctx: CniContext = {
    opts,
    log: opts.log,
    builtin: new BuiltinIpam({ subnet: opts.subnet, subnetV6: opts.subnetV6, stateDir: opts.stateDir }),
    reaper: new VethReaper(),
    records: new AttachmentRecords(opts.stateDir),
    // Host veths land in the namespace of the thread that creates the service: the agent's own.
    ownNetns: netnsIdOf(CURRENT_NETNS),
    host: new Rtnl(),
    inFlight: new Set(),
  };
  const queue = new KeyedQueue();
  const running = new Set<Promise<CniReply>>();
  let closing = false;
  let closed: Promise<void> | undefined;

  async function dispatch(env: Env, stdin: string, phases: Phases): Promise<string> {
    const command = env.CNI_COMMAND;
    if (!command) throw new CniError(ERR.INVALID_ENV, "CNI_COMMAND is missing (ADD, DEL, CHECK, GC, STATUS or VERSION)");
    if (command === "VERSION") return versionInfo(stdin);
    if (closing) throw new CniError(ERR.TRY_AGAIN_LATER, "the weft agent is shutting down");
    const attachment = `${env.CNI_CONTAINERID ?? ""}/${env.CNI_IFNAME ?? ""}`;
    switch (command) {
      case "ADD":
        return queue.run(attachment, () => {
          const conf = parseNetConf(stdin);
          phases.lap("parse");
          return cmdAdd(ctx, conf, env, phases);
        });
      case "DEL":
        return queue.run(attachment, () => cmdDel(ctx, parseNetConf(stdin), env)).then(() => "");
      case "CHECK":
        return queue.run(attachment, () => cmdCheck(ctx, parseNetConf(stdin), env)).then(() => "");
      case "GC":
        return cmdGc(ctx, parseNetConf(stdin), env).then(() => "");
      case "STATUS":
        return cmdStatus(ctx, parseNetConf(stdin), env).then(() => "");
      default:
        throw new CniError(ERR.INVALID_ENV, `CNI_COMMAND ${JSON.stringify(command)} is not one of ADD, DEL, CHECK, GC, STATUS, VERSION`);
    }
  }

  async function handleOne(req: CniRequest): Promise<CniReply> {
    const started = performance.now();
    const phases = new Phases();
    const env: Env = { ...(req?.env ?? {}) };
    const stdin = typeof req?.stdin === "string" ? req.stdin : "";
    try {
      const output = await dispatch(env, stdin, phases);
      opts.log.debug({ command: env.CNI_COMMAND, containerID: env.CNI_CONTAINERID, ms: +(performance.now() - started).toFixed(3),
        phases: phases.ms }, "CNI call done");
      return { code: 0, output };
    } catch (err) {
      const e = asCniError(err, `CNI ${env.CNI_COMMAND ?? "call"}`);
      opts.log.warn({ command: env.CNI_COMMAND, containerID: env.CNI_CONTAINERID, ifname: env.CNI_IFNAME, code: e.code, msg: e.message,
        details: e.details }, "CNI call failed");
      return { code: 1, output: JSON.stringify(errorOutput(e, peekVersion(stdin) ?? LATEST_VERSION)) };
    }
  }

  return {
    handle(req) {
      const reply = handleOne(req).catch((err: unknown): CniReply => ({
        code: 1,
        output: JSON.stringify({ cniVersion: LATEST_VERSION, code: ERR.IO, msg: `weft CNI service: ${String(err)}` }),
      }));
      running.add(reply);
      void reply.finally(() => running.delete(reply));
      return reply;
    },
    close() {
      closing = true;
      closed ??= Promise.allSettled([...running]).then(() => ctx.host.close());
      return closed;
    },
  };
}
