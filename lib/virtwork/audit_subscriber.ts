/**
 * The one place virtwork's run and cleanup events become audit records: subscribe the sink this
 * module returns to a run or cleanup, and it hands each {@linkcode VirtworkEvent} to an
 * {@linkcode Auditor}. The core and the backends never write the audit trail themselves.
 *
 * @example
 * ```ts
 * import { auditSubscriber } from "./audit_subscriber.ts";
 * import { noopAuditor } from "../audit/types.ts";
 * const onEvent = auditSubscriber(noopAuditor);
 * await onEvent({ type: "runFinished", runId: "r", ok: true, interrupted: false });
 * ```
 * @module
 */
import type { Auditor } from "../audit/types.ts";
import type { EventSink, VirtworkEvent } from "./events.ts";

/** Options of {@linkcode auditSubscriber}. */
export interface AuditSubscriberOptions {
  /** Told when the auditor throws; the run goes on (default: ignored). */
  onError?: (e: Error) => void;
}

/** The kind a VM has in the audit trail's `object` column, by target. */
const VM_KIND: Record<string, string> = { kubevirt: "VirtualMachine", libvirt: "domain" };

/**
 * A sink that writes each event to `auditor`. Best effort: an auditor that throws is reported to
 * `onError` and never fails the run.
 */
export function auditSubscriber(auditor: Auditor, o: AuditSubscriberOptions = {}): EventSink {
  const runs = new Map<string, { scope: string; vmKind: string }>();
  const vmKind = (runId: string) => runs.get(runId)?.vmKind ?? "VirtualMachine";
  const scope = (runId: string) => runs.get(runId)?.scope ?? "";
  const write = async (e: VirtworkEvent): Promise<void> => {
    switch (e.type) {
      case "runStarted":
        runs.set(e.runId, { scope: e.scope, vmKind: VM_KIND[e.target] ?? "VirtualMachine" });
        await auditor.runStarted({
          runId: e.runId,
          namespace: e.scope,
          workloads: e.workloads.map((w) => w.name),
          vmCount: e.vmCount,
          dryRun: e.dryRun,
          sshAuthConfigured: e.sshAuthConfigured,
          ...(e.config ? { config: e.config } : {}),
          ...(e.location ? { target: e.location } : {}),
        });
        for (const w of e.workloads) {
          await auditor.workloadRecorded({
            runId: e.runId,
            name: w.name,
            vmCount: w.vmCount,
            ...(w.config ? { config: w.config } : {}),
          });
        }
        return;
      case "objectCreated":
        await auditor.objectCreated({
          runId: e.runId,
          kind: e.kind,
          namespace: scope(e.runId),
          name: e.name,
          outcome: e.outcome,
          ...(e.error !== undefined ? { error: e.error } : {}),
        });
        return;
      case "vmReady":
        await auditor.event({
          runId: e.runId,
          level: "info",
          reason: "VmReady",
          object: `${vmKind(e.runId)}/${e.name}`,
          message: `ready after ${e.seconds.toFixed(1)}s`,
        });
        return;
      case "vmFailed":
        await auditor.event({
          runId: e.runId,
          level: "error",
          reason: "VmFailed",
          object: `${vmKind(e.runId)}/${e.name}`,
          message: e.message,
        });
        return;
      case "note":
        await auditor.event({
          runId: e.runId,
          level: e.level,
          reason: e.reason,
          message: e.message,
          ...(e.object !== undefined ? { object: e.object } : {}),
        });
        return;
      case "vmFinished":
        await auditor.vmFinished({
          runId: e.runId,
          namespace: scope(e.runId),
          name: e.name,
          workload: e.workload,
          role: e.role,
          phase: e.phase,
          ready: e.ready,
          ...(e.secondsToReady !== undefined ? { secondsToReady: e.secondsToReady } : {}),
          ...(e.error !== undefined ? { error: e.error } : {}),
          ...(e.phaseSamples !== undefined ? { phases: e.phaseSamples } : {}),
        });
        if (e.results !== undefined || e.resultError !== undefined) {
          await auditor.resultsRecorded?.({
            runId: e.runId,
            vm: e.name,
            workload: e.workload,
            metrics: e.results ?? {},
            ...(e.resultError !== undefined ? { error: e.resultError } : {}),
          });
        }
        return;
      case "runFinished":
        runs.delete(e.runId);
        await auditor.runFinished({
          runId: e.runId,
          ok: e.ok,
          interrupted: e.interrupted,
          ...(e.error !== undefined ? { error: e.error } : {}),
          ...(e.latency !== undefined ? { latency: e.latency } : {}),
        });
        return;
      case "cleanupStarted":
        await auditor.cleanupStarted({
          cleanupId: e.cleanupId,
          namespace: e.scope,
          ...(e.runId !== undefined ? { runId: e.runId } : {}),
          deleteNamespace: e.deleteScope ?? false,
          ...(e.location !== undefined ? { target: e.location } : {}),
        });
        runs.set(e.cleanupId, { scope: e.scope, vmKind: "VirtualMachine" });
        return;
      case "objectDeleted":
        await auditor.objectDeleted({
          cleanupId: e.cleanupId,
          kind: e.kind,
          namespace: scope(e.cleanupId),
          name: e.name,
          ...(e.runId !== undefined ? { runId: e.runId } : {}),
          outcome: e.outcome,
          ...(e.error !== undefined ? { error: e.error } : {}),
        });
        return;
      case "cleaned":
        runs.delete(e.cleanupId);
        await auditor.cleanupFinished({
          cleanupId: e.cleanupId,
          namespace: e.scope,
          ...(e.runId !== undefined ? { runId: e.runId } : {}),
          linkedRunIds: e.linkedRunIds,
          deleted: e.deleted,
          namespaceDeleted: e.scopeDeleted,
          errors: e.errors,
          interrupted: e.interrupted,
        });
        return;
      case "vmCreated":
      case "vmPhase":
      case "result":
        // vmCreated comes with its objectCreated; phases and single samples are progress only:
        // the latest sample per VM is recorded with vmFinished.
        return;
    }
  };
  return async (e) => {
    try {
      await write(e);
    } catch (err) {
      o.onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  };
}
