/**
 * foundry and virtwork: a Deno toolkit for virtual machines on libvirt and KubeVirt.
 *
 * This module re-exports the library API. The libvirt client speaks libvirtd's own RPC protocol
 * (no native library, no virsh), with our own XDR codec.
 *
 * @example
 * ```ts
 * import { Libvirt } from "./mod.ts";
 * const lv = await Libvirt.connect(); // FOUNDRY_URI, LIBVIRT_DEFAULT_URI or qemu:///system
 * try {
 *   for (const d of await lv.listAllDomains()) console.log(d.name);
 * } finally {
 *   await lv.close();
 * }
 * ```
 *
 * @module
 */
export * from "./lib/xdr/mod.ts";
export * from "./lib/libvirt/mod.ts";
