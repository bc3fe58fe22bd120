/**
 * virtwork's CLI in-process: flags, dry-run, and the design's BDD scenarios against the Kubernetes
 * API test server through the real client.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "npm:yaml@^2.9.1";
import { main, type VirtworkDeps } from "../../cli/virtwork.ts";
import { decodeBase64 } from "../../lib/kubevirt/manifests.ts";
import { noopAuditor } from "../../lib/audit/mod.ts";
import type { K8sTestServerOptions } from "./k8s_server.ts";
import { kubevirtValidator, startCluster } from "./_helpers.ts";
import { formatProblems } from "./openapi_validator.ts";

/** Real public keys made with ssh-keygen; virtwork parses keys strictly. */
const ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZKz9W6QyVjphGNCQ9HPN4+I7FDP5bCzwJolwuYBUlN";
const RSA =
  "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCeYWiqdYP7ve/godhVOvy8OUIH2aVs6OAYO2q8qEG/KPhIH1PUdiBUDPfGtIVkvNo9iG86V6kwLtx3nQembbhHyTRcWLJ4P+l6kSCTlWCNuvVd4hE+JaKmaH0+7Z/FDezQztDQUKmx2A7dL0Wa6x7hHmJgok0L1BToCepNSy2fAPSTszIke3SVzJXK1fu4mZZ5lck1ZcyhOye6gKGJI/fdUA6/uC/pGXokoFefDlzdKqjnGoyZCvqjKMXvD6mHSaAAGtexHCX9EiNDzOO0pjwqU1L6+NJ2/DTftA7ZTWlEN/XxFDPKtSmq5YOXmvJRMGs64CFVdNB/ij0BoWEwp+s7";

interface Run {
  code: number;
  out: string;
  err: string;
}

async function virtwork(
  args: string[],
  deps: VirtworkDeps = {},
  onErr: (s: string) => void = () => {},
): Promise<Run> {
  let out = "";
  let err = "";
  const code = await main(args, {
    out: (s) => (out += s),
    err: (s) => {
      err += s;
      onErr(s);
    },
  }, {
    env: { HOME: "/nonexistent" },
    client: { baseBackoffMs: 2, maxBackoffMs: 20 },
    auditor: noopAuditor, // tests/audit covers the database; keep the working directory clean
    ...deps,
  });
  return { code, out, err };
}

// deno-lint-ignore no-explicit-any
type Any = any;

function docs(yaml: string): Any[] {
  return parseAllDocuments(yaml).map((d) => d.toJS());
}

/** Resolves once `cond()` holds, checking every 10 ms; rejects after a generous minute. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function withCluster(
  opts: K8sTestServerOptions,
  fn: (
    c: Awaited<ReturnType<typeof startCluster>> & { env: Record<string, string> },
  ) => Promise<void>,
): Promise<void> {
  const c = await startCluster(opts);
  const kubeconfig = await c.server.writeKubeconfig();
  try {
    await fn({ ...c, env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent" } });
  } finally {
    await c.close();
    await Deno.remove(kubeconfig);
  }
}

Deno.test("CLI: --help lists run and cleanup; unknown flags are usage errors (exit 2)", async () => {
  const help = await virtwork(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /run \[options\]/);
  assert.match(help.out, /cleanup \[options\]/);
  assert.equal((await virtwork(["run", "--bogus"])).code, 2);
});

Deno.test("BDD dry-run --workloads cpu: prints the VM and never contacts a cluster", async () => {
  await withCluster({}, async ({ server, env }) => {
    const r = await virtwork(["run", "--dry-run", "--workloads", "cpu"], { env });
    assert.equal(r.code, 0, r.err);
    assert.equal(server.requests.length, 0, "no request reached the API server");
    const objects = docs(r.out);
    // The cpu workload's user data is larger than KubeVirt takes inline: it travels in a Secret.
    assert.deepEqual(objects.map((o) => o.kind), ["Namespace", "Secret", "VirtualMachine"]);
    assert.equal(objects[2].metadata.name, "virtwork-cpu-1");
  });
});

Deno.test("dry-run of all workloads: every object printed, every VM valid against the KubeVirt schema", async () => {
  const r = await virtwork(["run", "--dry-run", "--ssh-key", `${ED} k`]);
  assert.equal(r.code, 0, r.err);
  const objects = docs(r.out);
  const kinds = objects.map((o) => o.kind);
  assert.equal(kinds.filter((k) => k === "VirtualMachine").length, 6);
  assert.equal(kinds.filter((k) => k === "Secret").length, 6);
  assert.equal(kinds.filter((k) => k === "Service").length, 1);
  assert.equal(kinds[0], "Namespace");
  assert.ok(kinds.lastIndexOf("Service") < kinds.indexOf("VirtualMachine"));
  const v = await kubevirtValidator();
  for (const vm of objects.filter((o) => o.kind === "VirtualMachine")) {
    const problems = v.validate("v1.VirtualMachine", vm);
    assert.equal(problems.length, 0, formatProblems(problems));
  }
});

Deno.test("dry-run redacts Secret data unless --show-secrets", async () => {
  const args = ["run", "--dry-run", "--workloads", "cpu", "--ssh-password", "Sup3r-s3cret"];
  const redacted = await virtwork(args);
  assert.equal(redacted.out.includes("Sup3r-s3cret"), false);
  assert.match(redacted.out, /redacted/);
  const shown = await virtwork([...args, "--show-secrets"]);
  const secret = docs(shown.out).find((o) => o.kind === "Secret");
  assert.match(decodeBase64(secret.data.userdata), /plain_text_passwd: Sup3r-s3cret/);
});

Deno.test("run flags shape the objects: namespace, counts, cores, memory, disk, image, SSH", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/keys`,
      `# team keys\n${ED} FILEKEY a\n\n${RSA} FILEKEY2 b\n`,
    );
    const r = await virtwork([
      "run",
      "--dry-run",
      "--show-secrets",
      "-n",
      "perf",
      "--workloads",
      "disk,network",
      "--vm-count",
      "2",
      "--cpu-cores",
      "3",
      "--memory",
      "3Gi",
      "--disk-size",
      "20Gi",
      "--container-disk-image",
      "quay.io/containerdisks/centos-stream:9",
      "--ssh-user",
      "ops",
      "--ssh-key",
      `${ED} FLAGKEY c`,
      "--ssh-key-file",
      `${dir}/keys`,
    ]);
    assert.equal(r.code, 0, r.err);
    const objects = docs(r.out);
    const vms = objects.filter((o) => o.kind === "VirtualMachine");
    assert.equal(vms.length, 6, "2 disk + 2 network pairs");
    for (const vm of vms) {
      assert.equal(vm.metadata.namespace, "perf");
      const t = vm.spec.template.spec;
      assert.equal(t.domain.cpu.cores, 3);
      assert.equal(t.domain.resources.requests.memory, "3Gi");
      assert.equal(t.volumes[0].containerDisk.image, "quay.io/containerdisks/centos-stream:9");
    }
    const disk = vms.find((v) => v.metadata.name === "virtwork-disk-1");
    assert.equal(disk.spec.dataVolumeTemplates[0].spec.storage.resources.requests.storage, "20Gi");
    const secret = objects.find((o) => o.kind === "Secret");
    const userData = decodeBase64(secret.data.userdata);
    assert.match(userData, /name: ops/);
    for (const k of ["FLAGKEY", "FILEKEY", "FILEKEY2"]) assert.match(userData, new RegExp(k));
    assert.doesNotMatch(userData, /team keys/);
    const client = objects.find((o) => o.metadata.name === "virtwork-network-client-1-userdata");
    assert.match(
      decodeBase64(client.data.userdata),
      /virtwork-iperf3-server\.perf\.svc\.cluster\.local/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config chain in the CLI: --config file < VIRTWORK_ env < flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/v.yaml`,
      "namespace: file-ns\nworkloads: [cpu]\nvm_count: 2\n",
    );
    const base = ["run", "--dry-run", "--config", `${dir}/v.yaml`];
    const names = (r: Run) =>
      docs(r.out).filter((o) => o.kind === "VirtualMachine").map((o) =>
        `${o.metadata.namespace}/${o.metadata.name}`
      );
    assert.deepEqual(names(await virtwork(base)), [
      "file-ns/virtwork-cpu-1",
      "file-ns/virtwork-cpu-2",
    ]);
    const env = { VIRTWORK_NAMESPACE: "env-ns", HOME: "/nonexistent" };
    assert.deepEqual(names(await virtwork(base, { env })), [
      "env-ns/virtwork-cpu-1",
      "env-ns/virtwork-cpu-2",
    ]);
    assert.deepEqual(
      names(await virtwork([...base, "-n", "flag-ns", "--vm-count", "1"], { env })),
      ["flag-ns/virtwork-cpu-1"],
    );
    const bad = await virtwork(["run", "--dry-run", "--workloads", "gpu"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unknown workload "gpu"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("BDD default run: 6 VMs (cpu 1, memory 1, disk 1, database 1, network 2), polls readiness, prints a summary", async () => {
  await withCluster({ readyAfterMs: () => 40 }, async ({ server, env }) => {
    const r = await virtwork(["run", "--poll-interval", "0.05"], { env });
    assert.equal(r.code, 0, r.err);
    const vms = server.objects("virtualmachines", "virtwork");
    assert.equal(vms.length, 6);
    const byComponent: Record<string, number> = {};
    for (const vm of vms) {
      const c = vm.metadata.labels["app.kubernetes.io/component"];
      byComponent[c] = (byComponent[c] ?? 0) + 1;
    }
    assert.deepEqual(byComponent, { cpu: 1, database: 1, disk: 1, memory: 1, network: 2 });
    assert.ok(
      server.requestsMatching("GET", /virtualmachineinstances$/).length >= 1,
      "polled VMIs",
    );
    const lines = r.out.split("\n");
    assert.match(lines[0]!, /^WORKLOAD\s+VM\s+ROLE\s+PHASE\s+READY IN$/);
    assert.equal(
      lines.filter((l) => /^\w+\s+virtwork-\S+\s+\w+\s+Running\s+\d+\.\ds$/.test(l)).length,
      6,
    );
    assert.match(r.out, /6\/6 VMs ready in namespace virtwork, run id [0-9a-f-]{36}/);
    assert.equal(r.out.includes("\x1b["), false, "no colour when not a terminal");
  });
});

Deno.test("run -o json prints the result; --no-wait skips polling", async () => {
  await withCluster({}, async ({ server, env }) => {
    const r = await virtwork(["run", "--workloads", "cpu,memory", "--no-wait", "-o", "json"], {
      env,
    });
    assert.equal(r.code, 0, r.err);
    const result = JSON.parse(r.out);
    assert.equal(result.waited, false);
    assert.deepEqual(result.vms.map((v: Any) => v.outcome), ["created", "created"]);
    assert.equal(server.requestsMatching("GET", /virtualmachineinstances/).length, 0);
  });
});

Deno.test("run: readiness timeout exits 4 and names the VMs that are not ready", async () => {
  await withCluster(
    { readyAfterMs: (n) => (n === "virtwork-memory-1" ? undefined : 10) },
    async ({ env }) => {
      const r = await virtwork([
        "run",
        "--workloads",
        "cpu,memory",
        "--timeout",
        "1",
        "--poll-interval",
        "0.05",
      ], { env });
      assert.equal(r.code, 4);
      assert.match(r.err, /virtwork-memory-1: not ready after 1s \(phase Scheduling\)/);
      assert.match(r.out, /1\/2 VMs ready/);
    },
  );
});

Deno.test("run: a 422 fails fast with exit 4, says what exists and never prints the password", async () => {
  let posts = 0;
  await withCluster({
    inject: (q) =>
      q.method === "POST" && q.resource === "virtualmachines" && ++posts === 2
        ? { status: 422, message: "spec.template.spec.domain: Invalid value" }
        : undefined,
  }, async ({ env }) => {
    const r = await virtwork(
      [
        "run",
        "--workloads",
        "cpu",
        "--vm-count",
        "5",
        "--ssh-password",
        "Sup3r-s3cret",
        "--burst",
        "1",
      ],
      { env },
    );
    assert.equal(r.code, 4);
    assert.match(
      r.err,
      /Error: create VirtualMachine virtwork\/virtwork-cpu-2: 422 Invalid: spec\.template\.spec\.domain: Invalid value/,
    );
    assert.match(r.err, /there are now 1 of 5 VMs/);
    assert.match(r.err, /virtwork cleanup --namespace virtwork --run-id [0-9a-f-]{36}/);
    assert.equal((r.out + r.err).includes("Sup3r-s3cret"), false);
  });
});

Deno.test("run: 401 exits 4 at once; an unreachable cluster exits 3; no config exits 3", async () => {
  await withCluster({ token: "expected" }, async ({ server, env }) => {
    server.options.token = "different";
    const r = await virtwork(["run", "--workloads", "cpu"], { env });
    assert.equal(r.code, 4);
    assert.match(r.err, /401 Unauthorized/);
    assert.equal(server.requests.length, 1);
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/kc`,
      JSON.stringify({
        clusters: [{
          name: "c",
          cluster: { server: `http://127.0.0.1:${port}`, "insecure-skip-tls-verify": true },
        }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const down = await virtwork(["run", "--workloads", "cpu", "--kubeconfig", `${dir}/kc`]);
    assert.equal(down.code, 3);
    assert.match(down.err, /cannot reach http:\/\/127\.0\.0\.1/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const none = await virtwork(["run", "--workloads", "cpu"], { env: { HOME: "/nonexistent" } });
  assert.equal(none.code, 3);
  assert.match(
    none.err,
    /no cluster configuration found \(tried: in-cluster service account; default \/nonexistent\/\.kube\/config\)/,
  );
});

Deno.test("run: Ctrl-C while waiting stops, exits 130 and says what exists", async () => {
  await withCluster({ readyAfterMs: () => undefined }, async ({ server, env }) => {
    // Ctrl-C once every VM's create was answered (its progress line), i.e. it is waiting; the
    // readiness watch was opened before the VMs were made.
    const ctl = new AbortController();
    let settled = false;
    let created = 0;
    const running = virtwork(
      ["run", "--workloads", "cpu,network", "--poll-interval", "3600"],
      { env, signal: ctl.signal },
      (s) => created += s.match(/^VM \S+ created$/gm)?.length ?? 0,
    ).finally(() => settled = true);
    const polled = () => server.requestsMatching("GET", /virtualmachineinstances/).length > 0;
    await until(() => settled || (polled() && created === 3), "the run to wait for its VMIs");
    assert.ok(!settled, "the run ended before it waited");
    ctl.abort(new Error("SIGINT"));
    await until(() => settled, "the run to stop after Ctrl-C (its poll interval is an hour)");
    const r = await running;
    assert.equal(r.code, 130);
    assert.match(r.err, /Interrupted: in namespace virtwork there are now 3 of 3 VMs, 1 Services/);
    assert.match(
      r.err,
      /VMs: virtwork-cpu-1, virtwork-network-server-1, virtwork-network-client-1/,
    );
  });
});

Deno.test("run: an unknown workload is bad input on its flag, variable or file line: exit 2, one line", async () => {
  const names = "cpu, database, disk, memory, network";
  const flag = await virtwork(["run", "--dry-run", "--workloads", "cpu,bogus"]);
  assert.equal(flag.code, 2);
  assert.equal(flag.out, "");
  assert.equal(
    flag.err,
    `Error: --workloads: unknown workload "bogus", expected one of: ${names}\n`,
  );
  const env = await virtwork(["run", "--dry-run"], {
    env: { VIRTWORK_WORKLOADS: "bogus", HOME: "/nonexistent" },
  });
  assert.equal(env.code, 2);
  assert.match(env.err, /^Error: env VIRTWORK_WORKLOADS: unknown workload "bogus"/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/v.yaml`,
      "namespace: a\nworkloads:\n  bogus:\n    vm_count: 1\n",
    );
    const file = await virtwork(["run", "--dry-run", "--config", `${dir}/v.yaml`]);
    assert.equal(file.code, 2);
    assert.match(file.err, /v\.yaml:\d+:\d+ workloads\.bogus: unknown workload "bogus"/);
    assert.equal(file.err.trim().split("\n").length, 1, file.err);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run: a VMI that fails ends the wait at once: exit 4, its phase and reason printed", async () => {
  await withCluster({ readyAfterMs: () => undefined }, async ({ server, env }) => {
    let settled = false;
    const running = virtwork(
      ["run", "--workloads", "cpu", "--timeout", "3600", "--poll-interval", "0.05"],
      { env },
    ).finally(() => settled = true);
    // The VMI exists once its VM was made; the run follows it from then on.
    const made = () => server.objects("virtualmachineinstances").length > 0;
    await until(() => settled || made(), "the run to make its VMI");
    assert.ok(!settled, "the run ended before it waited");
    server.failVmi("virtwork", "virtwork-cpu-1", "CrashedForTest");
    // The timeout is an hour: only a run that sees the failure ends within until()'s minute.
    await until(() => settled, "the run to end once its only VM failed");
    const r = await running;
    assert.equal(r.code, 4);
    assert.match(r.out, /virtwork-cpu-1 .*Failed/);
    assert.match(r.out, /0\/1 VMs ready, 1 failed/);
    assert.match(r.err, /virtwork-cpu-1: failed: VMI phase Failed \(CrashedForTest\)/);
  });
});

Deno.test("run: Ctrl-C while a VM create is in flight: the server holds exactly what the report names", async () => {
  const ctl = new AbortController();
  let seen = 0;
  // The abort comes while the second VM's POST is at the server, which then creates the VM.
  await withCluster({
    inject: (r) => {
      if (r.method === "POST" && r.resource === "virtualmachines" && !ctl.signal.aborted) {
        if (seen++ === 1) ctl.abort(new Error("SIGINT"));
      }
      return undefined;
    },
  }, async ({ server, env }) => {
    const r = await virtwork(["run", "--workloads", "cpu", "--vm-count", "3", "--burst", "1"], {
      env,
      signal: ctl.signal,
    });
    assert.equal(r.code, 130);
    assert.deepEqual(server.objects("virtualmachines").map((o) => o.metadata.name), [
      "virtwork-cpu-1",
    ]);
    assert.match(r.err, /Interrupted: in namespace virtwork there are now 1 of 3 VMs, 0 Services/);
    assert.match(r.err, /^VMs: virtwork-cpu-1$/m);
    assert.match(
      r.err,
      /^Rolled back \(in flight at the interrupt\): (Secret virtwork-cpu-2-userdata, )?VirtualMachine virtwork-cpu-2$/m,
    );
    assert.match(r.err, /virtwork cleanup --namespace virtwork --run-id \S+/);
  });
});

Deno.test("BDD cleanup: deletes all managed VMs and prints a summary", async () => {
  await withCluster({}, async ({ server, env }) => {
    assert.equal((await virtwork(["run", "--no-wait", "--ssh-password", "pw"], { env })).code, 0);
    assert.equal(server.objects("virtualmachines").length, 6);
    const r = await virtwork(["cleanup"], { env });
    assert.equal(r.code, 0, r.err);
    assert.equal(server.objects("virtualmachines").length, 0);
    assert.equal(server.objects("secrets").length, 0);
    assert.equal(server.objects("services").length, 0);
    assert.match(r.out, /deleted 6 VirtualMachines/);
    assert.match(r.out, /deleted 1 Service\n/);
    assert.match(r.out, /deleted 6 Secrets/);
    assert.match(r.out, /namespace kept/);
  });
});

Deno.test("cleanup --run-id --delete-namespace --wait; errors give exit 4", async () => {
  await withCluster({ deletionDelayMs: 50 }, async ({ server, env }) => {
    const first = JSON.parse(
      (await virtwork(["run", "--workloads", "cpu", "--no-wait", "-o", "json"], { env })).out,
    );
    const r = await virtwork(
      [
        "cleanup",
        "--run-id",
        first.runId,
        "--delete-namespace",
        "--wait",
        "--poll-interval",
        "0.02",
        "-o",
        "json",
      ],
      { env },
    );
    assert.equal(r.code, 0, r.err);
    const result = JSON.parse(r.out);
    assert.equal(result.namespaceDeleted, true);
    assert.equal(result.gone, true);
    assert.deepEqual(result.runIds, [first.runId]);
    assert.equal(server.objects("namespaces").length, 0);
  });
  await withCluster({}, async ({ server, env }) => {
    await virtwork(["run", "--workloads", "cpu,memory", "--no-wait"], { env });
    server.options.inject = (q) =>
      q.method === "DELETE" && q.name === "virtwork-cpu-1" ? { status: 500 } : undefined;
    const r = await virtwork(["cleanup"], { env, client: { maxAttempts: 2, baseBackoffMs: 1 } });
    assert.equal(r.code, 4);
    assert.match(r.out, /deleted 1 VirtualMachine\n/);
    assert.match(
      r.err,
      /error: VirtualMachine virtwork-cpu-1: delete VirtualMachine virtwork\/virtwork-cpu-1: 500/,
    );
  });
});

Deno.test("run --verbose reports progress and retries on stderr, never the password", async () => {
  let n = 0;
  await withCluster({
    inject: (q) =>
      q.method === "POST" && q.resource === "secrets" && n++ === 0 ? { status: 503 } : undefined,
  }, async ({ env }) => {
    const r = await virtwork(
      [
        "run",
        "--verbose",
        "--workloads",
        "cpu",
        "--ssh-password",
        "Sup3r-s3cret",
        "--poll-interval",
        "0.05",
      ],
      { env },
    );
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /cluster http:\/\/127\.0\.0\.1:\d+ \(KUBECONFIG .*\); run id /);
    assert.match(
      r.err,
      /retry 1 of create Secret virtwork\/virtwork-cpu-1-userdata in \d+ ms: .*503/,
    );
    assert.match(r.err, /VirtualMachine virtwork-cpu-1: created/);
    assert.match(r.err, /VM virtwork-cpu-1: ready after/);
    assert.equal((r.out + r.err).includes("Sup3r-s3cret"), false);
  });
});

Deno.test("run on a cluster without KubeVirt: exit 4 with a hint", async () => {
  await withCluster({
    inject: (q) =>
      q.resource === "virtualmachines"
        ? { status: 404, message: "the server could not find the requested resource" }
        : undefined,
  }, async ({ env }) => {
    const r = await virtwork(["run", "--workloads", "cpu"], { env });
    assert.equal(r.code, 4);
    assert.match(r.err, /404 NotFound: the server could not find the requested resource/);
    assert.match(r.err, /is KubeVirt installed\?/);
  });
});
