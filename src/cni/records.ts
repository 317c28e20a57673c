// weft's record of each attachment: what an ADD created, kept in the agent's stateDir so that DEL, GC and CHECK decide
// from it and never from what they find on the host (docs/cni.md, "Attachment records"):
//
//   <stateDir>/attachments/<sha256 of network/containerID/ifname>.json
//
// The file name is a hash so that any network name, container id or interface name fits (a file name has at most 255
// bytes); the full key is inside. ADD writes the record before it creates anything ("adding": the host veth's name, which
// the attachment determines) and again once the veth exists ("added": with the veth's ifindex and what was put on it).
// The file holds one JSON line per version, the first renamed into place whole, each later one appended by a single
// write; the last whole line is the record. A process killed mid-write leaves at worst a last line cut short, which no
// reader takes for a record (a prefix of a JSON object never parses), so the version before it stands. Appending, not
// replacing by rename: on ext4, renaming over a file flushes the new one to disk at once (~0.2 ms here, every ADD).
// Nothing is fsynced, for the reason ipam.ts gives: a power loss takes the veths with it.
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Attachment, attachmentKey } from "./ipam.js";
import { SpareFiles } from "./spares.js";

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

const fileName = (a: Attachment): string => `${createHash("sha256").update(attachmentKey(a)).digest("hex")}.json`;

function parseVersion(line: string): AttachmentRecord | null {
  try {
    const r = JSON.parse(line) as Partial<AttachmentRecord>;
    const ok = typeof r.network === "string" && typeof r.containerID === "string" && typeof r.ifname === "string" &&
      (r.phase === "adding" || r.phase === "added") && typeof r.hostVeth?.name === "string";
    return ok ? (r as AttachmentRecord) : null;
  } catch {
    return null;
  }
}

/** The newest whole version in a record file's text. */
function parseRecord(text: string): AttachmentRecord | null {
  const lines = text.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const r = lines[i] === "" ? null : parseVersion(lines[i]);
    if (r) return r;
  }
  return null;
}

export class AttachmentRecords {
  readonly dir: string;

  /** Files made ahead for `create`: <stateDir>/.spare-<pid>-<n> (spares.ts), beside the directory, not in it. */
  private readonly spares: SpareFiles;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "attachments");
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.spares = new SpareFiles(stateDir, ".spare-");
  }

  /** The record of `a`, or null when weft holds none (or only an unreadable one). */
  read(a: Attachment): AttachmentRecord | null {
    const path = join(this.dir, fileName(a));
    // Every ADD asks for a record that is mostly not there: answered without building an ENOENT error.
    if (!existsSync(path)) return null;
    try {
      const r = parseRecord(readFileSync(path, "utf8"));
      return r && attachmentKey(r) === attachmentKey(a) ? r : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /**
   * Starts the record of `r`'s attachment afresh, whole from the start: written into a spare file, renamed into place over
   * whatever was there (an unreadable file: read gave null).
   */
  create(r: AttachmentRecord): void {
    const spare = this.spares.fill(`${JSON.stringify(r)}\n`);
    try {
      renameSync(spare, join(this.dir, fileName(r)));
    } catch (err) {
      rmSync(spare, { force: true });
      throw err;
    }
  }

  /** A newer version of a record that `create` started. */
  update(r: AttachmentRecord): void {
    appendFileSync(join(this.dir, fileName(r)), `${JSON.stringify(r)}\n`);
  }

  remove(a: Attachment): void {
    rmSync(join(this.dir, fileName(a)), { force: true });
  }

  /** Every readable record of `network`. */
  list(network: string): AttachmentRecord[] {
    const out: AttachmentRecord[] = [];
    for (const name of readdirSync(this.dir)) {
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
