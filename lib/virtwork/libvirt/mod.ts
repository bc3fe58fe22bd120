/**
 * virtwork's libvirt backend: a run's VMs as foundry VMs on a libvirt host, with static addresses
 * from a subnet, results from the serial console (or the guest agent), cleanup by run id.
 *
 * @example
 * ```ts
 * import { openLibvirtBackend } from "./mod.ts";
 * const backend = await openLibvirtBackend({
 *   uri: "qemu:///system",
 *   image: "debian-12.qcow2",
 *   bridge: "br-work",
 *   subnet: "10.77.0.0/24",
 *   domainType: "qemu",
 * });
 * const cleaned = await backend.cleanup(undefined);
 * console.log(cleaned.deleted);
 * await backend.close();
 * ```
 * @module
 */
export { guestOsOfImage, openLibvirtBackend } from "./backend.ts";
export type { LibvirtBackend, LibvirtBackendOptions } from "./backend.ts";
export {
  allocateAddresses,
  inSubnet,
  ipv4Number,
  ipv4Text,
  parseSubnet,
  SUBNET_PREFIX,
} from "./addresses.ts";
export type { Subnet } from "./addresses.ts";
export {
  checkedSpecs,
  cloudInitOf,
  DEFAULT_BOOT_DISK_GB,
  foundryVmOf,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  RUN_ID_LABEL,
} from "./spec.ts";
export type { SpecContext } from "./spec.ts";
export { CONSOLE_MAX_BYTES, RESULTS_TAIL_BYTES } from "./results.ts";
export type { ResultSource } from "./results.ts";
