/**
 * Synthetic workloads as data: cloud-config user data, VM resources, data disks and Services.
 *
 * @example
 * ```ts
 * import { defaultRegistry, withNamespace } from "./mod.ts";
 * const w = defaultRegistry().get(
 *   "network",
 *   { enabled: true, vmCount: 1, cpuCores: 2, memory: "2Gi" },
 *   withNamespace("virtwork"),
 * );
 * console.log(w.roles(), w.service()?.name); // ["server", "client"] virtwork-iperf3-server
 * ```
 * @module
 */
export { BaseWorkload, DEFAULT_DATA_DISK_SIZE, ROLE_WORKER } from "./workload.ts";
export type {
  DataDisk,
  ServicePort,
  ServiceSpec,
  SshCredentials,
  VmResources,
  Workload,
  WorkloadConfig,
  WorkloadParams,
} from "./workload.ts";
export { CPU_COMMAND, CPU_UNIT, CpuWorkload } from "./cpu.ts";
export { MEMORY_COMMAND, MEMORY_UNIT, MemoryWorkload } from "./memory.ts";
export { DISK_MOUNT, DISK_SERIAL, DISK_UNIT, DiskWorkload, FIO_DIR, FIO_PROFILES } from "./disk.ts";
export { DATABASE_MOUNT, DATABASE_SERIAL, DATABASE_UNIT, DatabaseWorkload } from "./database.ts";
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
  withSshCredentials,
} from "./registry.ts";
export type { RegistryOption, RegistryOptions, WorkloadFactory } from "./registry.ts";
// Types of the cloud-config builder that appear in this module's signatures.
export type { CloudConfigOptions, WriteFile } from "../cloudinit/cloud_config.ts";
