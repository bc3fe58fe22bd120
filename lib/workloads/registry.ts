/**
 * The workload registry: look a workload up by name, with functional options for what only some
 * workloads need (the network workload's namespace, everyone's SSH credentials).
 * @module
 */
import type { SshCredentials, Workload, WorkloadConfig, WorkloadParams } from "./workload.ts";
import { CpuWorkload } from "./cpu.ts";
import { MemoryWorkload } from "./memory.ts";
import { DiskWorkload } from "./disk.ts";
import { DatabaseWorkload } from "./database.ts";
import { NetworkWorkload } from "./network.ts";

/** Builds a workload from its parameters. */
export type WorkloadFactory = (params: WorkloadParams) => Workload;

/** Options a registry lookup passes to the factory. */
export interface RegistryOptions {
  /** Namespace of the VMs (the network workload builds DNS names from it). */
  namespace?: string;
  /** Login credentials injected into every document. */
  ssh?: SshCredentials;
  /** Size of data disks. */
  dataDiskSize?: string;
  /** Seconds between two result samples. */
  resultIntervalSeconds?: number;
}

/** A functional option for {@linkcode Registry.get}. */
export type RegistryOption = (opts: RegistryOptions) => void;

/** Sets the namespace the workload's VMs run in. */
export function withNamespace(namespace: string): RegistryOption {
  return (o) => {
    o.namespace = namespace;
  };
}

/** Sets the SSH credentials injected into the workload's cloud-config. */
export function withSshCredentials(ssh: SshCredentials): RegistryOption {
  return (o) => {
    o.ssh = ssh;
  };
}

/** Sets the size of the workload's data disks. */
export function withDataDiskSize(size: string): RegistryOption {
  return (o) => {
    o.dataDiskSize = size;
  };
}

/** Sets the seconds between two result samples in the guest. */
export function withResultInterval(seconds: number): RegistryOption {
  return (o) => {
    o.resultIntervalSeconds = seconds;
  };
}

/** Thrown for a workload name the registry does not know; lists the names it does. */
export class UnknownWorkloadError extends Error {
  /** The name asked for. */
  readonly workload: string;
  /** The names available. */
  readonly available: readonly string[];
  /** Builds the error message from the name and the known names. */
  constructor(workload: string, available: readonly string[]) {
    super(`unknown workload "${workload}", expected one of: ${available.join(", ")}`);
    this.name = "UnknownWorkloadError";
    this.workload = workload;
    this.available = available;
  }
}

/** Workload factories by name. */
export class Registry {
  readonly #factories: Map<string, WorkloadFactory>;

  /** Creates a registry from name → factory entries. */
  constructor(entries: Readonly<Record<string, WorkloadFactory>>) {
    this.#factories = new Map(Object.entries(entries));
  }

  /** Number of registered workloads. */
  get size(): number {
    return this.#factories.size;
  }

  /** Registered names, sorted. */
  list(): string[] {
    return [...this.#factories.keys()].sort();
  }

  /** True when `name` is registered. */
  has(name: string): boolean {
    return this.#factories.has(name);
  }

  /**
   * Creates the workload `name` with `config` and options.
   * @throws {UnknownWorkloadError} when `name` is not registered
   */
  get(name: string, config: WorkloadConfig, ...options: RegistryOption[]): Workload {
    const factory = this.#factories.get(name);
    if (!factory) throw new UnknownWorkloadError(name, this.list());
    const o: RegistryOptions = {};
    for (const opt of options) opt(o);
    const params: WorkloadParams = { config };
    if (o.namespace !== undefined) params.namespace = o.namespace;
    if (o.ssh !== undefined) params.ssh = o.ssh;
    if (o.dataDiskSize !== undefined) params.dataDiskSize = o.dataDiskSize;
    if (o.resultIntervalSeconds !== undefined) {
      params.resultIntervalSeconds = o.resultIntervalSeconds;
    }
    return factory(params);
  }
}

/** Every built-in workload name, sorted. */
export const ALL_WORKLOAD_NAMES: readonly string[] = [
  "cpu",
  "database",
  "disk",
  "memory",
  "network",
];

/** A registry with the five built-in workloads. */
export function defaultRegistry(): Registry {
  return new Registry({
    cpu: (p) => new CpuWorkload(p),
    memory: (p) => new MemoryWorkload(p),
    disk: (p) => new DiskWorkload(p),
    database: (p) => new DatabaseWorkload(p),
    network: (p) => new NetworkWorkload(p),
  });
}
