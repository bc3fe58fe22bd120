/**
 * foundry and virtwork: a Deno toolkit for virtual machines on libvirt and KubeVirt.
 *
 * This module re-exports the library API: the libvirt client (libvirtd's own RPC protocol with
 * our XDR codec: no native library, no virsh), foundry's VirtualMachine loader, naming, domain XML,
 * cloud-init NoCloud documents and ISO 9660 writer, and virtwork's workloads and KubeVirt builders.
 *
 * @example
 * ```ts
 * import { Libvirt } from "./mod.ts";
 * const lv = await Libvirt.connect(); // FOUNDRY_URI, LIBVIRT_DEFAULT_URI or qemu:///system
 * try {
 *   for (const d of await lv.listAllDomains()) console.log(d.name);
 * } finally {
 *   await lv.close();
 * }
 * ```
 *
 * @module
 */
export * from "./lib/xdr/mod.ts";
export * from "./lib/libvirt/mod.ts";
export * from "./lib/foundry/mod.ts";
export * from "./lib/iso9660/mod.ts";
/** virtwork's KubeVirt side: plans, VM specs, run and cleanup (names overlap foundry's types). */
export * as kubevirt from "./lib/kubevirt/mod.ts";
/** virtwork's backend-neutral core: run plans, the backend contract, run and cleanup, latency, reports. */
export * as virtwork from "./lib/virtwork/mod.ts";
/** virtwork's workloads (cpu, memory, disk, database, network) and their registry. */
export * as workloads from "./lib/workloads/mod.ts";
/** The SQLite audit trail both executables write (`node:sqlite`). */
export * as audit from "./lib/audit/mod.ts";
/** Configuration layering (flags > environment > file > defaults) used by virtwork. */
export * as config from "./lib/config/mod.ts";
export * from "./lib/output/mod.ts";
export {
  buildCloudConfig,
  carriesCredentials,
  CLOUD_CONFIG_HEADER,
} from "./lib/cloudinit/cloud_config.ts";
export type { CloudConfigOptions, WriteFile } from "./lib/cloudinit/cloud_config.ts";
