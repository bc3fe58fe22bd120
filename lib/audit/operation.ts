/**
 * {@linkcode recordOperation}: audits one foundry operation (create, destroy, start, stop, image
 * import/pull/delete, pool add/delete) around the function that performs it: start, outcome,
 * duration and error. Auditing is best effort: a failing auditor never fails the operation.
 *
 * @example
 * ```ts
 * import { recordOperation } from "./operation.ts";
 * import { noopAuditor } from "./types.ts";
 * await recordOperation(
 *   noopAuditor,
 *   { resourceType: "vm", name: "web-1", uri: "qemu:///system", operation: "start" },
 *   async (op) => {
 *     op.object({ kind: "volume", name: "web-1-boot", outcome: "created" });
 *   },
 * );
 * ```
 * @module
 */
import type { Auditor, EventRecord, ObjectRecord } from "./types.ts";

/** What an operation is about. */
export interface OperationInfo {
  /** Kind of resource: `vm`, `image`, `pool`, … */
  resourceType: string;
  /** Resource name. */
  name: string;
  /** libvirt URI. */
  uri: string;
  /** `create`, `destroy`, `start`, `stop`, `import`, `pull`, `delete`, `add`, … */
  operation: string;
  /** Settings worth keeping, never credentials (keys naming credentials are redacted anyway). */
  details?: Readonly<Record<string, unknown>>;
}

/** Handed to the operation's function to record what it made and what happened. */
export interface OperationContext {
  /** Id of this operation's audit entry. */
  readonly operationId: string;
  /** Records an object the operation created (a volume, a cloud-init ISO, …). */
  object(r: Omit<ObjectRecord, "runId">): void;
  /** Records an event. */
  event(r: Omit<EventRecord, "runId">): void;
}

/** Options of {@linkcode recordOperation}. */
export interface RecordOperationOptions {
  /** Told when the auditor fails (default: ignored). */
  onAuditError?: (err: Error) => void;
  /** Classifies a thrown error as an interruption rather than a failure. */
  isInterruption?: (err: unknown) => boolean;
  /** The operation's abort signal: a failure after it fired counts as an interruption. */
  signal?: AbortSignal;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error &&
    (err.name === "AbortError" || err.name === "Interrupted" || err.name === "InterruptedError");
}

/**
 * Runs `fn` as the audited operation `info`: records its start, then `succeeded`, `failed` (with
 * the error message, credentials scrubbed by the auditor) or `interrupted`, and the duration.
 * Returns what `fn` returns and rethrows what it throws.
 */
export async function recordOperation<T>(
  auditor: Auditor,
  info: OperationInfo,
  fn: (op: OperationContext) => Promise<T> | T,
  opts: RecordOperationOptions = {},
): Promise<T> {
  const operationId = crypto.randomUUID();
  const report = opts.onAuditError ?? (() => {});
  let started = false;
  const safe = async (f: () => void | Promise<void>) => {
    try {
      await f();
    } catch (e) {
      report(e instanceof Error ? e : new Error(String(e)));
    }
  };
  await safe(async () => {
    await auditor.operationStarted({
      operationId,
      resourceType: info.resourceType,
      name: info.name,
      uri: info.uri,
      operation: info.operation,
      ...(info.details ? { details: info.details } : {}),
    });
    started = true;
  });
  const pending: Promise<void>[] = [];
  const ctx: OperationContext = {
    operationId,
    object: (r) => {
      if (started) pending.push(safe(() => auditor.objectCreated({ ...r, runId: operationId })));
    },
    event: (r) => {
      if (started) pending.push(safe(() => auditor.event({ ...r, runId: operationId })));
    },
  };
  try {
    const result = await fn(ctx);
    await Promise.all(pending);
    if (started) await safe(() => auditor.operationFinished({ operationId, status: "succeeded" }));
    return result;
  } catch (e) {
    await Promise.all(pending);
    const interrupted = opts.signal?.aborted === true || (opts.isInterruption ?? isAbort)(e);
    const message = e instanceof Error ? e.message : String(e);
    if (started) {
      await safe(() =>
        auditor.operationFinished({
          operationId,
          status: interrupted ? "interrupted" : "failed",
          error: message,
        })
      );
    }
    throw e;
  }
}
