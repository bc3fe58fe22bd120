/**
 * Storage pools through the libvirt client: make sure foundry's pools exist and run.
 * @module
 */
import {
  type Libvirt,
  LibvirtError,
  type StoragePoolRef,
  StoragePoolState,
} from "../libvirt/mod.ts";
import type { FoundryConfig } from "./config.ts";
import { buildDirPoolXml } from "./storage_xml.ts";

/** A storage failure foundry reports with exit code 5. */
export class StorageError extends Error {
  /** Exit code of the design for storage errors. */
  readonly exitCode = 5;
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageError";
  }
}

/**
 * Returns the running pool `name`; when it does not exist, defines a dir pool at `path`, builds,
 * starts and autostarts it (what `virsh pool-define-as` + `pool-build` + `pool-start` +
 * `pool-autostart` do). An inactive existing pool is started. Safe when two processes race.
 */
export async function ensureDirPool(
  lv: Libvirt,
  name: string,
  path: string,
): Promise<StoragePoolRef> {
  let pool: StoragePoolRef;
  try {
    pool = await lv.storagePoolLookupByName(name);
  } catch (e) {
    if (!(e instanceof LibvirtError && e.isNoStoragePool())) throw e;
    try {
      pool = await lv.storagePoolDefineXml(buildDirPoolXml(name, path));
    } catch (err) {
      // Another process defined it between our lookup and define.
      pool = await lv.storagePoolLookupByName(name).catch(() => {
        throw new StorageError(`Cannot define pool ${name} at ${path}: ${(err as Error).message}`, {
          cause: err,
        });
      });
    }
    try {
      await lv.storagePoolBuild(pool);
      await lv.storagePoolSetAutostart(pool, true);
    } catch (err) {
      throw new StorageError(`Cannot build pool ${name} at ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const info = await lv.storagePoolGetInfo(pool);
  if (info.state !== StoragePoolState.RUNNING) {
    try {
      await lv.storagePoolCreate(pool);
    } catch (err) {
      // Started concurrently by someone else is fine.
      const again = await lv.storagePoolGetInfo(pool);
      if (again.state !== StoragePoolState.RUNNING) {
        throw new StorageError(`Cannot start pool ${name}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
  }
  return pool;
}

/** Makes sure `foundry-images` and `foundry-vms` (as configured) exist and run. */
export async function ensureFoundryPools(
  lv: Libvirt,
  config: FoundryConfig,
): Promise<{ images: StoragePoolRef; vms: StoragePoolRef }> {
  const images = await ensureDirPool(lv, config.imagesPool, config.imagesPath);
  const vms = await ensureDirPool(lv, config.vmsPool, config.vmsPath);
  return { images, vms };
}
