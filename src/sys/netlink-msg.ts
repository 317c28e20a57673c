// rtnetlink wire format: constants, a message builder (nlmsghdr + fixed struct + rtattrs, nests included) and parsers.
// Everything is host byte order (little-endian here) except addresses, which are network order.

// <linux/netlink.h>
export const NETLINK_ROUTE = 0;
export const SOL_NETLINK = 270;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
const NLA_TYPE_MASK = 0x3fff;

// <linux/rtnetlink.h>
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RTPROT_STATIC = 4;
export const RTN_UNICAST = 1;
export const RTN_BLACKHOLE = 6;
export const RTNH_F_ONLINK = 0x4;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
export const RT_SCOPE_NOWHERE = 255;
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_TABLE = 15;

// <linux/if_link.h>, <linux/veth.h>, <linux/if.h>, <linux/if_addr.h>
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_FD = 28;
export const IFLA_NUM_TX_QUEUES = 31;
export const IFLA_NUM_RX_QUEUES = 32;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const VETH_INFO_PEER = 1;
export const IFF_UP = 0x1;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_NOPREFIXROUTE = 0x200;

const NLMSGHDR_SIZE = 16;
export const IFINFOMSG_SIZE = 16;
export const IFADDRMSG_SIZE = 8;
export const RTMSG_SIZE = 12;

const align4 = (n: number) => (n + 3) & ~3;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const MESSAGE_NAMES: Record<number, string> = {
  [RTM_NEWLINK]: "RTM_NEWLINK", [RTM_DELLINK]: "RTM_DELLINK", [RTM_GETLINK]: "RTM_GETLINK",
  [RTM_NEWADDR]: "RTM_NEWADDR", [RTM_DELADDR]: "RTM_DELADDR", [RTM_GETADDR]: "RTM_GETADDR",
  [RTM_NEWROUTE]: "RTM_NEWROUTE", [RTM_DELROUTE]: "RTM_DELROUTE", [RTM_GETROUTE]: "RTM_GETROUTE",
};

/** Builds one netlink request: header, the message type's fixed struct, then attributes. */
export class NlRequest {
  readonly type: number;
  readonly flags: number;
  private bytes = new Uint8Array(256);
  private dv = new DataView(this.bytes.buffer);
  private len = NLMSGHDR_SIZE;

  constructor(type: number, flags: number) {
    this.type = type;
    this.flags = flags;
  }

  private reserve(n: number): number {
    const at = this.len;
    const need = at + align4(n);
    if (need > this.bytes.length) {
      const grown = new Uint8Array(Math.max(need, this.bytes.length * 2));
      grown.set(this.bytes);
      this.bytes = grown;
      this.dv = new DataView(grown.buffer);
    }
    this.len = need;
    return at;
  }

  /** Appends raw bytes (a fixed struct: ifinfomsg, ifaddrmsg, rtmsg), padded to 4. */
  raw(data: Uint8Array): this {
    this.bytes.set(data, this.reserve(data.length));
    return this;
  }

  attr(type: number, data: Uint8Array): this {
    this.bytes.set(data, this.header(type, data.length) + 4);
    return this;
  }

  u32(type: number, value: number): this {
    const at = this.header(type, 4);
    this.dv.setUint32(at + 4, value, true);
    return this;
  }

  /** A NUL-terminated string attribute. */
  string(type: number, value: string): this {
    const text = encoder.encode(value);
    const at = this.header(type, text.length + 1);
    this.bytes.set(text, at + 4);
    this.bytes[at + 4 + text.length] = 0;
    return this;
  }

  /** Reserves an attribute of `length` payload bytes and writes its header; returns where the attribute starts. */
  private header(type: number, length: number): number {
    const at = this.reserve(4 + length);
    this.dv.setUint16(at, 4 + length, true);
    this.dv.setUint16(at + 2, type, true);
    return at;
  }

  /** A nested attribute: everything `body` adds lands inside it. */
  nest(type: number, body: (req: this) => void): this {
    const at = this.reserve(4);
    body(this);
    this.dv.setUint16(at, this.len - at, true);
    this.dv.setUint16(at + 2, type, true);
    return this;
  }

  /** The finished message with its length and sequence number. */
  finish(seq: number): Uint8Array {
    this.dv.setUint32(0, this.len, true);
    this.dv.setUint16(4, this.type, true);
    this.dv.setUint16(6, this.flags, true);
    this.dv.setUint32(8, seq, true);
    this.dv.setUint32(12, 0, true);
    return this.bytes.subarray(0, this.len);
  }
}

export function ifinfomsg(fields: { family?: number; index?: number; flags?: number; change?: number }): Uint8Array {
  const b = new Uint8Array(IFINFOMSG_SIZE);
  const dv = new DataView(b.buffer);
  b[0] = fields.family ?? 0;
  dv.setInt32(4, fields.index ?? 0, true);
  dv.setUint32(8, fields.flags ?? 0, true);
  dv.setUint32(12, fields.change ?? 0, true);
  return b;
}

export function ifaddrmsg(fields: { family: number; prefixLen: number; flags?: number; scope?: number; index: number }): Uint8Array {
  const b = new Uint8Array(IFADDRMSG_SIZE);
  b[0] = fields.family;
  b[1] = fields.prefixLen;
  b[2] = fields.flags ?? 0;
  b[3] = fields.scope ?? RT_SCOPE_UNIVERSE;
  new DataView(b.buffer).setUint32(4, fields.index, true);
  return b;
}

export interface RtmsgFields {
  family: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}

export function rtmsg(f: RtmsgFields): Uint8Array {
  const b = new Uint8Array(RTMSG_SIZE);
  b.set([f.family, f.dstLen, 0, 0, f.table < 256 ? f.table : 0, f.protocol, f.scope, f.type]);
  new DataView(b.buffer).setUint32(8, f.flags, true);
  return b;
}

// ---- parsing ------------------------------------------------------------------------------------------------------------

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** The bytes after the nlmsghdr (a view, valid until the next receive). */
  payload: Uint8Array;
}

/** The netlink messages in one datagram. */
export function splitMessages(data: Uint8Array): NlMessage[] {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: NlMessage[] = [];
  for (let at = 0; at + NLMSGHDR_SIZE <= data.length; ) {
    const len = dv.getUint32(at, true);
    if (len < NLMSGHDR_SIZE || at + len > data.length) break;
    out.push({
      type: dv.getUint16(at + 4, true),
      flags: dv.getUint16(at + 6, true),
      seq: dv.getUint32(at + 8, true),
      payload: data.subarray(at + NLMSGHDR_SIZE, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** Attributes from `at` to the end of `data`, by type (nested flag masked off); values are views. */
export function parseAttrs(data: Uint8Array, at = 0): Map<number, Uint8Array> {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const attrs = new Map<number, Uint8Array>();
  while (at + 4 <= data.length) {
    const len = dv.getUint16(at, true);
    if (len < 4 || at + len > data.length) break;
    attrs.set(dv.getUint16(at + 2, true) & NLA_TYPE_MASK, data.subarray(at + 4, at + len));
    at += align4(len);
  }
  return attrs;
}

export const attrU32 = (v: Uint8Array | undefined): number | undefined =>
  v && v.length >= 4 ? new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true) : undefined;

export const attrString = (v: Uint8Array | undefined): string | undefined => {
  if (!v) return undefined;
  const end = v.indexOf(0);
  return decoder.decode(end < 0 ? v : v.subarray(0, end));
};

/** An NLMSG_ERROR payload: errno (0 = ACK) and the kernel's extended-ack text when it sent one. */
export function parseError(msg: NlMessage): { errno: number; text?: string } {
  const p = msg.payload;
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const errno = -dv.getInt32(0, true);
  if (!(msg.flags & NLM_F_ACK_TLVS) || p.length < 4 + NLMSGHDR_SIZE) return { errno };
  const tlvAt = msg.flags & NLM_F_CAPPED ? 4 + NLMSGHDR_SIZE : 4 + align4(dv.getUint32(4, true));
  return { errno, text: attrString(parseAttrs(p, tlvAt).get(NLMSGERR_ATTR_MSG)) };
}
