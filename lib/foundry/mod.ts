/**
 * Foundry's libvirt-independent core: the `foundry.cofront.xyz/v1alpha1` `VirtualMachine` API, its YAML
 * loader and validation, resource naming, the cloud-init seed and ISO of a VM, its domain XML and the
 * metadata record, and the layered configuration.
 *
 * @example
 * ```ts
 * import { buildDomainXml, cidataIsoFromVm, loadVirtualMachines } from "./mod.ts";
 * for (const vm of await loadVirtualMachines("examples/simple-vm.yaml")) {
 *   const xml = buildDomainXml(vm, { domainType: "qemu" });
 *   const iso = cidataIsoFromVm(vm);
 *   console.log(vm.metadata.name, xml.length, iso.length);
 * }
 * ```
 *
 * @module
 */

export {
  API_VERSION,
  CPU_MODES,
  DEFAULT_IMAGE_POOL,
  DEFAULT_VM_POOL,
  DOMAIN_TYPES,
  GRAPHICS_TYPES,
  KIND,
  LIMITS,
  PHASES,
  RESERVED_GUEST_PATHS,
  TEMPLATE_KIND,
} from "./types.ts";
export type {
  BootDisk,
  CloudInit,
  Condition,
  CpuMode,
  CpuSpec,
  DataDisk,
  DomainType,
  Graphics,
  GraphicsType,
  GuestFile,
  InstallMedia,
  NetworkInterface,
  NumaCell,
  ObjectMeta,
  Phase,
  Placement,
  Resources,
  TemplateRef,
  UserDataExtras,
  VirtualMachine,
  VirtualMachineSpec,
  VirtualMachineStatus,
  VirtualMachineTemplate,
} from "./types.ts";
export { formatProblem, ValidationError } from "./errors.ts";
export type { Problem } from "./errors.ts";
export {
  cpusetIds,
  formatCpuset,
  guestPathProblem,
  loadFoundryDocuments,
  loadVirtualMachines,
  MAX_FILES,
  NAME_MAX_LENGTH,
  NAME_PATTERN,
  parseFoundryDocuments,
  parseVirtualMachine,
  parseVirtualMachines,
  resolveFrom,
  SSH_KEY_TYPES,
  sshKeyProblem,
  suggest,
} from "./loader.ts";
export type { FoundryDocuments, SpecText } from "./loader.ts";
export {
  interfaceNameFromIp,
  ipFromInterfaceName,
  macFromIp,
  macOf,
  resolveImage,
  tapNameOf,
  volumeNameBoot,
  volumeNameCloudInit,
  volumeNameData,
} from "./naming.ts";
export type { ImageLocation } from "./naming.ts";
export {
  CIDATA_VOLUME_ID,
  cidataIsoFromVm,
  hostnameOf,
  instanceIdOf,
  noCloudConfigFromVm,
  noCloudFilesFromVm,
} from "./cloudinit.ts";
export type { NoCloudConfig, NoCloudFiles, NoCloudInterface, NoCloudOptions } from "./cloudinit.ts";
export {
  createOnCluster,
  destroyOnCluster,
  getFromCluster,
  kubevirtManifests,
  KubevirtMappingError,
  listFromCluster,
  MANAGED_LABEL,
  MissingNetworkError,
  NAD_RESOURCE,
  parseImageSource,
  phaseOf,
  SPEC_ANNOTATION,
} from "./kubevirt.ts";
export type {
  ApiObject,
  ClusterObject,
  ClusterObjectMeta,
  ImageSource,
  KubevirtCluster,
  KubevirtCreateOptions,
  KubevirtCreateResult,
  KubevirtCreateStep,
  KubevirtDestroyResult,
  KubevirtManifests,
  KubevirtOptions,
  KubevirtResource,
  KubevirtVmEntry,
  LossyField,
} from "./kubevirt.ts";
export {
  buildDomainXml,
  chooseDomainType,
  cpuTopology,
  DEFAULT_GRAPHICS_LISTEN,
  GUEST_AGENT_CHANNEL,
  kvmOffered,
} from "./domain_xml.ts";
export { phaseFromDomainState, setCondition, statusFromDomainState } from "./status.ts";
export type { ConditionUpdate, OperationMarker, OperationPhase, StoredStatus } from "./status.ts";
export type { DomainXmlOptions } from "./domain_xml.ts";
export {
  buildMetadataXml,
  canonicalJson,
  CLOUD_INIT_SHA256_ATTRIBUTE,
  cloudInitSha256,
  METADATA_ELEMENT,
  METADATA_NAMESPACE,
  METADATA_PREFIX,
  metadataNode,
  parseDomainMetadata,
  parseMetadataXml,
  parseStoredDomainMetadata,
  parseStoredMetadataXml,
  PASSWORD_HASH_SHA256_ATTRIBUTE,
  passwordHashChanged,
  passwordHashSha256,
  SPEC_SHA256_ATTRIBUTE,
  specDocument,
  specSha256,
  STORED_SPEC_ERROR_ANNOTATION,
  VOLUMES_DOMAIN_ATTRIBUTE,
  VOLUMES_ELEMENT,
  VOLUMES_NAMESPACE,
  VOLUMES_PREFIX,
  withoutPasswordHash,
} from "./metadata.ts";
export type { CreatedVolume, StoredVm } from "./metadata.ts";
export { observedSpec } from "./live_spec.ts";
export type {
  ObservedDisk,
  ObservedGraphics,
  ObservedNic,
  ObservedNumaCell,
  ObservedSpec,
} from "./live_spec.ts";
export {
  driftChanges,
  driftOf,
  driftReport,
  driftSummary,
  formatDrift,
  isActiveDomainXml,
  storedSpecHashMatches,
} from "./drift.ts";
export type { DomainXmls } from "./drift.ts";
export { adoptedDocument, AdoptError, adoptSpec, adoptVm } from "./adopt.ts";
export type { AdoptOptions, AdoptResult, DiskFacts } from "./adopt.ts";
export {
  CONFIG_ENV,
  ConfigError,
  DEFAULT_CONFIG,
  imageLocationFor,
  loadConfig,
  SYSTEM_CONFIG_FILE,
  userConfigFile,
  vmPoolFor,
} from "./config.ts";
export { parseConfigFile } from "./config_file.ts";
export type {
  ConfigErrorOptions,
  ConfigFlags,
  ConfigProblem,
  ConfigSources,
  FoundryConfig,
} from "./config.ts";
export { buildDirPoolXml, buildVolumeXml, BYTES_PER_GB, volumePlan } from "./storage_xml.ts";
export type { BackingStore, VolumeFormat, VolumeSpec } from "./storage_xml.ts";
export {
  baseImageHeaderBytes,
  detectImageFormat,
  IMAGE_HEADER_BYTES,
  imageProblem,
} from "./image_format.ts";
export type { ImageFormat } from "./image_format.ts";
export {
  QCOW2_EXTENSION,
  QCOW2_INCOMPATIBLE,
  QCOW2_MAX_CLUSTER_BYTES,
  qcow2Extensions,
  qcow2HeaderBytes,
  qcow2Problem,
} from "./qcow2.ts";
export { CREATE_WRITES_PER_VOLUME, preflightProblems } from "./preflight.ts";
export type { HostFacts, HostResources, PreflightProblem } from "./preflight.ts";
export type { CreateFacts } from "./host_resources.ts";
export {
  CreateCheckError,
  CreateIncompleteError,
  createVms,
  hostTopology,
  planCreate,
  summaryLine,
} from "./create_many.ts";
export type { CreateManyOptions, CreatePlan, CreateSummary } from "./create_many.ts";
export {
  addPool,
  buildPoolXml,
  deletePool,
  ensureDirPool,
  ensureFoundryPools,
  listPools,
  lookupPool,
  parsePoolXml,
  parseVolumeXml,
  POOL_TYPES,
  poolInfo,
  poolStateName,
  PROTECTED_POOLS,
  refreshPool,
  StorageError,
  volumeSummary,
} from "./pools.ts";
export type { HintedErrorOptions, OptionHint } from "./option_hint.ts";
export type {
  DeletePoolOptions,
  PoolDetails,
  PoolSpec,
  PoolSummary,
  VolumeSummary,
} from "./pools.ts";
export {
  baseImageProblem,
  checkPullUrl,
  CHECKSUM_SUFFIX,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_PULL_BYTES,
  deleteImage,
  imageInfo,
  imageNameFromUrl,
  ImageRequestError,
  IMPORT_STEPS,
  importImage,
  listImages,
  parseChecksum,
  parseQcow2Header,
  pullImage,
  PullLimitError,
  redactUrl,
} from "./images.ts";
export type {
  Checksum,
  ImageDetails,
  ImageSummary,
  ImageUse,
  ImportStep,
  PullOptions,
  Qcow2Header,
  TransferOptions,
} from "./images.ts";
export { FULL_WARNING_PERCENT, storageStatus, usedPercent } from "./storage_status.ts";
export type { PoolStatus } from "./storage_status.ts";
export {
  CREATE_STEPS,
  createVm,
  DESTROY_STEPS,
  DestroyIncompleteError,
  destroyVm,
  hostBridges,
  hostFacts,
  lookupVm,
  readStoredStatus,
  restartVm,
  RuntimeCheckError,
  startVm,
  STATUS_NAMESPACE,
  stopVm,
  VmNotFoundError,
  VmOperationError,
  waitForState,
} from "./vm.ts";
export type {
  CreateOptions,
  CreateResult,
  CreateStep,
  DestroyOptions,
  DestroyResult,
  DestroyStep,
  StartOptions,
  StartStep,
  StopOptions,
  StopStep,
} from "./vm.ts";
export { domainDisks, domainVolumes, planVolumeDeletion } from "./disks.ts";
export type { DomainDisk, KeptDisk } from "./disks.ts";
export {
  getVm,
  listVms,
  parseLabelSelector,
  PASSWORD_FINGERPRINT_ANNOTATION,
  stateName,
} from "./inventory.ts";
export type {
  LabelSelector,
  ListOptions,
  SelectorOperator,
  SelectorRequirement,
  VmAddress,
  VmListEntry,
} from "./inventory.ts";
export { VmNotRunningError, WAIT_STAGES, waitForVm, WaitTimeoutError } from "./wait.ts";
export type { WaitOptions, WaitResult, WaitStage } from "./wait.ts";
export {
  agentCall,
  GUEST_READ_MAX_BYTES,
  GUEST_READ_TIMEOUT_MS,
  GuestAgentError,
  guestExec,
  GuestFileTooLargeError,
  guestInterfaces,
  guestPing,
  guestReadFile,
  guestReadFileTail,
} from "./agent.ts";
export type { GuestExecResult, GuestInterface, GuestReadOptions } from "./agent.ts";
// Day 2: commands in the guest, files, console, address, describe, events, snapshots, clone, resize.
export { GUEST_EXEC_MAX_STDIN, guestExecStream } from "./guest_exec.ts";
export type { GuestExecStreamOptions, GuestExecStreamResult } from "./guest_exec.ts";
export { copyFromGuest, copyToGuest, GUEST_COPY_MAX_BYTES } from "./guest_files.ts";
export type { GuestCopyOptions, GuestCopyResult } from "./guest_files.ts";
export { CONSOLE_ESCAPE, runConsoleSession } from "./guest_console.ts";
export type { ConsoleEnd, ConsoleSessionIo } from "./guest_console.ts";
export { vmAddress } from "./guest_address.ts";
export { describeVm } from "./describe.ts";
export type {
  DescribedAddress,
  DescribedCondition,
  DescribedDisk,
  DescribedOperation,
  DescribeOptions,
  VmDescription,
} from "./describe.ts";
export { DEFAULT_EVENT_QUEUE, VM_EVENT_TYPES, watchEvents } from "./events.ts";
export type { VmEvent, VmEventType, WatchEventsOptions } from "./events.ts";
export {
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  revertSnapshot,
  SNAPSHOT_NAME,
  SnapshotError,
} from "./snapshot.ts";
export type {
  CreateSnapshotOptions,
  RevertSnapshotOptions,
  SnapshotDisk,
  SnapshotInfo,
} from "./snapshot.ts";
export { cloneVm, SourceRunningError } from "./clone.ts";
export type { CloneOptions } from "./clone.ts";
export { resizeVm } from "./resize.ts";
export type {
  Applied,
  FilesystemGrowth,
  ResizeChange,
  ResizeOptions,
  ResizeRequest,
  ResizeResult,
} from "./resize.ts";
// Declarative: apply's planner and executor, the plan vocabulary.
export {
  ADOPTED_ANNOTATION,
  ApplyIncompleteError,
  applyRefusalText,
  ApplyRefusedError,
  applyVm,
  planVm,
  pruneCandidates,
  readCurrentVm,
  refusedChanges,
  VmNotManagedError,
} from "./apply.ts";
export type { ApplyOptions, ApplyResult, CurrentVm, PlanOptions } from "./apply.ts";
export type { DomainSizes } from "./resize.ts";
export { CHANGE_CLASSES, PLAN_ACTIONS } from "./plan_types.ts";
export type {
  ChangeClass,
  DriftChange,
  DriftReport,
  PlanAction,
  SpecChange,
  VmPlan,
} from "./plan_types.ts";
// Fleets of hosts (issue 16): host selection, pooled connections, fan-out, host checks.
export {
  DEFAULT_PARALLEL,
  EXIT_PARTIAL,
  fanOut,
  HOST_CONNECT_TIMEOUT_MS,
  HostPool,
  HostSelectionError,
  MAX_PARALLEL,
  outcomeSummary,
  parseParallel,
  selectHosts,
  wantsFleet,
} from "./fleet.ts";
export type {
  HostEntry,
  HostOutcome,
  HostPoolOptions,
  HostSelection,
  HostSelectionProblem,
} from "./fleet.ts";
export { checkHost, domainUse, surveyHost, versionText } from "./host_check.ts";
export type { HostCheck, HostPoolFacts, HostSurvey, HostVmUse } from "./host_check.ts";
// Placement, the fleet-wide address book and moving VMs between hosts (issue 16).
export { PlacementError, placeVms, unreachableHost } from "./placement.ts";
export type { HostVerdict, Placed, PlacementHost, PlaceOptions } from "./placement.ts";
export {
  AddressBookIncompleteError,
  AddressConflictError,
  addressConflicts,
  claimsOf,
  homesOf,
} from "./address_book.ts";
export type { AddressClaim, AddressConflict, HostBook } from "./address_book.ts";
export { copyImageTo, planFleetCreate } from "./fleet_create.ts";
export type { FleetCreateOptions, FleetCreatePlan } from "./fleet_create.ts";
export { copyVolume, volumeSha256 } from "./volume_copy.ts";
export type { CopiedVolume, CopyVolumeOptions } from "./volume_copy.ts";
export {
  backingPathOf,
  diskSources,
  liveMoveProblems,
  liveMoveVm,
  MOVE_STEPS,
  MoveCheckError,
  moveVm,
} from "./move.ts";
export type { DiskSource, LiveMoveOptions, MoveOptions, MoveResult, MoveStep } from "./move.ts";
