/**
 * A VM's status from its libvirt domain state: the phase and a Kubernetes-style `Ready` condition whose
 * transition time only moves when the condition's status changes.
 *
 * @module
 */

import { DomainState } from "../libvirt/constants.ts";
import type { Condition, Phase, VirtualMachineStatus } from "./types.ts";

/**
 * The phase of a domain in libvirt state `state`: running, blocked and shutting down are `Running`;
 * shut off, paused and suspended are `Stopped`; crashed is `Failed`; anything else `Pending`.
 */
export function phaseFromDomainState(state: number): Phase {
  switch (state) {
    case DomainState.RUNNING:
    case DomainState.BLOCKED:
    case DomainState.SHUTDOWN:
      return "Running";
    case DomainState.SHUTOFF:
    case DomainState.PAUSED:
    case DomainState.PMSUSPENDED:
      return "Stopped";
    case DomainState.CRASHED:
      return "Failed";
    default:
      return "Pending";
  }
}

/** A condition before foundry stamps its transition time. */
export type ConditionUpdate = Omit<Condition, "lastTransitionTime">;

/**
 * `conditions` with `update` applied: a condition of the same type is replaced, keeping its
 * `lastTransitionTime` when its `status` did not change; otherwise `now` is stamped.
 */
export function setCondition(
  conditions: readonly Condition[],
  update: ConditionUpdate,
  now: Date,
): Condition[] {
  const old = conditions.find((c) => c.type === update.type);
  const lastTransitionTime = old !== undefined && old.status === update.status
    ? old.lastTransitionTime
    : now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const next: Condition = { ...update, lastTransitionTime };
  return old === undefined
    ? [...conditions, next]
    : conditions.map((c) => (c.type === update.type ? next : c));
}

const READY: Record<Phase, ConditionUpdate> = {
  Running: { type: "Ready", status: "True", reason: "VMRunning", message: "VM is running" },
  Stopped: { type: "Ready", status: "False", reason: "VMStopped", message: "VM is not running" },
  Failed: { type: "Ready", status: "False", reason: "VMCrashed", message: "VM has crashed" },
  Pending: {
    type: "Ready",
    status: "Unknown",
    reason: "VMStateUnknown",
    message: "VM state is unknown",
  },
  Creating: {
    type: "Ready",
    status: "False",
    reason: "VMCreating",
    message: "VM is being created",
  },
  Destroying: {
    type: "Ready",
    status: "False",
    reason: "VMDestroying",
    message: "VM is being destroyed",
  },
};

/** The phases an operation in progress reports. */
export type OperationPhase = "Creating" | "Destroying";

/**
 * A create or destroy in progress, recorded in the status record while it runs (from the domain's
 * definition until it is started, from the start of a destroy until the domain is gone). Readers
 * in other processes report its phase until it ends; a record its process left behind (killed,
 * host crashed) is ignored once `expiresAt` has passed. The expiry is short (create: the minutes
 * from a definition to a start; destroy: its shutdown timeout and as much again), since a reader
 * cannot look at the writer's process (Deno reads `/proc` only with every permission, and the
 * writer may be on another machine); `pid` and `host` say who it was.
 */
export interface OperationMarker {
  /** What is going on. */
  phase: OperationPhase;
  /** Process id of the foundry process doing it. */
  pid: number;
  /** Host name of the machine that process runs on ("" when unknown). */
  host: string;
  /** RFC 3339 time it began. */
  startedAt: string;
  /** RFC 3339 time after which the marker is stale whatever the process. */
  expiresAt: string;
}

/** The status record foundry stores: the status, and an operation in progress if any. */
export interface StoredStatus extends VirtualMachineStatus {
  /** A create or destroy in progress. */
  operation?: OperationMarker;
}

function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/** A marker of `phase` by this process, stale after `ttlMs`. */
export function operationMarker(phase: OperationPhase, now: Date, ttlMs: number): OperationMarker {
  return {
    phase,
    pid: Deno.pid,
    host: hostName(),
    startedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
  };
}

/** The phase of the operation recorded in `stored` if it is not stale at `now` (`expiresAt`). */
export function activeOperation(
  stored: StoredStatus | undefined,
  now: Date,
): OperationPhase | undefined {
  const op = stored?.operation;
  if (op === undefined || (op.phase !== "Creating" && op.phase !== "Destroying")) return undefined;
  const expires = Date.parse(op.expiresAt);
  return expires > now.getTime() ? op.phase : undefined;
}

/**
 * The phase of a VM whose domain is in libvirt state `state`: that of an operation in progress
 * (see {@linkcode activeOperation}), else {@linkcode phaseFromDomainState}.
 */
export function phaseOf(state: number, stored: StoredStatus | undefined, now: Date): Phase {
  return activeOperation(stored, now) ?? phaseFromDomainState(state);
}

/**
 * The status of a VM whose domain is in libvirt state `state`, carried forward from `previous` so that
 * transition times survive. While `previous` records an operation in progress, the phase is that
 * operation's (`Creating`, `Destroying`); the marker itself is not carried into the result.
 *
 * @param generation the `metadata.generation` of the stored spec
 */
export function statusFromDomainState(
  state: number,
  generation: number,
  now: Date,
  previous: StoredStatus = {},
): VirtualMachineStatus {
  const phase = phaseOf(state, previous, now);
  return {
    phase,
    conditions: setCondition(previous.conditions ?? [], READY[phase], now),
    observedGeneration: generation,
  };
}
