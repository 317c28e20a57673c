// One NETLINK_ROUTE socket: send a request, collect its replies, turn NLMSG_ERROR into a SysError with the kernel's text.
import { AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, SysError, addressOf, check, closeFd, intBytes, libc } from "./libc.js";
import { MESSAGE_NAMES, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_ROUTE, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, type NlMessage,
  type NlRequest, SOL_NETLINK, parseError, splitMessages } from "./netlink-msg.js";

// The kernel keeps each netlink datagram (dump parts included) within 32 KiB.
const RECEIVE_BYTES = 64 * 1024;

/** A NETLINK_ROUTE socket, bound to the network namespace of the thread that opened it. */
export class Rtnl {
  readonly fd: number;
  private seq = 1;
  private readonly rx = new Uint8Array(RECEIVE_BYTES);

  constructor() {
    this.fd = check("socket", libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "NETLINK_ROUTE");
    // Short ACKs that carry the kernel's own explanation of a refusal; an old kernel saying no is harmless.
    for (const opt of [NETLINK_CAP_ACK, NETLINK_EXT_ACK]) libc.setsockopt(this.fd, SOL_NETLINK, opt, intBytes(1), 4);
  }

  close(): void {
    closeFd(this.fd);
  }

  private send(req: NlRequest): number {
    const seq = this.seq++;
    const bytes = req.finish(seq);
    check("write", libc.write(this.fd, addressOf(bytes), bytes.length), "netlink request");
    return seq;
  }

  /** Reads replies to `seq` until NLMSG_DONE, an ACK, or `onMessage` returns true; NLMSG_ERROR ≠ 0 throws. */
  private receive(req: NlRequest, seq: number, what: string, onMessage: (m: NlMessage) => boolean): void {
    for (;;) {
      const n = check("read", libc.read(this.fd, addressOf(this.rx), this.rx.length), "netlink reply");
      for (const m of splitMessages(this.rx.subarray(0, n))) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const { errno, text } = parseError(m);
          if (errno === 0) return;
          throw new SysError(MESSAGE_NAMES[req.type] ?? `netlink type ${req.type}`, errno, text ? `${what}: ${text}` : what);
        }
        if (m.type === NLMSG_DONE || onMessage(m)) return;
      }
    }
  }

  /** Sends a change (built with NLM_F_ACK) and waits for the kernel's acknowledgement. */
  change(req: NlRequest, what: string): void {
    this.receive(req, this.send(req), what, () => false);
  }

  /** Sends a query; returns its reply (or, for NLM_F_DUMP, every reply) with payloads copied. */
  query(req: NlRequest, what: string): NlMessage[] {
    const out: NlMessage[] = [];
    const dump = (req.flags & NLM_F_DUMP) === NLM_F_DUMP;
    this.receive(req, this.send(req), what, (m) => {
      out.push({ ...m, payload: m.payload.slice() });
      return !dump;
    });
    return out;
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
