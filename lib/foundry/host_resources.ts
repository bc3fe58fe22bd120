/**
 * What the host can give a VM, read from libvirt: logical CPUs and memory (capabilities
 * `<topology>`), the most vCPUs its QEMU accepts for a q35 machine (domain capabilities
 * `<vcpu max>`), and the capacity and free space of the VM's pool. The runtime checks
 * (preflight.ts) hold a VM against these before anything is created.
 *
 * @module
 */

import { type Libvirt, LibvirtError } from "../libvirt/mod.ts";
import { type FoundryConfig, vmPoolFor } from "./config.ts";
import { chooseDomainType, kvmOffered } from "./domain_xml.ts";
import type { HostResources } from "./preflight.ts";
import type { VirtualMachine } from "./types.ts";

/** Logical CPUs and memory in bytes from the host's capabilities `<topology>`. */
export function hostTopology(capabilitiesXml: string): { cpus?: number; memoryBytes?: number } {
  const cells = /<cells\b[^>]*>([\s\S]*?)<\/cells>/.exec(capabilitiesXml)?.[1];
  if (cells === undefined) return {};
  let cpus = 0;
  let kib = 0;
  for (const m of cells.matchAll(/<cpus\s+num=['"](\d+)['"]/g)) cpus += Number(m[1]);
  for (const m of cells.matchAll(/<memory\s+unit=['"]KiB['"]>(\d+)<\/memory>/g)) {
    kib += Number(m[1]);
  }
  const out: { cpus?: number; memoryBytes?: number } = {};
  if (cpus > 0) out.cpus = cpus;
  if (kib > 0) out.memoryBytes = kib * 1024;
  return out;
}

/** The most vCPUs the host's QEMU accepts for a q35 machine of `virtType`; undefined when unknown. */
export async function maxVcpusOf(lv: Libvirt, virtType: string): Promise<number | undefined> {
  try {
    const xml = await lv.getDomainCapabilities({ arch: "x86_64", machine: "q35", virtType });
    const n = Number(/<vcpu\s+max=['"](\d+)['"]/.exec(xml)?.[1]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Capacity and free space of pool `name`; undefined when it does not exist (yet). */
export async function poolSpaceOf(lv: Libvirt, name: string): Promise<HostResources["vmPool"]> {
  try {
    const info = await lv.storagePoolGetInfo(await lv.storagePoolLookupByName(name));
    return { name, capacity: info.capacity, available: info.available };
  } catch (e) {
    // The configured VM pool does not exist yet: create makes it in its directory.
    if (e instanceof LibvirtError && e.isNoStoragePool()) return undefined;
    throw e;
  }
}

/** Everything {@linkcode HostResources} holds for `vm`, read from libvirt. */
export async function hostResources(
  lv: Libvirt,
  vm: VirtualMachine,
  config: FoundryConfig,
  poolFlag?: string,
): Promise<HostResources> {
  const capabilities = await lv.getCapabilities();
  const domainType = chooseDomainType(vm, config.domainType, kvmOffered(capabilities));
  const [maxVcpus, vmPool] = await Promise.all([
    maxVcpusOf(lv, domainType),
    poolSpaceOf(lv, vmPoolFor(vm, config, poolFlag)),
  ]);
  const host: HostResources = { ...hostTopology(capabilities) };
  if (maxVcpus !== undefined) host.maxVcpus = maxVcpus;
  if (vmPool !== undefined) host.vmPool = vmPool;
  return host;
}
