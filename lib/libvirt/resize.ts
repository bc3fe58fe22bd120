/**
 * The libvirt procedures `foundry resize` needs (issue 14): vCPU count, balloon memory and block
 * device size, live and/or in the persistent definition. Procedure numbers and argument layouts are
 * those of libvirt's `remote_protocol.x`; the calls go through {@linkcode Libvirt.callRemote}.
 *
 * @example
 * ```ts
 * import { Libvirt } from "./mod.ts";
 * import { domainSetVcpusFlags, VcpuFlags } from "./resize.ts";
 * const lv = await Libvirt.connect();
 * const d = await lv.domainLookupByName("web-01");
 * await domainSetVcpusFlags(lv, d, 2, VcpuFlags.LIVE | VcpuFlags.CONFIG);
 * await lv.close();
 * ```
 *
 * @module
 */
import type { Libvirt } from "./client.ts";
import {
  type DomainRef,
  writeBlockResizeArgs,
  writeDomain,
  writeSetMemoryFlagsArgs,
  writeSetVcpusFlagsArgs,
} from "./wire.ts";

/** `remote_procedure` numbers of the resize procedures. */
export const ResizeProcedure = {
  DOMAIN_SET_VCPUS_FLAGS: 199,
  DOMAIN_GET_VCPUS_FLAGS: 200,
  DOMAIN_SET_MEMORY_FLAGS: 204,
  DOMAIN_BLOCK_RESIZE: 251,
} as const;

/** `virDomainVcpuFlags`. */
export const VcpuFlags = {
  CURRENT: 0,
  LIVE: 1,
  CONFIG: 2,
  /** The maximum (`<vcpu>`) rather than the current count (`<vcpu current>`). */
  MAXIMUM: 4,
  /** Ask the guest agent (online/offline in the guest) instead of the hypervisor. */
  GUEST: 8,
  HOTPLUGGABLE: 16,
} as const;

/** `virDomainMemoryModFlags`. */
export const MemoryFlags = {
  CURRENT: 0,
  LIVE: 1,
  CONFIG: 2,
  /** The maximum (`<memory>`) rather than the balloon target (`<currentMemory>`). */
  MAXIMUM: 4,
} as const;

/** `virDomainBlockResizeFlags`. */
export const BlockResizeFlags = {
  /** The size is in bytes, not KiB. */
  BYTES: 1,
} as const;

const none = (): void => {};

/** `virDomainSetVcpusFlags`: sets the domain's vCPU count (or with MAXIMUM its maximum). */
export function domainSetVcpusFlags(
  lv: Libvirt,
  d: DomainRef,
  nvcpus: number,
  flags: number,
): Promise<void> {
  return lv.callRemote(
    ResizeProcedure.DOMAIN_SET_VCPUS_FLAGS,
    (w) => writeSetVcpusFlagsArgs(w, d, nvcpus, flags),
    none,
    { mutates: true },
  );
}

/** `virDomainGetVcpusFlags`: the vCPU count (LIVE or CONFIG, with MAXIMUM the maximum). */
export function domainGetVcpusFlags(lv: Libvirt, d: DomainRef, flags: number): Promise<number> {
  return lv.callRemote(
    ResizeProcedure.DOMAIN_GET_VCPUS_FLAGS,
    (w) => {
      writeDomain(w, d);
      w.writeUint(flags);
    },
    (r) => r.readInt(),
  );
}

/** `virDomainSetMemoryFlags`: the balloon target (or with MAXIMUM the maximum), in KiB. */
export function domainSetMemoryFlags(
  lv: Libvirt,
  d: DomainRef,
  kib: number | bigint,
  flags: number,
): Promise<void> {
  return lv.callRemote(
    ResizeProcedure.DOMAIN_SET_MEMORY_FLAGS,
    (w) => writeSetMemoryFlagsArgs(w, d, BigInt(kib), flags),
    none,
    { mutates: true },
  );
}

/**
 * `virDomainBlockResize`: grows (or shrinks: callers refuse that) a running domain's disk,
 * named by its target (`vdb`) or source path, to `bytes`.
 */
export function domainBlockResize(
  lv: Libvirt,
  d: DomainRef,
  disk: string,
  bytes: number | bigint,
): Promise<void> {
  return lv.callRemote(
    ResizeProcedure.DOMAIN_BLOCK_RESIZE,
    (w) => writeBlockResizeArgs(w, d, disk, BigInt(bytes), BlockResizeFlags.BYTES),
    none,
    { mutates: true },
  );
}
