/**
 * The workload model: what a synthetic workload needs from a VM, as plain data. A workload knows
 * nothing of Kubernetes or libvirt, so either backend can run it.
 * @module
 */
import { buildCloudConfig, type CloudConfigOptions } from "../cloudinit/cloud_config.ts";

/** Per-workload settings from the configuration chain. */
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

/** CPU and memory of one VM. */
export interface VmResources {
  /** vCPU cores. */
  cpuCores: number;
  /** Guest memory as a Kubernetes quantity. */
  memory: string;
}

/**
 * A blank data disk attached to the VM. The guest finds it by its serial under `/dev/disk/by-id/`
 * (virtio disks appear as `virtio-<serial>`), independent of the order disks are enumerated.
 */
export interface DataDisk {
  /** Disk and volume name, unique within the VM. */
  name: string;
  /** Disk serial; at most 20 characters (virtio-blk limit). */
  serial: string;
  /** Size as a Kubernetes quantity. */
  size: string;
  /** Where the workload mounts it in the guest. */
  mountPath: string;
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

/** A ClusterIP Service a workload needs before its VMs start (e.g. for DNS of a server role). */
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
  /** `#cloud-config` user data of a VM in `role`. */
  userData(role: string): string;
  /** True when the user data carries a password or SSH keys and must be stored as a secret. */
  carriesCredentials(): boolean;
  /** CPU and memory of each VM. */
  resources(): VmResources;
  /** Blank data disks each VM gets. */
  dataDisks(): readonly DataDisk[];
  /** The Service to create before the VMs, if any. */
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
  /** Namespace the VMs run in (for DNS names). */
  namespace?: string;
  /** Size of data disks. */
  dataDiskSize?: string;
}

/** Default data disk size. */
export const DEFAULT_DATA_DISK_SIZE = "10Gi";

/**
 * Defaults for the optional parts of a workload and the SSH injection every workload needs.
 * Subclasses set `name` and implement `userData`.
 */
export abstract class BaseWorkload implements Workload {
  abstract readonly name: string;
  /** The settings it was created with. */
  readonly config: WorkloadConfig;
  /** Credentials added to every document built with {@linkcode BaseWorkload.cloudConfig}. */
  readonly ssh: SshCredentials;
  /** Namespace the VMs run in. */
  readonly namespace: string;
  /** Size of data disks. */
  readonly dataDiskSize: string;

  /** Stores the parameters; validates the numbers. */
  constructor(params: WorkloadParams) {
    const { config } = params;
    if (!Number.isInteger(config.vmCount) || config.vmCount < 0) {
      throw new RangeError(`vmCount must be a non-negative integer, got ${config.vmCount}`);
    }
    if (!Number.isInteger(config.cpuCores) || config.cpuCores < 1) {
      throw new RangeError(`cpuCores must be a positive integer, got ${config.cpuCores}`);
    }
    this.config = { ...config };
    this.ssh = params.ssh ?? {};
    this.namespace = params.namespace ?? "default";
    this.dataDiskSize = params.dataDiskSize ?? DEFAULT_DATA_DISK_SIZE;
  }

  /** One role, `worker`. */
  roles(): readonly string[] {
    return [ROLE_WORKER];
  }

  abstract userData(role: string): string;

  /** True when a user with a password or keys is configured. */
  carriesCredentials(): boolean {
    return Boolean(this.ssh.user) &&
      (Boolean(this.ssh.password) || (this.ssh.authorizedKeys?.length ?? 0) > 0);
  }

  /** The configured cores and memory. */
  resources(): VmResources {
    return { cpuCores: this.config.cpuCores, memory: this.config.memory };
  }

  /** No data disks. */
  dataDisks(): readonly DataDisk[] {
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

  /** Builds cloud-config with this workload's SSH credentials added. */
  protected cloudConfig(opts: CloudConfigOptions): string {
    const withSsh: CloudConfigOptions = { ...opts };
    if (this.ssh.user) withSsh.sshUser = this.ssh.user;
    if (this.ssh.password) withSsh.sshPassword = this.ssh.password;
    if (this.ssh.authorizedKeys) withSsh.sshAuthorizedKeys = this.ssh.authorizedKeys;
    return buildCloudConfig(withSsh);
  }

  /** Throws when `role` is not one of {@linkcode roles}. */
  protected checkRole(role: string): void {
    if (!this.roles().includes(role)) {
      throw new RangeError(
        `workload ${this.name} has roles ${this.roles().join(", ")}, got "${role}"`,
      );
    }
  }
}
