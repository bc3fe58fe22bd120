/**
 * Workloads → {@linkcode NeutralPlan}: the VMs of one run with names, labels, sizes in bytes, data
 * disks, who connects to whom, and each guest's cloud-config as data. Backend-free: a backend
 * names the peers ({@linkcode Backend.peerAddresses}) and turns the plan into its own objects.
 *
 * Names: `virtwork-<workload>-<i>` for single-role workloads, `virtwork-<workload>-<role>-<i>`
 * otherwise (the network workload's `server` and `client` of instance `i`).
 *
 * @example
 * ```ts
 * import { buildNeutralPlan } from "./plan.ts";
 * import { defaultRegistry } from "../workloads/registry.ts";
 * const cpu = defaultRegistry().get("cpu", { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" });
 * const plan = await buildNeutralPlan([cpu], { runId: crypto.randomUUID() }, async () => new Map());
 * console.log(plan.vms[0]?.name); // virtwork-cpu-1
 * ```
 * @module
 */
import type { GuestOs, Workload } from "../workloads/workload.ts";
import { DEFAULT_GUEST_OS } from "../workloads/workload.ts";
import type { NeutralPlan, NeutralVm, PeerNeed } from "./backend.ts";

/** Label keys virtwork puts on everything it creates (KubeVirt labels, foundry labels). */
export const LABELS = {
  APP_NAME: "app.kubernetes.io/name",
  MANAGED_BY: "app.kubernetes.io/managed-by",
  COMPONENT: "app.kubernetes.io/component",
  ROLE: "virtwork/role",
  RUN_ID: "virtwork/run-id",
} as const;

/** Value of {@linkcode LABELS.MANAGED_BY} and {@linkcode LABELS.APP_NAME}. */
export const MANAGED_BY_VALUE = "virtwork";

/** Labels of every object of a run. */
export function baseLabels(runId: string): Record<string, string> {
  return {
    [LABELS.APP_NAME]: MANAGED_BY_VALUE,
    [LABELS.MANAGED_BY]: MANAGED_BY_VALUE,
    [LABELS.RUN_ID]: runId,
  };
}

/** Name of VM number `index` (1-based) of `workload` in `role`, of a workload with `roles`. */
export function vmName(workload: string, role: string, index: number, roles: number): string {
  return roles > 1 ? `virtwork-${workload}-${role}-${index}` : `virtwork-${workload}-${index}`;
}

/** A planned VM before its user data is built (the backend names its peers first). */
export type SkeletonVm = Omit<NeutralVm, "userData">;

/** A plan before user data: what {@linkcode Backend.peerAddresses} reads. */
export interface PlanSkeleton extends Omit<NeutralPlan, "vms"> {
  /** The VMs, in creation order. */
  vms: SkeletonVm[];
}

/** Settings of a plan. */
export interface NeutralPlanOptions {
  /** Run id (label value on everything). */
  runId: string;
  /** The guests' distribution (default fedora, the cluster default). */
  os?: GuestOs;
}

/**
 * The VMs, peers and services of a run, without user data. Workloads with `enabled: false` or
 * `vmCount: 0` contribute nothing.
 */
export function planSkeleton(workloads: readonly Workload[], runId: string): PlanSkeleton {
  const base = baseLabels(runId);
  const plan: PlanSkeleton = { runId, vms: [], peers: [], services: [] };
  for (const w of workloads) {
    if (!w.config.enabled || w.config.vmCount === 0) continue;
    const component = { ...base, [LABELS.COMPONENT]: w.name };
    const svc = w.service();
    if (svc) plan.services!.push({ workload: w.name, spec: svc });
    const roles = w.roles();
    const { cpuCores, memoryBytes } = w.resources();
    const needs = w.peerNeeds();
    for (let i = 1; i <= w.config.vmCount; i++) {
      for (const role of roles) {
        plan.vms.push({
          workload: w.name,
          role,
          index: i,
          name: vmName(w.name, role, i, roles.length),
          labels: { ...component, [LABELS.ROLE]: role },
          cpuCores,
          memoryBytes,
          dataDisks: w.dataDisks().map((d) => ({ ...d })),
          carriesCredentials: w.carriesCredentials(),
        });
      }
      for (const n of needs) {
        const need: PeerNeed = {
          from: vmName(w.name, n.from, i, roles.length),
          to: vmName(w.name, n.to, i, roles.length),
          ports: [...n.ports],
        };
        plan.peers.push(need);
      }
    }
  }
  return plan;
}

/**
 * Adds each VM's user data to `skeleton`: the workload builds it for the guest's distribution
 * with the addresses of the VMs it connects to (`addresses`: VM name → address).
 *
 * @throws {RangeError} when a VM needs a peer the backend gave no address for
 */
export function completePlan(
  skeleton: PlanSkeleton,
  workloads: readonly Workload[],
  addresses: ReadonlyMap<string, string>,
  os: GuestOs = DEFAULT_GUEST_OS,
): NeutralPlan {
  const byName = new Map(workloads.map((w) => [w.name, w]));
  const roleOf = new Map(skeleton.vms.map((v) => [v.name, v.role]));
  const vms: NeutralVm[] = skeleton.vms.map((v) => {
    const w = byName.get(v.workload);
    if (!w) throw new RangeError(`no workload ${v.workload} for VM ${v.name}`);
    const peers: Record<string, string> = {};
    for (const p of skeleton.peers.filter((p) => p.from === v.name)) {
      const address = addresses.get(p.to);
      if (address === undefined) {
        throw new RangeError(`VM ${v.name} connects to ${p.to}, but it has no address`);
      }
      peers[roleOf.get(p.to)!] = address;
    }
    return { ...v, userData: w.userData(v.role, { os, peers, vmName: v.name }) };
  });
  return { ...skeleton, vms };
}

/**
 * The whole plan: {@linkcode planSkeleton}, then the backend's peer addresses, then
 * {@linkcode completePlan}.
 */
export async function buildNeutralPlan(
  workloads: readonly Workload[],
  o: NeutralPlanOptions,
  peerAddresses: (skeleton: PlanSkeleton) => Promise<Map<string, string>>,
): Promise<NeutralPlan> {
  const skeleton = planSkeleton(workloads, o.runId);
  const addresses = skeleton.peers.length > 0 ? await peerAddresses(skeleton) : new Map();
  return completePlan(skeleton, workloads, addresses, o.os);
}
