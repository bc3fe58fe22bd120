/**
 * The workload model: what a synthetic workload needs from a VM, as plain data. A workload knows
 * nothing of Kubernetes or libvirt, so either backend can run it: it returns cloud-config as data
 * ({@linkcode CloudConfigOptions}, rendered by the backend), sizes in bytes, and takes the guest's
 * distribution and the addresses of its peers from the backend ({@linkcode GuestContext}).
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { requireQuantityBytes } from "./quantity.ts";

/** Per-workload settings from the configuration chain (user-facing quantities). */
export interface WorkloadConfig {
  /** Whether the workload is deployed at all. */
  enabled: boolean;
  /** How many instances to run; a multi-role workload runs this many of each role. */
  vmCount: number;
  /** Virtual CPU cores per VM. */
  cpuCores: number;
  /** Guest memory per VM as a Kubernetes quantity, e.g. `2Gi`. */
  memory: string;
}

/** Login credentials injected into every workload's cloud-config. */
export interface SshCredentials {
  /** User to create; no user is created when empty. */
  user?: string;
  /** Plain-text password (enables SSH password login). */
  password?: string;
  /** Authorised public keys. */
  authorizedKeys?: readonly string[];
}

/** Guest distributions whose package names and PostgreSQL layout the workloads know. */
export type GuestOs = "fedora" | "centos" | "debian" | "ubuntu";

/** Every {@linkcode GuestOs}, in the order help texts list them. */
export const GUEST_OSES: readonly GuestOs[] = ["fedora", "centos", "debian", "ubuntu"];

/** The distribution assumed when nothing says otherwise (KubeVirt's default container disks). */
export const DEFAULT_GUEST_OS: GuestOs = "fedora";

/** True when `s` names a {@linkcode GuestOs}. */
export function isGuestOs(s: string): s is GuestOs {
  return (GUEST_OSES as readonly string[]).includes(s);
}

/** What the backend tells a workload about the VM it builds user data for. */
export interface GuestContext {
  /** The guest's distribution. */
  os: GuestOs;
  /**
   * Address (IP or DNS name) of the same instance's VM in each other role, by role name: the
   * network client reads `peers.server`. Only the roles named as `to` in
   * {@linkcode Workload.peerNeeds} need to be present.
   */
  peers: Readonly<Record<string, string>>;
  /** Name of the VM the user data is for. */
  vmName: string;
}

/** CPU and memory of one VM. */
export interface VmResources {
  /** vCPU cores. */
  cpuCores: number;
  /** Guest memory in bytes. */
  memoryBytes: number;
}

/**
 * A blank data disk attached to the VM. The guest finds it by its serial under `/dev/disk/by-id/`
 * (virtio disks appear as `virtio-<serial>`), independent of the order disks are enumerated, and
 * mounts it itself (an ext4 file system is made when the disk is blank).
 */
export interface DataDisk {
  /** Disk and volume name, unique within the VM. */
  name: string;
  /** Disk serial; at most 20 characters (virtio-blk limit). */
  serial: string;
  /** Size in bytes. */
  sizeBytes: number;
  /** Where the workload mounts it in the guest. */
  mountPath: string;
}

/** A connection between the roles of one instance (the iperf3 client to its server). */
export interface RolePeerNeed {
  /** The role that connects. */
  from: string;
  /** The role it connects to; the backend puts its address into `GuestContext.peers[to]`. */
  to: string;
  /** TCP ports it connects to. */
  ports: number[];
}

/** One port of a workload's Service. */
export interface ServicePort {
  /** Port name. */
  name: string;
  /** Service port. */
  port: number;
  /** Port on the VM. */
  targetPort: number;
  /** Transport protocol. */
  protocol: "TCP" | "UDP";
}

/** A ClusterIP Service a workload needs before its VMs start (KubeVirt: DNS of a server role). */
export interface ServiceSpec {
  /** Service name, also the DNS label. */
  name: string;
  /** Labels selecting the VMs (pods) that back the Service, beyond the workload's own labels. */
  selector: Readonly<Record<string, string>>;
  /** Ports the Service exposes. */
  ports: readonly ServicePort[];
}

/** The role label value of VMs of single-role workloads. */
export const ROLE_WORKER = "worker";

/** A synthetic workload: a set of VM roles with cloud-config user data and resource needs. */
export interface Workload {
  /** Registry name, e.g. `cpu`. */
  readonly name: string;
  /** The settings it was created with. */
  readonly config: WorkloadConfig;
  /** The VM roles of one instance, in creation order (`["worker"]`, or `["server", "client"]`). */
  roles(): readonly string[];
  /**
   * Cloud-config of a VM in `role` on `ctx.os`, as data for the backend to render.
   * @throws {RangeError} for an unknown role, or a peer address `peerNeeds()` requires that
   * `ctx.peers` lacks
   */
  userData(role: string, ctx: GuestContext): CloudConfigOptions;
  /** True when the user data carries a password or SSH keys and must be stored as a secret. */
  carriesCredentials(): boolean;
  /** CPU and memory of each VM. */
  resources(): VmResources;
  /** Blank data disks each VM gets. */
  dataDisks(): readonly DataDisk[];
  /** Which role connects to which, on which ports (empty for single-role workloads). */
  peerNeeds(): readonly RolePeerNeed[];
  /** The Service to create before the VMs on KubeVirt, if any. */
  service(): ServiceSpec | undefined;
  /** Total number of VMs: instances times roles. */
  vmCount(): number;
}

/** What every workload constructor receives. */
export interface WorkloadParams {
  /** Per-workload settings. */
  config: WorkloadConfig;
  /** Login credentials for the cloud-config users block. */
  ssh?: SshCredentials;
  /** Namespace the VMs run in (KubeVirt DNS names). */
  namespace?: string;
  /** Size of data disks as a Kubernetes quantity. */
  dataDiskSize?: string;
  /** Seconds between two result samples in the guest (each sample measures that long). */
  resultIntervalSeconds?: number;
}

/** Default data disk size. */
export const DEFAULT_DATA_DISK_SIZE = "10Gi";

/** Default seconds between two result samples. */
export const DEFAULT_RESULT_INTERVAL_SECONDS = 10;

/** Bounds of the result interval, in seconds. */
export const RESULT_INTERVAL_LIMITS = { min: 1, max: 3600 } as const;

/**
 * Defaults for the optional parts of a workload and the SSH injection every workload needs.
 * Subclasses set `name` and implement `userData`.
 */
export abstract class BaseWorkload implements Workload {
  abstract readonly name: string;
  /** The settings it was created with. */
  readonly config: WorkloadConfig;
  /** Credentials added to every document built with {@linkcode BaseWorkload.withSsh}. */
  readonly ssh: SshCredentials;
  /** Namespace the VMs run in. */
  readonly namespace: string;
  /** Size of data disks as given (a quantity). */
  readonly dataDiskSize: string;
  /** Size of data disks in bytes. */
  readonly dataDiskBytes: number;
  /** Guest memory in bytes. */
  readonly memoryBytes: number;
  /** Seconds per result sample. */
  readonly resultIntervalSeconds: number;

  /**
   * Stores the parameters; validates the numbers and quantities.
   * @throws {RangeError} naming the bad field
   */
  constructor(params: WorkloadParams) {
    const { config } = params;
    if (!Number.isInteger(config.vmCount) || config.vmCount < 0) {
      throw new RangeError(`vmCount must be a non-negative integer, got ${config.vmCount}`);
    }
    if (!Number.isInteger(config.cpuCores) || config.cpuCores < 1) {
      throw new RangeError(`cpuCores must be a positive integer, got ${config.cpuCores}`);
    }
    this.config = { ...config };
    this.memoryBytes = requireQuantityBytes(config.memory, "memory");
    this.ssh = params.ssh ?? {};
    this.namespace = params.namespace ?? "default";
    this.dataDiskSize = params.dataDiskSize ?? DEFAULT_DATA_DISK_SIZE;
    this.dataDiskBytes = requireQuantityBytes(this.dataDiskSize, "data disk size");
    const interval = params.resultIntervalSeconds ?? DEFAULT_RESULT_INTERVAL_SECONDS;
    if (
      !Number.isInteger(interval) || interval < RESULT_INTERVAL_LIMITS.min ||
      interval > RESULT_INTERVAL_LIMITS.max
    ) {
      throw new RangeError(
        `result interval must be an integer from ${RESULT_INTERVAL_LIMITS.min} to ` +
          `${RESULT_INTERVAL_LIMITS.max} seconds, got ${interval}`,
      );
    }
    this.resultIntervalSeconds = interval;
  }

  /** One role, `worker`. */
  roles(): readonly string[] {
    return [ROLE_WORKER];
  }

  abstract userData(role: string, ctx: GuestContext): CloudConfigOptions;

  /** True when a user with a password or keys is configured. */
  carriesCredentials(): boolean {
    return Boolean(this.ssh.user) &&
      (Boolean(this.ssh.password) || (this.ssh.authorizedKeys?.length ?? 0) > 0);
  }

  /** The configured cores and memory. */
  resources(): VmResources {
    return { cpuCores: this.config.cpuCores, memoryBytes: this.memoryBytes };
  }

  /** No data disks. */
  dataDisks(): readonly DataDisk[] {
    return [];
  }

  /** No peers. */
  peerNeeds(): readonly RolePeerNeed[] {
    return [];
  }

  /** No Service. */
  service(): ServiceSpec | undefined {
    return undefined;
  }

  /** Instances times roles. */
  vmCount(): number {
    return this.config.vmCount * this.roles().length;
  }

  /** `opts` with this workload's SSH credentials added. */
  protected withSsh(opts: CloudConfigOptions): CloudConfigOptions {
    const out: CloudConfigOptions = { ...opts };
    if (this.ssh.user) out.sshUser = this.ssh.user;
    if (this.ssh.password) out.sshPassword = this.ssh.password;
    if (this.ssh.authorizedKeys) out.sshAuthorizedKeys = this.ssh.authorizedKeys;
    return out;
  }

  /** Throws when `role` is not one of {@linkcode roles}. */
  protected checkRole(role: string): void {
    if (!this.roles().includes(role)) {
      throw new RangeError(
        `workload ${this.name} has roles ${this.roles().join(", ")}, got "${role}"`,
      );
    }
  }

  /** Throws when `ctx.os` is not a known distribution. */
  protected checkContext(ctx: GuestContext): void {
    if (!isGuestOs(ctx.os)) {
      throw new RangeError(
        `guest os must be one of ${GUEST_OSES.join(", ")}, got ${JSON.stringify(ctx.os)}`,
      );
    }
  }
}
