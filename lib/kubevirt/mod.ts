/**
 * virtwork on KubeVirt: VM manifests, run plans, the cluster client, run orchestration and cleanup.
 *
 * @example
 * ```ts
 * import { buildRunPlan, connect, executeRun } from "./mod.ts";
 * import { defaultRegistry, withNamespace } from "../workloads/mod.ts";
 * const cpu = defaultRegistry().get("cpu", { enabled: true, vmCount: 1, cpuCores: 2, memory: "2Gi" },
 *   withNamespace("virtwork"));
 * const plan = buildRunPlan([cpu], {
 *   namespace: "virtwork",
 *   runId: crypto.randomUUID(),
 *   containerDiskImage: "quay.io/containerdisks/fedora:41",
 * });
 * const { client } = connect();
 * const result = await executeRun(client, plan, { timeoutSeconds: 600, pollIntervalSeconds: 15 });
 * ```
 * @module
 */
// Run and cleanup report virtwork's typed events; the edge subscribes the audit trail to them.
export type * from "../virtwork/events.ts";
export { cleanup, CLEANUP_ORDER } from "./cleanup.ts";
export type { CleanupFailure, CleanupOptions, CleanupResult } from "./cleanup.ts";
// loadKubeConfig stays in client.ts: its result exposes client-node's KubeConfig type.
export { connect, KubeClient, SERVICE_ACCOUNT_ROOT } from "./client.ts";
export type { ApiObject, ClientOptions, ClusterApi, ConnectOptions, Resource } from "./client.ts";
export {
  CDI_API,
  DEFAULTS,
  KUBEVIRT_API,
  LABELS,
  MANAGED_BY_VALUE,
  managedSelector,
} from "./constants.ts";
export { ConnectionError, isStatus, KubeApiError, ObjectCollisionError } from "./errors.ts";
export {
  baseLabels,
  buildNamespace,
  buildService,
  buildUserDataSecret,
  buildVirtualMachine,
  dataVolumeName,
  decodeBase64,
  encodeBase64,
  SECRET_USERDATA_KEY,
  USERDATA_INLINE_MAX,
} from "./manifests.ts";
export type { KubeObject, ObjectMeta, VirtualMachineOptions } from "./manifests.ts";
export {
  buildRunPlan,
  kubePeerAddresses,
  neutralRunPlan,
  planObjects,
  renderRunPlan,
  vmName,
} from "./plan.ts";
export { openKubevirtBackend } from "./backend.ts";
export type { ConsoleResultReader, KubevirtBackend, KubevirtBackendOptions } from "./backend.ts";
export type { PlannedVm, PlanOptions, RunPlan } from "./plan.ts";
export { RateLimiter, sleep } from "./rate_limit.ts";
export {
  apiFailure,
  createRunObjects,
  executeRun,
  isConnectionFailure,
  newRunResult,
  RunFailedError,
  VM_ERROR_STATUSES,
  vmFailure,
  vmiReady,
  waitForReady,
} from "./run.ts";
export type {
  CreateObjectsOptions,
  CreateOutcome,
  ReadinessCallbacks,
  RunAuditContext,
  RunEvent,
  RunOptions,
  RunResult,
  VmOutcome,
} from "./run.ts";
export { AmbiguousRunIdError, clusterRunIds, resolveRunIdPrefix } from "./run_id.ts";
export {
  ENV_PREFIX,
  loadVirtworkConfig,
  quantityBytes,
  SettingValidationError,
  VIRTWORK_CONFIG_SCHEMA,
  VIRTWORK_LIMITS,
} from "./config.ts";
export type {
  LoadConfigOptions,
  SelectedWorkload,
  VirtworkConfig,
  VirtworkSettings,
} from "./config.ts";
// Types of other modules that appear in this module's signatures.
export type * from "../virtwork/backend.ts";
export type { ResultSample } from "../virtwork/results.ts";
export type { PlanSkeleton, SkeletonVm } from "../virtwork/plan.ts";
export type { CloudConfigOptions, WriteFile } from "../cloudinit/cloud_config.ts";
export type * from "../workloads/workload.ts";
export type {
  ConfigSchema,
  ConfigSource,
  ConfigValues,
  FieldKind,
  FieldSpec,
  ValueOf,
} from "../config/layered.ts";
export {
  followKind,
  HttpWatchApi,
  lines,
  MAX_LIST_BODY,
  MAX_WATCH_LINE,
  ResourceVersionGoneError,
  WATCH_TIMEOUT_SECONDS,
} from "./watch.ts";
export type { FollowOptions, FollowStats, VersionedList, WatchApi, WatchEvent } from "./watch.ts";
export { ReadinessWatch, watchReadiness } from "./readiness.ts";
export type { ReadinessWatchOptions, WatchReadinessOptions } from "./readiness.ts";
