/**
 * `virtwork run --target`: the libvirt target's required flags are checked before anything is
 * contacted (exit 2, one line naming the flag), bad target, OS and results settings are usage
 * errors, and the KubeVirt target stays the default. `--results-after` and `--report` on KubeVirt
 * against the Kubernetes API test server: a results table and a JSON report of every VM.
 */
import assert from "node:assert/strict";
import { main, type VirtworkDeps } from "../../cli/virtwork.ts";
import { entryDetails, noopAuditor, SqliteAuditor } from "../../lib/audit/mod.ts";
import { startCluster } from "./_helpers.ts";

async function virtwork(args: string[], deps: VirtworkDeps = {}) {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) }, {
    env: { HOME: "/nonexistent" },
    auditor: noopAuditor,
    ...deps,
  });
  return { code, out, err };
}

function assertUsageError(r: { code: number; out: string; err: string }, message: RegExp): void {
  assert.equal(r.code, 2, r.err);
  assert.equal(r.out, "");
  assert.match(r.err, message);
  assert.equal(r.err.trim().split("\n").length, 1, `one line, got:\n${r.err}`);
}

const LIBVIRT = ["--image", "debian-12.qcow2", "--bridge", "br-vw", "--subnet", "10.77.0.0/24"];

Deno.test("run --dry-run --target libvirt without --image, --bridge or --subnet: exit 2 naming the flag", async () => {
  for (const [drop, flag] of [[0, "--image"], [2, "--bridge"], [4, "--subnet"]] as const) {
    const args = LIBVIRT.filter((_, i) => i !== drop && i !== drop + 1);
    const r = await virtwork(["run", "--dry-run", "--target", "libvirt", ...args]);
    assertUsageError(r, new RegExp(`^Error: ${flag}: required with --target libvirt`));
  }
});

Deno.test("VIRTWORK_TARGET=libvirt needs the libvirt settings too", async () => {
  const r = await virtwork(["run", "--dry-run", "--bridge", "b", "--subnet", "10.1.0.0/24"], {
    env: { HOME: "/nonexistent", VIRTWORK_TARGET: "libvirt" },
  });
  assertUsageError(r, /--image: required with --target libvirt/);
});

Deno.test("a bad --target, --os or --results-after is a usage error naming the flag", async () => {
  assertUsageError(
    await virtwork(["run", "--dry-run", "--target", "vmware"]),
    /--target: must be one of kubevirt, libvirt, got "vmware"/,
  );
  assertUsageError(
    await virtwork(["run", "--dry-run", "--os", "windows"]),
    /--os: must be one of fedora, centos, debian, ubuntu, got "windows"/,
  );
  assertUsageError(
    await virtwork(["run", "--dry-run", "--results-after", "100000"]),
    /--results-after: must be from 0 to 86400, got 100000/,
  );
  assertUsageError(
    await virtwork([
      "run",
      "--dry-run",
      "--target",
      "libvirt",
      "--image",
      "i",
      "--bridge",
      "b",
      "--subnet",
      "10.1.0.0/33",
    ]),
    /--subnet: /,
  );
});

Deno.test("run --dry-run --target kubevirt is the default's output; --os debian is accepted", async () => {
  const plain = await virtwork(["run", "--dry-run", "--workloads", "cpu"]);
  const explicit = await virtwork([
    "run",
    "--dry-run",
    "--workloads",
    "cpu",
    "--target",
    "kubevirt",
  ]);
  assert.equal(plain.code, 0, plain.err);
  assert.equal(explicit.code, 0, explicit.err);
  // Run ids differ; everything else is the same document.
  const strip = (s: string) => s.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "ID");
  assert.equal(strip(explicit.out), strip(plain.out));
  const debian = await virtwork(["run", "--dry-run", "--workloads", "cpu", "--os", "debian"]);
  assert.equal(debian.code, 0, debian.err);
  assert.match(debian.out, /^kind: VirtualMachine$/m);
});

Deno.test("run --results-after --report on KubeVirt: a results table and a report of every VM", async () => {
  const { server, close } = await startCluster({ readyAfterMs: () => 20 });
  const kubeconfig = await server.writeKubeconfig();
  const dir = await Deno.makeTempDir({ prefix: "virtwork-report-" });
  // The cpu guest prints two samples (a kernel message between); the server prints an error
  // line; the client's console stays silent.
  server.setConsole("virtwork", "virtwork-cpu-1", [
    'VIRTWORK-RESULT {"v":1,"workload":"cpu","t":1,"metrics":{"bogo_ops_per_s":1000}}',
    "[   12.3] random: crng init done",
    'x VIRTWORK-RESULT {"v":1,"workload":"cpu","t":2,"metrics":{"bogo_ops_per_s":1234.5}}',
  ]);
  server.setConsole("virtwork", "virtwork-network-server-1", [
    'VIRTWORK-RESULT {"v":1,"workload":"network","t":1,"error":"iperf3 is not installed"}',
  ]);
  try {
    const report = `${dir}/report.json`;
    const auditor = SqliteAuditor.open(":memory:");
    const r = await virtwork(
      [
        "run",
        "--workloads",
        "cpu,network",
        "--poll-interval",
        "0.02",
        "--results-after",
        "1",
        "--report",
        report,
      ],
      { env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent" }, auditor },
    );
    // The server's guest said its workload cannot run: the run fails (4) and says why.
    assert.equal(r.code, 4, r.err);
    assert.match(
      r.err,
      /^virtwork-network-server-1: workload network cannot run: iperf3 is not installed$/m,
    );
    assert.doesNotMatch(r.err, /virtwork-cpu-1: workload/);
    assert.match(r.out, /^VM\s+WORKLOAD\s+RESULTS$/m);
    assert.match(r.out, /^virtwork-cpu-1\s+cpu\s+bogo_ops_per_s=1234\.5$/m);
    assert.match(r.out, /^virtwork-network-server-1\s+network\s+error: iperf3 is not installed$/m);
    assert.match(r.out, /^virtwork-network-client-1\s+network\s+no figures reported$/m);
    assert.match(r.out, /^1\/3 VMs reported figures$/m);
    const doc = JSON.parse(await Deno.readTextFile(report));
    assert.equal(doc.target, "kubevirt");
    assert.match(doc.runId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(doc.vms.map((v: { name: string }) => v.name), [
      "virtwork-cpu-1",
      "virtwork-network-server-1",
      "virtwork-network-client-1",
    ]);
    assert.deepEqual(doc.vms.map((v: { results: unknown }) => v.results), [
      { bogo_ops_per_s: 1234.5 },
      {},
      {},
    ]);
    assert.equal(doc.vms[1].resultError, "iperf3 is not installed");
    assert.equal(server.openConsoles, 0, "every console was closed");
    // The audit trail keeps the same figures, through the one subscriber.
    const audited = entryDetails(auditor.db, doc.runId)!;
    auditor.close();
    assert.equal(audited.entry.status, "failed");
    assert.match(
      audited.entry.errorSummary ?? "",
      /1 of 3 workloads cannot run: virtwork-network-server-1/,
    );
    assert.deepEqual(audited.vms.map((v) => [v.name, v.results, v.resultError]), [
      ["virtwork-cpu-1", { bogo_ops_per_s: 1234.5 }, null],
      ["virtwork-network-server-1", {}, "iperf3 is not installed"],
      ["virtwork-network-client-1", {}, null],
    ]);
    for (const v of doc.vms) {
      assert.equal(v.ready, true);
      assert.equal(typeof v.results, "object");
      // Milliseconds from the creation request by measured phase name (issue 13's report).
      assert.ok(v.phases.VMIRunning >= 0, JSON.stringify(v.phases));
    }
  } finally {
    await close();
    await Deno.remove(kubeconfig);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report to a path that cannot be written: exit 1 after the run, and it says which file", async () => {
  const { server, close } = await startCluster({ readyAfterMs: () => 5 });
  const kubeconfig = await server.writeKubeconfig();
  try {
    const r = await virtwork(
      [
        "run",
        "--workloads",
        "cpu",
        "--poll-interval",
        "0.02",
        "--report",
        "/nonexistent/dir/r.json",
      ],
      { env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent" } },
    );
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /cannot write the report \/nonexistent\/dir\/r\.json/);
  } finally {
    await close();
    await Deno.remove(kubeconfig);
  }
});

Deno.test("examples/virtwork/*.yaml load as virtwork configurations of their target", async () => {
  const { loadVirtworkConfig } = await import("../../lib/virtwork/config.ts");
  const dir = new URL("../../examples/virtwork/", import.meta.url);
  const kube = await loadVirtworkConfig({ configPath: new URL("kubevirt.yaml", dir).pathname });
  assert.equal(kube.target, "kubevirt");
  assert.equal(kube.resultsAfter, 120);
  assert.deepEqual(kube.selected.map((w) => [w.name, w.config.vmCount]), [
    ["cpu", 2],
    ["database", 1],
    ["disk", 1],
    ["memory", 1],
    ["network", 1],
  ]);
  const lv = await loadVirtworkConfig({ configPath: new URL("libvirt.yaml", dir).pathname });
  assert.deepEqual([lv.target, lv.bridge, lv.subnet, lv.os], [
    "libvirt",
    "br-virtwork",
    "10.77.0.0/24",
    "debian",
  ]);
});

Deno.test("audit show lists the figures --results-after stored", async () => {
  const { server, close } = await startCluster({ readyAfterMs: () => 5 });
  const kubeconfig = await server.writeKubeconfig();
  const dir = await Deno.makeTempDir({ prefix: "virtwork-audit-results-" });
  server.setConsole("virtwork", "virtwork-disk-1", [
    'VIRTWORK-RESULT {"v":1,"workload":"disk","t":1,"metrics":{"write_iops":850,"read_p99_ms":4.1}}',
  ]);
  try {
    const env = { KUBECONFIG: kubeconfig, HOME: "/nonexistent", VIRTWORK_AUDIT_DB: `${dir}/a.db` };
    const deps = { env, auditor: undefined } as unknown as VirtworkDeps;
    const run = await virtwork(
      [
        "run",
        "--workloads",
        "disk",
        "--poll-interval",
        "0.02",
        "--results-after",
        "1",
        "-o",
        "json",
      ],
      deps,
    );
    assert.equal(run.code, 0, run.err);
    const runId = JSON.parse(run.out).runId;
    const show = await virtwork(["audit", "show", runId], deps);
    assert.equal(show.code, 0, show.err);
    assert.match(show.out, /^Results:$/m);
    assert.match(show.out, /^virtwork-disk-1\s+disk\s+write_iops=850 read_p99_ms=4\.1$/m);
  } finally {
    await close();
    await Deno.remove(kubeconfig);
    await Deno.remove(dir, { recursive: true });
  }
});
