/**
 * virtwork's audit trail end to end: `run`, `cleanup --run-id`, `audit list|show` through `main()`
 * against the Kubernetes API test server, with the database in a temporary directory.
 */
import assert from "node:assert/strict";
import { openAuditDb } from "../../lib/audit/mod.ts";
import { main } from "../../cli/virtwork.ts";
import { LABELS } from "../../lib/kubevirt/constants.ts";
import type { K8sTestServerOptions } from "../virtwork/k8s_server.ts";
import { startCluster } from "../virtwork/_helpers.ts";
import { dbFileText, tempDb } from "./_helpers.ts";

const PASSWORD = "Aud1t-Pa55word-never-stored";
const KEY_BODY = "AAAAC3NzaC1lZDI1NTE5AAAAIE9yNnVvUkhYaTdrS0NPbm90c3RvcmVkLXZpcnR3b3Jr";
const KEY = `ssh-ed25519 ${KEY_BODY} audit@test`;

// deno-lint-ignore no-explicit-any
type Any = any;

interface Env {
  env: Record<string, string>;
  dbPath: string;
  server: Awaited<ReturnType<typeof startCluster>>["server"];
}

async function virtwork(args: string[], env: Record<string, string>) {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) }, {
    env,
    client: { baseBackoffMs: 2, maxBackoffMs: 20 },
  });
  return { code, out, err };
}

async function withEnv(opts: K8sTestServerOptions, fn: (e: Env) => Promise<void>) {
  const t = await tempDb();
  const c = await startCluster(opts);
  const kubeconfig = await c.server.writeKubeconfig();
  try {
    await fn({
      env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent", VIRTWORK_AUDIT_DB: t.path },
      dbPath: t.path,
      server: c.server,
    });
  } finally {
    await c.close();
    await Deno.remove(kubeconfig);
    await t.cleanup();
  }
}

async function assertNoSecrets(path: string) {
  const bytes = await dbFileText(path);
  assert.ok(bytes.length > 0);
  for (const s of [PASSWORD, KEY_BODY, "audit@test"]) {
    assert.ok(!bytes.includes(s), `the audit database holds ${s}`);
  }
}

Deno.test("virtwork run → cleanup --run-id → audit list/show, and no credential in the file", async () => {
  await withEnv({ readyAfterMs: () => 30 }, async ({ env, dbPath, server }) => {
    // A connection open for the whole test keeps the -wal file from being checkpointed away, so the
    // scan for credentials sees what the writers put in it.
    const holder = openAuditDb(dbPath);
    try {
      const common = ["--workloads", "cpu,network", "--poll-interval", "0.05"];
      const keep = await virtwork(["run", ...common, "-n", "keep"], env);
      assert.equal(keep.code, 0, keep.err);
      const r = await virtwork(
        ["run", ...common, "--ssh-password", PASSWORD, "--ssh-key", KEY, "-o", "json"],
        env,
      );
      assert.equal(r.code, 0, r.err);
      const runId = JSON.parse(r.out).runId as string;
      assert.equal(server.objects("virtualmachines", "virtwork").length, 3);
      for (const vm of server.objects("virtualmachines", "virtwork")) {
        assert.equal(vm.metadata.labels?.[LABELS.RUN_ID], runId);
      }

      const cleaned = await virtwork(["cleanup", "--run-id", runId, "-o", "json"], env);
      assert.equal(cleaned.code, 0, cleaned.err);
      const cleanupId = JSON.parse(cleaned.out).cleanupId as string;

      const list = await virtwork(["audit", "list", "-o", "json"], env);
      assert.equal(list.code, 0, list.err);
      const entries = JSON.parse(list.out) as Any[];
      assert.deepEqual(entries.map((e) => [e.operation, e.status]), [
        ["cleanup", "succeeded"],
        ["run", "succeeded"],
        ["run", "succeeded"],
      ]);
      assert.deepEqual(entries[0].linkedRunIds, [runId]);
      assert.deepEqual(entries[0].config, { runId, deleteNamespace: false });
      assert.equal(entries[1].runId, runId);
      assert.equal(entries[1].sshAuthConfigured, true);
      assert.equal(entries[2].sshAuthConfigured, false);
      assert.equal(entries[1].config.sshPassword, undefined);
      assert.equal(entries[1].config.sshUser, "virtwork");
      assert.equal(entries[1].target, server.url);

      const table = await virtwork(["audit", "list"], env);
      assert.match(table.out, /^RUN ID\s+OPERATION\s+STATUS/);
      assert.equal(table.out.trim().split("\n").length, 4);

      const show = JSON.parse((await virtwork(["audit", "show", runId, "-o", "json"], env)).out);
      assert.deepEqual(show.workloads.map((w: Any) => [w.name, w.vmCount]), [
        ["cpu", 1],
        ["network", 2],
      ]);
      assert.equal(show.workloads[0].config.cpuCores, 2);
      assert.equal(show.vms.length, 3);
      for (const vm of show.vms) {
        assert.equal(vm.ready, true);
        assert.equal(vm.deletedBy, cleanupId);
      }
      assert.equal(show.events.filter((e: Any) => e.reason === "VmReady").length, 3);
      assert.ok(show.resources.some((x: Any) => x.kind === "Service" && x.action === "created"));
      assert.ok(show.resources.some((x: Any) => x.kind === "Secret" && x.action === "created"));
      assert.deepEqual(show.cleanups.map((c: Any) => c.runId), [cleanupId]);
      assert.equal(show.deletions.length, 3 + 1 + 3); // VMs, the Service, the user-data Secrets

      const text = await virtwork(["audit", "show", runId.slice(0, 8)], env);
      assert.equal(text.code, 0, text.err);
      assert.match(text.out, /SSH auth:\s+configured/);
      assert.match(text.out, /Cleaned up by:/);
      assert.match(text.out, new RegExp(`Run ID:\\s+${runId}`));

      // The other run's VMs are untouched and not marked deleted.
      const other = JSON.parse(
        (await virtwork(["audit", "show", entries[2].runId, "-o", "json"], env)).out,
      );
      assert.equal(other.vms.length, 3);
      assert.ok(other.vms.every((v: Any) => v.deletedBy === null));
      assert.equal(server.objects("virtualmachines", "keep").length, 3);

      await assertNoSecrets(dbPath);
      assert.ok(await Deno.stat(`${dbPath}-wal`), "the WAL file was scanned too");
    } finally {
      holder.close();
    }
  });
});

Deno.test("a failed run records its error summary, credentials scrubbed even from API errors", async () => {
  await withEnv({
    readyAfterMs: () => 10,
    inject: (q) =>
      q.method === "POST" && q.resource === "virtualmachines"
        ? { status: 403, message: `admission webhook denied: password ${PASSWORD} and ${KEY}` }
        : undefined,
  }, async ({ env, dbPath }) => {
    const holder = openAuditDb(dbPath);
    try {
      const r = await virtwork(
        ["run", "--workloads", "cpu", "--ssh-password", PASSWORD, "--ssh-key", KEY],
        env,
      );
      assert.equal(r.code, 4, r.err);
      const [e] = JSON.parse((await virtwork(["audit", "list", "-o", "json"], env)).out) as Any[];
      assert.equal(e.status, "failed");
      assert.match(e.errorSummary, /admission webhook denied/);
      assert.ok(!e.errorSummary.includes(PASSWORD));
      const show = JSON.parse((await virtwork(["audit", "show", e.runId, "-o", "json"], env)).out);
      assert.equal(show.vms[0].outcome, "failed");
      assert.ok(show.events.some((x: Any) => x.reason === "RunFailed" && x.level === "error"));
      // The scan reads the stored error text, so a leaked secret next to it would be found.
      assert.ok((await dbFileText(dbPath)).includes("admission webhook denied"));
      await assertNoSecrets(dbPath);
    } finally {
      holder.close();
    }
  });
});

Deno.test("a run that times out is failed with how many VMs were not ready", async () => {
  await withEnv({
    readyAfterMs: (name) => name.includes("client") ? undefined : 10,
  }, async ({ env }) => {
    const r = await virtwork(
      ["run", "--workloads", "network", "--timeout", "1", "--poll-interval", "0.05"],
      env,
    );
    assert.equal(r.code, 4);
    const [e] = JSON.parse((await virtwork(["audit", "list", "-o", "json"], env)).out) as Any[];
    assert.equal(e.status, "failed");
    assert.equal(e.errorSummary, "1 of 2 VMs not ready after 1s");
    const show = JSON.parse((await virtwork(["audit", "show", e.runId, "-o", "json"], env)).out);
    assert.deepEqual(
      show.events.filter((x: Any) => x.reason === "Timeout").map((x: Any) => x.object),
      ["VirtualMachine/virtwork-network-client-1"],
    );
  });
});

Deno.test("cleanup without --run-id links every run it removed objects of", async () => {
  await withEnv({ readyAfterMs: () => 10 }, async ({ env }) => {
    const ids: string[] = [];
    for (const workload of ["cpu", "memory"]) {
      const r = await virtwork(["run", "--workloads", workload, "--no-wait", "-o", "json"], env);
      assert.equal(r.code, 0, r.err);
      ids.push(JSON.parse(r.out).runId);
    }
    const c = await virtwork(["cleanup", "--delete-namespace"], env);
    assert.equal(c.code, 0, c.err);
    const [cleanup] = JSON.parse(
      (await virtwork(["audit", "list", "-o", "json"], env)).out,
    ) as Any[];
    assert.equal(cleanup.operation, "cleanup");
    assert.deepEqual(cleanup.linkedRunIds, [...ids].sort());
    assert.equal(cleanup.cleanupCounts.virtualmachines, 2);
    assert.equal(cleanup.cleanupCounts.namespaceDeleted, true);
    for (const id of ids) {
      const show = JSON.parse((await virtwork(["audit", "show", id, "-o", "json"], env)).out);
      assert.deepEqual(show.cleanups.map((x: Any) => x.runId), [cleanup.runId]);
    }
    const detail = JSON.parse(
      (await virtwork(["audit", "show", cleanup.runId, "-o", "json"], env)).out,
    );
    assert.ok(detail.resources.some((x: Any) => x.kind === "Namespace" && x.action === "deleted"));
  });
});

Deno.test("--no-audit writes nothing; --audit-db beats VIRTWORK_AUDIT_DB; bad VIRTWORK_AUDIT is exit 1", async () => {
  const t = await tempDb();
  try {
    const env = { HOME: "/nonexistent", VIRTWORK_AUDIT_DB: t.path };
    assert.equal((await virtwork(["--no-audit", "run", "--dry-run"], env)).code, 0);
    assert.equal((await virtwork(["run", "--dry-run", "--no-audit"], env)).code, 0);
    assert.equal(
      (await virtwork(["run", "--dry-run"], { ...env, VIRTWORK_AUDIT: "false" })).code,
      0,
    );
    await assert.rejects(Deno.stat(t.path), Deno.errors.NotFound);
    const empty = await virtwork(["audit", "list", "-o", "json"], env);
    assert.deepEqual([empty.code, JSON.parse(empty.out)], [0, []]);

    const other = `${t.dir}/sub/other.db`;
    assert.equal((await virtwork(["run", "--dry-run", "--audit-db", other], env)).code, 0);
    const list = await virtwork(["--audit-db", other, "audit", "list", "-o", "json"], env);
    const [e] = JSON.parse(list.out) as Any[];
    assert.equal(e.dryRun, true);
    await assert.rejects(Deno.stat(t.path), Deno.errors.NotFound);

    const bad = await virtwork(["run", "--dry-run"], { ...env, VIRTWORK_AUDIT: "maybe" });
    assert.equal(bad.code, 1);
    assert.match(bad.err, /env VIRTWORK_AUDIT audit: must be true or false, got "maybe"/);
    assert.equal((await virtwork(["audit", "list", "-o", "yaml"], env)).code, 2);
    assert.equal((await virtwork(["audit", "list", "--limit", "-1"], env)).code, 2);
    const missing = await virtwork(["audit", "show", "nope-nope"], env);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no run nope-nope in audit database/);
    const unwritable = await virtwork(["run", "--dry-run", "--audit-db", "/proc/nope/x.db"], env);
    assert.equal(unwritable.code, 1);
    assert.match(unwritable.err, /--no-audit/);
  } finally {
    await t.cleanup();
  }
});

Deno.test("virtwork killed while waiting: the database opens and audit list shows the run unfinished", async () => {
  await withEnv({ readyAfterMs: () => undefined }, async ({ env, dbPath, server }) => {
    const cli = new URL("../../cli/virtwork.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-net",
        "--allow-env",
        "--allow-sys",
        cli,
        "run",
        "--workloads",
        "cpu,memory",
        "--timeout",
        "600",
        "--poll-interval",
        "0.1",
        "--ssh-password",
        PASSWORD,
      ],
      // The inherited environment keeps the Deno cache; HOME is not replaced, KUBECONFIG wins.
      env: { KUBECONFIG: env.KUBECONFIG!, VIRTWORK_AUDIT_DB: dbPath },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited = false;
    child.status.then(() => (exited = true));
    try {
      // Kill once both VMs exist and their creation has been recorded (the run is then waiting).
      const deadline = Date.now() + 30_000;
      for (;;) {
        assert.ok(Date.now() < deadline, "the run did not get to waiting within 30 s");
        if (exited) {
          const err = await new Response(child.stderr).text();
          assert.fail(`virtwork run ended before it was killed: ${err}`);
        }
        if (server.objects("virtualmachines", "virtwork").length === 2) {
          const list = JSON.parse((await virtwork(["audit", "list", "-o", "json"], env)).out);
          const vms = list[0]
            ? JSON.parse((await virtwork(["audit", "show", list[0].runId, "-o", "json"], env)).out)
              .vms
            : [];
          if (vms.length === 2) break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      child.kill("SIGKILL");
    }
    const status = await child.status;
    await child.stderr.cancel().catch(() => {});
    assert.equal(status.signal, "SIGKILL");

    const table = await virtwork(["audit", "list"], env);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out.split("\n")[1]!, /\brun\s+unfinished\b/);
    const unfinished = await virtwork(
      ["audit", "list", "--status", "unfinished", "-o", "json"],
      env,
    );
    assert.equal(JSON.parse(unfinished.out).length, 1);
    const failed = await virtwork(["audit", "list", "--status", "failed", "-o", "json"], env);
    assert.deepEqual(JSON.parse(failed.out), []);
    assert.equal((await virtwork(["audit", "list", "--status", "running"], env)).code, 2);
    const [e] = JSON.parse((await virtwork(["audit", "list", "-o", "json"], env)).out) as Any[];
    assert.deepEqual([e.status, e.finished, e.finishedAt], ["running", false, null]);
    const show = await virtwork(["audit", "show", e.runId], env);
    assert.match(show.out, /Status:\s+unfinished \(no end recorded: still running or killed\)/);
    const db = openAuditDb(dbPath);
    assert.deepEqual({ ...db.prepare("PRAGMA integrity_check").get() }, { integrity_check: "ok" });
    db.close();
    await assertNoSecrets(dbPath);
  });
});

Deno.test("the configuration file's audit and audit_db apply below the environment and flags", async () => {
  const t = await tempDb();
  try {
    const fromFile = `${t.dir}/from-file.db`;
    const config = `${t.dir}/virtwork.yaml`;
    await Deno.writeTextFile(config, `audit_db: ${fromFile}\nworkloads: [cpu]\n`);
    const env = { HOME: "/nonexistent", VIRTWORK_CONFIG: config };
    assert.equal((await virtwork(["run", "--dry-run"], env)).code, 0);
    const list = await virtwork(["audit", "list", "-o", "json"], env);
    assert.equal(JSON.parse(list.out).length, 1);
    await Deno.stat(fromFile);
    const viaFlag = await virtwork(["audit", "list", "-o", "json", "--config", config], {
      HOME: "/nonexistent",
    });
    assert.equal(JSON.parse(viaFlag.out).length, 1);

    // Environment beats the file; the flag beats both.
    const envDb = `${t.dir}/env.db`;
    assert.equal(
      (await virtwork(["run", "--dry-run"], { ...env, VIRTWORK_AUDIT_DB: envDb })).code,
      0,
    );
    await Deno.stat(envDb);
    const flagDb = `${t.dir}/flag.db`;
    assert.equal(
      (await virtwork(["--audit-db", flagDb, "run", "--dry-run"], {
        ...env,
        VIRTWORK_AUDIT_DB: envDb,
      }))
        .code,
      0,
    );
    await Deno.stat(flagDb);

    // audit: false in the file turns it off, --audit turns it back on.
    await Deno.writeTextFile(config, `audit: false\naudit_db: ${t.dir}/off.db\n`);
    assert.equal((await virtwork(["run", "--dry-run"], env)).code, 0);
    await assert.rejects(Deno.stat(`${t.dir}/off.db`), Deno.errors.NotFound);
    assert.equal((await virtwork(["--audit", "run", "--dry-run"], env)).code, 0);
    await Deno.stat(`${t.dir}/off.db`);
  } finally {
    await t.cleanup();
  }
});
