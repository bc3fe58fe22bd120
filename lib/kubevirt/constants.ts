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

export { DEFAULTS } from "../virtwork/defaults.ts";

/** The label selector of everything virtwork manages, optionally narrowed to one run. */
export function managedSelector(runId?: string): string {
  const parts = [`${LABELS.MANAGED_BY}=${MANAGED_BY_VALUE}`];
  if (runId) parts.push(`${LABELS.RUN_ID}=${runId}`);
  return parts.join(",");
}
