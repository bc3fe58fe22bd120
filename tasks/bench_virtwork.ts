#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env
/**
 * Benchmark: `virtwork run` of many VMs against the Kubernetes API test server with injected
 * latency, through the real client and its rate limit; prints the wall time.
 *
 * Usage: `deno task bench:virtwork [--vms 200] [--latency-ms 20] [--ready-ms 500] [--qps 20] [--burst 20]`
 * @module
 */
import { parseArgs } from "node:util";
import { main } from "../cli/virtwork.ts";
import { K8sTestServer } from "../tests/virtwork/k8s_server.ts";
import { KUBEVIRT_SCHEMA_PATH, OpenApiValidator } from "../tests/virtwork/openapi_validator.ts";

/** Benchmark settings. */
export interface BenchOptions {
  vms: number;
  latencyMs: number;
  readyMs: number;
  qps: number;
  burst: number;
}

/** Benchmark outcome. */
export interface BenchResult {
  exitCode: number;
  wallSeconds: number;
  vmsCreated: number;
  vmsReady: number;
  requests: number;
  maxInFlight: number;
}

/** Runs the benchmark once. */
export async function benchVirtwork(o: BenchOptions): Promise<BenchResult> {
  const server = K8sTestServer.start({
    latencyMs: o.latencyMs,
    readyAfterMs: () => o.readyMs,
    validator: await OpenApiValidator.fromFile(KUBEVIRT_SCHEMA_PATH),
  });
  const kubeconfig = await server.writeKubeconfig();
  let out = "";
  let err = "";
  try {
    const t0 = performance.now();
    const exitCode = await main(
      [
        "run",
        "--workloads",
        "cpu",
        "--vm-count",
        String(o.vms),
        "--qps",
        String(o.qps),
        "--burst",
        String(o.burst),
        "--poll-interval",
        "0.5",
        "--timeout",
        "600",
        "-o",
        "json",
        // The audit trail costs ~0.4 ms a record; keep the benchmark's figure about the cluster
        // calls, and leave no virtwork.db behind.
        "--no-audit",
      ],
      { out: (s) => (out += s), err: (s) => (err += s) },
      { env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent" } },
    );
    const wallSeconds = (performance.now() - t0) / 1000;
    if (exitCode !== 0) throw new Error(`virtwork run exited ${exitCode}: ${err}`);
    const result = JSON.parse(out) as { vms: { ready: boolean }[] };
    return {
      exitCode,
      wallSeconds,
      vmsCreated: server.objects("virtualmachines").length,
      vmsReady: result.vms.filter((v) => v.ready).length,
      requests: server.requests.length,
      maxInFlight: server.maxInFlight,
    };
  } finally {
    await server.close();
    await Deno.remove(kubeconfig);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      vms: { type: "string", default: "200" },
      "latency-ms": { type: "string", default: "20" },
      "ready-ms": { type: "string", default: "500" },
      qps: { type: "string", default: "20" },
      burst: { type: "string", default: "20" },
    },
  });
  const o: BenchOptions = {
    vms: Number(values.vms),
    latencyMs: Number(values["latency-ms"]),
    readyMs: Number(values["ready-ms"]),
    qps: Number(values.qps),
    burst: Number(values.burst),
  };
  const r = await benchVirtwork(o);
  console.log(
    `virtwork run: ${r.vmsCreated} VMs created, ${r.vmsReady} ready, ${r.requests} API requests ` +
      `(max ${r.maxInFlight} in flight), ${o.latencyMs} ms latency, qps ${o.qps}/burst ${o.burst}: ` +
      `wall time ${r.wallSeconds.toFixed(2)} s`,
  );
}
