// weft's system layer: every libc call the agent makes, through koffi, in one place.
export * from "./libc.js";
export * from "./tun.js";
export * from "./udp.js";
export * from "./batchio.js";
export * from "./netns.js";
export * from "./netlink.js";
export { formatAddress16, readSockaddr, decodeSockaddr, sockaddrSize, SOCKADDR_SLOT } from "./sockaddr.js";
