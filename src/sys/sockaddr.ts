// struct sockaddr_in / sockaddr_in6 as bytes, and 16-byte addresses (IPv4 as ::ffff:a.b.c.d) read back out of them.
import { formatIPv4, formatIPv6, parseIPAny } from "../net/addr.js";
import { AF_INET, AF_INET6 } from "./libc.js";

export type Family = 4 | 6;

export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;
/** Room for either, 8-aligned. */
export const SOCKADDR_SLOT = 32;

const SA_FAMILY = 0;
const SA_PORT = 2;
const SIN_ADDR = 4;
const SIN6_ADDR = 8;

export function sockaddrSize(family: Family): number {
  return family === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
}

function isMapped(addr16: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (addr16[i] !== 0) return false;
  return addr16[10] === 0xff && addr16[11] === 0xff;
}

/**
 * The sockaddr a socket of `family` uses for `address`:`port`. An IPv4 address on an IPv6 socket becomes ::ffff:a.b.c.d
 * (the socket must be dual-stack); an IPv6 address on an IPv4 socket is an error.
 */
export function sockaddr(family: Family, address: string, port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`port out of range: ${port}`);
  const addr16 = parseIPAny(address);
  const bytes = new Uint8Array(sockaddrSize(family));
  const dv = new DataView(bytes.buffer);
  dv.setUint16(SA_PORT, port);
  if (family === 4) {
    if (!isMapped(addr16)) throw new Error(`an IPv4 socket cannot reach IPv6 address ${address}`);
    dv.setUint16(SA_FAMILY, AF_INET, true);
    bytes.set(addr16.subarray(12), SIN_ADDR);
  } else {
    dv.setUint16(SA_FAMILY, AF_INET6, true);
    bytes.set(addr16, SIN6_ADDR);
  }
  return bytes;
}

/**
 * Reads the sockaddr at `at`: writes its address as 16 bytes to `out[outAt..]` (IPv4 as ::ffff:a.b.c.d) and returns its
 * port, or −1 when the family is neither AF_INET nor AF_INET6. No allocation.
 */
export function readSockaddr(u8: Uint8Array, dv: DataView, at: number, out: Uint8Array, outAt: number): number {
  const family = dv.getUint16(at + SA_FAMILY, true);
  if (family === AF_INET6) {
    out.set(u8.subarray(at + SIN6_ADDR, at + SIN6_ADDR + 16), outAt);
  } else if (family === AF_INET) {
    out.fill(0, outAt, outAt + 10);
    out[outAt + 10] = 0xff;
    out[outAt + 11] = 0xff;
    out.set(u8.subarray(at + SIN_ADDR, at + SIN_ADDR + 4), outAt + 12);
  } else {
    return -1;
  }
  return dv.getUint16(at + SA_PORT);
}

/** A 16-byte address as text: dotted quad when it is IPv4-mapped. */
export function formatAddress16(addr16: Uint8Array): string {
  if (isMapped(addr16)) return formatIPv4(new DataView(addr16.buffer, addr16.byteOffset + 12, 4).getUint32(0));
  return formatIPv6(addr16);
}

/** A whole sockaddr as { address, port } (cold path). */
export function decodeSockaddr(bytes: Uint8Array): { address: string; port: number } {
  const addr16 = new Uint8Array(16);
  const port = readSockaddr(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, addr16, 0);
  if (port < 0) throw new Error("not an AF_INET/AF_INET6 sockaddr");
  return { address: formatAddress16(addr16), port };
}
