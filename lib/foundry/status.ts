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

/**
 * The status of a VM whose domain is in libvirt state `state`, carried forward from `previous` so that
 * transition times survive.
 *
 * @param generation the `metadata.generation` of the stored spec
 */
export function statusFromDomainState(
  state: number,
  generation: number,
  now: Date,
  previous: VirtualMachineStatus = {},
): VirtualMachineStatus {
  const phase = phaseFromDomainState(state);
  return {
    phase,
    conditions: setCondition(previous.conditions ?? [], READY[phase], now),
    observedGeneration: generation,
  };
}
