/**
 * The vocabulary `foundry apply`, `foundry diff` and drift detection share: how a difference between
 * a desired spec and a VM is carried out, one planned change, a VM's plan, and a drift report.
 *
 * @module
 */

/**
 * How a change is carried out:
 * - `live`: now, on the running domain and its persistent definition (memory and vCPUs within the
 *   reserved maximum, attaching a NIC or data disk, growing a disk, labels and annotations);
 * - `reboot`: written into the persistent definition, in effect at the next boot (said so);
 * - `recreate`: only by destroying and creating the VM again (boot image, a disk's name), and only
 *   with `--recreate`;
 * - `forbidden`: never (shrinking a disk), with the reason.
 */
export const CHANGE_CLASSES = ["live", "reboot", "recreate", "forbidden"] as const;

/** How a change is carried out; see {@linkcode CHANGE_CLASSES}. */
export type ChangeClass = typeof CHANGE_CLASSES[number];

/** One difference between the desired spec and the VM, and how it would be carried out. */
export interface SpecChange {
  /**
   * Field path: `spec.memoryGiB`, `spec.dataDisks[vdc]` (lists of named things by their key:
   * device, bridge/mac, ...), `spec.dataDisks[vdc].sizeGB`, `metadata.labels.tier`.
   */
  path: string;
  /** What the VM has (its stored spec, or its domain where that differs); absent when added. */
  from?: unknown;
  /** What the file asks for; absent when removed. */
  to?: unknown;
  /** How it would be carried out. */
  class: ChangeClass;
  /** Why that class; always set for `reboot`, `recreate` and `forbidden`. */
  reason?: string;
}

/** What apply does with one VM. */
export const PLAN_ACTIONS = ["create", "update", "unchanged", "recreate", "prune"] as const;

/** What apply does with one VM; see {@linkcode PLAN_ACTIONS}. */
export type PlanAction = typeof PLAN_ACTIONS[number];

/** The plan for one VM. */
export interface VmPlan {
  /** The VM's name. */
  name: string;
  /** The file (and line) of its document; absent for a VM only pruned. */
  source?: string;
  /** What happens to it. */
  action: PlanAction;
  /** The differences (empty for `create`, `unchanged` and `prune`). */
  changes: SpecChange[];
}

/** One difference between what foundry applied (the stored spec) and what the domain has now. */
export interface DriftChange {
  /** Field path, as in {@linkcode SpecChange.path}. */
  path: string;
  /** The value in the stored spec. */
  stored: unknown;
  /** The value the domain has. */
  actual: unknown;
  /**
   * Where the domain differs: its running state (`live`, e.g. `virsh setmem`), its persistent
   * definition (`config`, e.g. `virsh edit`), or foundry's stored record itself (`metadata`).
   */
  where: "live" | "config" | "metadata";
}

/** Changes made behind foundry's back. */
export interface DriftReport {
  /** The VM's name. */
  name: string;
  /** The differences; empty when the domain is as foundry left it. */
  changes: DriftChange[];
  /**
   * Whether the stored spec still matches the hash recorded when it was applied; `undefined` for
   * a VM stored before hashes were recorded. `false` means the metadata itself was edited.
   */
  specHashMatches: boolean | undefined;
}
