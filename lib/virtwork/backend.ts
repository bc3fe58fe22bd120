/**
 * The contract between virtwork's backend-neutral core (plan, run, cleanup) and the platforms it
 * deploys onto: KubeVirt clusters (`lib/kubevirt`) and libvirt hosts (on `lib/foundry`). The core
 * builds a {@linkcode NeutralPlan} from the workloads; a {@linkcode Backend} turns it into its own
 * objects, creates them, reports what happens as {@linkcode BackendEvent}s, reads the guests'
 * results and removes a run's objects by run id. Backends never write the audit trail: the core
 * turns their events into {@linkcode VirtworkEvent}s, and one subscriber at the edge records them.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import type { ServiceSpec } from "../workloads/workload.ts";
import type { ResultSample } from "./results.ts";

/** Which platform a run deploys onto. */
export type TargetKind = "kubevirt" | "libvirt";

/** A blank data disk of a planned VM, found in the guest by its serial. */
export interface NeutralDataDisk {
  /** Disk name, unique within the VM. */
  name: string;
  /** Disk serial (at most 20 characters); the guest sees `/dev/disk/by-id/virtio-<serial>`. */
  serial: string;
  /** Size in bytes. */
  sizeBytes: number;
  /** Where the workload mounts it. */
  mountPath: string;
}

/** One VM of a run, before any backend has seen it. */
export interface NeutralVm {
  /** Workload name (`cpu`, `network`, ...). */
  workload: string;
  /** Role within the workload (`worker`, `server`, `client`). */
  role: string;
  /** Instance number, 1-based (a client and its server share it). */
  index: number;
  /** VM name, unique in the run's namespace or on the host. */
  name: string;
  /** Labels: run id, managed-by, component, role. */
  labels: Record<string, string>;
  /** vCPUs. */
  cpuCores: number;
  /** Guest memory in bytes. */
  memoryBytes: number;
  /** Blank data disks. */
  dataDisks: NeutralDataDisk[];
  /**
   * The guest's cloud-config as data; the backend renders it (and decides where credentials go).
   * Built after {@linkcode Backend.peers} so a client knows its server's address.
   */
  userData: CloudConfigOptions;
  /** True when `userData` carries a password or SSH keys. */
  carriesCredentials: boolean;
}

/** A connection one VM makes to another of the same run (the iperf3 client to its server). */
export interface PeerNeed {
  /** The VM that connects. */
  from: string;
  /** The VM it connects to. */
  to: string;
  /** TCP ports it connects to. */
  ports: number[];
}

/** Everything one run deploys, backend-free. */
export interface NeutralPlan {
  /** Run id (label value on every object). */
  runId: string;
  /** The VMs, in creation order. */
  vms: NeutralVm[];
  /** Which VM needs to reach which. */
  peers: PeerNeed[];
  /**
   * Services the workloads ask for, by workload (KubeVirt creates them and names peers by them;
   * other backends ignore them). Absent: none.
   */
  services?: { workload: string; spec: ServiceSpec }[];
}

/** What a backend reports while it creates, waits and collects. */
export type BackendEvent =
  /**
   * The create request of a VM was accepted (`exists`: it was already this run's). `at` is when
   * the request left (on KubeVirt after the client's rate limiter, so a phase seen before the
   * answer is never earlier than it); `serverTime` is the VM's creation timestamp on the server,
   * when the platform has one.
   */
  | { type: "created"; vm: string; outcome: "created" | "exists"; at: number; serverTime?: string }
  /** A lifecycle phase was reached (`DomainRunning`, `VMIRunning`, `VMReady`, `AgentConnected`, ...). */
  | { type: "phase"; vm: string; phase: string; at: number; serverTime?: string }
  /** The VM is ready for its workload (`serverTime`: when the platform says it became so). */
  | { type: "ready"; vm: string; at: number; serverTime?: string }
  /** The VM cannot become ready. */
  | { type: "failed"; vm: string; message: string; at: number }
  /**
   * An object other than the VM itself was created, found this run's, or failed (a Secret,
   * Service, volume); `failed` for a VM too. Optional: the core records what it is told.
   */
  | {
    type: "object";
    kind: string;
    name: string;
    outcome: "created" | "exists" | "failed";
    error?: string;
    at: number;
  }
  /** Something worth recording: a rollback, an object that may exist (`reason` is short). */
  | {
    type: "note";
    level: "info" | "warning" | "error";
    reason: string;
    message: string;
    object?: string;
    at: number;
  }
  /** A result sample arrived from the guest. */
  | { type: "result"; vm: string; sample: ResultSample; at: number };

/** Options every long backend call takes. */
export interface BackendCallOptions {
  /** Aborting stops the call; what it made is rolled back (create) or left to cleanup. */
  signal?: AbortSignal;
  /** Receives what happens, as it happens. `at` is `performance.now()` of receipt. */
  onEvent?: (e: BackendEvent) => void;
}

/** What became of one object a backend was asked to create. */
export interface CreatedObject {
  /** Kind in the backend's terms (`VirtualMachine`, `Secret`, `Service`, `domain`, `volume`). */
  kind: string;
  /** Name. */
  name: string;
  /** What became of it. */
  outcome: "created" | "exists" | "failed" | "skipped" | "rolled back" | "unknown";
  /** Why it failed. */
  error?: string;
}

/** The outcome of {@linkcode Backend.cleanup}. */
export interface BackendCleanup {
  /** Objects removed, by kind. */
  deleted: Record<string, number>;
  /** Run ids found on what was removed. */
  runIds: string[];
  /** Failures; cleanup never stops at the first. */
  errors: { kind: string; name: string; message: string }[];
}

/** A platform virtwork deploys onto. */
export interface Backend {
  /** Which platform. */
  readonly target: TargetKind;
  /** Where the VMs go, for reports and the audit trail (API server URL, libvirt URI). */
  readonly location: string;
  /**
   * How each `PeerNeed.to` VM is reached by its peers: an IP address (libvirt: allocated from the
   * subnet) or a DNS name (KubeVirt: the Service). Called before user data is built.
   */
  peerAddresses(
    plan: Omit<NeutralPlan, "vms"> & { vms: Omit<NeutralVm, "userData">[] },
  ): Promise<Map<string, string>>;
  /** The backend's own objects for the plan, for `--dry-run` (KubeVirt manifests, foundry specs). */
  render(plan: NeutralPlan): unknown[];
  /** Creates the plan's objects; on abort rolls back what was in flight. */
  create(plan: NeutralPlan, o?: BackendCallOptions): Promise<CreatedObject[]>;
  /**
   * Waits until each named VM is ready or failed, or `timeoutMs` passes; emits `phase`, `ready`
   * and `failed` events. Resolves with the names still pending at the timeout.
   */
  waitReady(vms: string[], timeoutMs: number, o?: BackendCallOptions): Promise<string[]>;
  /**
   * Reads the guests' result lines for `durationMs` and returns the latest sample per VM (and
   * emits each as a `result` event). A VM that reported nothing is absent from the map.
   */
  collectResults(
    vms: string[],
    durationMs: number,
    o?: BackendCallOptions,
  ): Promise<Map<string, ResultSample>>;
  /** Removes every object virtwork made (of `runId` only, when given). */
  cleanup(runId: string | undefined, o?: BackendCallOptions): Promise<BackendCleanup>;
  /** Closes connections. */
  close(): Promise<void>;
}
