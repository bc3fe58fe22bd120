/**
 * The `foundry.cofront.xyz/v1alpha1` `VirtualMachine` API: what a user writes in a YAML file, what foundry
 * stores in a domain's metadata, and the status it reports.
 *
 * @module
 */

/** The API group and version of every foundry document. */
export const API_VERSION = "foundry.cofront.xyz/v1alpha1";

/** The kind of a foundry virtual machine document. */
export const KIND = "VirtualMachine";

/** The pool that holds base images unless a spec or the configuration names another. */
export const DEFAULT_IMAGE_POOL = "foundry-images";

/** The pool that holds a VM's disks unless a spec or the configuration names another. */
export const DEFAULT_VM_POOL = "foundry-vms";

/** CPU modes a spec may ask for; they apply to KVM domains only (TCG domains use `maximum`). */
export const CPU_MODES = ["host-model", "host-passthrough"] as const;

/** A CPU mode a spec may ask for. */
export type CpuMode = typeof CPU_MODES[number];

/** Libvirt domain types foundry creates: `kvm` (hardware virtualisation) or `qemu` (TCG emulation). */
export const DOMAIN_TYPES = ["kvm", "qemu"] as const;

/** A libvirt domain type foundry creates. */
export type DomainType = typeof DOMAIN_TYPES[number];

/** Lifecycle phases of a VM as foundry reports them. */
export const PHASES = [
  "Pending",
  "Creating",
  "Running",
  "Stopped",
  "Failed",
  "Destroying",
] as const;

/** A lifecycle phase of a VM. */
export type Phase = typeof PHASES[number];

/** Identity and free-form data of a VM. */
export interface ObjectMeta {
  /** Libvirt domain name; lowercase, `^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$`. */
  name: string;
  /** Key-value labels that `foundry list -l key=value` filters on. */
  labels?: Record<string, string>;
  /** Arbitrary key-value data. */
  annotations?: Record<string, string>;
  /** Sequence number of the spec; 1 when a file does not say. */
  generation?: number;
}

/** The boot disk: a copy-on-write overlay of a base image, an empty disk, or an existing volume. */
export interface BootDisk {
  /** Capacity in GB. */
  sizeGB: number;
  /** Base image: `volume`, `pool:volume` or an absolute file path. Absent when `empty` is true. */
  image?: string;
  /** Pool of a bare volume name in `image`; `foundry-images` by default. */
  imagePool?: string;
  /** Create an empty disk instead of an overlay of `image` (with `installMedia`: install from an ISO). */
  empty?: boolean;
  /**
   * An existing disk the VM uses as it is, `pool:volume` or an absolute file path: foundry did not
   * create it (`foundry adopt` writes this). Excludes `image` and `empty`.
   */
  volume?: string;
}

/** An additional disk attached to the VM. */
export interface DataDisk {
  /** Guest device name, `vdb`, `vdc`, ...; `vda` is the boot disk. */
  device: string;
  /** Capacity in GB. */
  sizeGB: number;
  /**
   * Virtio serial number, at most 20 of `A-Z a-z 0-9 _ -`; the guest finds the disk as
   * `/dev/disk/by-id/virtio-<serial>` whatever its device name.
   */
  serial?: string;
  /**
   * An existing disk used as it is, `pool:volume` or an absolute file path, instead of a new
   * `{name}_data-{device}` volume (`foundry adopt` writes this).
   */
  volume?: string;
}

/**
 * A network interface attached to a host bridge, with a static IPv4 address that cloud-init sets up,
 * or (with `mac` and no `ip`: an adopted VM's interface) addressed by the guest itself.
 */
export interface NetworkInterface {
  /** IPv4 address with prefix length, `10.20.30.40/24`; required unless `mac` is given. */
  ip?: string;
  /** IPv4 gateway address; required with `ip`. */
  gateway?: string;
  /** MAC address, `52:54:00:12:34:56`; derived from `ip` (`be:ef:<ip hex>`) when absent. */
  mac?: string;
  /** DNS server addresses. */
  dnsServers?: string[];
  /** Host bridge the interface is attached to. */
  bridge: string;
  /** Whether the default route goes through this interface; true for the first interface by default. */
  defaultRoute?: boolean;
}

/** What cloud-init sets up in the guest. */
export interface CloudInit {
  /** Fully qualified domain name, lowercase; the hostname is its first label. */
  fqdn?: string;
  /** OpenSSH public keys authorised for root. */
  sshAuthorizedKeys?: string[];
  /** Root password as a crypt(3) hash (`$6$...`). */
  passwordHash?: string;
  /** Whether sshd accepts password authentication; false by default. */
  sshPwauth?: boolean;
  /** More cloud-config for a workload, merged into foundry's own user data. */
  userData?: UserDataExtras;
}

/** One file cloud-init writes into the guest (`write_files`). */
export interface GuestFile {
  /** Absolute path in the guest, without empty, `.` or `..` parts. */
  path: string;
  /** The file's content, written as-is; may hold newlines and tabs. */
  content: string;
  /** Octal mode, `"0644"`; cloud-init's default (0644) when absent. */
  permissions?: string;
}

/**
 * Cloud-config a workload adds to what foundry writes. Foundry's own keys (root's SSH keys and
 * password, hostname, network configuration) stay authoritative: these only add packages, files
 * and commands, and a file may not be one foundry's configuration writes (see
 * {@linkcode RESERVED_GUEST_PATHS}).
 */
export interface UserDataExtras {
  /** Packages to install on first boot (cloud-init `packages`). */
  packages?: string[];
  /** Files to write (cloud-init `write_files`), before packages and commands. */
  writeFiles?: GuestFile[];
  /** Commands run early on every boot (cloud-init `bootcmd`), each an argv list, no shell. */
  bootcmd?: string[][];
  /** Commands run once at the end of the first boot (cloud-init `runcmd`), each an argv list. */
  runcmd?: string[][];
}

/**
 * Guest paths foundry's own cloud-init configuration writes (or cloud-init keeps its state in): a
 * `writeFiles` entry may not name one, nor a path under a directory that ends in `/`.
 */
export const RESERVED_GUEST_PATHS: readonly string[] = [
  "/etc/hostname",
  "/etc/hosts",
  "/etc/shadow",
  "/etc/ssh/sshd_config",
  "/root/.ssh/authorized_keys",
  "/etc/cloud/",
  "/var/lib/cloud/",
  "/run/cloud-init/",
  "/etc/netplan/",
  "/etc/network/",
  "/etc/systemd/network/",
];

/**
 * Headroom a running VM can be resized into without a reboot (`foundry resize`): the domain is
 * defined with this many vCPU slots and this much memory, of which `vcpus` and `memoryGiB` are in
 * use. See {@linkcode resourceMaxima} for the defaults.
 */
export interface Resources {
  /** Most vCPUs the VM can have while running; at least `vcpus`. */
  maxVcpus?: number;
  /** Most memory in GiB the VM can have while running (balloon ceiling); at least `memoryGiB`. */
  maxMemoryGiB?: number;
}

/**
 * The most vCPU slots a default headroom reserves: QEMU 7.2's limit for a q35 machine (288), so
 * that the default never makes a domain the host's QEMU cannot start. An explicit `maxVcpus` may
 * go further.
 */
export const DEFAULT_MAX_VCPUS_CAP = 288;

/**
 * The headroom a VM gets: the spec's `resources`, else what `cpu` topology or `numa` cells fix
 * (see the code), else `maxVcpus` = 2 x `vcpus` (at most
 * {@linkcode DEFAULT_MAX_VCPUS_CAP}) and
 * `maxMemoryGiB` = 2 x `memoryGiB`, both capped at {@linkcode LIMITS} and never below what is in use.
 * With `host` (the host's CPUs and memory), a default is also capped by the host: `maxVcpus` =
 * max(vcpus, min(host CPUs, 2 x vcpus)) and `maxMemoryGiB` = max(memoryGiB, min(host memory,
 * 2 x memoryGiB)). Explicit values are kept as written (the loader checks them).
 */
export function resourceMaxima(
  spec: Pick<VirtualMachineSpec, "vcpus" | "memoryGiB" | "resources" | "cpu" | "numa">,
  host?: { cpus?: number; memoryMiB?: number },
): { maxVcpus: number; maxMemoryMiB: number } {
  const memoryMiB = Math.round(spec.memoryGiB * 1024);
  let maxVcpus = spec.resources?.maxVcpus;
  // A CPU topology (sockets x cores x threads; cores default to the fewest that hold `vcpus`) or
  // NUMA cells (the highest vCPU id + 1; the cells' memory) fix a maximum the spec does not give.
  const { sockets, cores, threads } = spec.cpu ?? {};
  if (maxVcpus === undefined && (sockets ?? cores ?? threads) !== undefined) {
    const st = (sockets ?? 1) * (threads ?? 1);
    maxVcpus = st * (cores ?? Math.ceil(spec.vcpus / st));
  } else if (maxVcpus === undefined && spec.numa !== undefined && spec.numa.length > 0) {
    maxVcpus = 1 + Math.max(...spec.numa.flatMap((c) => c.cpus.split(/[,-]/).map(Number)));
  }
  if (maxVcpus === undefined) {
    // Never past QEMU 7.2's q35 limit by default: a domain with more vCPU slots does not start.
    maxVcpus = Math.min(2 * spec.vcpus, DEFAULT_MAX_VCPUS_CAP);
    if (host?.cpus !== undefined) maxVcpus = Math.min(maxVcpus, host.cpus);
  }
  let maxMemoryMiB = spec.resources?.maxMemoryGiB === undefined
    ? undefined
    : Math.round(spec.resources.maxMemoryGiB * 1024);
  if (maxMemoryMiB === undefined && spec.numa !== undefined && spec.numa.length > 0) {
    maxMemoryMiB = spec.numa.reduce((sum, c) => sum + Math.round(c.memoryGiB * 1024), 0);
  }
  if (maxMemoryMiB === undefined) {
    maxMemoryMiB = Math.min(2 * memoryMiB, LIMITS.memoryGiB * 1024);
    if (host?.memoryMiB !== undefined) maxMemoryMiB = Math.min(maxMemoryMiB, host.memoryMiB);
  }
  return {
    maxVcpus: Math.max(maxVcpus, spec.vcpus),
    maxMemoryMiB: Math.max(maxMemoryMiB, memoryMiB),
  };
}

/** CPU topology and mode: `sockets` x `cores` x `threads` must equal the vCPU maximum. */
export interface CpuSpec {
  /** Sockets; 1 by default. */
  sockets?: number;
  /** Cores per socket; by default what makes the product the vCPU maximum. */
  cores?: number;
  /** Threads per core; 1 by default. */
  threads?: number;
  /** CPU mode on KVM (`host-model` by default); TCG domains use `maximum`. Same as `spec.cpuMode`. */
  mode?: CpuMode;
}

/** One NUMA cell: which vCPUs and how much memory; the cells' memory adds up to `memoryGiB`. */
export interface NumaCell {
  /** vCPU ids, libvirt's cpuset syntax: `0-1`, `0,2`. */
  cpus: string;
  /** Memory of the cell in GiB (a whole number of MiB). */
  memoryGiB: number;
}

/** Graphics protocols a VM's console may use. */
export const GRAPHICS_TYPES = ["vnc", "spice"] as const;

/** A graphics protocol. */
export type GraphicsType = typeof GRAPHICS_TYPES[number];

/** A graphical console. */
export interface Graphics {
  /** `vnc` or `spice`. */
  type: GraphicsType;
  /** Address the host listens on; `127.0.0.1` by default. */
  listen?: string;
  /**
   * File holding the console password (first line; relative to the YAML file), never the password
   * itself: the stored spec keeps this path, the domain gets the password.
   */
  passwordSecret?: string;
}

/** Installation media: an ISO 9660 image the VM boots from first (with `bootDisk.empty: true`). */
export interface InstallMedia {
  /** The ISO: `volume`, `pool:volume` in the image pool, or an absolute file path. */
  image: string;
  /** Pool of a bare volume name in `image`; the image pool by default. */
  imagePool?: string;
}

/** A reference to a `VirtualMachineTemplate` whose defaults a VM takes. */
export interface TemplateRef {
  /** The template's `metadata.name`. */
  name: string;
}

/** The desired state of a VM. */
export interface VirtualMachineSpec {
  /** Number of virtual CPUs. */
  vcpus: number;
  /** Memory in GiB; a whole number of MiB. */
  memoryGiB: number;
  /** The boot disk. */
  bootDisk: BootDisk;
  /** Additional disks. */
  dataDisks?: DataDisk[];
  /** Network interfaces, at least one. */
  networkInterfaces: NetworkInterface[];
  /** Guest setup through cloud-init. */
  cloudInit?: CloudInit;
  /** CPU mode on KVM; `host-model` by default. */
  cpuMode?: CpuMode;
  /** CPU topology and mode. */
  cpu?: CpuSpec;
  /** NUMA cells. */
  numa?: NumaCell[];
  /** A graphical console (none by default: serial console only). */
  graphics?: Graphics;
  /** Installation ISO booted before the disk. */
  installMedia?: InstallMedia;
  /**
   * The template this VM was made from; the loader has already merged its defaults into this spec,
   * so the reference is only a record.
   */
  templateRef?: TemplateRef;
  /** Start the VM when the host boots; true by default. */
  autostart?: boolean;
  /** Pool that holds the VM's disks; `foundry-vms` by default. */
  storagePool?: string;
  /** Libvirt domain type; by default from the configuration, else from the host's capabilities. */
  domainType?: DomainType;
  /** Headroom for resizing while running; see {@linkcode resourceMaxima} for the defaults. */
  resources?: Resources;
  /** Which host of a fleet the VM goes to (issue 16); without it create places it. */
  placement?: Placement;
}

/**
 * Where a fleet puts a VM: the configured host `host`, or one of the hosts whose labels include
 * every pair of `selector`.
 */
export type Placement = { host: string } | { selector: Record<string, string> };

/** The kind of a template document. */
export const TEMPLATE_KIND = "VirtualMachineTemplate";

/**
 * A `VirtualMachineTemplate`: defaults that VMs take with `spec.templateRef: {name}`. A VM's own
 * fields override the template's (mappings merge key by key; lists and scalars replace), labels and
 * annotations merge, and the result is validated as a VM.
 */
export interface VirtualMachineTemplate {
  /** Always {@link API_VERSION}. */
  apiVersion: typeof API_VERSION;
  /** Always {@link TEMPLATE_KIND}. */
  kind: typeof TEMPLATE_KIND;
  /** The template's name (and labels, not passed on). */
  metadata: { name: string; labels?: Record<string, string> };
  /** What VMs made from it get. */
  spec: {
    template: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: Partial<VirtualMachineSpec>;
    };
  };
}

/** One observation of a VM's state, Kubernetes style. */
export interface Condition {
  /** What the condition is about, e.g. `Ready`. */
  type: string;
  /** Whether the condition holds. */
  status: "True" | "False" | "Unknown";
  /** RFC 3339 time of the last change of `status`. */
  lastTransitionTime: string;
  /** Machine-readable CamelCase reason. */
  reason: string;
  /** Human-readable explanation. */
  message: string;
}

/** The observed state of a VM, filled in by foundry. */
export interface VirtualMachineStatus {
  /** Lifecycle phase. */
  phase?: Phase;
  /** Current conditions. */
  conditions?: Condition[];
  /** The `metadata.generation` that this status describes. */
  observedGeneration?: number;
}

/** A foundry virtual machine document. */
export interface VirtualMachine {
  /** Always {@link API_VERSION}. */
  apiVersion: typeof API_VERSION;
  /** Always {@link KIND}. */
  kind: typeof KIND;
  /** Identity and labels. */
  metadata: ObjectMeta;
  /** Desired state. */
  spec: VirtualMachineSpec;
  /** Observed state; never read from a user's file. */
  status?: VirtualMachineStatus;
}

/**
 * Upper bounds of a `VirtualMachine` file, checked before anything reaches libvirt. README
 * ("Limits") says why each is what it is.
 */
export const LIMITS = {
  /** Bytes of one YAML file; checked on the file's size before it is read. */
  fileBytes: 1_048_576,
  /** `VirtualMachine` documents in one file. */
  vmsPerFile: 100,
  /** YAML aliases (`*name`) in one file; each is resolved in constant time. */
  aliasesPerFile: 1000,
  /** Nesting depth of mappings and lists. */
  nestingDepth: 32,
  /** `spec.vcpus`: the most any QEMU accepts for a q35 machine (QEMU 9.0 and later: 4096). */
  vcpus: 4096,
  /** `spec.memoryGiB`: 16 TiB. */
  memoryGiB: 16384,
  /** `sizeGB` of a disk: 1 PiB, within what a qcow2 image with 64 KiB clusters can address. */
  diskSizeGB: 1_048_576,
  /** `spec.networkInterfaces` entries. */
  networkInterfaces: 16,
  /** `spec.dataDisks` entries. */
  dataDisks: 32,
  /** `spec.numa` cells: QEMU's most NUMA nodes. */
  numaCells: 128,
  /** `dnsServers` of one interface. */
  dnsServers: 8,
  /** `spec.cloudInit.sshAuthorizedKeys` entries. */
  sshAuthorizedKeys: 64,
  /** `metadata.labels` entries. */
  labels: 64,
  /** `metadata.annotations` entries. */
  annotations: 64,
  /** Characters of an annotation key: a label key's most (253 prefix + "/" + 63 name). */
  annotationKeyLength: 317,
  /** Characters of all annotation keys and values together. */
  annotationsTotalLength: 65_536,
  /** Characters of a file-path `spec.bootDisk.image` (Linux PATH_MAX less the final NUL). */
  imagePathLength: 4095,
  /** Characters of `spec.cloudInit.passwordHash`. */
  passwordHashLength: 512,
  /** Characters of a data disk's `serial`: QEMU passes at most 20 to a virtio disk. */
  diskSerialLength: 20,
  /** `spec.cloudInit.userData.packages` entries. */
  userDataPackages: 64,
  /** `spec.cloudInit.userData.writeFiles` entries. */
  userDataFiles: 64,
  /** `bootcmd` and `runcmd` entries, each. */
  userDataCommands: 64,
  /** Arguments of one `bootcmd` or `runcmd` command. */
  commandArgs: 64,
  /** Characters of a `writeFiles` path. */
  guestPathLength: 4095,
  /**
   * Characters of all of `spec.cloudInit.userData` together (file contents, paths, arguments,
   * package names): it travels in the NoCloud ISO and in the domain's metadata.
   */
  userDataTotalLength: 262_144,
} as const;
