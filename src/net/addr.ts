// Address parsing shared by the core's face, the control plane and the tests. Errors name the offending text.

/** "a.b.c.d" → u32 in host order (a<<24 | b<<16 | c<<8 | d). */
export function parseIPv4(text: string): number {
  // One pass over the characters: a peer table of thousands of nodes parses as many addresses at once.
  let addr = 0;
  let octet = 0;
  let digits = 0;
  let octets = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (digits === 0 || octets === 4) return explainIPv4(text);
      addr = addr * 256 + octet;
      octets++;
      octet = 0;
      digits = 0;
    } else {
      if (c < ZERO || c > ZERO + 9 || digits === 3 || (digits === 1 && octet === 0)) return explainIPv4(text);
      octet = octet * 10 + (c - ZERO);
      digits++;
      if (octet > 255) return explainIPv4(text);
    }
  }
  return octets === 4 ? addr : explainIPv4(text);
}

const DOT = 46;
const ZERO = 48;

/** Throws the error saying what is wrong with an address parseIPv4 refused. */
function explainIPv4(text: string): never {
  const parts = text.split(".");
  if (parts.length !== 4) throw new Error(`invalid IPv4 address "${text}": expected four dotted decimal octets`);
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) {
      throw new Error(`invalid IPv4 address "${text}": octet "${part}" is not 0..255`);
    }
  }
  throw new Error(`invalid IPv4 address "${text}"`);
}

export function formatIPv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

/** An IPv6 address (RFC 4291 text forms: "::" compression, trailing dotted IPv4) → 16 bytes, network order. */
export function parseIPv6(text: string): Uint8Array {
  const bad = (why: string): never => {
    throw new Error(`invalid IPv6 address "${text}": ${why}`);
  };
  const halves = text.split("::");
  if (halves.length > 2) bad('"::" may appear only once');
  const groupsOf = (part: string, endsAddress: boolean): number[] => {
    if (part === "") return [];
    const groups: number[] = [];
    const pieces = part.split(":");
    pieces.forEach((piece, i) => {
      if (endsAddress && i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIPv4(piece);
        groups.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        bad(`group "${piece}" is not 1-4 hex digits`);
      }
    });
    return groups;
  };
  const head = groupsOf(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groupsOf(halves[1], true) : [];
  if (halves.length === 1 && head.length !== 8) bad("expected 8 groups");
  if (halves.length === 2 && head.length + tail.length > 7) bad('too many groups around "::"');
  const groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >>> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/** 16 bytes → the RFC 5952 canonical text form. */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Any IP address as 16 bytes: IPv6 as is, IPv4 as ::ffff:a.b.c.d (how the core keys peers by underlay address). */
export function parseIPAny(text: string): Uint8Array {
  if (text.includes(":")) return parseIPv6(text);
  const v4 = parseIPv4(text);
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  new DataView(bytes.buffer).setUint32(12, v4);
  return bytes;
}

export function parseMAC(text: string): Uint8Array {
  if (text.length === 17) {
    const bytes = new Uint8Array(6);
    let ok = true;
    for (let i = 0; i < 6 && ok; i++) {
      const hi = hexValue(text.charCodeAt(3 * i));
      const lo = hexValue(text.charCodeAt(3 * i + 1));
      ok = hi >= 0 && lo >= 0 && (i === 5 || text.charCodeAt(3 * i + 2) === COLON);
      bytes[i] = (hi << 4) | lo;
    }
    if (ok) return bytes;
  }
  const parts = text.split(":");
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

const COLON = 58;
const HEX_PAIRS = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function hexValue(c: number): number {
  if (c >= ZERO && c <= ZERO + 9) return c - ZERO;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

export function formatMAC(bytes: Uint8Array): string {
  const h = HEX_PAIRS;
  return `${h[bytes[0]]}:${h[bytes[1]]}:${h[bytes[2]]}:${h[bytes[3]]}:${h[bytes[4]]}:${h[bytes[5]]}`;
}

export interface Cidr {
  family: 4 | 6;
  /** Network-order bytes, host bits cleared: 4 or 16 of them. */
  bytes: Uint8Array;
  len: number;
}

export function parseCIDR(text: string): Cidr {
  const slash = text.indexOf("/");
  if (slash < 0) throw new Error(`not a CIDR (missing /len): ${JSON.stringify(text)}`);
  const addr = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  const family: 4 | 6 = addr.includes(":") ? 6 : 4;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw new Error(`bad prefix length in ${JSON.stringify(text)}`);
  const len = Number(lenText);
  let bytes: Uint8Array;
  if (family === 4) {
    bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, parseIPv4(addr));
  } else {
    bytes = parseIPv6(addr);
  }
  for (let bit = len; bit < max; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
  return { family, bytes, len };
}

export function cidrToString(c: Cidr): string {
  return `${c.family === 4 ? formatIPv4(new DataView(c.bytes.buffer, c.bytes.byteOffset).getUint32(0)) : formatIPv6(c.bytes)}/${c.len}`;
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.len < outer.len) return false;
  for (let bit = 0; bit < outer.len; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((outer.bytes[bit >> 3] & m) !== (inner.bytes[bit >> 3] & m)) return false;
  }
  return true;
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** Address bytes (4 or 16, network order) as an unsigned integer, for arithmetic on subnets. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

export function bigIntToBytes(v: bigint, length: 4 | 16): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return bytes;
}

/** Address bytes (4 or 16) as text. */
export function formatIPBytes(bytes: Uint8Array): string {
  return bytes.length === 4 ? `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}` : formatIPv6(bytes);
}

/** How many /len subnets `outer` holds (len ≥ outer.len). */
export function subnetCount(outer: Cidr, len: number): bigint {
  return 1n << BigInt(len - outer.len);
}

/** The index-th /len subnet of `outer`, counting from 0 at outer's network address. */
export function nthSubnet(outer: Cidr, len: number, index: bigint): Cidr {
  const width = outer.family === 4 ? 32 : 128;
  const start = bytesToBigInt(outer.bytes) + (index << BigInt(width - len));
  return { family: outer.family, bytes: bigIntToBytes(start, outer.family === 4 ? 4 : 16), len };
}

/** The address n places after a CIDR's network address, as text (n = 1: the first host, our gateway). */
export function nthAddress(c: Cidr, n: number | bigint): string {
  const v = bytesToBigInt(c.bytes) + BigInt(n);
  return formatIPBytes(bigIntToBytes(v, c.family === 4 ? 4 : 16));
}
