// weft's record of each attachment: what an ADD created, kept in the agent's stateDir so that DEL, GC and CHECK decide
// from it and never from what they find on the host (docs/cni.md, "Attachment records"):
//
//   <stateDir>/attachments/<sha256 of network/containerID/ifname>.json
//
// The file name is a hash so that any network name, container id or interface name fits (a file name has at most 255
// bytes); the full key is inside. ADD writes the record before it creates anything ("adding": the host veth's name, which
// the attachment determines) and again once the veth exists ("added": with the veth's ifindex and what was put on it).
// A record is replaced by rename, never edited in place: a reader or a restarted agent sees one whole version. Nothing is
// fsynced, for the reason ipam.ts gives: a power loss takes the veths with it.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Attachment, attachmentKey } from "./ipam.js";

export interface AttachmentRecord extends Attachment {
  /** "adding" from before the first change until the veth exists; "added" after. */
  phase: "adding" | "added";
  /** The host end of the pair; ifindex once created (a name alone proves nothing once the veth is gone and reused). */
  hostVeth: { name: string; ifindex?: number };
  /** The Pod's namespace as the ADD saw it. */
  netns: string;
  /** Addresses on the Pod's interface, gateways on the host veth, routes in the Pod and on the host. */
  addresses: string[];
  gateways: string[];
  podRoutes: { dst: string; gw?: string }[];
  hostRoutes: string[];
}

const TMP_PREFIX = ".tmp-";
let tmpCounter = 0;

const fileName = (a: Attachment): string => `${createHash("sha256").update(attachmentKey(a)).digest("hex")}.json`;

function parseRecord(text: string): AttachmentRecord | null {
  try {
    const r = JSON.parse(text) as Partial<AttachmentRecord>;
    const ok = typeof r.network === "string" && typeof r.containerID === "string" && typeof r.ifname === "string" &&
      (r.phase === "adding" || r.phase === "added") && typeof r.hostVeth?.name === "string";
    return ok ? (r as AttachmentRecord) : null;
  } catch {
    return null;
  }
}

export class AttachmentRecords {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "attachments");
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(this.dir)) if (name.startsWith(TMP_PREFIX)) rmSync(join(this.dir, name), { force: true });
  }

  /** The record of `a`, or null when weft holds none (or only an unreadable one). */
  read(a: Attachment): AttachmentRecord | null {
    try {
      const r = parseRecord(readFileSync(join(this.dir, fileName(a)), "utf8"));
      return r && attachmentKey(r) === attachmentKey(a) ? r : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  write(r: AttachmentRecord): void {
    const tmp = join(this.dir, `${TMP_PREFIX}${process.pid}-${++tmpCounter}`);
    writeFileSync(tmp, JSON.stringify(r), { mode: 0o600 });
    renameSync(tmp, join(this.dir, fileName(r)));
  }

  remove(a: Attachment): void {
    rmSync(join(this.dir, fileName(a)), { force: true });
  }

  /** Every readable record of `network`. */
  list(network: string): AttachmentRecord[] {
    const out: AttachmentRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      if (name.startsWith(TMP_PREFIX)) continue;
      let text: string;
      try {
        text = readFileSync(join(this.dir, name), "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      const r = parseRecord(text);
      if (r?.network === network && name === fileName(r)) out.push(r);
    }
    return out;
  }
}
