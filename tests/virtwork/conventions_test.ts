/**
 * Conventions of virtwork a daily user reaches for, through main() against the Kubernetes API
 * test server: global options at the root, run's progress (one line per VM when piped, a live
 * line on a terminal), run-id prefixes in cleanup, the no-cluster hint, usage errors exit 2, and
 * every `VIRTWORK_*` variable documented.
 */
import assert from "node:assert/strict";
import { main, type VirtworkDeps } from "../../cli/virtwork.ts";
import type { Io } from "../../cli/_program.ts";
import { noopAuditor } from "../../lib/audit/mod.ts";
import { VIRTWORK_CONFIG_SCHEMA } from "../../lib/kubevirt/config.ts";
import type { K8sTestServerOptions } from "./k8s_server.ts";
import { startCluster } from "./_helpers.ts";

const CLEAR = "\r\x1b[2K";
/** Any SGR (colour) sequence. */
const SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`);

interface Run {
  code: number;
  out: string;
  err: string;
}

async function virtwork(
  args: string[],
  deps: VirtworkDeps = {},
  isTerminal?: boolean,
): Promise<Run> {
  let out = "";
  let err = "";
  const io: Io = {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    ...(isTerminal !== undefined ? { isTerminal } : {}),
  };
  const code = await main(args, io, {
    env: { HOME: "/nonexistent" },
    client: { baseBackoffMs: 2, maxBackoffMs: 20 },
    auditor: noopAuditor,
    ...deps,
  });
  return { code, out, err };
}

async function withCluster(
  opts: K8sTestServerOptions,
  fn: (
    c: Awaited<ReturnType<typeof startCluster>> & { kubeconfig: string },
  ) => Promise<void>,
): Promise<void> {
  const c = await startCluster(opts);
  const kubeconfig = await c.server.writeKubeconfig();
  try {
    await fn({ ...c, kubeconfig });
  } finally {
    await c.close();
    await Deno.remove(kubeconfig);
  }
}

Deno.test("virtwork: --namespace, --kubeconfig and --config are taken at the root too", async () => {
  await withCluster({}, async ({ server, kubeconfig }) => {
    const dir = await Deno.makeTempDir();
    try {
      const cfg = `${dir}/virtwork.yaml`;
      await Deno.writeTextFile(cfg, "workloads: [cpu]\nvm_count: 2\n");
      const r = await virtwork([
        "--namespace",
        "root-ns",
        "--kubeconfig",
        kubeconfig,
        "--config",
        cfg,
        "run",
        "--no-wait",
      ]);
      assert.equal(r.code, 0, r.err);
      const names = server.objects("virtualmachines", "root-ns").map((o) => o.metadata.name);
      assert.deepEqual(names.sort(), ["virtwork-cpu-1", "virtwork-cpu-2"]);

      // A subcommand's own flag still works, and wins over the root's when both are given.
      const dry = await virtwork([
        "-n",
        "outer",
        "run",
        "--dry-run",
        "-n",
        "inner",
        "--config",
        cfg,
      ]);
      assert.equal(dry.code, 0, dry.err);
      assert.match(dry.out, /namespace: inner/);
      assert.doesNotMatch(dry.out, /namespace: outer/);

      const clean = await virtwork([
        "--namespace",
        "root-ns",
        "--kubeconfig",
        kubeconfig,
        "cleanup",
      ]);
      assert.equal(clean.code, 0, clean.err);
      assert.match(clean.out, /deleted 2 VirtualMachines/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("virtwork run piped prints one line per VM created, ready and failed on stderr", async () => {
  await withCluster(
    { readyAfterMs: (n) => (n === "virtwork-cpu-2" ? undefined : 20) },
    async (c) => {
      const running = virtwork([
        "run",
        "--kubeconfig",
        c.kubeconfig,
        "--workloads",
        "cpu",
        "--vm-count",
        "2",
        "--poll-interval",
        "0.05",
        "--timeout",
        "120",
      ]);
      // The second VM never gets ready by itself: fail its VMI once it exists.
      const deadline = Date.now() + 60_000;
      while (
        !c.server.objects("virtualmachineinstances", "virtwork").some((o) =>
          o.metadata.name === "virtwork-cpu-2"
        )
      ) {
        if (Date.now() > deadline) throw new Error("VMI virtwork-cpu-2 never appeared");
        await new Promise((r) => setTimeout(r, 10));
      }
      c.server.failVmi("virtwork", "virtwork-cpu-2");
      const r = await running;
      assert.notEqual(r.code, 0);
      assert.match(r.err, /^VM virtwork-cpu-1 created$/m);
      assert.match(r.err, /^VM virtwork-cpu-2 created$/m);
      assert.match(r.err, /^VM virtwork-cpu-1 ready after \d+\.\ds$/m);
      assert.match(r.err, /^VM virtwork-cpu-2 failed: VMI phase Failed/m);
      assert.ok(!r.err.includes("\x1b"), "no live line when piped");
    },
  );
});

Deno.test("virtwork run on a terminal shows one live line: ready, failed, elapsed, timeout", async () => {
  await withCluster({ readyAfterMs: () => 20 }, async (c) => {
    const args = [
      "run",
      "--kubeconfig",
      c.kubeconfig,
      "--workloads",
      "cpu",
      "--vm-count",
      "2",
      "--poll-interval",
      "0.05",
    ];
    const r = await virtwork(args, {}, true);
    assert.equal(r.code, 0, r.err);
    assert.ok(r.err.includes(`${CLEAR}\x1b[1mcreated 1/2\x1b[0m, \x1b[2melapsed `), r.err);
    assert.match(
      r.err,
      new RegExp(
        `\x1b\\[1mready 2/2, failed 0\x1b\\[0m, \x1b\\[2melapsed \\d+s / timeout 600s`,
      ),
    );
    assert.ok(r.err.endsWith(CLEAR), "the live line is cleared at the end");
    assert.doesNotMatch(r.err, /^VM virtwork-cpu-1 created$/m, "no per-VM lines on a terminal");
    assert.match(r.out, /2\/2 VMs ready/);

    const cleanup = await virtwork(["cleanup", "--kubeconfig", c.kubeconfig]);
    assert.equal(cleanup.code, 0, cleanup.err);
    const plain = await virtwork(args, { env: { HOME: "/nonexistent", NO_COLOR: "1" } }, true);
    assert.equal(plain.code, 0, plain.err);
    assert.match(plain.err, /ready 2\/2, failed 0, elapsed \d+s \/ timeout 600s/);
    assert.ok(!SGR.test(plain.err), "no colour with NO_COLOR");
  });
});

Deno.test("virtwork cleanup --run-id takes a unique prefix; an ambiguous one exits 2 listing the runs", async () => {
  await withCluster({}, async ({ server, kubeconfig }) => {
    const run = await virtwork([
      "run",
      "--kubeconfig",
      kubeconfig,
      "--workloads",
      "cpu",
      "--no-wait",
      "-o",
      "json",
    ]);
    assert.equal(run.code, 0, run.err);
    const runId: string = JSON.parse(run.out).runId;
    for (
      const id of ["abcd0001-0000-4000-8000-000000000000", "abcd0002-0000-4000-8000-000000000000"]
    ) {
      server.seed("secrets", {
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name: `other-${id.slice(0, 8)}`,
          namespace: "virtwork",
          labels: { "app.kubernetes.io/managed-by": "virtwork", "virtwork/run-id": id },
        },
      });
    }

    const ambiguous = await virtwork(["cleanup", "--kubeconfig", kubeconfig, "--run-id", "abcd"]);
    assert.equal(ambiguous.code, 2, ambiguous.err);
    assert.match(
      ambiguous.err,
      /abcd0001-0000-4000-8000-000000000000, abcd0002-0000-4000-8000-000000000000/,
    );
    assert.equal(server.objects("secrets", "virtwork").length >= 2, true, "nothing deleted");
    assert.equal(server.objects("virtualmachines", "virtwork").length, 1, "nothing deleted");

    const prefix = runId.slice(0, 8);
    const clean = await virtwork(["cleanup", "--kubeconfig", kubeconfig, "--run-id", prefix]);
    assert.equal(clean.code, 0, clean.err);
    assert.match(clean.out, /deleted 1 VirtualMachine\n/);
    assert.match(clean.out, new RegExp(`runs: ${runId}`));
    assert.equal(server.objects("virtualmachines", "virtwork").length, 0);
    assert.equal(
      server.objects("secrets", "virtwork").filter((s) => s.metadata.name.startsWith("other-"))
        .length,
      2,
      "the other runs' objects are left alone",
    );
  });
});

Deno.test("virtwork cleanup resolves a prefix against the audit database too", async () => {
  await withCluster({}, async ({ kubeconfig }) => {
    const dir = await Deno.makeTempDir();
    try {
      const db = `${dir}/audit.db`;
      const audited = { auditor: undefined } as unknown as VirtworkDeps;
      const run = await virtwork(
        [
          "--audit-db",
          db,
          "run",
          "--kubeconfig",
          kubeconfig,
          "--workloads",
          "cpu",
          "--no-wait",
          "-o",
          "json",
        ],
        audited,
      );
      assert.equal(run.code, 0, run.err);
      const runId: string = JSON.parse(run.out).runId;
      // Its objects are gone already: only the audit trail knows the whole id.
      assert.equal((await virtwork(["cleanup", "--kubeconfig", kubeconfig])).code, 0);
      const again = await virtwork(
        ["--audit-db", db, "cleanup", "--kubeconfig", kubeconfig, "--run-id", runId.slice(0, 6)],
        audited,
      );
      assert.equal(again.code, 0, again.err);
      assert.match(again.out, new RegExp(`no objects of run ${runId} found`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("virtwork with no cluster configuration suggests --dry-run (exit 3)", async () => {
  const r = await virtwork(["run", "--workloads", "cpu"], {
    env: { HOME: "/nonexistent" },
  });
  assert.equal(r.code, 3, r.err);
  assert.match(r.err, /no cluster configuration found.*virtwork run --dry-run/);
  const c = await virtwork(["cleanup"], { env: { HOME: "/nonexistent" } });
  assert.equal(c.code, 3, c.err);
  assert.match(c.err, /--dry-run/);
});

Deno.test("virtwork: a bad flag value is a usage error, exit 2, like an unknown option", async () => {
  for (
    const args of [
      ["run", "--dry-run", "--vm-count", "abc"],
      ["run", "--dry-run", "--qps", "x"],
      ["run", "--dry-run", "--output", "xml"],
      ["cleanup", "--timeout", "1.5"],
      ["cleanup", "--burst", "many"],
      ["audit", "list", "--limit", "x"],
      ["--bogus", "run"],
    ]
  ) {
    const r = await virtwork(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
  }
});

Deno.test("README documents every VIRTWORK_* variable", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
  const names = [
    "VIRTWORK_CONFIG",
    "VIRTWORK_E2E_KUBECONFIG",
    ...Object.keys(VIRTWORK_CONFIG_SCHEMA).map((k) => `VIRTWORK_${snake(k)}`),
  ];
  const missing = names.filter((n) => !readme.includes(`\`${n}\``));
  assert.deepEqual(missing, []);
});
