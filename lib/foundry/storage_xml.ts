/**
 * What storage a VM needs, and the libvirt XML to create it: the volumes of a VM (boot overlay, data
 * disks, cloud-init ISO) and foundry's directory pools. Built with XMLBuilder, so names are escaped.
 *
 * Sizes: `sizeGB` is read as GiB (2^30 bytes), the `G` of `qemu-img create` that the Ansible setup used.
 *
 * @example
 * ```ts
 * import { volumePlan, buildVolumeXml } from "./storage_xml.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/multi-disk-vm.yaml");
 * if (vm) for (const v of volumePlan(vm, "foundry-vms", 4096)) console.log(buildVolumeXml(v));
 * ```
 *
 * @module
 */

import { XMLBuilder } from "npm:fast-xml-parser@^5.12.1";
import { volumeNameBoot, volumeNameCloudInit, volumeNameData } from "./naming.ts";
import type { VirtualMachine } from "./types.ts";

/** Bytes in one `sizeGB` unit. */
export const BYTES_PER_GB = 2 ** 30;

/** Disk image formats foundry handles. */
export type VolumeFormat = "qcow2" | "raw";

/** One volume foundry creates for a VM. */
export interface VolumeSpec {
  /** What the volume is for. */
  role: "boot" | "data" | "cloudinit";
  /** Volume name, e.g. `web-01_boot`. */
  name: string;
  /** Pool the volume is created in. */
  pool: string;
  /** Capacity in bytes. */
  capacityBytes: number;
  /** Format of the volume. */
  format: VolumeFormat;
  /** Guest device, `vda`, `vdb`, ... or `sda` for the ISO. */
  device: string;
  /** Whether the boot disk is an overlay of the spec's image (the caller resolves its path). */
  overlay?: boolean;
}

/** The backing file of an overlay, as libvirt reports it for the base image volume. */
export interface BackingStore {
  /** Path of the base image (`virStorageVolGetPath`). */
  path: string;
  /** Format of the base image. */
  format: VolumeFormat;
}

/**
 * The volumes of `vm` in creation order: boot disk (a qcow2 overlay of the image unless `empty`), data
 * disks (qcow2) and the cloud-init ISO (raw, `isoBytes` long).
 *
 * @param pool the VM's pool (see `vmPoolFor` in config.ts)
 * @param isoBytes size of the cidata ISO
 */
export function volumePlan(vm: VirtualMachine, pool: string, isoBytes: number): VolumeSpec[] {
  const name = vm.metadata.name;
  const boot: VolumeSpec = {
    role: "boot",
    name: volumeNameBoot(name),
    pool,
    capacityBytes: vm.spec.bootDisk.sizeGB * BYTES_PER_GB,
    format: "qcow2",
    device: "vda",
  };
  if (vm.spec.bootDisk.empty !== true) boot.overlay = true;
  return [
    boot,
    ...(vm.spec.dataDisks ?? []).map((d): VolumeSpec => ({
      role: "data",
      name: volumeNameData(name, d.device),
      pool,
      capacityBytes: d.sizeGB * BYTES_PER_GB,
      format: "qcow2",
      device: d.device,
    })),
    {
      role: "cloudinit",
      name: volumeNameCloudInit(name),
      pool,
      capacityBytes: isoBytes,
      format: "raw",
      device: "sda",
    },
  ];
}

const builder = new XMLBuilder({ ignoreAttributes: false, format: true, indentBy: "  " });

/**
 * The `<volume>` XML for `virStorageVolCreateXML`. An overlay needs `backing`, the base image's path and
 * format; its capacity may exceed the base image's.
 *
 * @throws {TypeError} when an overlay has no backing store or a plain volume has one
 */
export function buildVolumeXml(volume: VolumeSpec, backing?: BackingStore): string {
  if (volume.overlay === true && backing === undefined) {
    throw new TypeError(`Volume ${volume.name} is an overlay and needs a backing store`);
  }
  if (volume.overlay !== true && backing !== undefined) {
    throw new TypeError(`Volume ${volume.name} is not an overlay and takes no backing store`);
  }
  const node: Record<string, unknown> = {
    "@_type": "file",
    name: volume.name,
    capacity: { "@_unit": "bytes", "#text": String(volume.capacityBytes) },
    target: { format: { "@_type": volume.format } },
  };
  if (volume.format === "raw") node.allocation = { "@_unit": "bytes", "#text": "0" };
  if (backing !== undefined) {
    node.backingStore = { path: backing.path, format: { "@_type": backing.format } };
  }
  return builder.build({ volume: node });
}

/** The `<pool>` XML of a directory pool for `virStoragePoolDefineXML`. */
export function buildDirPoolXml(name: string, path: string): string {
  if (!path.startsWith("/")) {
    throw new TypeError(`Expected an absolute pool path, got ${JSON.stringify(path)}`);
  }
  return builder.build({ pool: { "@_type": "dir", name, target: { path } } });
}
