/**
 * `clone`: a new foundry VM from a stopped one. The source's stored spec becomes the new VM's
 * with a new name, new addresses (so new MACs and tap names, which derive from them), a new
 * hostname and a new cloud-init instance ID (it derives from name and spec, so cloud-init runs
 * again on first boot and applies the new identity and network). The VM is made by `createVm`
 * exactly like `create` makes one, stopped; then each of its disks is replaced by a full copy of
 * the source's disk (libvirt copies it with qemu-img convert, flattening any snapshot overlays and
 * the base image), so the clone shares no file with its source and either can be destroyed alone.
 *
 * A failure half-way destroys what the clone made; the source is only ever read.
 *
 * What does not change: the guest's machine-id and anything else on the copied disks (root
 * password, SSH keys of users); the root password hash is not stored by foundry, so the clone's
 * cloud-init sets none and the copied one stays.
 * @module
 */
import { DomainState, DomainXmlFlags, type Libvirt, type StorageVolRef } from "../libvirt/mod.ts";
import { storageVolCreateXmlFromLong } from "../libvirt/snapshot.ts";
import type { FoundryConfig } from "./config.ts";
import { domainDisks } from "./disks.ts";
import { parseVirtualMachine } from "./loader.ts";
import { lookupVm, VmOperationError } from "./lookup.ts";
import { StorageError } from "./pools.ts";
import type { VirtualMachine } from "./types.ts";

/** Options of {@linkcode cloneVm}. */
export interface CloneOptions {
  /** Effective configuration (pools, domain type). */
  config: FoundryConfig;
  /** The new VM's addresses with prefix, one per network interface of the source, in order. */
  ips: readonly string[];
  /** Start the clone when made (default true). */
  start?: boolean;
  /** Progress: `define`, `copy` (once per disk, with its device), `start`. */
  onStep?: (step: "define" | "copy" | "start", detail: string) => void;
}

/** The source's refusal to be cloned while running: the CLI says how to stop it. */
export class SourceRunningError extends VmOperationError {
  /** The source VM. */
  readonly vmName: string;
  /** Creates the error. */
  constructor(vmName: string) {
    super(`VM ${vmName} is running: a clone is copied from a stopped VM`);
    this.vmName = vmName;
  }
}

/**
 * The new VM's spec from the source's: name, addresses and hostname replaced, validated as a
 * file would be. `fqdn` keeps its domain part with the new name as its first label.
 *
 * @throws {ValidationError} the result is not a valid VM (bad name or address)
 * @throws {RangeError} not one address per interface
 */
export function cloneSpec(
  src: VirtualMachine,
  name: string,
  ips: readonly string[],
): VirtualMachine {
  const nics = src.spec.networkInterfaces ?? [];
  if (ips.length !== nics.length) {
    throw new RangeError(
      `VM ${src.metadata.name} has ${nics.length} network interfaces; the clone needs as many ` +
        `addresses, got ${ips.length}`,
    );
  }
  const vm = structuredClone(src) as VirtualMachine;
  delete vm.status;
  vm.metadata = { ...vm.metadata, name, generation: 1 };
  vm.spec.networkInterfaces = nics.map((n, i) => ({ ...n, ip: ips[i]! }));
  const fqdn = vm.spec.cloudInit?.fqdn;
  if (vm.spec.cloudInit && fqdn !== undefined) {
    const dot = fqdn.indexOf(".");
    vm.spec.cloudInit.fqdn = dot < 0 ? name : `${name}${fqdn.slice(dot)}`;
  }
  return parseVirtualMachine(JSON.stringify(vm), `clone of ${src.metadata.name}`);
}

/**
 * Clones stopped VM `src` into a new VM `name` (see the module's notes).
 *
 * @throws {SourceRunningError} the source is not shut off
 * @throws {VmOperationError} the source is not foundry's, or the clone could not be made or started
 * @throws {StorageError} a disk could not be copied
 */
export async function cloneVm(
  lv: Libvirt,
  src: string,
  name: string,
  opts: CloneOptions,
): Promise<{ vm: VirtualMachine; copied: string[] }> {
  const source = await lookupVm(lv, src);
  if (!source.stored) {
    throw new VmOperationError(`VM ${src} was not created by foundry (no foundry metadata)`);
  }
  if ((await lv.domainGetState(source.domain)).state !== DomainState.SHUTOFF) {
    throw new SourceRunningError(src);
  }
  const vm = cloneSpec(source.stored.vm, name, opts.ips);
  // The source's disks as they are now (a snapshot's overlay on top, if any), by device.
  const srcXml = await lv.domainGetXmlDesc(source.domain, DomainXmlFlags.INACTIVE);
  const srcDisks = new Map<string, StorageVolRef>();
  for (const d of domainDisks(srcXml)) {
    if (d.device !== "disk" || !d.target) continue;
    const ref = d.pool && d.volume
      ? await lv.storageVolLookupByName(await lv.storagePoolLookupByName(d.pool), d.volume)
      : d.path
      ? await lv.storageVolLookupByPath(d.path)
      : undefined;
    if (!ref) throw new StorageError(`Disk ${d.target} of VM ${src} is not a storage volume`);
    srcDisks.set(d.target, ref);
  }

  const { createVm, destroyVm, startVm } = await import("./vm.ts");
  const made = await createVm(lv, vm, { config: opts.config, noStart: true });
  opts.onStep?.("define", `VM ${name} defined`);
  const copied: string[] = [];
  try {
    const newXml = await lv.domainGetXmlDesc(made.domain, DomainXmlFlags.INACTIVE);
    for (const d of domainDisks(newXml)) {
      if (d.device !== "disk" || !d.pool || !d.volume) continue;
      const from = srcDisks.get(d.target);
      if (!from) throw new StorageError(`VM ${src} has no disk ${d.target} to copy`);
      const pool = await lv.storagePoolLookupByName(d.pool);
      const fresh = await lv.storageVolLookupByName(pool, d.volume);
      const capacity = (await lv.storageVolGetInfo(from)).capacity;
      await lv.storageVolDelete(fresh);
      try {
        await storageVolCreateXmlFromLong(
          lv,
          pool,
          `<volume><name>${d.volume}</name><capacity unit='bytes'>${capacity}</capacity>` +
            `<target><format type='qcow2'/></target></volume>`,
          from,
        );
      } catch (e) {
        throw new StorageError(
          `Cannot copy disk ${d.target} of VM ${src} (${from.pool}/${from.name}): ${
            (e as Error).message
          }`,
          { cause: e },
        );
      }
      copied.push(`${d.pool}/${d.volume}`);
      opts.onStep?.(
        "copy",
        `${d.target}: ${from.pool}/${from.name} copied to ${d.pool}/${d.volume}`,
      );
    }
    if (opts.start !== false) {
      await startVm(lv, name);
      opts.onStep?.("start", `VM ${name} started`);
    }
  } catch (e) {
    const undone = await destroyVm(lv, name, { timeoutSeconds: 0 }).then(
      () => "",
      (u) => `; removing the clone also failed: ${(u as Error).message}`,
    );
    if (e instanceof Error) e.message += undone;
    throw e;
  }
  return { vm, copied };
}
