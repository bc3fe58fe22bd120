/**
 * A run on a cluster, in two halves the KubeVirt backend uses: {@linkcode createRunObjects} ensures
 * the Namespace, creates Services before any VM (the client VMs need their DNS names), creates
 * Secrets and VMs concurrently; {@linkcode waitForReady} waits until every VM is Ready or failed
 * (a `Failed` VMI, or a VM in an error state such as `ErrorUnschedulable`), or the timeout passes.
 * Creation fails fast on a non-transient error. {@linkcode executeRun} runs a rendered plan
 * through virtwork's neutral core (`lib/virtwork/run.ts`) with that backend.
 *
 * An interrupt (the AbortSignal) stops creating and waiting. What was in progress is rolled back:
 * each object whose create was in flight (the server may act on a request the client gave up on)
 * is deleted once its request has ended, together with the Secret of a VM that was not created.
 * Objects whose fate cannot be established are reported `unknown`. The VMs finished before the
 * interrupt are kept; the result names every object of the run that exists.
 *
 * @example
 * ```ts
 * const result = await executeRun(client, plan, { timeoutSeconds: 600, pollIntervalSeconds: 15 });
 * for (const vm of result.vms) console.log(vm.name, vm.phase, vm.secondsToReady);
 * ```
 * @module
 */
import type { EventLevel, EventSink, VirtworkEvent } from "../virtwork/events.ts";
import type { NeutralPlan } from "../virtwork/backend.ts";
import type { ApiObject, ClusterApi, Resource } from "./client.ts";
import { LABELS, MANAGED_BY_VALUE, managedSelector } from "./constants.ts";
import { ConnectionError, KubeApiError, ObjectCollisionError } from "./errors.ts";
import type { KubeObject } from "./manifests.ts";
import type { RunPlan } from "./plan.ts";
import { sleep } from "./rate_limit.ts";

/** How a run behaves. */
export interface RunOptions {
  /** Wait for readiness (default true). */
  wait?: boolean;
  /** Seconds to wait for every VMI to become Ready. */
  timeoutSeconds: number;
  /** Seconds between readiness polls (fractions allowed). */
  pollIntervalSeconds: number;
  /** VM creations in flight at once (default 20). */
  concurrency?: number;
  /** Aborting stops creating and waiting; the result says what exists. */
  signal?: AbortSignal;
  /**
   * Receives what happens as virtwork's typed events (run started, objects created, VMs ready or
   * failed, rollbacks, run finished); the edge subscribes the audit trail to it.
   */
  record?: EventSink;
  /** Seconds to spend after an interrupt undoing creates that were in flight (default 10). */
  rollbackTimeoutSeconds?: number;
  /** What the audit trail records beside the plan. */
  audit?: RunAuditContext;
  /** Progress messages for verbose output. */
  onProgress?: (message: string) => void;
  /** What happens to the VMs, as typed events (the CLI prints them as it likes). */
  onEvent?: (event: RunEvent) => void;
}

/** One thing that happened to a run's VMs; see {@linkcode RunOptions.onEvent}. */
export type RunEvent =
  /** A VirtualMachine was created (or was already this run's). */
  | { type: "vmCreated"; name: string; outcome: "created" | "exists" }
  /** Its VMI became Ready. */
  | { type: "vmReady"; name: string; seconds: number }
  /** It cannot become ready (a Failed VMI, an error status). */
  | { type: "vmFailed"; name: string; message: string };

/** Context reported with a run's start; never credentials. */
export interface RunAuditContext {
  /** Effective settings of the run. */
  config?: Readonly<Record<string, unknown>>;
  /** The cluster's API server. */
  target?: string;
  /** Settings of each workload, by workload name. */
  workloads?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Whether a password or SSH keys were configured (default: the plan has Secrets). */
  sshAuthConfigured?: boolean;
}

/**
 * What became of a created object: `rolled back` when its create was in flight at an interrupt and
 * the object was deleted again (or never landed); `unknown` when whether it exists could not be
 * established after an interrupt (it may exist: `cleanup --run-id` removes it).
 */
export type CreateOutcome = "created" | "exists" | "failed" | "skipped" | "rolled back" | "unknown";

/** VM printable statuses (`status.printableStatus`) in which KubeVirt cannot run the VM. */
export const VM_ERROR_STATUSES: readonly string[] = [
  "CrashLoopBackOff",
  "ErrorUnschedulable",
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrorPvcNotFound",
  "ErrorDataVolumeNotFound",
  "DataVolumeError",
];

/** One VM of a run. */
export interface VmOutcome {
  /** Workload name. */
  workload: string;
  /** VM role. */
  role: string;
  /** VM name. */
  name: string;
  /** What became of the create. */
  outcome: CreateOutcome;
  /** VMI phase at the last poll (`Pending` when no VMI was seen, `-` when not waited for). */
  phase: string;
  /** Whether its VMI became Ready. */
  ready: boolean;
  /** Whether it failed while waited for (a `Failed` VMI or a VM error status). */
  failed?: boolean;
  /** Seconds from creation to Ready. */
  secondsToReady?: number;
  /** Why it failed or is not ready. */
  error?: string;
}

/** The outcome of a run. */
export interface RunResult {
  /** Run id. */
  runId: string;
  /** Namespace of the run. */
  namespace: string;
  /** What became of the Namespace. */
  namespaceOutcome: CreateOutcome;
  /** Services and what became of them. */
  services: { name: string; outcome: CreateOutcome }[];
  /** Secrets and what became of them. */
  secrets: { name: string; outcome: CreateOutcome }[];
  /** VMs and their states. */
  vms: VmOutcome[];
  /** Whether readiness was waited for. */
  waited: boolean;
  /** True after Ctrl-C (or another abort). */
  interrupted: boolean;
  /** True when some VM was not ready by the timeout. */
  timedOut: boolean;
  /** Number of VMs that failed while waited for. */
  failedVms: number;
  /** Wall time of the run. */
  elapsedSeconds: number;
}

/** A run stopped by an error; `result` tells what had been created by then. */
export class RunFailedError extends Error {
  /** The partial result. */
  readonly result: RunResult;
  /** Wraps the error that stopped the run. */
  constructor(cause: Error, result: RunResult) {
    super(cause.message, { cause });
    this.name = "RunFailedError";
    this.result = result;
  }
}

/** True when a VMI counts as ready: its `Ready` condition is True, or, without conditions, Running. */
export function vmiReady(vmi: ApiObject | undefined): boolean {
  if (!vmi) return false;
  const conditions = (vmi.status?.conditions ?? []) as { type?: string; status?: string }[];
  const ready = conditions.find((c) => c.type === "Ready");
  if (ready) return ready.status === "True";
  return vmi.status?.phase === "Running";
}

/**
 * Executes `plan` with `api`.
 * @throws {RunFailedError} when a create or poll fails with a non-transient error
 */
export async function executeRun(
  api: ClusterApi,
  plan: RunPlan,
  opts: RunOptions,
): Promise<RunResult> {
  // The neutral core runs it: the KubeVirt backend creates this plan's objects as they are.
  const { openKubevirtBackend } = await import("./backend.ts");
  const { runPlan, PlanRunError } = await import("../virtwork/run.ts");
  const ns = plan.namespace.metadata.name;
  const backend = openKubevirtBackend(api, {
    namespace: ns,
    containerDiskImage: "",
    pollIntervalSeconds: opts.pollIntervalSeconds,
    ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    ...(opts.rollbackTimeoutSeconds !== undefined
      ? { rollbackTimeoutSeconds: opts.rollbackTimeoutSeconds }
      : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    prebuilt: plan,
  });
  const onEvent = opts.onEvent;
  const progress = opts.onProgress ?? (() => {});
  const sink: EventSink = async (e) => {
    switch (e.type) {
      case "vmCreated":
        onEvent?.({ type: "vmCreated", name: e.name, outcome: e.outcome });
        break;
      case "vmReady":
        onEvent?.({ type: "vmReady", name: e.name, seconds: e.seconds });
        break;
      case "vmFailed":
        onEvent?.({ type: "vmFailed", name: e.name, message: e.message });
        break;
    }
    await recorder(opts.record, progress)(e);
  };
  const started = performance.now();
  const result = () => {
    const r = backend.runResult ?? newRunResult(plan);
    r.elapsedSeconds = (performance.now() - started) / 1000;
    return r;
  };
  try {
    const core = await runPlan(backend, neutralOf(plan), {
      scope: ns,
      ...(opts.wait !== undefined ? { wait: opts.wait } : {}),
      timeoutSeconds: opts.timeoutSeconds,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onEvent: sink,
      onProgress: progress,
      context: {
        ...(opts.audit?.config ? { config: opts.audit.config } : {}),
        ...(opts.audit?.workloads ? { workloads: opts.audit.workloads } : {}),
        sshAuthConfigured: opts.audit?.sshAuthConfigured ?? plan.secrets.length > 0,
      },
    });
    const r = result();
    r.interrupted = core.interrupted;
    r.waited = core.waited;
    return r;
  } catch (e) {
    if (e instanceof PlanRunError) {
      const r = result();
      r.interrupted = e.result.interrupted;
      throw new RunFailedError(e.cause as Error, r);
    }
    throw e;
  }
}

/** The neutral view of a rendered plan: names, workloads and roles (the objects are built). */
function neutralOf(plan: RunPlan): NeutralPlan {
  return {
    runId: plan.runId,
    peers: [],
    vms: plan.vms.map((v, i) => ({
      workload: v.workload,
      role: v.role,
      index: i + 1,
      name: v.name,
      labels: { ...(v.vm.metadata.labels ?? {}) },
      cpuCores: 0,
      memoryBytes: 0,
      dataDisks: [],
      userData: {},
      carriesCredentials: v.secret !== undefined,
    })),
  };
}

/** A sink that never throws: a failing subscriber is reported as progress. */
function recorder(sink: EventSink | undefined, progress: (m: string) => void): EventSink {
  return async (e: VirtworkEvent) => {
    if (!sink) return;
    try {
      await sink(e);
    } catch (err) {
      progress(`audit: ${(err as Error).message}`);
    }
  };
}

/** The result of a run of `plan` before anything was done: everything `skipped`. */
export function newRunResult(plan: RunPlan): RunResult {
  return {
    runId: plan.runId,
    namespace: plan.namespace.metadata.name,
    namespaceOutcome: "skipped",
    services: plan.services.map((s) => ({ name: s.metadata.name, outcome: "skipped" })),
    secrets: plan.secrets.map((s) => ({ name: s.metadata.name, outcome: "skipped" })),
    vms: plan.vms.map((v) => ({
      workload: v.workload,
      role: v.role,
      name: v.name,
      outcome: "skipped",
      phase: "-",
      ready: false,
    })),
    waited: false,
    interrupted: false,
    timedOut: false,
    failedVms: 0,
    elapsedSeconds: 0,
  };
}

/** What {@linkcode createRunObjects} needs beyond {@linkcode RunOptions}. */
export interface CreateObjectsOptions extends
  Pick<
    RunOptions,
    "signal" | "concurrency" | "rollbackTimeoutSeconds" | "onProgress"
  > {
  /** Receives objectCreated and note events (never throws: wrap with care). */
  record: EventSink;
  /**
   * Told of each VM created or found this run's, with the server's creation timestamp of one
   * created now (for latencies measured on the server's clock) and the `performance.now()` at
   * which its create request left (after the rate limiter's wait).
   */
  onVmCreated?: (
    name: string,
    outcome: "created" | "exists",
    serverTime: string | undefined,
    sentAt: number,
  ) => void | Promise<void>;
  /**
   * Called once the Namespace exists (and a re-run's preflight passed), before any other object
   * is created: a readiness watch started here sees every VM's phases as they happen.
   */
  onNamespaceReady?: () => void | Promise<void>;
}

/**
 * The create half of a run: the Namespace (with a preflight when it existed), the Services in
 * order, then Secrets and VMs by a pool of workers; on an interrupt, rolls back what was in
 * flight. Fills `result` and `created` (VM name → `performance.now()` at which its create request
 * left: the clock of its phases starts when it was asked for, not when the answer came back).
 * @throws the first non-transient error (the result says what exists)
 */
export async function createRunObjects(
  api: ClusterApi,
  plan: RunPlan,
  result: RunResult,
  created: Map<string, number>,
  opts: CreateObjectsOptions,
): Promise<void> {
  const progress = opts.onProgress ?? (() => {});
  const record = opts.record;
  const ns = plan.namespace.metadata.name;
  const recordFailure = (obj: KubeObject, e: unknown) =>
    record({
      type: "objectCreated",
      runId: plan.runId,
      kind: obj.kind,
      name: obj.metadata.name,
      outcome: "failed",
      error: (e as Error).message,
    });
  const create = async (resource: Resource, obj: KubeObject): Promise<CreateOutcome> => {
    let outcome: CreateOutcome = "created";
    let serverTime: string | undefined;
    let sentAt: number | undefined;
    try {
      const made = await api.create(resource, ns, obj, { onSend: (at) => sentAt = at });
      const ts = (made?.metadata as { creationTimestamp?: unknown } | undefined)?.creationTimestamp;
      if (typeof ts === "string" && ts.length <= 64) serverTime = ts;
    } catch (e) {
      // Interrupted: the caller rolls back what may have landed; nothing failed.
      if (opts.signal?.aborted) throw e;
      // Only AlreadyExists means "exists"; any other 409 (Conflict, ...) is a failure.
      const exists = e instanceof KubeApiError && e.status === 409 && e.reason === "AlreadyExists";
      if (!exists) {
        await recordFailure(obj, e);
        throw e;
      }
      // The Namespace is shared by runs. Anything else must be this run's own object (a create
      // retried after its answer was lost), never another run's or a stranger's.
      if (resource !== "namespaces") {
        try {
          claim(obj, await api.get(resource, ns, obj.metadata.name));
        } catch (err) {
          if (opts.signal?.aborted) throw err;
          await recordFailure(obj, err);
          throw err;
        }
      }
      outcome = "exists";
    }
    progress(`${obj.kind} ${obj.metadata.name}: ${outcome}`);
    if (resource === "virtualmachines") {
      // An API that does not say when it sent (a test's) starts the clock at the answer.
      const at = sentAt ?? performance.now();
      created.set(obj.metadata.name, at);
      await opts.onVmCreated?.(obj.metadata.name, outcome, serverTime, at);
    }
    await record({
      type: "objectCreated",
      runId: plan.runId,
      kind: obj.kind,
      name: obj.metadata.name,
      outcome,
    });
    return outcome;
  };
  /** Throws unless `existing` is this run's object. */
  const claim = (planned: KubeObject, existing: ApiObject) => {
    const labels = existing.metadata.labels ?? {};
    const managed = labels[LABELS.MANAGED_BY] === MANAGED_BY_VALUE;
    const owner = managed ? labels[LABELS.RUN_ID] : undefined;
    if (managed && owner === plan.runId) return;
    throw new ObjectCollisionError(
      planned.kind,
      ns,
      planned.metadata.name,
      managed ? owner ?? "(no run id)" : undefined,
      Boolean(existing.metadata.deletionTimestamp),
    );
  };
  /**
   * Before creating anything in a namespace that already existed: is any planned name taken by
   * another virtwork run? One list per kind finds them all, so a re-run fails with nothing created.
   */
  const preflight = async () => {
    const kinds: [Resource, KubeObject[]][] = [
      ["services", plan.services],
      ["secrets", plan.secrets],
      ["virtualmachines", plan.vms.map((v) => v.vm)],
    ];
    for (const [resource, planned] of kinds) {
      if (planned.length === 0) continue;
      const existing = new Map(
        (await api.list(resource, ns, managedSelector())).map((o) => [o.metadata.name, o]),
      );
      for (const obj of planned) {
        const found = existing.get(obj.metadata.name);
        if (found) claim(obj, found);
      }
    }
  };
  /** Objects whose create was in flight at the interrupt, with where their outcome goes. */
  const inDoubt: Doubt[] = [];
  // Namespace and Services first, in order: the network clients resolve the Service by DNS.
  let stage: Doubt | undefined;
  try {
    stage = {
      resource: "namespaces",
      obj: plan.namespace,
      set: (o) => result.namespaceOutcome = o,
    };
    result.namespaceOutcome = await create("namespaces", plan.namespace);
    stage = undefined;
    if (result.namespaceOutcome === "exists") await preflight();
    await opts.onNamespaceReady?.();
    for (const [i, svc] of plan.services.entries()) {
      stage = { resource: "services", obj: svc, set: (o) => result.services[i]!.outcome = o };
      result.services[i]!.outcome = await create("services", svc);
    }
    stage = undefined;
  } catch (e) {
    if (!opts.signal?.aborted) throw e;
    result.interrupted = true;
    if (stage) inDoubt.push(stage);
  }

  // Secrets and VMs: a pool of workers; the first non-transient failure stops new creations.
  const abort = new AbortController();
  const stop = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", stop, { once: true });
  let firstError: unknown;
  let next = 0;
  const worker = async () => {
    while (!abort.signal.aborted && next < plan.vms.length) {
      const i = next++;
      const v = plan.vms[i]!;
      const out = result.vms[i]!;
      let doing: Doubt | undefined;
      try {
        if (v.secret) {
          const si = plan.secrets.indexOf(v.secret);
          doing = {
            resource: "secrets",
            obj: v.secret,
            set: (o) => result.secrets[si]!.outcome = o,
          };
          result.secrets[si]!.outcome = await create("secrets", v.secret);
        }
        doing = { resource: "virtualmachines", obj: v.vm, set: (o) => out.outcome = o, vm: out };
        out.outcome = await create("virtualmachines", v.vm);
      } catch (e) {
        if (opts.signal?.aborted) {
          // Interrupted: the create in progress may still land (or was never sent); the rollback
          // below finds out and undoes it.
          if (doing) inDoubt.push(doing);
          return;
        }
        out.outcome = "failed";
        out.error = (e as Error).message;
        if (firstError === undefined) firstError = e;
        abort.abort(e);
      }
    }
  };
  const workers = Math.max(1, Math.min(opts.concurrency ?? 20, plan.vms.length));
  if (!result.interrupted) await Promise.all(Array.from({ length: workers }, worker));
  opts.signal?.removeEventListener("abort", stop);
  if (firstError !== undefined) throw firstError;
  if (opts.signal?.aborted) result.interrupted = true;
  if (result.interrupted) {
    // The Secret of a VM that was not created was made for the VM in progress: undo it too.
    for (const [i, v] of plan.vms.entries()) {
      if (!v.secret || inDoubt.some((d) => d.obj === v.secret)) continue;
      const si = plan.secrets.indexOf(v.secret);
      const vmKept = result.vms[i]!.outcome === "created" || result.vms[i]!.outcome === "exists";
      const vmDoubt = inDoubt.some((d) => d.obj === v.vm);
      if (!vmKept && vmDoubt && result.secrets[si]!.outcome === "created") {
        inDoubt.push({
          resource: "secrets",
          obj: v.secret,
          set: (o) => result.secrets[si]!.outcome = o,
          known: true,
        });
      }
    }
    if (inDoubt.length > 0) {
      await rollback(
        api,
        plan,
        inDoubt,
        opts,
        progress,
        async (level, reason, object, message) =>
          await record({ type: "note", runId: plan.runId, level, reason, object, message }),
        async (obj, e) =>
          await record({
            type: "objectCreated",
            runId: plan.runId,
            kind: obj.kind,
            name: obj.metadata.name,
            outcome: "created",
            ...(e ? { error: e } : {}),
          }),
      );
    }
  }
}

/** An object whose create was in progress at an interrupt. */
interface Doubt {
  resource: Resource;
  obj: KubeObject;
  /** Sets its outcome in the result. */
  set: (o: CreateOutcome) => void;
  /** The VM's entry in the result, for the error text. */
  vm?: VmOutcome;
  /** Its create was answered; it goes because the VM it was made for was not created. */
  known?: boolean;
}

/**
 * Undoes the creates in progress at an interrupt: waits (up to the rollback timeout) until their
 * requests have ended, then deletes each object of this run that landed. What cannot be
 * established is `unknown`; what landed and could not be deleted stays `created` and is audited.
 */
async function rollback(
  api: ClusterApi,
  plan: RunPlan,
  items: readonly Doubt[],
  opts: Pick<RunOptions, "rollbackTimeoutSeconds">,
  progress: (m: string) => void,
  note: (level: EventLevel, reason: string, object: string, message: string) => Promise<void>,
  recordExisting: (obj: KubeObject, error: string) => Promise<void>,
): Promise<void> {
  const ns = plan.namespace.metadata.name;
  const seconds = opts.rollbackTimeoutSeconds ?? 10;
  const deadline = AbortSignal.timeout(seconds * 1000);
  progress(`rolling back ${items.length} creates in progress at the interrupt`);
  const settled = api.settle ? await api.settle(deadline) : true;
  const undo = api.detached?.(deadline) ?? api;
  for (const d of items) {
    const name = d.obj.metadata.name;
    const report = async (
      outcome: CreateOutcome,
      level: EventLevel,
      reason: string,
      message: string,
    ) => {
      d.set(outcome);
      if (d.vm) d.vm.error = message;
      progress(`${d.obj.kind} ${name}: ${message}`);
      await note(level, reason, `${d.obj.kind}/${name}`, message);
    };
    const why = d.known
      ? `made for a VM that was not created`
      : `its create was in flight at the interrupt`;
    let found: ApiObject | undefined;
    try {
      found = await undo.get(d.resource, ns, name);
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 404)) {
        await report(
          "unknown",
          "warning",
          "MayExist",
          `${why}; whether it exists is unknown: ${(e as Error).message}`,
        );
        continue;
      }
    }
    if (!found) {
      if (settled) d.set("skipped");
      else {
        await report(
          "unknown",
          "warning",
          "MayExist",
          `${why} and had not ended after ${seconds}s; it may exist`,
        );
      }
      continue;
    }
    if (d.resource === "namespaces") {
      // Shared by runs: never deleted here; this run may or may not have made it.
      await report("unknown", "warning", "MayExist", `${why}; the namespace exists`);
      continue;
    }
    // Another run's or a stranger's object: not ours to undo (our create could not have made it).
    if (found.metadata.labels?.[LABELS.RUN_ID] !== plan.runId) {
      d.set("skipped");
      continue;
    }
    try {
      await undo.delete(d.resource, ns, name);
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 404)) {
        const message = `${why} and exists; deleting it failed: ${(e as Error).message}`;
        await report("created", "error", "RollbackFailed", message);
        await recordExisting(d.obj, message);
        continue;
      }
    }
    await report(
      "rolled back",
      "warning",
      "RolledBack",
      d.known ? `${why}; deleted` : `${why} and landed; deleted`,
    );
  }
}

/** What {@linkcode waitForReady} reports. */
export interface ReadinessCallbacks {
  /** A VM became ready `seconds` after its creation. */
  ready: (name: string, seconds: number) => void | Promise<void>;
  /** A VM cannot become ready. */
  failed: (name: string, message: string) => void | Promise<void>;
  /** A VM's VMI phase changed (first seen, Scheduling, Running, ...). */
  phase?: (name: string, phase: string) => void | Promise<void>;
  /** A poll ended with VMs still pending. */
  waiting?: (w: { ready: number; failed: number; pending: number; total: number }) => void;
}

/**
 * Polls until every created VM of `result` is Ready or failed, or `timeoutSeconds` passes
 * (then `result.timedOut`, and each pending VM's `error` says so). `created` holds each VM's
 * creation time (`performance.now()`). An abort ends the wait with `result.interrupted`.
 */
export async function waitForReady(
  api: ClusterApi,
  plan: RunPlan,
  result: RunResult,
  created: Map<string, number>,
  opts: Pick<RunOptions, "timeoutSeconds" | "pollIntervalSeconds" | "signal">,
  progress: (m: string) => void,
  report: ReadinessCallbacks,
  only?: ReadonlySet<string>,
): Promise<void> {
  const ns = result.namespace;
  const deadline = performance.now() + opts.timeoutSeconds * 1000;
  const pending = new Map(
    result.vms.filter((v) =>
      (v.outcome === "created" || v.outcome === "exists") && (!only || only.has(v.name))
    ).map((v) => [v.name, v]),
  );
  // One list per poll instead of one GET per VM keeps a 200-VM run within the rate limit.
  const selector = managedSelector();
  while (pending.size > 0) {
    const vmis = await api.list("virtualmachineinstances", ns, selector);
    const byName = new Map(vmis.map((v) => [v.metadata.name, v]));
    // The VMs' printable status tells a VM KubeVirt cannot start (ErrorUnschedulable, ...).
    const vms = await api.list("virtualmachines", ns, selector);
    const vmByName = new Map(vms.map((v) => [v.metadata.name, v]));
    const now = performance.now();
    for (const [name, v] of pending) {
      const vmi = byName.get(name);
      const phase = (vmi?.status?.phase as string | undefined) ?? "Pending";
      if (phase !== v.phase) await report.phase?.(name, phase);
      v.phase = phase;
      const failure = vmFailure(vmi, vmByName.get(name));
      if (failure) {
        v.failed = true;
        v.phase = failure.phase;
        v.error = `failed: ${failure.message}`;
        result.failedVms++;
        pending.delete(name);
        progress(`VM ${name}: ${v.error}`);
        await report.failed(name, failure.message);
      } else if (vmiReady(vmi)) {
        v.ready = true;
        v.secondsToReady = (now - (created.get(name) ?? now)) / 1000;
        pending.delete(name);
        progress(`VM ${name}: ready after ${v.secondsToReady.toFixed(1)}s`);
        await report.ready(name, v.secondsToReady);
      }
    }
    if (pending.size === 0) break;
    const left = deadline - performance.now();
    if (left <= 0) {
      result.timedOut = true;
      for (const v of pending.values()) {
        v.error = `not ready after ${opts.timeoutSeconds}s (phase ${v.phase})`;
      }
      break;
    }
    progress(`waiting for ${pending.size} of ${plan.vms.length} VMs`);
    report.waiting?.({
      ready: result.vms.filter((v) => v.ready).length,
      failed: result.failedVms,
      pending: pending.size,
      total: plan.vms.length,
    });
    try {
      await sleep(Math.min(opts.pollIntervalSeconds * 1000, left), opts.signal);
    } catch {
      result.interrupted = true;
      break;
    }
  }
}

/**
 * Why a VM cannot become ready: its VMI is `Failed`, or the VM's printable status is one of
 * {@linkcode VM_ERROR_STATUSES}; undefined while it may still become ready.
 */
export function vmFailure(
  vmi: ApiObject | undefined,
  vm: ApiObject | undefined,
): { phase: string; message: string } | undefined {
  if (vmi?.status?.phase === "Failed") {
    const conditions = (vmi.status?.conditions ?? []) as { type?: string; reason?: string }[];
    const reason = (vmi.status?.reason as string | undefined) ??
      conditions.find((c) => c.type === "Ready")?.reason;
    return { phase: "Failed", message: `VMI phase Failed (${reason ?? "no reason given"})` };
  }
  const status = vm?.status?.printableStatus;
  if (typeof status === "string" && VM_ERROR_STATUSES.includes(status)) {
    const phase = (vmi?.status?.phase as string | undefined) ?? "none";
    return { phase: status, message: `VM status ${status} (VMI phase ${phase})` };
  }
  return undefined;
}

/** True when `err` (or the error a RunFailedError wraps) is a connection failure. */
export function isConnectionFailure(err: unknown): boolean {
  const e = err instanceof RunFailedError ? err.cause : err;
  return e instanceof ConnectionError;
}

/** True when `err` (or the error a RunFailedError wraps) is an API error status. */
export function apiFailure(err: unknown): KubeApiError | undefined {
  const e = err instanceof RunFailedError ? err.cause : err;
  return e instanceof KubeApiError ? e : undefined;
}
