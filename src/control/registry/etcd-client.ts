// The etcd registry's connection (docs/registry-etcd.md): client options (endpoints, TLS files, call deadlines) and the
// bounded wait for etcd at start.
import { readFileSync } from "node:fs";
import { EtcdLeaseInvalidError, type IOptions } from "etcd3";
import type { Logger } from "pino";
import { ConfigError, type EtcdRegistryConfig } from "../config.js";

/** Waits between tries to reach etcd again (watch resumes, re-lists, retakes, start). */
export const RESUME_BACKOFF_MS = [200, 500, 1000, 2000, 5000];

export function clientOptions(config: EtcdRegistryConfig, callTimeoutMs: number): IOptions {
  const read = (path: string | undefined) => (path === undefined ? undefined : readFileSync(path));
  const tls = config.caFile !== undefined || config.certFile !== undefined;
  return {
    hosts: config.endpoints,
    ...(tls && {
      credentials: {
        // Without a CA file gRPC verifies against the system's roots.
        rootCertificate: read(config.caFile) as Buffer,
        privateKey: read(config.keyFile),
        certChain: read(config.certFile),
      },
    }),
    dialTimeout: callTimeoutMs,
    // A unary call to a member that hangs must not hang the agent; streams (watch, keepalive) have their own checks.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    grpcOptions: { "grpc.max_receive_message_length": 256 * 1024 * 1024 },
  };
}

/** Runs `attempt` until it succeeds, etcd refuses our config, or `timeoutMs` passes; says once what it waits for. */
export async function untilReachable<T>(endpoints: string[], timeoutMs: number, log: Logger, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let failures = 0; ; failures++) {
    try {
      return await attempt();
    } catch (err) {
      if (err instanceof ConfigError || err instanceof EtcdLeaseInvalidError) throw err;
      if (Date.now() > deadline) {
        throw new Error(`etcd at ${endpoints.join(", ")} unreachable for ${timeoutMs / 1000} s: ${(err as Error).message}`);
      }
      if (failures === 0) log.warn({ endpoints, err: (err as Error).message }, "etcd unreachable; waiting");
      await sleep(RESUME_BACKOFF_MS[Math.min(failures, RESUME_BACKOFF_MS.length - 1)]);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
