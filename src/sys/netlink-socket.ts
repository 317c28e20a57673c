// One NETLINK_ROUTE socket: send requests, collect their replies, turn NLMSG_ERROR into a SysError with the kernel's text.
// Several requests can go in one datagram (`batch`): the kernel handles them in order, each one whether or not an earlier
// one failed, and answers each under its own sequence number.
import { AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, SysError, addressOf, check, closeFd, intBytes, libc } from "./libc.js";
import { MESSAGE_NAMES, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_ROUTE, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP,
  type NlMessage, type NlRequest, SOL_NETLINK, parseError, splitMessages } from "./netlink-msg.js";

// The kernel keeps each netlink datagram (dump parts included) within 32 KiB. Every receive is synchronous and copies
// what it keeps, so one buffer serves every socket of the thread (a fresh 64 KiB per socket cost more than the socket).
const RECEIVE_BYTES = 64 * 1024;
const rx = new Uint8Array(RECEIVE_BYTES);

/** One request of a batch and what it is, for the error message. */
export interface NlStep {
  req: NlRequest;
  what: string;
}

/** What became of one request of a batch. */
export interface NlOutcome {
  /** Null when the kernel did it (a change's ACK, a query's replies). */
  error: SysError | null;
  /** A query's replies, payloads copied. */
  replies: NlMessage[];
}

/** A NETLINK_ROUTE socket, bound to the network namespace of the thread that opened it. */
export class Rtnl {
  readonly fd: number;
  private seq = 1;

  constructor() {
    this.fd = check("socket", libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "NETLINK_ROUTE");
    // Short ACKs that carry the kernel's own explanation of a refusal; an old kernel saying no is harmless.
    for (const opt of [NETLINK_CAP_ACK, NETLINK_EXT_ACK]) libc.setsockopt(this.fd, SOL_NETLINK, opt, intBytes(1), 4);
  }

  close(): void {
    closeFd(this.fd);
  }

  /**
   * Sends every request in one datagram and waits until each is answered: a change (built with NLM_F_ACK) by its ACK, a
   * query by its reply (a dump by its NLMSG_DONE), any of them by an error. Nothing throws for a refused request: each
   * outcome says.
   */
  batch(steps: readonly NlStep[]): NlOutcome[] {
    const first = this.seq;
    const parts = steps.map((s) => s.req.finish(this.seq++));
    const datagram = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      datagram.set(p, at);
      at += p.length;
    }
    check("write", libc.write(this.fd, addressOf(datagram), datagram.length), "netlink request");

    const outcomes: NlOutcome[] = steps.map(() => ({ error: null, replies: [] }));
    let open = steps.length;
    const settled = new Array<boolean>(steps.length).fill(false);
    while (open > 0) {
      const n = check("read", libc.read(this.fd, addressOf(rx), rx.length), "netlink reply");
      for (const m of splitMessages(rx.subarray(0, n))) {
        const i = m.seq - first;
        // Replies to requests an earlier call gave up on (it threw halfway) are not ours.
        if (i < 0 || i >= steps.length || settled[i]) continue;
        const { req, what } = steps[i];
        let done = false;
        if (m.type === NLMSG_ERROR) {
          const { errno, text } = parseError(m);
          if (errno !== 0) outcomes[i].error = new SysError(MESSAGE_NAMES[req.type] ?? `netlink type ${req.type}`, errno, text ? `${what}: ${text}` : what);
          done = true;
        } else if (m.type === NLMSG_DONE) {
          done = true;
        } else {
          outcomes[i].replies.push({ ...m, payload: m.payload.slice() });
          // A query without NLM_F_ACK that is no dump has its one reply; a change with NLM_F_ACK waits for the ACK.
          done = (req.flags & NLM_F_DUMP) !== NLM_F_DUMP && (req.flags & NLM_F_ACK) === 0;
        }
        if (done) {
          settled[i] = true;
          open--;
        }
      }
    }
    return outcomes;
  }

  /** Sends a change (built with NLM_F_ACK) and waits for the kernel's acknowledgement; a refusal throws. */
  change(req: NlRequest, what: string): void {
    const [outcome] = this.batch([{ req, what }]);
    if (outcome.error) throw outcome.error;
  }

  /** Sends a query; returns its reply (or, for NLM_F_DUMP, every reply) with payloads copied; a refusal throws. */
  query(req: NlRequest, what: string): NlMessage[] {
    const [outcome] = this.batch([{ req, what }]);
    if (outcome.error) throw outcome.error;
    return outcome.replies;
  }
}

/** Runs `fn` with a NETLINK_ROUTE socket of the calling thread's current namespace, closed afterwards. */
export function rtnl<T>(fn: (nl: Rtnl) => T): T {
  const nl = new Rtnl();
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}
