/**
 * Turns workloads into the objects of one run: the Namespace, user-data Secrets, Services and
 * VirtualMachines, with names and labels. Pure: no cluster is contacted, so `--dry-run` prints it.
 * @module
 */
import type { Workload } from "../workloads/workload.ts";
import { LABELS, MANAGED_BY_VALUE } from "./constants.ts";
import {
  baseLabels,
  buildNamespace,
  buildService,
  buildUserDataSecret,
  buildVirtualMachine,
  type KubeObject,
  USERDATA_INLINE_MAX,
} from "./manifests.ts";

/** Settings shared by every object of a run. */
export interface PlanOptions {
  /** Namespace of every object. */
  namespace: string;
  /** Run id label value. */
  runId: string;
  /** OS container disk image of every VM. */
  containerDiskImage: string;
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

/** Name of VM number `index` (1-based) of `workload` in `role`. */
export function vmName(workload: string, role: string, index: number, roles: number): string {
  return roles > 1 ? `virtwork-${workload}-${role}-${index}` : `virtwork-${workload}-${index}`;
}

/**
 * Builds the run plan. Workloads with `enabled: false` or `vmCount: 0` contribute nothing. User data
 * with a password or SSH keys goes into a Secret referenced by `cloudInitNoCloud.secretRef`, so
 * reading the VirtualMachine does not reveal credentials; so does user data larger than KubeVirt
 * accepts inline ({@linkcode USERDATA_INLINE_MAX}). Other user data stays inline.
 */
export function buildRunPlan(workloads: readonly Workload[], o: PlanOptions): RunPlan {
  const base = baseLabels(o.runId);
  const plan: RunPlan = {
    runId: o.runId,
    namespace: buildNamespace(o.namespace, {
      [LABELS.APP_NAME]: MANAGED_BY_VALUE,
      [LABELS.MANAGED_BY]: MANAGED_BY_VALUE,
    }),
    secrets: [],
    services: [],
    vms: [],
  };
  for (const w of workloads) {
    if (!w.config.enabled || w.config.vmCount === 0) continue;
    const component = { ...base, [LABELS.COMPONENT]: w.name };
    const svc = w.service();
    if (svc) {
      plan.services.push(
        buildService(svc, o.namespace, component, { [LABELS.COMPONENT]: w.name }),
      );
    }
    const roles = w.roles();
    const { cpuCores, memory } = w.resources();
    for (let i = 1; i <= w.config.vmCount; i++) {
      for (const role of roles) {
        const name = vmName(w.name, role, i, roles.length);
        const labels = { ...component, [LABELS.ROLE]: role };
        const userData = w.userData(role);
        const common = {
          name,
          namespace: o.namespace,
          containerDiskImage: o.containerDiskImage,
          cpuCores,
          memory,
          labels,
          dataDisks: w.dataDisks(),
        };
        let planned: PlannedVm;
        const tooLarge = new TextEncoder().encode(userData).length > USERDATA_INLINE_MAX;
        if (w.carriesCredentials() || tooLarge) {
          const secretName = `${name}-userdata`;
          const secret = buildUserDataSecret(secretName, o.namespace, userData, labels);
          plan.secrets.push(secret);
          const vm = buildVirtualMachine({ ...common, userDataSecret: secretName });
          planned = { workload: w.name, role, name, vm, secret };
        } else {
          const vm = buildVirtualMachine({ ...common, userData });
          planned = { workload: w.name, role, name, vm };
        }
        plan.vms.push(planned);
      }
    }
  }
  return plan;
}

/** Every object of the plan in the order a run creates them: Namespace, Secrets, Services, VMs. */
export function planObjects(plan: RunPlan): KubeObject[] {
  return [plan.namespace, ...plan.secrets, ...plan.services, ...plan.vms.map((v) => v.vm)];
}
