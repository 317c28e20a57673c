// One agent's registry work in its own process, for the cross-process concurrency tests. Implements nothing itself: it
// runs the sources under src/ (forked with TS_EXEC_ARGV from test/helpers/ts-child.ts). Protocol: sends {ready}, waits for
// any message, does its work, sends the result.
// argv: mode ("upsert" | "lease"), registry file, nodeName, index, stateDir
import { FileRegistry } from "../../../src/control/registry/file.js";
import { acquireLease } from "../../../src/control/lease.js";
import { deriveVtepMAC } from "../../../src/control/config.js";
import { createLogger } from "../../../src/control/log.js";

const [mode, path, nodeName, index, stateDir] = process.argv.slice(2);
const log = createLogger({ level: "warn", name: nodeName });
const registry = new FileRegistry({ path, nodeName, log, lock: { timeoutMs: 30_000 } });
const i = Number(index);
const publicIP = `192.168.${i >> 8}.${(i & 255) + 1}`;
const vtepMAC = deriveVtepMAC(nodeName);

async function work() {
  if (mode === "upsert") {
    const record = { nodeName, publicIP, subnet: `10.244.${i + 1}.0/24`, vtepMAC, vni: 1 };
    await registry.upsertSelf(record);
    return record;
  }
  const config = { nodeName, clusterCIDR: "10.244.0.0/16", subnetLen: 24, publicIP, vni: 1, vtepMAC, stateDir };
  return acquireLease(config, registry);
}

// Forked with an IPC channel: send is always there.
const send = (message: unknown, then?: () => void) => process.send!(message, undefined, undefined, then);

process.once("message", () => {
  work().then(
    (record) => send({ ok: true, record }, () => process.exit(0)),
    (err: unknown) => send({ ok: false, error: err instanceof Error ? err.message : String(err) }, () => process.exit(1)),
  );
});
send({ ready: true });
