// weft_* metrics from the core's cumulative counters, and the /metrics and /healthz server.
import { afterEach, describe, expect, it } from "vitest";
import { startMetricsServer, WeftMetrics, type MetricsServer } from "../../src/control/metrics.js";
import { buildInfo } from "../../src/control/version.js";

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const peer = (nodeName: string, n: number) => ({ nodeName, txPackets: n, txBytes: n * 1000, rxPackets: 2 * n, rxBytes: 2000 * n });

describe("WeftMetrics", () => {
  it("turns cumulative counters into Prometheus counters, replacing rather than adding", async () => {
    const m = new WeftMetrics({ processMetrics: false });
    m.updateFromCounters({ tx_packets_in: 10, tx_drop_spoofed_source: 3, rx_drop_unknown_peer: 2 }, [peer("node2", 5), peer("node3", 1)]);
    m.updateFromCounters({ tx_packets_in: 25, tx_drop_spoofed_source: 4, rx_drop_unknown_peer: 2 }, [peer("node2", 7)]);
    const text = await m.text();
    expect(text).toContain("# TYPE weft_peer_tx_packets_total counter");
    expect(text).toContain('weft_peer_tx_packets_total{peer="node2"} 7');
    expect(text).toContain('weft_peer_tx_bytes_total{peer="node2"} 7000');
    expect(text).toContain('weft_peer_rx_packets_total{peer="node2"} 14');
    expect(text).toContain('weft_peer_rx_bytes_total{peer="node2"} 14000');
    expect(text).not.toContain('peer="node3"');
    expect(text).toContain('weft_drops_total{direction="tx",reason="spoofed_source"} 4');
    expect(text).toContain('weft_drops_total{direction="rx",reason="unknown_peer"} 2');
    expect(text).toContain('weft_core_events_total{event="tx_packets_in"} 25');
    expect(text).toContain("weft_peers 1");
  });

  it("exports each queue's intake by queue and direction, replacing rather than adding", async () => {
    const m = new WeftMetrics({ processMetrics: false });
    m.updateQueues([{ tx_packets_in: 1, rx_datagrams_in: 2 }, { tx_packets_in: 3, rx_datagrams_in: 4 }]);
    m.updateQueues([{ tx_packets_in: 5, rx_datagrams_in: 6 }, { tx_packets_in: 7, rx_datagrams_in: 8 }]);
    const text = await m.text();
    expect(text).toContain('weft_queue_packets_total{queue="0",direction="tx"} 5');
    expect(text).toContain('weft_queue_packets_total{queue="0",direction="rx"} 6');
    expect(text).toContain('weft_queue_packets_total{queue="1",direction="tx"} 7');
    expect(text).toContain('weft_queue_packets_total{queue="1",direction="rx"} 8');
  });

  it("counts refused node records by reason, and shows those refused now", async () => {
    const m = new WeftMetrics({ processMetrics: false });
    m.countRefusal("underlay_address");
    m.countRefusal("underlay_address");
    m.countRefusal("vni");
    m.setRefused({ underlay_address: 1, vni: 1 });
    m.setRefused({ underlay_address: 1 });
    const text = await m.text();
    expect(text).toContain("# TYPE weft_peer_records_refused_total counter");
    expect(text).toContain('weft_peer_records_refused_total{reason="underlay_address"} 2');
    expect(text).toContain('weft_peer_records_refused_total{reason="vni"} 1');
    expect(text).toContain('weft_peer_records_refused_current{reason="underlay_address"} 1');
    expect(text).not.toContain('weft_peer_records_refused_current{reason="vni"}');
  });

  it("exports CNI call durations by command; a command that is none of the spec's counts as invalid", async () => {
    const m = new WeftMetrics({ processMetrics: false });
    m.observeCniRequest("ADD", 0.0007);
    m.observeCniRequest("ADD", 0.003);
    m.observeCniRequest("DEL", 0.02);
    m.observeCniRequest("ADD\"}", 0.001);
    m.observeCniRequest(undefined, 0.001);
    const text = await m.text();
    expect(text).toContain("# TYPE weft_cni_request_duration_seconds histogram");
    expect(text).toContain('weft_cni_request_duration_seconds_bucket{le="0.0005",command="ADD"} 0');
    expect(text).toContain('weft_cni_request_duration_seconds_bucket{le="0.001",command="ADD"} 1');
    expect(text).toContain('weft_cni_request_duration_seconds_bucket{le="0.005",command="ADD"} 2');
    expect(text).toContain('weft_cni_request_duration_seconds_count{command="ADD"} 2');
    expect(text).toContain('weft_cni_request_duration_seconds_count{command="DEL"} 1');
    expect(text).toContain('weft_cni_request_duration_seconds_count{command="invalid"} 2');
    expect(text).not.toMatch(/command="ADD\\"/);
  });

  it("exports batch sizes, offload state and node info", async () => {
    const m = new WeftMetrics({ processMetrics: false });
    m.observeBatch("tx", 32);
    m.observeBatch("rx", 3, 2);
    m.setOffload({ tso: true, udp_gro: false });
    m.setInfo({ node: "node1", subnet: "10.244.1.0/24", vtepMAC: "02:5e:00:00:00:01", version: "9.9.9" });
    const text = await m.text();
    expect(text).toContain('weft_batch_size_bucket{le="16",direction="tx"} 0');
    expect(text).toContain('weft_batch_size_bucket{le="32",direction="tx"} 1');
    expect(text).toContain('weft_batch_size_count{direction="rx"} 2');
    expect(text).toContain('weft_batch_size_sum{direction="rx"} 6');
    expect(text).toContain('weft_offload{mode="tso"} 1');
    expect(text).toContain('weft_offload{mode="udp_gro"} 0');
    expect(text).toContain('weft_info{node="node1",subnet="10.244.1.0/24",vtep_mac="02:5e:00:00:00:01",version="9.9.9"} 1');
  });

  it("defaults the info version to this build's, as `weft --version` prints it (version-commit)", async () => {
    const m = new WeftMetrics({ processMetrics: false });
    m.setInfo({ node: "n", subnet: "10.244.1.0/24", vtepMAC: "02:00:00:00:00:01" });
    expect(await m.text()).toContain(`weft_info{node="n",subnet="10.244.1.0/24",vtep_mac="02:00:00:00:00:01",version="${buildInfo().id}"} 1`);
  });

  it("includes process metrics under weft_ by default", async () => {
    expect(await new WeftMetrics().text()).toContain("weft_process_cpu_seconds_total");
  });
});

describe("metrics server", () => {
  it("serves /metrics and /healthz, 404 elsewhere, 503 when unhealthy", async () => {
    const m = new WeftMetrics({ processMetrics: false });
    m.updateFromCounters({ rx_drop_wrong_vni: 1 }, []);
    let healthy = true;
    const server = await startMetricsServer(m, { host: "127.0.0.1", port: 0 }, { healthy: () => healthy });
    servers.push(server);
    expect(server.address.port).toBeGreaterThan(0);
    const base = `http://127.0.0.1:${server.address.port}`;
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toContain("text/plain");
    expect(await metrics.text()).toContain('weft_drops_total{direction="rx",reason="wrong_vni"} 1');
    const health = await fetch(`${base}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, "ok\n"]);
    healthy = false;
    expect((await fetch(`${base}/healthz`)).status).toBe(503);
    expect((await fetch(`${base}/status`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("rejects when the address is taken", async () => {
    const first = await startMetricsServer(new WeftMetrics({ processMetrics: false }), { host: "127.0.0.1", port: 0 });
    servers.push(first);
    await expect(startMetricsServer(new WeftMetrics({ processMetrics: false }), first.address)).rejects.toThrow(/EADDRINUSE/);
  });
});
