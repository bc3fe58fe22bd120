/**
 * virtwork's backend-neutral core: configuration, the neutral run plan, run and cleanup
 * orchestration over a {@linkcode Backend}, typed events with one audit subscriber, and the
 * results channel the guests write. The backends live beside it: `lib/kubevirt` (clusters) and
 * `lib/virtwork/libvirt/mod.ts` (libvirt hosts on foundry; not re-exported here, so importing the
 * core loads no foundry code).
 *
 * @example
 * ```ts
 * import { buildNeutralPlan, runPlan } from "./mod.ts";
 * import type { Backend } from "./mod.ts";
 * import { defaultRegistry } from "../workloads/registry.ts";
 * declare const backend: Backend;
 * const cpu = defaultRegistry().get("cpu", { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" });
 * const plan = await buildNeutralPlan([cpu], { runId: crypto.randomUUID() }, (s) => backend.peerAddresses(s));
 * const result = await runPlan(backend, plan, { scope: backend.location, timeoutSeconds: 600, resultsAfterMs: 60_000 });
 * console.log(result.vms.map((v) => [v.name, v.result?.metrics]));
 * ```
 * @module
 */
export type {
  Backend,
  BackendCallOptions,
  BackendCleanup,
  BackendEvent,
  CreatedObject,
  NeutralDataDisk,
  NeutralPlan,
  NeutralVm,
  PeerNeed,
  TargetKind,
} from "./backend.ts";
export {
  baseLabels,
  buildNeutralPlan,
  completePlan,
  LABELS,
  MANAGED_BY_VALUE,
  planSkeleton,
  vmName,
} from "./plan.ts";
export type { NeutralPlanOptions, PlanSkeleton, SkeletonVm } from "./plan.ts";
export { cleanupRun, PlanRunError, runPlan, runProblems, VM_KIND } from "./run.ts";
export type {
  CleanupRunOptions,
  CleanupRunResult,
  PlanRunResult,
  RunPlanOptions,
  VmRunOutcome,
} from "./run.ts";
export { fanOut } from "./events.ts";
export type {
  CleanedEvent,
  CleanupStartedEvent,
  EventLevel,
  EventSink,
  NoteEvent,
  ObjectCreatedEvent,
  ObjectDeletedEvent,
  PhaseSample,
  ResultEvent,
  RunFinishedEvent,
  RunStartedEvent,
  VirtworkEvent,
  VmCreatedEvent,
  VmFailedEvent,
  VmFinishedEvent,
  VmPhaseEvent,
  VmReadyEvent,
} from "./events.ts";
export { auditSubscriber } from "./audit_subscriber.ts";
export type { AuditSubscriberOptions } from "./audit_subscriber.ts";
export {
  MAX_METRICS,
  MAX_RESULT_LINE,
  parseResultLine,
  RESULT_MARKER,
  ResultLineSplitter,
  RESULTS_FILE,
} from "./results.ts";
export type { ResultSample } from "./results.ts";
export {
  ENV_PREFIX,
  loadVirtworkConfig,
  quantityBytes,
  runIdProblem,
  SettingValidationError,
  TARGETS,
  VIRTWORK_CONFIG_SCHEMA,
  VIRTWORK_LIMITS,
} from "./config.ts";
export type {
  LoadConfigOptions,
  SelectedWorkload,
  VirtworkConfig,
  VirtworkSettings,
} from "./config.ts";
export { DEFAULTS } from "./defaults.ts";
export {
  choose,
  KUBEVIRT_PHASES,
  LatencyRecorder,
  LIBVIRT_PHASES,
  parseServerTime,
  PHASE_ORDER,
  phaseName,
  phasesOf,
  quantile,
  QUANTILE_METHOD,
  STAT_NAMES,
  stats,
  summarize,
} from "./latency.ts";
export type {
  LatencyRecorderOptions,
  LatencySource,
  PhaseObservation,
  PhaseStats,
  StatName,
  VmLatency,
} from "./latency.ts";
export {
  buildReport,
  LATENCY_ORIGIN,
  latencyCsv,
  NoLatencyError,
  phaseSamples,
  REPORT_VERSION,
  reportCsv,
  reportFromRun,
  reportFromStored,
  storedPhases,
  summarizeResults,
} from "./report.ts";
export type {
  FinishedRun,
  LatencyReport,
  MetricSummary,
  ReportInput,
  ReportVm,
  ReportVmInput,
  StoredRunLatency,
} from "./report.ts";
export { reportHtml } from "./report_html.ts";
export {
  BOOTSTRAP_RESAMPLES,
  BOOTSTRAP_SEED,
  COMPARED_STATS,
  compareRuns,
  evaluateThresholds,
  formatMs,
  mulberry32,
  parseThreshold,
  statOf,
  ThresholdError,
} from "./compare.ts";
export type {
  CompareOptions,
  RunComparison,
  StatDelta,
  Threshold,
  ThresholdResult,
  UnpairedPhase,
} from "./compare.ts";
// Types of other modules that appear in this module's signatures.
export type * from "../audit/types.ts";
export type { CloudConfigOptions, WriteFile } from "../cloudinit/cloud_config.ts";
export type {
  ConfigSchema,
  ConfigSource,
  ConfigValues,
  FieldKind,
  FieldSpec,
  ValueOf,
} from "../config/layered.ts";
export type * from "../workloads/workload.ts";
