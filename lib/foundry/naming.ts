/**
 * Names foundry derives for the libvirt resources of a VM: MAC addresses and tap devices from IPv4
 * addresses (matching the Ansible homestead implementation), volume names from the VM name, and the
 * pool and volume a boot image reference points at.
 *
 * @module
 */

import { parseIPv4 } from "./_net.ts";
import { DEFAULT_IMAGE_POOL } from "./types.ts";

function octetsOf(ip: string): [number, number, number, number] {
  const address = ip.includes("/") ? ip.slice(0, ip.indexOf("/")) : ip;
  const octets = parseIPv4(address);
  if (octets === undefined) {
    throw new TypeError(`Expected an IPv4 address, got ${JSON.stringify(ip)}`);
  }
  return octets;
}

function hex(octets: readonly number[]): string[] {
  return octets.map((o) => o.toString(16).padStart(2, "0"));
}

/**
 * The MAC address of the interface with IPv4 address `ip`: `be:ef:` then the four octets in hex.
 *
 * @param ip an IPv4 address, with or without `/prefix`
 * @throws {TypeError} when `ip` is not an IPv4 address
 * @example
 * ```ts
 * macFromIp("10.55.22.22/24"); // "be:ef:0a:37:16:16"
 * ```
 */
export function macFromIp(ip: string): string {
  return ["be", "ef", ...hex(octetsOf(ip))].join(":");
}

/**
 * The host tap device name of the interface with IPv4 address `ip`: `vm` then the octets in hex
 * (10 characters, within the kernel's 15).
 *
 * @param ip an IPv4 address, with or without `/prefix`
 * @throws {TypeError} when `ip` is not an IPv4 address
 * @example
 * ```ts
 * interfaceNameFromIp("192.168.1.100"); // "vmc0a80164"
 * ```
 */
export function interfaceNameFromIp(ip: string): string {
  return `vm${hex(octetsOf(ip)).join("")}`;
}

/**
 * The MAC address of an interface: its own `mac` when the spec gives one, else the one derived from
 * its `ip` ({@link macFromIp}).
 */
export function macOf(nic: { ip?: string; mac?: string }): string {
  if (nic.mac !== undefined) return nic.mac.toLowerCase();
  if (nic.ip === undefined) throw new TypeError("an interface needs ip or mac");
  return macFromIp(nic.ip);
}

/**
 * The host tap device name foundry gives an interface ({@link interfaceNameFromIp}), or undefined
 * for an interface without `ip` (libvirt then names it `vnetN`).
 */
export function tapNameOf(nic: { ip?: string }): string | undefined {
  return nic.ip === undefined ? undefined : interfaceNameFromIp(nic.ip);
}

/** The IPv4 address encoded in a tap device name from {@link interfaceNameFromIp}, or undefined. */
export function ipFromInterfaceName(name: string): string | undefined {
  const m = /^vm([0-9a-f]{8})$/.exec(name);
  if (m === null) return undefined;
  const h = m[1] ?? "";
  return [0, 2, 4, 6].map((i) => parseInt(h.slice(i, i + 2), 16)).join(".");
}

/** The boot disk volume of VM `vmName`: `{vmName}_boot`. */
export function volumeNameBoot(vmName: string): string {
  return `${vmName}_boot`;
}

/** The volume of data disk `device` of VM `vmName`: `{vmName}_data-{device}`. */
export function volumeNameData(vmName: string, device: string): string {
  return `${vmName}_data-${device}`;
}

/** The cloud-init ISO volume of VM `vmName`: `{vmName}_cloudinit`. */
export function volumeNameCloudInit(vmName: string): string {
  return `${vmName}_cloudinit`;
}

/** Where a boot image lives: a volume in a pool, or a file on the host. */
export type ImageLocation =
  | { kind: "volume"; pool: string; volume: string }
  | { kind: "path"; path: string };

/**
 * Resolves a boot image reference: `/path` is a file, `pool:volume` names both, and a bare volume name
 * lives in `imagePool`, else `defaultPool`.
 *
 * @example
 * ```ts
 * resolveImage("fedora-43.qcow2"); // { kind: "volume", pool: "foundry-images", volume: "fedora-43.qcow2" }
 * resolveImage("fast:fedora-43.qcow2"); // { kind: "volume", pool: "fast", volume: "fedora-43.qcow2" }
 * ```
 */
export function resolveImage(
  image: string,
  imagePool?: string,
  defaultPool: string = DEFAULT_IMAGE_POOL,
): ImageLocation {
  if (image.startsWith("/")) return { kind: "path", path: image };
  const colon = image.indexOf(":");
  if (colon >= 0) {
    return { kind: "volume", pool: image.slice(0, colon), volume: image.slice(colon + 1) };
  }
  return { kind: "volume", pool: imagePool ?? defaultPool, volume: image };
}
