// Address parsing shared by the core's face, the control plane and the tests. Errors name the offending text.

export function parseIPv4(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
  let v = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
    v = v * 256 + Number(part);
  }
  return v >>> 0;
}

export function formatIPv4(v: number): string {
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
}

/** 16 bytes, network order. Accepts '::' compression and a trailing dotted quad. */
export function parseIPv6(text: string): Uint8Array {
  const bad = () => new Error(`not an IPv6 address: ${JSON.stringify(text)}`);
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.split("::").length > 2) throw bad();
  let groups: number[] = [];
  const half = (s: string): number[] => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    items.forEach((item, i) => {
      if (item.includes(".") && i === items.length - 1) {
        const v4 = parseIPv4(item);
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) throw bad();
        out.push(parseInt(item, 16));
      }
    });
    return out;
  };
  if (text.includes("::")) {
    const [head, tail] = text.split("::");
    const h = half(head);
    const t = half(tail);
    if (h.length + t.length > 7) throw bad();
    groups = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  } else {
    groups = half(text);
    if (groups.length !== 8) throw bad();
  }
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 255;
  });
  return bytes;
}

/** RFC 5952 text: lower case, the longest run of two or more zero groups shortened to '::'. */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((v) => v.toString(16)).join(":");
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
  const parts = text.split(":");
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMAC(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join(":");
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
