/**
 * `foundry apply` and `foundry diff` on KubeVirt (`--target kubevirt`): the plan that takes a
 * foundry VM on a cluster to its file ({@linkcode planKubevirtVm}, pure, from the `v1alpha1` spec
 * stored in the VirtualMachine's annotation) and the operation that carries it out
 * ({@linkcode applyOnCluster}): a missing VM is created as `foundry create` creates it; an existing
 * one is replaced in one update of the VirtualMachine (with the resourceVersion read, so a change
 * made meanwhile is a conflict), after the NetworkAttachmentDefinitions and the user-data Secret it
 * needs.
 *
 * How a difference is carried out on KubeVirt:
 * - `live`: the VirtualMachine's labels and annotations, and fields with no KubeVirt meaning (kept
 *   in the stored spec only);
 * - `reboot`: written into the VirtualMachine's template, in effect at the next restart (KubeVirt
 *   marks a running VM `RestartRequired`): vCPUs, memory, CPU, NUMA, graphics, installation media,
 *   a NIC added, removed or moved to another bridge, a data disk added (a new blank DataVolume);
 * - `recreate` (only with the `recreate` option: the VM and its disks are deleted and made
 *   again): the boot disk, cloud-init, a NIC's address, a data disk removed or resized (KubeVirt
 *   does not resize a DataVolume from its VirtualMachine);
 * - `forbidden`: shrinking a disk.
 *
 * @example
 * ```ts
 * import { planKubevirtVm } from "./kubevirt_apply.ts";
 * import { kubevirtManifests } from "./kubevirt.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/simple-vm.yaml");
 * if (vm) {
 *   const m = kubevirtManifests(vm, { namespace: "lab", imageUrl: "https://example.org/d.qcow2" });
 *   console.log(planKubevirtVm(vm, m, undefined).action); // "create"
 * }
 * ```
 * @module
 */

import { isStatus, KubeApiError } from "../kubevirt/errors.ts";
import {
  type ApiObject,
  bootDataVolumeName,
  type ClusterObject,
  createOnCluster,
  getOrUndefined,
  installDataVolumeName,
  type KubevirtCluster,
  type KubevirtManifests,
  type KubevirtOptions,
  MANAGED_LABEL,
  MissingNetworkError,
  NAD_RESOURCE,
  SPEC_ANNOTATION,
  storedVmOf,
  userDataSecretName,
} from "./kubevirt.ts";
import { mapChanges, nicChanges, sameValue, specChange } from "./plan_changes.ts";
import type { SpecChange, VmPlan } from "./plan_types.ts";
import type { VirtualMachine } from "./types.ts";
import { VmOperationError } from "./vm_errors.ts";

export type { SpecChange, VmPlan };

const REASON = {
  restart: "written into the VirtualMachine's template: takes effect at the next restart",
  recordOnly: "no KubeVirt meaning: recorded in the stored spec only",
  image: "the boot disk is imported from its image when the VM is created",
  cloudInit: "cloud-init runs only at first boot",
  nicIdentity: "a NIC's address and MAC are its identity, set up by cloud-init at first boot",
  diskRemoved: "removing a data disk deletes its DataVolume and data",
  diskResized: "KubeVirt does not resize a DataVolume from its VirtualMachine",
  shrink: "shrinking a disk loses data",
  newDisk: "a new blank DataVolume, attached at the next restart",
} as const;

/** Spec fields with no KubeVirt meaning: a change is recorded in the stored spec only. */
const RECORD_ONLY = ["domainType", "storagePool", "autostart", "resources", "templateRef"];

/** The data of a Secret as given (base64), or undefined. */
function secretData(o: ApiObject | ClusterObject | undefined): Record<string, string> | undefined {
  return o?.data as Record<string, string> | undefined;
}

/**
 * The plan that takes the cluster's VirtualMachine `current` (undefined: none) to `desired`,
 * whose objects are `m`. Differences come from the stored spec in the VM's annotation; the
 * password hash, which is not stored there, is compared through the user-data Secret
 * (`currentSecret`) and shown only as changed. Recreate-class changes make the action `recreate`
 * with option `recreate`, else they stay in an `update` plan and apply refuses it. Pure.
 *
 * @throws {VmOperationError} when `current` was not made by foundry (no stored spec) or is being
 *   deleted
 */
export function planKubevirtVm(
  desired: VirtualMachine,
  m: KubevirtManifests,
  current: ApiObject | undefined,
  o: { recreate?: boolean; currentSecret?: ApiObject } = {},
): VmPlan {
  const name = desired.metadata.name;
  if (current === undefined) return { name, action: "create", changes: [] };
  const stored = storedVmOf(current);
  if (stored === undefined) {
    throw new VmOperationError(
      `VirtualMachine ${current.metadata.namespace}/${name} was not created by foundry (no ${SPEC_ANNOTATION} annotation); apply leaves it alone`,
    );
  }
  if (current.metadata.deletionTimestamp) {
    throw new VmOperationError(
      `VirtualMachine ${current.metadata.namespace}/${name} is being deleted; apply again once it is gone`,
    );
  }
  const want = JSON.parse(m.vm.metadata.annotations![SPEC_ANNOTATION]!) as VirtualMachine;
  const out: SpecChange[] = [];
  mapChanges("metadata.labels", stored.metadata.labels, want.metadata.labels, out);
  mapChanges("metadata.annotations", stored.metadata.annotations, want.metadata.annotations, out);
  const s = stored.spec;
  const d = want.spec;
  for (const key of ["vcpus", "memoryGiB"] as const) {
    if (s[key] !== d[key]) {
      out.push(specChange(`spec.${key}`, s[key], d[key], "reboot", REASON.restart));
    }
  }
  // The boot disk: made from its image once.
  for (const key of new Set([...Object.keys(s.bootDisk), ...Object.keys(d.bootDisk)])) {
    const a = (s.bootDisk as unknown as Record<string, unknown>)[key];
    const b = (d.bootDisk as unknown as Record<string, unknown>)[key];
    if (sameValue(a, b)) continue;
    const shrink = key === "sizeGB" && typeof a === "number" && typeof b === "number" && b < a;
    out.push(
      specChange(
        `spec.bootDisk.${key}`,
        a,
        b,
        shrink ? "forbidden" : "recreate",
        shrink ? REASON.shrink : key === "sizeGB" ? REASON.diskResized : REASON.image,
      ),
    );
  }
  const hadDisks = new Map((s.dataDisks ?? []).map((x) => [x.device, x]));
  const wantDisks = new Map((d.dataDisks ?? []).map((x) => [x.device, x]));
  for (const [dev, w] of wantDisks) {
    const h = hadDisks.get(dev);
    const path = `spec.dataDisks[${dev}]`;
    if (h === undefined) {
      out.push(specChange(path, undefined, w, "reboot", REASON.newDisk));
      continue;
    }
    if (h.sizeGB !== w.sizeGB) {
      const shrink = w.sizeGB < h.sizeGB;
      out.push(
        specChange(
          `${path}.sizeGB`,
          h.sizeGB,
          w.sizeGB,
          shrink ? "forbidden" : "recreate",
          shrink ? REASON.shrink : REASON.diskResized,
        ),
      );
    }
    if (!sameValue(h.volume, w.volume)) {
      out.push(specChange(`${path}.volume`, h.volume, w.volume, "recreate", REASON.diskRemoved));
    }
    if (!sameValue(h.serial, w.serial)) {
      out.push(specChange(`${path}.serial`, h.serial, w.serial, "reboot", REASON.restart));
    }
  }
  for (const [dev, h] of hadDisks) {
    if (!wantDisks.has(dev)) {
      out.push(specChange(`spec.dataDisks[${dev}]`, h, undefined, "recreate", REASON.diskRemoved));
    }
  }
  nicChanges(s.networkInterfaces ?? [], d.networkInterfaces, out, {
    bridge: ["reboot", REASON.restart],
    added: ["reboot", REASON.restart],
    removed: ["reboot", REASON.restart],
    cloudInit: REASON.cloudInit,
    identity: REASON.nicIdentity,
  });
  if (!sameValue(s.cloudInit, d.cloudInit)) {
    out.push(specChange("spec.cloudInit", s.cloudInit, d.cloudInit, "recreate", REASON.cloudInit));
  } else if (
    o.currentSecret !== undefined && m.secret !== undefined &&
    secretData(o.currentSecret)?.userdata !== secretData(m.secret)?.userdata
  ) {
    // The stored spec has no password hash; the Secret's user data does. Never show it.
    out.push(
      specChange("spec.cloudInit.passwordHash", "(set)", "(changed)", "recreate", REASON.cloudInit),
    );
  }
  const handled = new Set([
    "vcpus",
    "memoryGiB",
    "bootDisk",
    "dataDisks",
    "networkInterfaces",
    "cloudInit",
  ]);
  const rest = new Set([...Object.keys(s), ...Object.keys(d)].filter((k) => !handled.has(k)));
  for (const key of [...rest].sort()) {
    const a = (s as unknown as Record<string, unknown>)[key];
    const b = (d as unknown as Record<string, unknown>)[key];
    if (sameValue(a, b)) continue;
    out.push(
      RECORD_ONLY.includes(key)
        ? specChange(`spec.${key}`, a, b, "live", REASON.recordOnly)
        : specChange(`spec.${key}`, a, b, "reboot", REASON.restart),
    );
  }
  if (out.length === 0) {
    // Same fields, another stored text (an older foundry's): rewrite it, nothing else changes.
    const text = (current.metadata as { annotations?: Record<string, string> }).annotations?.[
      SPEC_ANNOTATION
    ];
    if (text === m.vm.metadata.annotations![SPEC_ANNOTATION]) {
      return { name, action: "unchanged", changes: [] };
    }
    out.push(specChange(`metadata.annotations.${SPEC_ANNOTATION}`, undefined, undefined, "live"));
  }
  const recreate = o.recreate === true &&
    out.some((c) => c.class === "recreate") && !out.some((c) => c.class === "forbidden");
  return { name, action: recreate ? "recreate" : "update", changes: out };
}

/** Changes of a plan apply refuses: forbidden ones, and recreate ones without option `recreate`. */
export function kubevirtRefusedChanges(plan: VmPlan): SpecChange[] {
  return plan.changes.filter((c) =>
    c.class === "forbidden" || (c.class === "recreate" && plan.action !== "recreate")
  );
}

/** Whether `plan` writes the VirtualMachine's template (the VM takes it at its next restart). */
export function needsRestart(plan: VmPlan): boolean {
  return plan.action === "update" && plan.changes.some((c) => c.class === "reboot");
}

/**
 * The VirtualMachine an update stores: `m.vm`'s spec with the cluster's `runStrategy` (apply does
 * not start or stop a VM), its labels and annotations in place of those the old stored spec gave
 * (others' kept), the cluster's metadata otherwise (resourceVersion included).
 */
export function updatedVmObject(
  current: ApiObject,
  m: KubevirtManifests,
): ClusterObject {
  const stored = storedVmOf(current);
  const meta = current.metadata as ApiObject["metadata"] & {
    annotations?: Record<string, string>;
  };
  const without = (from: Record<string, string> | undefined, drop: readonly string[]) =>
    Object.fromEntries(Object.entries(from ?? {}).filter(([k]) => !drop.includes(k)));
  const labels = {
    ...without(meta.labels, Object.keys(stored?.metadata.labels ?? {})),
    ...m.vm.metadata.labels,
  };
  const annotations = {
    ...without(meta.annotations, Object.keys(stored?.metadata.annotations ?? {})),
    ...m.vm.metadata.annotations,
  };
  const spec = structuredClone(m.vm.spec) as Record<string, unknown>;
  const runStrategy = (current.spec as Record<string, unknown> | undefined)?.runStrategy;
  if (runStrategy !== undefined) spec.runStrategy = runStrategy;
  return {
    apiVersion: m.vm.apiVersion,
    kind: m.vm.kind,
    metadata: { ...meta, labels, annotations } as ClusterObject["metadata"],
    spec,
  };
}

/**
 * What the cluster's VirtualMachine `current` was made from, for an apply whose flags name no
 * source: the boot image's source when the stored spec names the same image as `desired` (a new
 * image needs its own), likewise the installation media's, and the storage class of its boot
 * DataVolume (so an update does not drop it from the templates).
 */
export function sourcesOf(
  current: ApiObject,
  desired: VirtualMachine,
): Pick<KubevirtOptions, "imageUrl" | "installMediaUrl" | "storageClass"> {
  const stored = storedVmOf(current);
  const name = desired.metadata.name;
  const templates = (current.spec?.dataVolumeTemplates ?? []) as {
    metadata?: { name?: string };
    spec?: {
      source?: { http?: { url?: string }; pvc?: { namespace?: string; name?: string } };
      storage?: { storageClassName?: string };
    };
  }[];
  const sourceOf = (dv: string): string | undefined => {
    const src = templates.find((t) => t.metadata?.name === dv)?.spec?.source;
    if (typeof src?.http?.url === "string") return src.http.url;
    if (typeof src?.pvc?.namespace === "string" && typeof src.pvc.name === "string") {
      return `pvc:${src.pvc.namespace}/${src.pvc.name}`;
    }
    return undefined;
  };
  const out: Pick<KubevirtOptions, "imageUrl" | "installMediaUrl" | "storageClass"> = {};
  if (stored === undefined) return out;
  const boot = sourceOf(bootDataVolumeName(name));
  if (boot !== undefined && stored.spec.bootDisk.image === desired.spec.bootDisk.image) {
    out.imageUrl = boot;
  }
  const media = sourceOf(installDataVolumeName(name));
  if (
    media !== undefined && stored.spec.installMedia?.image !== undefined &&
    stored.spec.installMedia.image === desired.spec.installMedia?.image
  ) out.installMediaUrl = media;
  const sc = templates.find((t) => t.metadata?.name === bootDataVolumeName(name))?.spec?.storage
    ?.storageClassName;
  if (typeof sc === "string") out.storageClass = sc;
  return out;
}

/** What the cluster operations of apply need beyond create's: a whole-object update. */
export interface KubevirtApplyCluster extends KubevirtCluster {
  /** Replaces an object (PUT); `obj.metadata.resourceVersion` is a precondition when given. */
  replace(
    resource: "secrets" | "virtualmachines",
    namespace: string,
    obj: ClusterObject,
  ): Promise<ApiObject>;
}

/** Options of {@linkcode applyOnCluster}. */
export interface KubevirtApplyOptions {
  /** Create missing NetworkAttachmentDefinitions instead of refusing. */
  createNetworks?: boolean;
  /** The client that undoes what a failed apply did (default: `api`). */
  rollbackApi?: KubevirtApplyCluster;
  /** Told of each step as it is done. */
  onStep?: (detail: string) => void;
}

/** What {@linkcode applyOnCluster} did. */
export interface KubevirtApplyResult {
  /** `Kind/name` of each object created, updated or deleted, with what: `created VirtualMachine/x`. */
  done: string[];
  /** Whether the VM is running and takes the change at its next restart. */
  restartPending: boolean;
}

/** Server-set metadata of an object read back, dropped before it is created again. */
function recreatable(o: ApiObject): ClusterObject {
  const { status: _status, ...rest } = o;
  const meta = o.metadata as ApiObject["metadata"] & { annotations?: Record<string, string> };
  return {
    ...rest,
    metadata: {
      name: meta.name,
      ...(meta.namespace !== undefined ? { namespace: meta.namespace } : {}),
      ...(meta.labels ? { labels: meta.labels } : {}),
      ...(meta.annotations ? { annotations: meta.annotations } : {}),
    },
  } as ClusterObject;
}

/** Adds an undo failure to `e.rollbackErrors`, as createOnCluster does. */
function rollbackError(e: unknown, u: unknown): void {
  if (isStatus(u, 404)) return;
  (e as { rollbackErrors?: unknown[] }).rollbackErrors ??= [];
  (e as { rollbackErrors: unknown[] }).rollbackErrors.push(u);
}

/**
 * Carries out `plan` (from {@linkcode planKubevirtVm}) for the objects `m`:
 * - `create`: as `foundry create` (createOnCluster);
 * - `update`: missing NetworkAttachmentDefinitions checked first (refused without
 *   `createNetworks`), then created; the user-data Secret created or replaced when its data
 *   changed; the VirtualMachine replaced ({@linkcode updatedVmObject}). A failure undoes what this
 *   call did: networks and a Secret it made are deleted, a Secret it replaced is put back, and a
 *   VirtualMachine update with no answer is put back when the cluster took it;
 * - `recreate`: the VirtualMachine (KubeVirt deletes its DataVolumes with it) and its Secret are
 *   deleted, then created from `m`; when the create fails the old objects are created again (the
 *   old disks' data is gone: that is what a recreate does).
 *
 * @throws {MissingNetworkError} before anything is changed, when a network is missing
 * @throws {VmOperationError} when the plan has refused changes (nothing is changed)
 */
export async function applyOnCluster(
  api: KubevirtApplyCluster,
  m: KubevirtManifests,
  plan: VmPlan,
  current: ApiObject | undefined,
  o: KubevirtApplyOptions = {},
): Promise<KubevirtApplyResult> {
  const ns = m.vm.metadata.namespace!;
  const name = m.vm.metadata.name;
  const undo = o.rollbackApi ?? api;
  const refused = kubevirtRefusedChanges(plan);
  if (refused.length > 0) {
    throw new VmOperationError(
      `VM ${name}: ${refused.map((c) => `${c.path} is ${c.class}: ${c.reason}`).join("; ")}`,
    );
  }
  if (plan.action === "unchanged") return { done: [], restartPending: false };
  if (plan.action === "create" || current === undefined) {
    const r = await createOnCluster(api, m, {
      ...(o.createNetworks !== undefined ? { createNetworks: o.createNetworks } : {}),
      rollbackApi: undo,
      ...(o.onStep ? { onStep: (_s, detail) => o.onStep!(`created ${detail}`) } : {}),
    });
    return { done: r.created.map((c) => `created ${c}`), restartPending: false };
  }
  if (plan.action === "recreate") return await recreate(api, undo, m, current, o);

  const missing: ClusterObject[] = [];
  for (const nad of m.networks) {
    if (!await getOrUndefined(api, NAD_RESOURCE, ns, nad.metadata.name)) missing.push(nad);
  }
  if (missing.length > 0 && o.createNetworks !== true) {
    throw new MissingNetworkError(ns, missing.map((n) => n.metadata.name));
  }
  const secretName = userDataSecretName(name);
  const oldSecret = await getOrUndefined(api, "secrets", ns, secretName);
  const done: string[] = [];
  const undoSteps: (() => Promise<unknown>)[] = [];
  const step = (text: string) => {
    done.push(text);
    o.onStep?.(text);
  };
  let vmSent = false;
  const next = updatedVmObject(current, m);
  try {
    for (const nad of missing) {
      try {
        await api.create(NAD_RESOURCE, ns, nad);
      } catch (e) {
        // Made meanwhile by another run: there, and not ours to remove.
        if (isStatus(e, 409)) continue;
        if (!(e instanceof KubeApiError)) {
          undoSteps.push(() => undo.delete(NAD_RESOURCE, ns, nad.metadata.name));
        }
        throw e;
      }
      undoSteps.push(() => undo.delete(NAD_RESOURCE, ns, nad.metadata.name));
      step(`created NetworkAttachmentDefinition ${ns}/${nad.metadata.name}`);
    }
    if (m.secret && !oldSecret) {
      undoSteps.push(() => undo.delete("secrets", ns, secretName));
      await api.create("secrets", ns, m.secret);
      step(`created Secret ${ns}/${secretName}`);
    } else if (m.secret && oldSecret && !sameValue(secretData(oldSecret), secretData(m.secret))) {
      const before = recreatable(oldSecret);
      undoSteps.push(async () => {
        const now = await undo.get("secrets", ns, secretName);
        await undo.replace("secrets", ns, {
          ...before,
          metadata: { ...before.metadata, resourceVersion: now.metadata.resourceVersion },
        } as ClusterObject);
      });
      await api.replace("secrets", ns, {
        ...m.secret,
        metadata: { ...m.secret.metadata, resourceVersion: oldSecret.metadata.resourceVersion },
      } as ClusterObject);
      step(`updated Secret ${ns}/${secretName}`);
    }
    vmSent = true;
    await api.replace("virtualmachines", ns, next);
    step(`updated VirtualMachine ${ns}/${name}`);
  } catch (e) {
    await api.settle?.();
    if (vmSent && !(e instanceof KubeApiError)) {
      // No answer: the cluster may have taken the update. Put the VM back if it did.
      try {
        const now = await undo.get("virtualmachines", ns, name);
        const text = (now.metadata as { annotations?: Record<string, string> }).annotations
          ?.[SPEC_ANNOTATION];
        if (text === m.vm.metadata.annotations![SPEC_ANNOTATION]) {
          await undo.replace("virtualmachines", ns, {
            ...recreatable(current),
            metadata: {
              ...(current.metadata as ClusterObject["metadata"]),
              resourceVersion: now.metadata.resourceVersion,
            },
          } as ClusterObject);
        }
      } catch (u) {
        rollbackError(e, u);
      }
    }
    for (const u of undoSteps.reverse()) {
      try {
        await u();
      } catch (x) {
        rollbackError(e, x);
      }
    }
    throw e;
  }
  const vmi = await getOrUndefined(api, "virtualmachineinstances", ns, name).catch(() => undefined);
  return {
    done,
    restartPending: vmi !== undefined && plan.changes.some((c) => c.class === "reboot"),
  };
}

async function recreate(
  api: KubevirtApplyCluster,
  undo: KubevirtApplyCluster,
  m: KubevirtManifests,
  current: ApiObject,
  o: KubevirtApplyOptions,
): Promise<KubevirtApplyResult> {
  const ns = m.vm.metadata.namespace!;
  const name = m.vm.metadata.name;
  const secretName = userDataSecretName(name);
  const oldSecret = await getOrUndefined(api, "secrets", ns, secretName);
  const ours = oldSecret?.metadata.labels?.[MANAGED_LABEL] === "true";
  if (oldSecret && !ours) {
    throw new VmOperationError(
      `Secret ${ns}/${secretName} was not created by foundry; foundry keeps VM ${name}'s user data there: remove it first`,
    );
  }
  // What the create would refuse is refused before the old VM is deleted.
  if (o.createNetworks !== true) {
    const missing: string[] = [];
    for (const nad of m.networks) {
      if (!await getOrUndefined(api, NAD_RESOURCE, ns, nad.metadata.name)) {
        missing.push(nad.metadata.name);
      }
    }
    if (missing.length > 0) throw new MissingNetworkError(ns, missing);
  }
  const done: string[] = [];
  await api.delete("virtualmachines", ns, name);
  done.push(`deleted VirtualMachine ${ns}/${name}`);
  o.onStep?.(done.at(-1)!);
  if (oldSecret && ours) {
    await api.delete("secrets", ns, secretName);
    done.push(`deleted Secret ${ns}/${secretName}`);
    o.onStep?.(done.at(-1)!);
  }
  await waitGone(api, ns, name);
  try {
    const r = await createOnCluster(api, m, {
      ...(o.createNetworks !== undefined ? { createNetworks: o.createNetworks } : {}),
      rollbackApi: undo,
      ...(o.onStep ? { onStep: (_s, detail) => o.onStep!(`created ${detail}`) } : {}),
    });
    done.push(...r.created.map((c) => `created ${c}`));
  } catch (e) {
    // Put the old objects back (their DataVolumes are made again from the old templates).
    try {
      if (oldSecret && ours) await undo.create("secrets", ns, recreatable(oldSecret));
      await undo.create("virtualmachines", ns, recreatable(current));
    } catch (u) {
      rollbackError(e, u);
    }
    throw e;
  }
  return { done, restartPending: false };
}

/** Waits (bounded) until the deleted VirtualMachine `name` is gone, so its name can be reused. */
async function waitGone(api: KubevirtCluster, ns: string, name: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (!await getOrUndefined(api, "virtualmachines", ns, name)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new VmOperationError(`VirtualMachine ${ns}/${name} is still being deleted after 60 s`);
}
