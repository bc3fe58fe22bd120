/**
 * Synthetic workloads as data: cloud-config user data (as {@linkcode CloudConfigOptions}, for the
 * backend to render), VM resources in bytes, data disks, peer needs and KubeVirt Services.
 *
 * @example
 * ```ts
 * import { defaultRegistry } from "./mod.ts";
 * const w = defaultRegistry().get(
 *   "network",
 *   { enabled: true, vmCount: 1, cpuCores: 2, memory: "2Gi" },
 * );
 * console.log(w.roles(), w.peerNeeds()); // ["server", "client"] [{from: "client", to: "server", ports: [5201]}]
 * const userData = w.userData("client", {
 *   os: "debian",
 *   peers: { server: "10.0.0.2" },
 *   vmName: "virtwork-network-client-1",
 * });
 * console.log(userData.writeFiles?.length);
 * ```
 * @module
 */
export {
  BaseWorkload,
  DEFAULT_DATA_DISK_SIZE,
  DEFAULT_GUEST_OS,
  DEFAULT_RESULT_INTERVAL_SECONDS,
  GUEST_OSES,
  isGuestOs,
  RESULT_INTERVAL_LIMITS,
  ROLE_WORKER,
} from "./workload.ts";
export type {
  DataDisk,
  GuestContext,
  GuestOs,
  RolePeerNeed,
  ServicePort,
  ServiceSpec,
  SshCredentials,
  VmResources,
  Workload,
  WorkloadConfig,
  WorkloadParams,
} from "./workload.ts";
export { formatQuantity, isQuantity, quantityBytes, requireQuantityBytes } from "./quantity.ts";
export { CPU_COMMAND, CPU_UNIT, CpuWorkload } from "./cpu.ts";
export { MEMORY_COMMAND, MEMORY_HOLD_COMMAND, MEMORY_UNIT, MemoryWorkload } from "./memory.ts";
export { DISK_MOUNT, DISK_SERIAL, DISK_UNIT, DiskWorkload, FIO_DIR, FIO_PROFILES } from "./disk.ts";
export {
  DATABASE_MOUNT,
  DATABASE_SERIAL,
  DATABASE_UNIT,
  DatabaseWorkload,
  PGBENCH_DATABASE,
  PGBENCH_SCALE,
} from "./database.ts";
export {
  IPERF3_PORT,
  IPERF3_SERVICE,
  LABEL_ROLE,
  NETWORK_UNITS,
  NetworkWorkload,
  ROLE_CLIENT,
  ROLE_SERVER,
} from "./network.ts";
export {
  ALL_WORKLOAD_NAMES,
  defaultRegistry,
  Registry,
  UnknownWorkloadError,
  withDataDiskSize,
  withNamespace,
  withResultInterval,
  withSshCredentials,
} from "./registry.ts";
export type { RegistryOption, RegistryOptions, WorkloadFactory } from "./registry.ts";
// Types of the cloud-config builder that appear in this module's signatures.
export type { CloudConfigOptions, WriteFile } from "../cloudinit/cloud_config.ts";
