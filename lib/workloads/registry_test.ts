import assert from "node:assert/strict";
import {
  ALL_WORKLOAD_NAMES,
  CpuWorkload,
  DatabaseWorkload,
  defaultRegistry,
  DiskWorkload,
  MemoryWorkload,
  NetworkWorkload,
  Registry,
  UnknownWorkloadError,
  withDataDiskSize,
  withNamespace,
  withSshCredentials,
  type WorkloadConfig,
} from "./mod.ts";

const config: WorkloadConfig = { enabled: true, vmCount: 2, cpuCores: 4, memory: "1Gi" };

Deno.test("defaultRegistry() has the five workloads, listed sorted", () => {
  const r = defaultRegistry();
  assert.equal(r.size, 5);
  assert.deepEqual(r.list(), [...ALL_WORKLOAD_NAMES]);
  assert.deepEqual(r.list(), [...r.list()].sort());
});

Deno.test("Registry.get() returns each workload type by name", () => {
  const r = defaultRegistry();
  const types = {
    cpu: CpuWorkload,
    memory: MemoryWorkload,
    database: DatabaseWorkload,
    network: NetworkWorkload,
    disk: DiskWorkload,
  };
  for (const [name, type] of Object.entries(types)) {
    const w = r.get(name, config);
    assert.ok(w instanceof type, name);
    assert.equal(w.name, name);
  }
});

Deno.test("Registry.get() rejects an unknown name and lists the available ones", () => {
  assert.throws(() => defaultRegistry().get("gpu", config), (e: unknown) => {
    assert.ok(e instanceof UnknownWorkloadError);
    assert.match(e.message, /"gpu"/);
    assert.match(e.message, /cpu, database, disk, memory, network/);
    assert.deepEqual(e.available, [...ALL_WORKLOAD_NAMES]);
    return true;
  });
});

Deno.test("Registry.get() passes config and options to the factory", () => {
  const r = defaultRegistry();
  const w = r.get(
    "network",
    config,
    withNamespace("perf"),
    withSshCredentials({ user: "u", authorizedKeys: ["k"] }),
  ) as NetworkWorkload;
  assert.deepEqual(w.resources(), { cpuCores: 4, memoryBytes: 2 ** 30 });
  assert.equal(w.vmCount(), 4);
  assert.equal(w.namespace, "perf");
  assert.equal(w.serverHost(), "virtwork-iperf3-server.perf.svc.cluster.local");
  assert.equal(w.carriesCredentials(), true);
  const d = r.get("disk", config, withDataDiskSize("42Gi"));
  assert.equal(d.dataDisks()[0]!.sizeBytes, 42 * 2 ** 30);
});

Deno.test("Registry with custom factories lists and creates only those", () => {
  const r = new Registry({ only: (p) => new CpuWorkload(p) });
  assert.deepEqual(r.list(), ["only"]);
  assert.equal(r.has("cpu"), false);
  assert.equal(r.get("only", config).vmCount(), 2);
});
