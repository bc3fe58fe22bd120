/**
 * The runtime checks of `foundry create`, as pure functions of facts the caller gathered from libvirt
 * and the host: the name is free, every bridge exists (suggesting the closest names when not), the boot
 * image exists, no address is taken by another foundry VM (MACs and tap names derive from it), and the
 * host can hold the VM: vCPUs and memory within the host's, disks within the VM pool's capacity.
 *
 * @example
 * ```ts
 * import { preflightProblems } from "./preflight.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/simple-vm.yaml");
 * if (vm) {
 *   const problems = preflightProblems(vm, { domains: [], bridges: ["br1"], foundryVms: [], imageVolumes: [] });
 *   for (const p of problems) console.log(`${p.path}: ${p.message}`);
 * }
 * ```
 *
 * @module
 */

import { suggest } from "./loader.ts";
import { resolveImage } from "./naming.ts";
import { existingDisks } from "./spec_media.ts";
import { DEFAULT_IMAGE_POOL, type VirtualMachine } from "./types.ts";

/** Bytes in one GiB (`memoryGiB`, and `sizeGB`, which foundry reads as GiB). */
const GIB = 2 ** 30;

/**
 * Bytes a create writes at once in the VM pool besides the disks' growth: a qcow2 header per disk
 * and the cloud-init ISO, rounded up generously.
 */
export const CREATE_WRITES_PER_VOLUME = 1024 * 1024;

/** The host's resources, each checked only when known. */
export interface HostResources {
  /** Logical CPUs of the host (capabilities `<topology>`). */
  cpus?: number;
  /** Most vCPUs the host's QEMU accepts for a q35 machine (domain capabilities `<vcpu max>`). */
  maxVcpus?: number;
  /** Memory of the host in bytes (capabilities `<topology>` cells). */
  memoryBytes?: number;
  /** The pool the VM's volumes go to, when it exists already. */
  vmPool?: { name: string; capacity: number; available: number };
}

/** What the host has, as far as a new VM is concerned. */
export interface HostFacts {
  /** Names of all libvirt domains, foundry's or not. */
  domains: readonly string[];
  /** Names of the bridges on the host. */
  bridges: readonly string[];
  /** The VMs foundry already manages (read from domain metadata). */
  foundryVms: readonly VirtualMachine[];
  /**
   * Volume names of the pool that holds the boot image; undefined when that pool does not exist.
   * Not consulted for empty boot disks or file-path images.
   */
  imageVolumes: readonly string[] | undefined;
  /**
   * Whether a file-path image exists (a pool volume, or a file on this host that create imports
   * into the image pool); consulted for `/path` images only.
   */
  imageFileExists?: boolean;
  /**
   * The installation ISO (`spec.installMedia`): whether it exists, and for a volume reference the
   * volumes of its pool (undefined when that pool does not exist).
   */
  installMedia?: { exists: boolean; poolVolumes?: readonly string[] | undefined };
  /** Whether each existing disk (`bootDisk.volume`, `dataDisks[].volume`) exists, by reference. */
  existingDisks?: Readonly<Record<string, boolean>>;
  /** What is wrong with the console password file (never the password). */
  graphicsPasswordProblem?: string;
  /** The configured images pool, for bare volume names without `imagePool`. */
  imagesPool?: string;
  /** The host's CPUs, memory and VM pool space. */
  host?: HostResources;
}

/** A runtime problem of a spec, with the field it concerns. */
export interface PreflightProblem {
  /** Field path, e.g. `spec.networkInterfaces[0].bridge`. */
  path: string;
  /** What is wrong, sentence case, no final period. */
  message: string;
}

function closest(name: string, candidates: readonly string[]): string {
  const hint = suggest(name, candidates);
  if (hint !== undefined) return `; did you mean "${hint}"?`;
  return candidates.length === 0 ? "; the host has none" : `; available: ${candidates.join(", ")}`;
}

/** Every runtime problem of `vm` on a host described by `facts`; empty when it can be created. */
export function preflightProblems(vm: VirtualMachine, facts: HostFacts): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const name = vm.metadata.name;
  if (facts.domains.includes(name)) {
    problems.push({ path: "metadata.name", message: `a domain named "${name}" already exists` });
  }
  vm.spec.networkInterfaces.forEach((nic, i) => {
    if (!facts.bridges.includes(nic.bridge)) {
      problems.push({
        path: `spec.networkInterfaces[${i}].bridge`,
        message: `bridge "${nic.bridge}" does not exist on the host${
          closest(nic.bridge, facts.bridges)
        }`,
      });
    }
    if (nic.ip === undefined) return;
    const address = nic.ip.slice(0, nic.ip.indexOf("/"));
    for (const other of facts.foundryVms) {
      if (other.metadata.name === name) continue;
      if (
        other.spec.networkInterfaces.some((o) => o.ip?.slice(0, o.ip.indexOf("/")) === address)
      ) {
        problems.push({
          path: `spec.networkInterfaces[${i}].ip`,
          message: `address ${address} is already used by VM "${other.metadata.name}"`,
        });
      }
    }
  });
  const image = vm.spec.bootDisk.image;
  if (image !== undefined && vm.spec.bootDisk.empty !== true) {
    const where = resolveImage(
      image,
      vm.spec.bootDisk.imagePool,
      facts.imagesPool ?? DEFAULT_IMAGE_POOL,
    );
    if (where.kind === "path") {
      if (facts.imageFileExists !== true) {
        problems.push({
          path: "spec.bootDisk.image",
          message: `image file ${where.path} does not exist`,
        });
      }
    } else if (facts.imageVolumes === undefined) {
      problems.push({
        path: "spec.bootDisk.image",
        message: `image pool "${where.pool}" does not exist`,
      });
    } else if (!facts.imageVolumes.includes(where.volume)) {
      problems.push({
        path: "spec.bootDisk.image",
        message: `image "${where.volume}" is not in pool "${where.pool}"${
          closest(where.volume, facts.imageVolumes)
        }`,
      });
    }
  }
  problems.push(...mediaProblems(vm, facts));
  problems.push(...resourceProblems(vm, facts.host ?? {}));
  return problems;
}

/** What is missing of the installation ISO, the existing disks and the console password. */
function mediaProblems(vm: VirtualMachine, facts: HostFacts): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const media = vm.spec.installMedia;
  if (media !== undefined && facts.installMedia !== undefined && !facts.installMedia.exists) {
    const where = resolveImage(
      media.image,
      media.imagePool,
      facts.imagesPool ?? DEFAULT_IMAGE_POOL,
    );
    const path = "spec.installMedia.image";
    const vols = facts.installMedia.poolVolumes;
    if (where.kind === "path") {
      problems.push({ path, message: `ISO file ${where.path} does not exist` });
    } else if (vols === undefined) {
      problems.push({ path, message: `image pool "${where.pool}" does not exist` });
    } else {
      const isos = vols.filter((v) => v.endsWith(".iso"));
      problems.push({
        path,
        message: `ISO "${where.volume}" is not in pool "${where.pool}"${
          closest(where.volume, isos)
        }`,
      });
    }
  }
  for (const d of existingDisks(vm)) {
    if (facts.existingDisks?.[d.ref] === false) {
      problems.push({ path: d.path, message: `existing disk ${d.ref} does not exist` });
    }
  }
  if (facts.graphicsPasswordProblem !== undefined) {
    problems.push({ path: "spec.graphics.passwordSecret", message: facts.graphicsPasswordProblem });
  }
  return problems;
}

/** What of `vm` the host cannot hold: vCPUs, memory, disks in the VM pool. */
function resourceProblems(vm: VirtualMachine, host: HostResources): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const { vcpus, memoryGiB } = vm.spec;
  if (host.maxVcpus !== undefined && vcpus > host.maxVcpus) {
    problems.push({
      path: "spec.vcpus",
      message:
        `${vcpus} vCPUs are more than the ${host.maxVcpus} this host's QEMU allows for a q35 machine`,
    });
  } else if (host.cpus !== undefined && vcpus > host.cpus) {
    problems.push({
      path: "spec.vcpus",
      message: `${vcpus} vCPUs are more than the host's ${host.cpus} CPUs`,
    });
  }
  if (host.memoryBytes !== undefined && memoryGiB * GIB > host.memoryBytes) {
    problems.push({
      path: "spec.memoryGiB",
      message: `${memoryGiB} GiB is more than the host's ${
        Math.floor(host.memoryBytes / GIB * 100) / 100
      } GiB of memory`,
    });
  }
  const pool = host.vmPool;
  if (pool !== undefined) {
    const disks = [
      { path: "spec.bootDisk.sizeGB", gb: vm.spec.bootDisk.sizeGB },
      ...(vm.spec.dataDisks ?? []).map((d, i) => ({
        path: `spec.dataDisks[${i}].sizeGB`,
        gb: d.sizeGB,
      })),
    ];
    const total = disks.reduce((n, d) => n + d.gb, 0);
    // Volumes are thin (qcow2): what they may grow to is held against the pool's capacity, not
    // its free space, since overcommitting free space is normal. A disk the pool can never hold is not.
    if (total * GIB > pool.capacity) {
      const largest = disks.reduce((a, b) => (b.gb > a.gb ? b : a));
      problems.push({
        path: largest.path,
        message:
          `the disks total ${total} GB, more than pool "${pool.name}" can ever hold (its capacity is ${
            Math.floor(pool.capacity / GIB)
          } GB)`,
      });
    }
    const now = (disks.length + 1) * CREATE_WRITES_PER_VOLUME;
    if (pool.available < now) {
      problems.push({
        path: "spec.storagePool",
        message:
          `pool "${pool.name}" has ${pool.available} bytes free, and create writes about ${now}`,
      });
    }
  }
  return problems;
}
