// CNI errors: the spec's well-known codes, the error type every handler throws, and how any failure becomes the JSON the
// front end prints. Nothing leaves the service as an exception.
import { SysError } from "../sys/libc.js";

/** Well-known error codes (CNI spec 1.1.0, "Error"). */
export const ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  /** Plugin-specific (≥ 100): CHECK found the container's network unlike its prevResult. The spec has no code for it. */
  CHECK_MISMATCH: 100,
} as const;

export class CniError extends Error {
  constructor(readonly code: number, msg: string, readonly details?: string) {
    super(msg);
    this.name = "CniError";
  }
}

export interface CniErrorOutput {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/**
 * Any thrown value as a CNI error. System calls (netlink, setns, the file system) that fail are I/O failures; so is
 * anything unexpected, with what it was in `details`.
 */
export function asCniError(err: unknown, doing: string): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof SysError) return new CniError(ERR.IO, `${doing}: ${err.message}`);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return new CniError(ERR.IO, `${doing}: ${(err as Error).message}`);
  const message = err instanceof Error ? err.message : String(err);
  return new CniError(ERR.IO, `${doing}: ${message}`, err instanceof Error ? err.stack : undefined);
}

export function errorOutput(err: CniError, cniVersion: string): CniErrorOutput {
  const out: CniErrorOutput = { cniVersion, code: err.code, msg: err.message };
  if (err.details) out.details = err.details;
  return out;
}
