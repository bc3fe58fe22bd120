/**
 * Writes audit runs to a database, for the concurrency and crash tests (from a worker,
 * see `_writer_worker.ts`) or as a process: `_writer.ts PATH RUNS PREFIX`, or
 * `_writer.ts PATH hang PREFIX` to start a run and wait forever.
 */
import { SqliteAuditor } from "../../lib/audit/sqlite.ts";

/** Writes `runs` complete runs, each with a workload, objects, VM records and events. */
export async function writeRuns(path: string, runs: number, prefix: string): Promise<void> {
  const a = SqliteAuditor.open(path);
  try {
    for (let i = 0; i < runs; i++) {
      const runId = `${prefix}-${i}`;
      a.runStarted({
        runId,
        namespace: "virtwork",
        workloads: ["cpu"],
        vmCount: 2,
        dryRun: false,
        sshAuthConfigured: false,
      });
      a.workloadRecorded({ runId, name: "cpu", vmCount: 2 });
      for (const n of [1, 2]) {
        const name = `${runId}-vm-${n}`;
        a.objectCreated({
          runId,
          kind: "VirtualMachine",
          namespace: "virtwork",
          name,
          outcome: "created",
        });
        a.event({
          runId,
          level: "info",
          reason: "VmReady",
          object: `VirtualMachine/${name}`,
          message: "ready",
        });
        a.vmFinished({
          runId,
          namespace: "virtwork",
          name,
          workload: "cpu",
          role: "worker",
          phase: "Running",
          ready: true,
        });
        await new Promise((r) => setTimeout(r, 0)); // let other writers in between records
      }
      a.runFinished({ runId, ok: true, interrupted: false });
    }
  } finally {
    a.close();
  }
}

/** Starts a run, records part of it, says `started` on stdout and never finishes. */
async function hang(path: string, prefix: string): Promise<never> {
  const a = SqliteAuditor.open(path);
  const runId = `${prefix}-hung`;
  a.runStarted({
    runId,
    namespace: "virtwork",
    workloads: ["cpu"],
    vmCount: 2,
    dryRun: false,
    sshAuthConfigured: true,
  });
  a.objectCreated({
    runId,
    kind: "VirtualMachine",
    namespace: "virtwork",
    name: "hung-vm-1",
    outcome: "created",
  });
  a.event({ runId, level: "info", reason: "Created", message: "first VM created" });
  await Deno.stdout.write(new TextEncoder().encode("started\n"));
  for (;;) await new Promise((r) => setTimeout(r, 1000));
}

if (import.meta.main) {
  const [path, runs, prefix] = Deno.args;
  if (runs === "hang") await hang(path!, prefix!);
  await writeRuns(path!, Number(runs), prefix!);
}
