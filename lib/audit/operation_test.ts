import assert from "node:assert/strict";
import { recordOperation } from "./operation.ts";
import { entryDetails, listEntries } from "./reader.ts";
import { SqliteAuditor } from "./sqlite.ts";
import { type Auditor, noopAuditor } from "./types.ts";

const VM = { resourceType: "vm", name: "web-1", uri: "qemu:///system", operation: "create" };

Deno.test("recordOperation() records start, success, duration, objects and events", async () => {
  const a = SqliteAuditor.open(":memory:");
  const out = await recordOperation(a, { ...VM, details: { vcpus: 2, password: "x" } }, (op) => {
    op.object({ kind: "volume", name: "web-1-boot.qcow2", outcome: "created" });
    op.event({ level: "info", reason: "DomainDefined", message: "defined web-1" });
    return 7;
  });
  assert.equal(out, 7);
  const [e] = listEntries(a.db, { tool: "foundry" });
  assert.deepEqual(
    [e?.operation, e?.status, e?.resourceType, e?.resourceName, e?.target, e?.finished],
    ["create", "succeeded", "vm", "web-1", "qemu:///system", true],
  );
  assert.equal(typeof e?.durationMs, "number");
  assert.deepEqual(e?.config, { vcpus: 2, password: "[REDACTED]" });
  const d = entryDetails(a.db, e!.runId)!;
  assert.deepEqual(d.resources.map((r) => [r.kind, r.name, r.action]), [
    ["volume", "web-1-boot.qcow2", "created"],
  ]);
  assert.deepEqual(d.events.map((x) => x.reason), ["DomainDefined"]);
  a.close();
});

Deno.test("recordOperation() records a failure with its scrubbed error and rethrows", async () => {
  const a = SqliteAuditor.open(":memory:", { secrets: ["pw-in-yaml"] });
  const hash = "$6$abcdefgh$ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz";
  await assert.rejects(
    recordOperation(a, VM, () => {
      throw new Error(`cloud-init rejected pw-in-yaml and ${hash}`);
    }),
    /cloud-init rejected/,
  );
  const [e] = listEntries(a.db);
  assert.equal(e?.status, "failed");
  assert.equal(e?.errorSummary, "cloud-init rejected [REDACTED] and [REDACTED]");
  a.close();
});

Deno.test("recordOperation() marks an aborted operation interrupted", async () => {
  const a = SqliteAuditor.open(":memory:");
  await assert.rejects(
    recordOperation(a, { ...VM, operation: "start" }, () => {
      throw new DOMException("aborted", "AbortError");
    }),
  );
  assert.equal(listEntries(a.db)[0]?.status, "interrupted");
  // Any error once the operation's signal fired counts as an interruption too.
  const ac = new AbortController();
  await assert.rejects(
    recordOperation(a, { ...VM, operation: "create" }, () => {
      ac.abort();
      throw new Error("Interrupted; removing what was created");
    }, { signal: ac.signal }),
  );
  assert.equal(listEntries(a.db)[0]?.status, "interrupted");
  a.close();
});

Deno.test("recordOperation() never fails the operation for a failing auditor", async () => {
  const broken: Auditor = {
    ...noopAuditor,
    operationStarted: () => {
      throw new Error("disk full");
    },
  };
  const errors: string[] = [];
  const r = await recordOperation(broken, VM, () => "done", {
    onAuditError: (e) => errors.push(e.message),
  });
  assert.equal(r, "done");
  assert.deepEqual(errors, ["disk full"]);
});
