/**
 * Libvirt domain XML for a `VirtualMachine`, built with fast-xml-parser's XMLBuilder so that every
 * user-supplied string is escaped, never pasted into markup.
 *
 * The domain: q35, UEFI chosen by firmware auto-selection with secure boot and enrolled keys off (the
 * secure-boot firmware needs SMM, which nested hypervisors often lack), virtio disks from pool volumes,
 * the cidata ISO as a CD-ROM on virtio-scsi (Debian cloud kernels have no SATA driver), bridge
 * interfaces with the derived MAC and tap name, a serial console and a qemu-guest-agent channel.
 *
 * @example
 * ```ts
 * import { buildDomainXml } from "./domain_xml.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/simple-vm.yaml");
 * if (vm) console.log(buildDomainXml(vm, { domainType: "qemu" }));
 * ```
 *
 * @module
 */

import { XMLBuilder, XMLParser } from "npm:fast-xml-parser@^5.12.1";
import { assertSafeText } from "../cloudinit/safe_text.ts";
import { type CreatedVolume, metadataNode } from "./metadata.ts";
import type { OperationMarker } from "./status.ts";
import {
  macOf,
  resolveImage,
  tapNameOf,
  volumeNameBoot,
  volumeNameCloudInit,
  volumeNameData,
} from "./naming.ts";
import { DEFAULT_VM_POOL, type DomainType, resourceMaxima, type VirtualMachine } from "./types.ts";

/** Name of the virtio-serial channel the QEMU guest agent listens on. */
export const GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0";

/** Options of {@link buildDomainXml}. */
export interface DomainXmlOptions {
  /** `kvm` or `qemu` (TCG); see {@link chooseDomainType}. */
  domainType: DomainType;
  /** A create in progress, marked on the metadata element (see `OPERATION_ATTRIBUTE`). */
  operation?: OperationMarker;
  /** Pool of the VM's volumes; `spec.storagePool`, else `foundry-vms`, when absent. */
  pool?: string;
  /** Domain UUID; libvirt generates one when absent. */
  uuid?: string;
  /** The volumes created for the VM, recorded in the metadata so that destroy deletes only those. */
  volumes?: readonly CreatedVolume[];
  /**
   * The host's CPUs and memory, when known: default resize headroom is then capped by them (see
   * `resourceMaxima` in types.ts). Without it the defaults are 2 x vcpus and 2 x memory.
   */
  host?: { cpus?: number; memoryMiB?: number };
  /**
   * The VNC or SPICE password of `spec.graphics`, read by the caller from the file
   * `graphics.passwordSecret` names (its first line). It goes into `<graphics passwd>` only, never
   * into the stored spec; libvirt shows it only to `virsh dumpxml --security-info`. Printable
   * ASCII; for VNC at most 8 characters (libvirt refuses more). A bad one throws without quoting it.
   */
  graphicsPassword?: string;
  /**
   * Where `spec.installMedia`'s ISO is, as the caller resolved it (imported into the image pool, or
   * a file on the host). Absent: taken from the spec as written (`resolveImage` in naming.ts, in the
   * image pool `imagePool` names, else `defaultImagePool`).
   */
  installMedia?: { pool: string; volume: string } | { file: string };
  /** The image pool of a bare ISO volume name when `installMedia` is absent; `foundry-images`. */
  defaultImagePool?: string;
  /**
   * Formats of existing disks (`bootDisk.volume`, `dataDisks[].volume`) by device (`vda`, `vdb`),
   * as the caller found them (a volume's or file's format: `raw`, `qcow2`); `qcow2` when absent.
   * libvirt never probes a format, so a wrong one makes the guest see the container, not the disk.
   */
  existingDiskFormats?: Readonly<Record<string, string>>;
}

/**
 * The CPU topology of a VM with `vcpuMax` vCPU slots: `spec.cpu`'s sockets and threads (1 by
 * default) and cores (by default what makes the product `vcpuMax`). Undefined when the spec gives no
 * topology (libvirt then makes one socket per vCPU).
 */
export function cpuTopology(
  spec: Pick<VirtualMachine["spec"], "cpu">,
  vcpuMax: number,
): { sockets: number; cores: number; threads: number } | undefined {
  const { sockets, cores, threads } = spec.cpu ?? {};
  if (sockets === undefined && cores === undefined && threads === undefined) return undefined;
  const s = sockets ?? 1;
  const t = threads ?? 1;
  return { sockets: s, cores: cores ?? Math.max(1, Math.floor(vcpuMax / (s * t))), threads: t };
}

/**
 * The domain type to use: the spec's, else the configuration's (unless `auto`), else `kvm` when the
 * host offers it and `qemu` (TCG) otherwise.
 */
export function chooseDomainType(
  vm: VirtualMachine,
  configured: DomainType | "auto",
  kvmAvailable: boolean,
): DomainType {
  if (vm.spec.domainType !== undefined) return vm.spec.domainType;
  if (configured !== "auto") return configured;
  return kvmAvailable ? "kvm" : "qemu";
}

/**
 * Whether the host's capabilities (`virConnectGetCapabilities`) offer `kvm` domains for `arch`.
 *
 * Some hosts offer KVM that cannot run OVMF (nested setups that stop with "emulation failure"); the
 * configuration's or the spec's domain type overrides what this finds.
 */
export function kvmOffered(capabilitiesXml: string, arch = "x86_64"): boolean {
  const parser = new XMLParser({
    ignoreAttributes: false,
    isArray: (name) => ["guest", "arch", "domain"].includes(name),
  });
  // deno-lint-ignore no-explicit-any
  const caps: any = parser.parse(capabilitiesXml);
  // deno-lint-ignore no-explicit-any
  const guests: any[] = caps?.capabilities?.guest ?? [];
  return guests.some((g) =>
    g.os_type === "hvm" &&
    // deno-lint-ignore no-explicit-any
    (g.arch ?? []).some((a: any) =>
      a["@_name"] === arch &&
      // deno-lint-ignore no-explicit-any
      (a.domain ?? []).some((d: any) => d["@_type"] === "kvm")
    )
  );
}

/** Empty PCIe root ports a domain gets for devices attached while it runs. */
export const HOTPLUG_SLOTS = 4;

/**
 * The PCIe devices libvirt puts on root ports for `vm`'s domain: its virtio disks and interfaces,
 * the virtio-scsi, virtio-serial and USB controllers, the RNG, the balloon and, with graphics, the
 * video device.
 */
function pcieDeviceCount(vm: VirtualMachine): number {
  const disks = 1 + (vm.spec.dataDisks?.length ?? 0);
  const graphics = vm.spec.graphics === undefined ? 0 : 1;
  return disks + vm.spec.networkInterfaces.length + 5 + graphics;
}

/**
 * The `<cpu>` element: the spec's mode (`host-model` by default) on KVM. On TCG there is no host CPU
 * to model or pass through, so the mode is `maximum`, QEMU's `-cpu max`: every feature TCG emulates.
 */
function cpuNode(
  vm: VirtualMachine,
  domainType: DomainType,
  maxVcpus: number,
): Record<string, unknown> {
  const topology = cpuTopology(vm.spec, maxVcpus);
  const extra = {
    ...(topology === undefined ? {} : {
      topology: {
        "@_sockets": String(topology.sockets),
        "@_dies": "1",
        "@_cores": String(topology.cores),
        "@_threads": String(topology.threads),
      },
    }),
    ...(vm.spec.numa === undefined ? {} : {
      numa: {
        cell: vm.spec.numa.map((c, i) => ({
          "@_id": String(i),
          "@_cpus": c.cpus,
          "@_memory": String(Math.round(c.memoryGiB * 1024)),
          "@_unit": "MiB",
        })),
      },
    }),
  };
  if (domainType === "qemu") return { "@_mode": "maximum", "@_check": "none", ...extra };
  return { "@_mode": vm.spec.cpu?.mode ?? vm.spec.cpuMode ?? "host-model", ...extra };
}

/** A disk element's type and source for an existing disk: `pool:volume` or a file path. */
function existingSource(
  ref: string,
): { "@_type": string; source: Record<string, string> } {
  if (ref.startsWith("/")) return { "@_type": "file", source: { "@_file": ref } };
  const colon = ref.indexOf(":");
  return {
    "@_type": "volume",
    source: { "@_pool": ref.slice(0, colon), "@_volume": ref.slice(colon + 1) },
  };
}

/** Where a graphical console listens unless the spec says: this host only. */
export const DEFAULT_GRAPHICS_LISTEN = "127.0.0.1";

/** Where the install ISO comes from: the caller's resolution, else the spec's reference. */
function installMediaSource(
  vm: VirtualMachine,
  options: DomainXmlOptions,
): { pool: string; volume: string } | { file: string } | undefined {
  const media = vm.spec.installMedia;
  if (media === undefined) return undefined;
  if (options.installMedia !== undefined) return options.installMedia;
  const at = resolveImage(media.image, media.imagePool, options.defaultImagePool);
  return at.kind === "path" ? { file: at.path } : { pool: at.pool, volume: at.volume };
}

/**
 * The libvirt domain XML of `vm`.
 *
 * Disks: `vda` is the boot volume `{name}_boot` (qcow2), data disks are `{name}_data-{device}` (qcow2)
 * on their named virtio device with their `serial` when the spec gives one, and the seed `{name}_cloudinit` (raw ISO) is `sda` on a virtio-scsi
 * controller. Every interface is a bridge interface with MAC `be:ef:<ip hex>` and tap `vm<ip hex>`
 * (an interface's own `mac` wins; one without `ip` gets libvirt's tap name).
 * The full spec is stored under `<metadata>` (see `metadata.ts`).
 *
 * `bootDisk.volume` and `dataDisks[].volume` are used as they are (a pool volume or a file, the
 * format from `existingDiskFormats`). `installMedia` is the CD-ROM `sdb` with `<boot order="1">`,
 * `vda` gets order 2 and `<os>` no `<boot dev>`. `cpu` gives `<topology>` (see {@link cpuTopology})
 * and `numa` the `<numa>` cells, whose sum libvirt makes `<memory>`. `graphics` is one
 * `<graphics autoport="yes">` listening on its address, with `graphicsPassword` as `passwd`.
 *
 * @throws {TypeError} when `graphicsPassword` is not printable ASCII (the message never shows it)
 * @throws {RangeError} when a VNC `graphicsPassword` is longer than 8 characters
 */
export function buildDomainXml(vm: VirtualMachine, options: DomainXmlOptions): string {
  const name = vm.metadata.name;
  const pool = options.pool ?? vm.spec.storagePool ?? DEFAULT_VM_POOL;
  const memoryMiB = Math.round(vm.spec.memoryGiB * 1024);
  // Resize headroom: `<memory>` is the balloon's ceiling and `<currentMemory>` what the guest
  // has; `<vcpu current>` vCPUs are plugged of `<vcpu>` slots (the rest hot-pluggable).
  const { maxVcpus, maxMemoryMiB } = resourceMaxima(vm.spec, options.host);
  // With install media, each bootable device says its place (libvirt refuses <os><boot> beside it).
  const media = installMediaSource(vm, options);
  const volumeDisk = (
    volume: string,
    device: string,
    cache?: string,
    serial?: string,
    existing?: string,
  ) => ({
    "@_type": "volume",
    "@_device": "disk",
    ...(existing === undefined ? {} : existingSource(existing)),
    driver: {
      "@_name": "qemu",
      "@_type": existing === undefined ? "qcow2" : options.existingDiskFormats?.[device] ?? "qcow2",
      "@_discard": "unmap",
      ...(cache === undefined ? {} : { "@_cache": cache }),
    },
    ...(existing === undefined ? { source: { "@_pool": pool, "@_volume": volume } } : {}),
    target: { "@_dev": device, "@_bus": "virtio" },
    ...(serial === undefined ? {} : { serial }),
    ...(media !== undefined && device === "vda" ? { boot: { "@_order": "2" } } : {}),
  });
  const password = options.graphicsPassword;
  if (password !== undefined && !/^[\x20-\x7e]+$/.test(password)) {
    // Never the password itself in the message.
    throw new TypeError("the graphics password must be printable ASCII without line breaks");
  }
  if (password !== undefined && vm.spec.graphics?.type === "vnc" && password.length > 8) {
    // libvirt 9.0 refuses the definition otherwise ("only 8 permitted"); VNC uses 8 at most.
    throw new RangeError("a VNC password may have at most 8 characters (libvirt refuses more)");
  }
  const graphics = vm.spec.graphics;
  const domain = {
    "@_type": options.domainType,
    name,
    ...(options.uuid === undefined ? {} : { uuid: options.uuid }),
    metadata: metadataNode(vm, options.volumes, options.uuid, options.operation),
    memory: { "@_unit": "MiB", "#text": String(maxMemoryMiB) },
    currentMemory: { "@_unit": "MiB", "#text": String(memoryMiB) },
    vcpu: {
      "@_placement": "static",
      ...(maxVcpus > vm.spec.vcpus ? { "@_current": String(vm.spec.vcpus) } : {}),
      "#text": String(maxVcpus),
    },
    os: {
      "@_firmware": "efi",
      type: { "@_arch": "x86_64", "@_machine": "q35", "#text": "hvm" },
      firmware: {
        feature: [
          { "@_enabled": "no", "@_name": "enrolled-keys" },
          { "@_enabled": "no", "@_name": "secure-boot" },
        ],
      },
      ...(media === undefined ? { boot: { "@_dev": "hd" } } : {}),
    },
    features: { acpi: "", apic: "" },
    cpu: cpuNode(vm, options.domainType, maxVcpus),
    clock: { "@_offset": "utc" },
    on_poweroff: "destroy",
    on_reboot: "restart",
    on_crash: "destroy",
    devices: {
      disk: [
        volumeDisk(volumeNameBoot(name), "vda", "none", undefined, vm.spec.bootDisk.volume),
        ...(vm.spec.dataDisks ?? []).map((d) =>
          volumeDisk(volumeNameData(name, d.device), d.device, undefined, d.serial, d.volume)
        ),
        {
          "@_type": "volume",
          "@_device": "cdrom",
          driver: { "@_name": "qemu", "@_type": "raw" },
          source: { "@_pool": pool, "@_volume": volumeNameCloudInit(name) },
          target: { "@_dev": "sda", "@_bus": "scsi" },
          readonly: "",
        },
        ...(media === undefined ? [] : [{
          "@_type": "file" in media ? "file" : "volume",
          "@_device": "cdrom",
          driver: { "@_name": "qemu", "@_type": "raw" },
          source: "file" in media
            ? { "@_file": media.file }
            : { "@_pool": media.pool, "@_volume": media.volume },
          target: { "@_dev": "sdb", "@_bus": "scsi" },
          readonly: "",
          boot: { "@_order": "1" },
        }]),
      ],
      controller: [
        { "@_type": "scsi", "@_index": "0", "@_model": "virtio-scsi" },
        // Root ports for every PCIe device and HOTPLUG_SLOTS more: libvirt alone leaves one spare on
        // q35, so a second live attach (apply's new disk or NIC) failed with "No more available PCI
        // slots". Ports the count misses libvirt still adds.
        { "@_type": "pci", "@_index": "0", "@_model": "pcie-root" },
        ...Array.from(
          { length: pcieDeviceCount(vm) + HOTPLUG_SLOTS },
          () => ({ "@_type": "pci", "@_model": "pcie-root-port" }),
        ),
      ],
      interface: vm.spec.networkInterfaces.map((nic) => ({
        "@_type": "bridge",
        mac: { "@_address": macOf(nic) },
        source: { "@_bridge": nic.bridge },
        ...(tapNameOf(nic) === undefined ? {} : { target: { "@_dev": tapNameOf(nic) } }),
        model: { "@_type": "virtio" },
      })),
      serial: { "@_type": "pty", target: { "@_type": "isa-serial", "@_port": "0" } },
      console: { "@_type": "pty", target: { "@_type": "serial", "@_port": "0" } },
      channel: {
        "@_type": "unix",
        target: { "@_type": "virtio", "@_name": GUEST_AGENT_CHANNEL },
      },
      ...(graphics === undefined ? {} : {
        graphics: {
          "@_type": graphics.type,
          "@_autoport": "yes",
          "@_listen": graphics.listen ?? DEFAULT_GRAPHICS_LISTEN,
          ...(password === undefined ? {} : { "@_passwd": password }),
          listen: { "@_type": "address", "@_address": graphics.listen ?? DEFAULT_GRAPHICS_LISTEN },
        },
      }),
      rng: { "@_model": "virtio", backend: { "@_model": "random", "#text": "/dev/urandom" } },
      // The balloon `foundry resize --memory` moves between `<currentMemory>` and `<memory>`
      // (libvirt adds one anyway; named here because resizing depends on it).
      memballoon: { "@_model": "virtio" },
    },
  };
  const builder = new XMLBuilder({
    ignoreAttributes: false,
    format: true,
    indentBy: "  ",
    suppressEmptyNode: true,
  });
  const xml: string = builder.build({ domain });
  // XMLBuilder escapes markup; control characters (the loader refuses them) would still reach
  // libvirt and `virsh dumpxml` raw. Only the builder's own line breaks may be there.
  assertSafeText(xml, "domain XML", "\n");
  return xml;
}
