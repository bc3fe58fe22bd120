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
import { macOf, tapNameOf, volumeNameBoot, volumeNameCloudInit, volumeNameData } from "./naming.ts";
import { DEFAULT_VM_POOL, type DomainType, resourceMaxima, type VirtualMachine } from "./types.ts";

/** Name of the virtio-serial channel the QEMU guest agent listens on. */
export const GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0";

/** Options of {@link buildDomainXml}. */
export interface DomainXmlOptions {
  /** `kvm` or `qemu` (TCG); see {@link chooseDomainType}. */
  domainType: DomainType;
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

/**
 * The `<cpu>` element: the spec's mode (`host-model` by default) on KVM. On TCG there is no host CPU
 * to model or pass through, so the mode is `maximum`, QEMU's `-cpu max`: every feature TCG emulates.
 */
function cpuNode(vm: VirtualMachine, domainType: DomainType): Record<string, unknown> {
  if (domainType === "qemu") return { "@_mode": "maximum", "@_check": "none" };
  return { "@_mode": vm.spec.cpuMode ?? "host-model" };
}

/**
 * The libvirt domain XML of `vm`.
 *
 * Disks: `vda` is the boot volume `{name}_boot` (qcow2), data disks are `{name}_data-{device}` (qcow2)
 * on their named virtio device with their `serial` when the spec gives one, and the seed `{name}_cloudinit` (raw ISO) is `sda` on a virtio-scsi
 * controller. Every interface is a bridge interface with MAC `be:ef:<ip hex>` and tap `vm<ip hex>`.
 * The full spec is stored under `<metadata>` (see `metadata.ts`).
 */
export function buildDomainXml(vm: VirtualMachine, options: DomainXmlOptions): string {
  const name = vm.metadata.name;
  const pool = options.pool ?? vm.spec.storagePool ?? DEFAULT_VM_POOL;
  const memoryMiB = Math.round(vm.spec.memoryGiB * 1024);
  // Resize headroom: `<memory>` is the balloon's ceiling and `<currentMemory>` what the guest
  // has; `<vcpu current>` vCPUs are plugged of `<vcpu>` slots (the rest hot-pluggable).
  const { maxVcpus, maxMemoryMiB } = resourceMaxima(vm.spec, options.host);
  const volumeDisk = (volume: string, device: string, cache?: string, serial?: string) => ({
    "@_type": "volume",
    "@_device": "disk",
    driver: {
      "@_name": "qemu",
      "@_type": "qcow2",
      "@_discard": "unmap",
      ...(cache === undefined ? {} : { "@_cache": cache }),
    },
    source: { "@_pool": pool, "@_volume": volume },
    target: { "@_dev": device, "@_bus": "virtio" },
    ...(serial === undefined ? {} : { serial }),
  });
  const domain = {
    "@_type": options.domainType,
    name,
    ...(options.uuid === undefined ? {} : { uuid: options.uuid }),
    metadata: metadataNode(vm, options.volumes, options.uuid),
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
      boot: { "@_dev": "hd" },
    },
    features: { acpi: "", apic: "" },
    cpu: cpuNode(vm, options.domainType),
    clock: { "@_offset": "utc" },
    on_poweroff: "destroy",
    on_reboot: "restart",
    on_crash: "destroy",
    devices: {
      disk: [
        volumeDisk(volumeNameBoot(name), "vda", "none"),
        ...(vm.spec.dataDisks ?? []).map((d) =>
          volumeDisk(volumeNameData(name, d.device), d.device, undefined, d.serial)
        ),
        {
          "@_type": "volume",
          "@_device": "cdrom",
          driver: { "@_name": "qemu", "@_type": "raw" },
          source: { "@_pool": pool, "@_volume": volumeNameCloudInit(name) },
          target: { "@_dev": "sda", "@_bus": "scsi" },
          readonly: "",
        },
      ],
      controller: { "@_type": "scsi", "@_index": "0", "@_model": "virtio-scsi" },
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
