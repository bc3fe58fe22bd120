/**
 * Turns a run's {@linkcode NeutralPlan} into the KubeVirt objects of one run: the Namespace,
 * user-data Secrets, Services and VirtualMachines, with names and labels. Pure: no cluster is
 * contacted, so `--dry-run` prints it. Clients reach their peers by the workload's Service name.
 * @module
 */
import { buildCloudConfig } from "../cloudinit/cloud_config.ts";
import { formatQuantity } from "../workloads/quantity.ts";
import type { GuestOs, Workload } from "../workloads/workload.ts";
import type { NeutralPlan } from "../virtwork/backend.ts";
import { completePlan, type PlanSkeleton, planSkeleton } from "../virtwork/plan.ts";
import { LABELS, MANAGED_BY_VALUE } from "./constants.ts";
import {
  buildNamespace,
  buildService,
  buildUserDataSecret,
  buildVirtualMachine,
  type KubeObject,
  USERDATA_INLINE_MAX,
} from "./manifests.ts";

export { vmName } from "../virtwork/plan.ts";

/** Settings shared by every object of a run. */
export interface PlanOptions {
  /** Namespace of every object. */
  namespace: string;
  /** Run id label value. */
  runId: string;
  /** OS container disk image of every VM. */
  containerDiskImage: string;
  /** The image's distribution (default fedora). */
  os?: GuestOs;
}

/** One VM of the plan and, when its user data carries credentials, the Secret holding it. */
export interface PlannedVm {
  /** Workload name. */
  workload: string;
  /** VM role. */
  role: string;
  /** VM name. */
  name: string;
  /** The VirtualMachine object. */
  vm: KubeObject;
  /** The user-data Secret, when the user data carries credentials. */
  secret?: KubeObject;
}

/** Every object of a run, in creation order within each kind. */
export interface RunPlan {
  /** Run id. */
  runId: string;
  /** The Namespace object. */
  namespace: KubeObject;
  /** User-data Secrets. */
  secrets: KubeObject[];
  /** Services, created before the VMs. */
  services: KubeObject[];
  /** VMs with their Secrets. */
  vms: PlannedVm[];
}

/**
 * How each VM another VM connects to is reached on a cluster: the DNS name of its workload's
 * Service, `<service>.<namespace>.svc.cluster.local`.
 *
 * @throws {RangeError} when a VM is connected to but its workload asks for no Service
 */
export function kubePeerAddresses(
  plan: Pick<PlanSkeleton, "vms" | "peers" | "services">,
  namespace: string,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of plan.peers) {
    const to = plan.vms.find((v) => v.name === p.to);
    const svc = plan.services?.find((s) => s.workload === to?.workload);
    if (!to || !svc) {
      throw new RangeError(`VM ${p.from} connects to ${p.to}, which no Service fronts`);
    }
    out.set(p.to, `${svc.spec.name}.${namespace}.svc.cluster.local`);
  }
  return out;
}

/**
 * The objects of `plan` on a cluster. User data with a password or SSH keys goes into a Secret
 * referenced by `cloudInitNoCloud.secretRef`, so reading the VirtualMachine does not reveal
 * credentials; so does user data larger than KubeVirt accepts inline
 * ({@linkcode USERDATA_INLINE_MAX}). Other user data stays inline.
 */
export function renderRunPlan(
  plan: NeutralPlan,
  o: Omit<PlanOptions, "runId">,
): RunPlan {
  const out: RunPlan = {
    runId: plan.runId,
    namespace: buildNamespace(o.namespace, {
      [LABELS.APP_NAME]: MANAGED_BY_VALUE,
      [LABELS.MANAGED_BY]: MANAGED_BY_VALUE,
    }),
    secrets: [],
    services: [],
    vms: [],
  };
  for (const { workload, spec } of plan.services ?? []) {
    if (!plan.vms.some((v) => v.workload === workload)) continue;
    const component = plan.vms.find((v) => v.workload === workload)!.labels;
    const { [LABELS.ROLE]: _role, ...labels } = component;
    out.services.push(
      buildService(spec, o.namespace, labels, { [LABELS.COMPONENT]: workload }),
    );
  }
  for (const v of plan.vms) {
    const userData = buildCloudConfig(v.userData);
    const common = {
      name: v.name,
      namespace: o.namespace,
      containerDiskImage: o.containerDiskImage,
      cpuCores: v.cpuCores,
      memory: formatQuantity(v.memoryBytes),
      labels: v.labels,
      dataDisks: v.dataDisks,
    };
    const tooLarge = new TextEncoder().encode(userData).length > USERDATA_INLINE_MAX;
    if (v.carriesCredentials || tooLarge) {
      const secretName = `${v.name}-userdata`;
      const secret = buildUserDataSecret(secretName, o.namespace, userData, v.labels);
      out.secrets.push(secret);
      const vm = buildVirtualMachine({ ...common, userDataSecret: secretName });
      out.vms.push({ workload: v.workload, role: v.role, name: v.name, vm, secret });
    } else {
      const vm = buildVirtualMachine({ ...common, userData });
      out.vms.push({ workload: v.workload, role: v.role, name: v.name, vm });
    }
  }
  return out;
}

/**
 * Builds the run plan of `workloads` on a cluster: the neutral plan with Service DNS names as
 * peer addresses, rendered by {@linkcode renderRunPlan}. Workloads with `enabled: false` or
 * `vmCount: 0` contribute nothing.
 */
export function buildRunPlan(workloads: readonly Workload[], o: PlanOptions): RunPlan {
  return renderRunPlan(neutralRunPlan(workloads, o), o);
}

/** The neutral plan of `workloads` for a cluster (peers named by their Service). */
export function neutralRunPlan(workloads: readonly Workload[], o: PlanOptions): NeutralPlan {
  const skeleton = planSkeleton(workloads, o.runId);
  return completePlan(skeleton, workloads, kubePeerAddresses(skeleton, o.namespace), o.os);
}

/** Every object of the plan in the order a run creates them: Namespace, Secrets, Services, VMs. */
export function planObjects(plan: RunPlan): KubeObject[] {
  return [plan.namespace, ...plan.secrets, ...plan.services, ...plan.vms.map((v) => v.vm)];
}
