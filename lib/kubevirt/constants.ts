/**
 * KubeVirt and CDI API coordinates, virtwork's defaults and label keys.
 * @module
 */

/** KubeVirt API coordinates. */
export const KUBEVIRT_API = {
  GROUP: "kubevirt.io",
  VERSION: "v1",
  VM_PLURAL: "virtualmachines",
  VMI_PLURAL: "virtualmachineinstances",
} as const;

/** CDI API coordinates (DataVolumeTemplates). */
export const CDI_API = {
  GROUP: "cdi.kubevirt.io",
  VERSION: "v1beta1",
  DV_PLURAL: "datavolumes",
} as const;

// The labels are the neutral plan's: both backends label with them.
export { LABELS, MANAGED_BY_VALUE } from "../virtwork/plan.ts";
import { LABELS, MANAGED_BY_VALUE } from "../virtwork/plan.ts";

/** Defaults of the configuration chain. */
export const DEFAULTS = {
  NAMESPACE: "virtwork",
  CONTAINER_DISK_IMAGE: "quay.io/containerdisks/fedora:41",
  CPU_CORES: 2,
  MEMORY: "2Gi",
  DATA_DISK_SIZE: "10Gi",
  SSH_USER: "virtwork",
  READY_TIMEOUT_SECONDS: 600,
  POLL_INTERVAL_SECONDS: 15,
  VM_COUNT: 1,
  QPS: 20,
  BURST: 20,
  /** Audit database, relative to the working directory. */
  AUDIT_DB: "virtwork.db",
} as const;

/** The label selector of everything virtwork manages, optionally narrowed to one run. */
export function managedSelector(runId?: string): string {
  const parts = [`${LABELS.MANAGED_BY}=${MANAGED_BY_VALUE}`];
  if (runId) parts.push(`${LABELS.RUN_ID}=${runId}`);
  return parts.join(",");
}
