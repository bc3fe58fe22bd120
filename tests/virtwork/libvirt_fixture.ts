/**
 * Shared set-up of the libvirt backend's tests: planned VMs as the core hands them over, and a
 * sweep that removes whatever a test's own pools and bridges still hold.
 */
import type { NeutralPlan, NeutralVm } from "../../lib/virtwork/backend.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";

/** Label keys the core puts on every VM (the backend adds managed-by and run-id itself too). */
export const CORE_LABELS = {
  component: "app.kubernetes.io/component",
  role: "virtwork/role",
} as const;

/** A planned VM without workload content: small, for create/cleanup tests that never boot. */
export function plainVm(name: string, workload = "cpu", role = "worker", index = 1): NeutralVm {
  return {
    workload,
    role,
    index,
    name,
    labels: { [CORE_LABELS.component]: workload, [CORE_LABELS.role]: role },
    cpuCores: 1,
    memoryBytes: 128 * 2 ** 20,
    dataDisks: [],
    userData: { runcmd: [["true"]] },
    carriesCredentials: false,
  };
}

/** A plan of `vms` with no peers. */
export function planOf(runId: string, vms: NeutralVm[]): NeutralPlan {
  return { runId, vms, peers: [] };
}

/** Undefines every domain whose XML uses `pool` (forced off first), NVRAM too. */
export async function sweepDomains(lv: Libvirt, pool: string): Promise<string[]> {
  const removed: string[] = [];
  for (const d of await lv.listAllDomains()) {
    const xml = await lv.domainGetXmlDesc(d).catch(() => "");
    if (!xml.includes(`pool='${pool}'`) && !xml.includes(`pool="${pool}"`)) continue;
    await lv.domainDestroy(d).catch(() => {});
    await lv.domainUndefine(d, 4).catch(() => {});
    removed.push(d.name);
  }
  return removed;
}

/** Names of the volumes left in `pool` (after a refresh); empty when the pool is gone. */
export async function volumesIn(lv: Libvirt, pool: string): Promise<string[]> {
  try {
    const p = await lv.storagePoolLookupByName(pool);
    await lv.storagePoolRefresh(p);
    return (await lv.storagePoolListAllVolumes(p)).map((v) => v.name).sort();
  } catch {
    return [];
  }
}

/** NVRAM files of `names` that exist. */
export async function nvramLeft(names: readonly string[]): Promise<string[]> {
  const left: string[] = [];
  for (const n of names) {
    const f = `/var/lib/libvirt/qemu/nvram/${n}_VARS.fd`;
    try {
      await Deno.stat(f);
      left.push(f);
    } catch { /* gone */ }
  }
  return left;
}
