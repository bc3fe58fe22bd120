/**
 * virtwork's defaults, shared by the configuration chain and both backends.
 * @module
 */

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
  /** Platform of a run. */
  TARGET: "kubevirt",
} as const;
