/**
 * Label-based teardown: deletes only objects labelled `app.kubernetes.io/managed-by=virtwork` (and
 * `virtwork/run-id=<id>` when given), never anything else. Unlike creation it tolerates failures:
 * each error is recorded and the rest goes on. The Namespace is deleted last, on request, and only
 * when virtwork created it (it carries the managed-by label): deleting a namespace deletes
 * everything in it, managed or not.
 *
 * @example
 * ```ts
 * const r = await cleanup(client, { namespace: "virtwork", deleteNamespace: true, wait: true });
 * console.log(r.deleted.virtualmachines, r.errors.length);
 * ```
 * @module
 */
import type { EventSink } from "../virtwork/events.ts";
import type { ApiObject, ClusterApi, Resource } from "./client.ts";
import { LABELS, MANAGED_BY_VALUE, managedSelector } from "./constants.ts";
import { isStatus, KubeApiError } from "./errors.ts";
import { sleep } from "./rate_limit.ts";

/** What to clean up. */
export interface CleanupOptions {
  /** Namespace to clean. */
  namespace: string;
  /** Only objects of this run. */
  runId?: string;
  /** Delete the Namespace last (only when virtwork manages it). */
  deleteNamespace?: boolean;
  /** Wait until the deleted objects are gone. */
  wait?: boolean;
  /** Seconds to wait (default 300). */
  timeoutSeconds?: number;
  /** Seconds between polls while waiting (default 2). */
  pollIntervalSeconds?: number;
  /** Aborts waiting. */
  signal?: AbortSignal;
  /** Receives the cleanup's start, each deletion and its outcome as virtwork's typed events. */
  record?: EventSink;
  /** Id of the cleanup's audit entry (default: a new UUID). */
  cleanupId?: string;
  /** The cluster's API server, for the audit trail. */
  auditTarget?: string;
  /** Progress messages for verbose output. */
  onProgress?: (message: string) => void;
}

/** One failed deletion (or a refusal), with enough to act on it. */
export interface CleanupFailure {
  /** Kind of the object, or `wait`. */
  kind: string;
  /** Object name (`*` for a failed list). */
  name: string;
  /** What went wrong. */
  message: string;
}

/** The outcome of a cleanup. */
export interface CleanupResult {
  /** Id of the cleanup's audit entry. */
  cleanupId: string;
  /** Namespace cleaned. */
  namespace: string;
  /** Successful deletions by resource. */
  deleted: Record<"virtualmachines" | "services" | "secrets", number>;
  /** Whether this cleanup deleted the Namespace. */
  namespaceDeleted: boolean;
  /**
   * What became of the Namespace: `kept` (not asked to delete, or refused), `deleted` (by this
   * cleanup), `terminating` (already being deleted, left to finish), `absent` (not found).
   */
  namespaceState: "kept" | "deleted" | "terminating" | "absent";
  /** Objects that were already being deleted (by an earlier cleanup), left to finish. */
  alreadyTerminating: number;
  /** Run ids found on the deleted objects. */
  runIds: string[];
  /** Failures, in the order they happened. */
  errors: CleanupFailure[];
  /** True when waiting ended with everything gone; false when not waited or timed out. */
  gone: boolean;
}

/** Deletion order: VMs first (their VMIs and DataVolumes follow them), then Services, Secrets. */
export const CLEANUP_ORDER = ["virtualmachines", "services", "secrets"] as const;

const KIND: Record<string, string> = {
  virtualmachines: "VirtualMachine",
  services: "Service",
  secrets: "Secret",
  namespaces: "Namespace",
};

/** Deletes what virtwork manages in a namespace; never throws for an individual failure. */
export async function cleanup(api: ClusterApi, o: CleanupOptions): Promise<CleanupResult> {
  const progress = o.onProgress ?? (() => {});
  const selector = managedSelector(o.runId);
  const cleanupId = o.cleanupId ?? crypto.randomUUID();
  const record: EventSink = async (e) => {
    try {
      await o.record?.(e);
    } catch (err) {
      progress(`audit: ${(err as Error).message}`);
    }
  };
  await record({
    type: "cleanupStarted",
    cleanupId,
    scope: o.namespace,
    ...(o.runId ? { runId: o.runId } : {}),
    deleteScope: o.deleteNamespace ?? false,
    ...(o.auditTarget ? { location: o.auditTarget } : {}),
  });
  const deletion = (
    resource: string,
    name: string,
    runId: string | undefined,
    error?: unknown,
  ) =>
    record({
      type: "objectDeleted",
      cleanupId,
      kind: KIND[resource]!,
      name,
      ...(runId ? { runId } : {}),
      outcome: error === undefined ? "deleted" : "failed",
      ...(error === undefined ? {} : { error: (error as Error).message ?? String(error) }),
    });
  const result: CleanupResult = {
    cleanupId,
    namespace: o.namespace,
    deleted: { virtualmachines: 0, services: 0, secrets: 0 },
    namespaceDeleted: false,
    namespaceState: "kept",
    alreadyTerminating: 0,
    runIds: [],
    errors: [],
    gone: false,
  };
  const runIds = new Set<string>();
  const note = (kind: string, name: string, e: unknown) => {
    result.errors.push({ kind, name, message: (e as Error).message ?? String(e) });
  };

  for (const resource of CLEANUP_ORDER) {
    let items: ApiObject[];
    try {
      items = await api.list(resource, o.namespace, selector);
    } catch (e) {
      if (isStatus(e, 404)) continue; // namespace or resource type absent: nothing to delete
      note(KIND[resource]!, "*", e);
      continue;
    }
    await Promise.all(items.map(async (item) => {
      const labels = item.metadata.labels ?? {};
      // The server filtered by label; check again so a server ignoring the selector deletes nothing.
      if (labels[LABELS.MANAGED_BY] !== MANAGED_BY_VALUE) return;
      if (o.runId && labels[LABELS.RUN_ID] !== o.runId) return;
      const run = labels[LABELS.RUN_ID];
      if (item.metadata.deletionTimestamp) {
        // An earlier cleanup deleted it; deleting again changes nothing (and is not counted).
        result.alreadyTerminating++;
        if (run) runIds.add(run);
        return;
      }
      try {
        await api.delete(resource, o.namespace, item.metadata.name);
        result.deleted[resource]++;
        if (run) runIds.add(run);
        progress(`deleted ${KIND[resource]} ${item.metadata.name}`);
      } catch (e) {
        if (isStatus(e, 404)) return; // already gone
        note(KIND[resource]!, item.metadata.name, e);
        await deletion(resource, item.metadata.name, run, e);
        return;
      }
      await deletion(resource, item.metadata.name, run);
    }));
  }

  if (o.deleteNamespace) {
    try {
      const ns = await api.get("namespaces", o.namespace, o.namespace);
      if (ns.metadata.labels?.[LABELS.MANAGED_BY] !== MANAGED_BY_VALUE) {
        result.errors.push({
          kind: "Namespace",
          name: o.namespace,
          message:
            `namespace ${o.namespace} is not labelled ${LABELS.MANAGED_BY}=${MANAGED_BY_VALUE}, not deleted`,
        });
      } else if (ns.metadata.deletionTimestamp) {
        result.namespaceState = "terminating";
        progress(`Namespace ${o.namespace} is already being deleted`);
      } else {
        await api.delete("namespaces", o.namespace, o.namespace);
        result.namespaceDeleted = true;
        result.namespaceState = "deleted";
        progress(`deleted Namespace ${o.namespace}`);
        await deletion("namespaces", o.namespace, undefined);
      }
    } catch (e) {
      if (isStatus(e, 404)) result.namespaceState = "absent";
      else if (e instanceof KubeApiError && e.status === 409 && e.reason === "Conflict") {
        // Deleted by someone else between the read and the delete: the API server answers a
        // delete of a terminating namespace with 409 Conflict.
        result.namespaceState = "terminating";
      } else note("Namespace", o.namespace, e);
    }
  }
  result.runIds = [...runIds].sort();

  if (o.wait) result.gone = await waitGone(api, o, selector, result, progress);

  await record({
    type: "cleaned",
    cleanupId,
    scope: o.namespace,
    ...(o.runId ? { runId: o.runId } : {}),
    linkedRunIds: result.runIds,
    deleted: { ...result.deleted },
    scopeDeleted: result.namespaceDeleted,
    errors: result.errors.map((e) => `${e.kind} ${e.name}: ${e.message}`),
    interrupted: o.signal?.aborted ?? false,
  });
  return result;
}

async function waitGone(
  api: ClusterApi,
  o: CleanupOptions,
  selector: string,
  result: CleanupResult,
  progress: (m: string) => void,
): Promise<boolean> {
  const deadline = performance.now() + (o.timeoutSeconds ?? 300) * 1000;
  const interval = (o.pollIntervalSeconds ?? 2) * 1000;
  const watched: Resource[] = [...CLEANUP_ORDER, "virtualmachineinstances"];
  for (;;) {
    let remaining = 0;
    try {
      if (result.namespaceState === "deleted" || result.namespaceState === "terminating") {
        await api.get("namespaces", o.namespace, o.namespace);
        remaining++;
      } else {
        for (const r of watched) remaining += (await api.list(r, o.namespace, selector)).length;
      }
    } catch (e) {
      if (!isStatus(e, 404)) {
        result.errors.push({ kind: "wait", name: o.namespace, message: (e as Error).message });
        return false;
      }
    }
    if (remaining === 0) return true;
    const left = deadline - performance.now();
    if (left <= 0) {
      result.errors.push({
        kind: "wait",
        name: o.namespace,
        message: `${remaining} objects still present after ${o.timeoutSeconds ?? 300}s`,
      });
      return false;
    }
    progress(`waiting for ${remaining} objects to go`);
    try {
      await sleep(Math.min(interval, left), o.signal);
    } catch {
      return false;
    }
  }
}
