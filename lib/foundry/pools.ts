/**
 * Storage pools through the libvirt client: make sure foundry's pools exist and run, and list, show,
 * add, delete and refresh pools for `foundry pool`.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { listPools } from "./pools.ts";
 * const lv = await Libvirt.connect("qemu:///system");
 * for (const p of await listPools(lv)) console.log(p.name, p.state, p.volumes);
 * await lv.close();
 * ```
 * @module
 */
import { XMLBuilder, XMLParser } from "npm:fast-xml-parser@^5.12.1";
import {
  InterruptedError,
  type Libvirt,
  LibvirtError,
  type StoragePoolRef,
  StoragePoolState,
  type StorageVolRef,
} from "../libvirt/mod.ts";
import type { FoundryConfig } from "./config.ts";
import { buildDirPoolXml } from "./storage_xml.ts";
import type { HintedErrorOptions, OptionHint } from "./option_hint.ts";
import { DEFAULT_IMAGE_POOL, DEFAULT_VM_POOL } from "./types.ts";

/** A storage failure: a pool, volume or image operation that did not succeed. */
export class StorageError extends Error {
  /** The option of the call that would get past this error, if one would. */
  readonly hint: OptionHint | undefined;
  /** Creates the error. */
  constructor(message: string, options?: HintedErrorOptions) {
    super(message, options);
    this.name = "StorageError";
    this.hint = options?.hint;
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
    let ours = false;
    try {
      pool = await lv.storagePoolDefineXml(buildDirPoolXml(name, path));
      ours = true;
    } catch (err) {
      if (err instanceof InterruptedError && err.outcomeUnknown) {
        const message = `Cannot define pool ${name}: ${err.message}; may be left: pool ${name}`;
        throw new StorageError(message, { cause: err });
      }
      // Another process defined it between our lookup and define.
      pool = await lv.storagePoolLookupByName(name).catch(() => {
        throw new StorageError(`Cannot define pool ${name} at ${path}: ${(err as Error).message}`, {
          cause: err,
        });
      });
    }
    // Interrupted (Ctrl-C) once the define answered: the pool we defined is not started yet, so
    // its definition goes again; one another process defined is left alone.
    const stopIfInterrupted = async (p: StoragePoolRef) => {
      const signal = lv.signal;
      if (!signal?.aborted) return;
      const err = InterruptedError.from(signal.reason);
      if (ours) {
        await lv.storagePoolUndefine(p).catch(() => {
          err.message += `; may be left: pool ${name}`;
        });
      }
      throw err;
    };
    await stopIfInterrupted(pool);
    try {
      await lv.storagePoolBuild(pool);
    } catch (err) {
      // A racing process may have built and started it already; only a pool still down is an error.
      if ((await lv.storagePoolGetInfo(pool)).state !== StoragePoolState.RUNNING) {
        throw new StorageError(`Cannot build pool ${name} at ${path}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    await stopIfInterrupted(pool);
    await lv.storagePoolSetAutostart(pool, true).catch((err) => {
      throw new StorageError(`Cannot autostart pool ${name}: ${(err as Error).message}`, {
        cause: err,
      });
    });
  }
  const info = await lv.storagePoolGetInfo(pool);
  if (info.state !== StoragePoolState.RUNNING) {
    try {
      // A pool another process defined a moment ago may not be built yet: building a dir pool
      // whose directory exists changes nothing, so build before starting whoever defined it.
      await lv.storagePoolBuild(pool).catch(() => {});
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

/** Pools foundry manages itself; `deletePool` refuses them whatever the configuration says. */
export const PROTECTED_POOLS: readonly string[] = Object.freeze([
  DEFAULT_IMAGE_POOL,
  DEFAULT_VM_POOL,
]);

/** Pool types libvirt offers (`<pool type=...>`); the daemon decides which its build supports. */
export const POOL_TYPES: readonly string[] = Object.freeze([
  "dir",
  "fs",
  "netfs",
  "logical",
  "disk",
  "iscsi",
  "iscsi-direct",
  "scsi",
  "mpath",
  "rbd",
  "gluster",
  "zfs",
  "vstorage",
]);

/** Names of `virStoragePoolState` values, as `virsh pool-list` prints them. */
const STATE_NAMES: Record<number, string> = {
  [StoragePoolState.INACTIVE]: "inactive",
  [StoragePoolState.BUILDING]: "building",
  [StoragePoolState.RUNNING]: "running",
  [StoragePoolState.DEGRADED]: "degraded",
  [StoragePoolState.INACCESSIBLE]: "inaccessible",
};

/** The name of a `virStoragePoolState` value, e.g. `running`. */
export function poolStateName(state: number): string {
  return STATE_NAMES[state] ?? `unknown(${state})`;
}

/** A pool as `foundry pool list` shows it. */
export interface PoolSummary {
  /** Pool name. */
  name: string;
  /** Pool type, `dir`, `logical`, ... */
  type: string;
  /** State name, `running` or `inactive` among others. */
  state: string;
  /** Whether the pool starts with the host. */
  autostart: boolean;
  /** Target path (directory, volume group device, ...), or null when the pool has none. */
  path: string | null;
  /** Bytes (0 while inactive). */
  capacity: number;
  /** Bytes (0 while inactive). */
  allocation: number;
  /** Bytes (0 while inactive). */
  available: number;
  /** Number of volumes, or null while the pool is inactive (libvirt cannot list them then). */
  volumes: number | null;
}

/** One volume of a pool, as `foundry pool info` shows it. */
export interface VolumeSummary {
  /** Volume name. */
  name: string;
  /** Path on the host. */
  path: string;
  /** Format libvirt reports (`qcow2`, `raw`, `iso`, ...), or null when it has none. */
  format: string | null;
  /** Bytes (virtual size for qcow2). */
  capacity: number;
  /** Bytes used on disk. */
  allocation: number;
  /** Path of the backing file, or null. */
  backingPath: string | null;
}

/** A pool with its volumes, as `foundry pool info` shows it. */
export interface PoolDetails extends PoolSummary {
  /** Pool UUID. */
  uuid: string;
  /** Its volumes, sorted by name (empty while inactive). */
  volumeList: VolumeSummary[];
}

/** What `foundry pool add` creates. */
export interface PoolSpec {
  /** Pool name. */
  name: string;
  /** One of {@link POOL_TYPES}. */
  type: string;
  /** Target: the directory of `dir`, `fs` and `netfs` pools, else the pool's target path (e.g. `/dev/vg0`). */
  target: string;
  /** `<source><device path>` of `fs`, `logical`, `disk` pools. */
  sourceDevice?: string;
  /** `<source><host name>` of `netfs`, `iscsi`, `rbd`, `gluster` pools. */
  sourceHost?: string;
  /** `<source><dir path>` of `netfs` and `gluster` pools. */
  sourcePath?: string;
  /** `<source><name>` of `logical` (volume group), `rbd`, `zfs`, `gluster` pools. */
  sourceName?: string;
  /** `<source><format type>`, e.g. `nfs` for `netfs` or `ext4` for `fs`. */
  sourceFormat?: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@_" });
const xmlBuilder = new XMLBuilder({ ignoreAttributes: false, format: true, indentBy: "  " });

function text(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return null;
}

/** Type and target path of a pool from its XML. */
export function parsePoolXml(xml: string): { type: string; path: string | null; uuid: string } {
  const doc = parser.parse(xml) as { pool?: Record<string, unknown> };
  const pool = doc.pool ?? {};
  const target = pool.target as Record<string, unknown> | undefined;
  return {
    type: text(pool["@_type"]) ?? "unknown",
    path: text(target?.path),
    uuid: text(pool.uuid) ?? "",
  };
}

/** Path, format and backing path of a volume from its XML. */
export function parseVolumeXml(
  xml: string,
): { path: string | null; format: string | null; backingPath: string | null } {
  const doc = parser.parse(xml) as { volume?: Record<string, unknown> };
  const vol = doc.volume ?? {};
  const target = vol.target as Record<string, unknown> | undefined;
  const format = target?.format as Record<string, unknown> | undefined;
  const backing = vol.backingStore as Record<string, unknown> | undefined;
  return {
    path: text(target?.path),
    format: text(format?.["@_type"]),
    backingPath: text(backing?.path),
  };
}

/**
 * The `<pool>` XML of `spec` for `virStoragePoolDefineXML`.
 *
 * @throws {StorageError} on an unknown type, a bad name or a relative target
 */
export function buildPoolXml(spec: PoolSpec): string {
  if (!NAME_RE.test(spec.name)) {
    throw new StorageError(
      `Pool name ${JSON.stringify(spec.name)} must start with a letter or digit and hold only ` +
        `letters, digits and _.+-`,
    );
  }
  if (!POOL_TYPES.includes(spec.type)) {
    throw new StorageError(
      `Pool type ${JSON.stringify(spec.type)} is not one of ${POOL_TYPES.join(", ")}`,
    );
  }
  if (spec.type === "dir") return buildDirPoolXml(spec.name, checkAbsolute(spec.target));
  const source: Record<string, unknown> = {};
  if (spec.sourceHost !== undefined) source.host = { "@_name": spec.sourceHost };
  if (spec.sourceDevice !== undefined) source.device = { "@_path": spec.sourceDevice };
  if (spec.sourcePath !== undefined) source.dir = { "@_path": spec.sourcePath };
  if (spec.sourceName !== undefined) source.name = spec.sourceName;
  if (spec.sourceFormat !== undefined) source.format = { "@_type": spec.sourceFormat };
  const node: Record<string, unknown> = { "@_type": spec.type, name: spec.name };
  if (Object.keys(source).length > 0) node.source = source;
  node.target = { path: checkAbsolute(spec.target) };
  return xmlBuilder.build({ pool: node });
}

function checkAbsolute(path: string): string {
  if (!path.startsWith("/")) {
    throw new StorageError(`Pool target must be an absolute path, got ${JSON.stringify(path)}`);
  }
  return path;
}

/** Looks a pool up by name; a missing pool is a {@link StorageError} naming it. */
export async function lookupPool(lv: Libvirt, name: string): Promise<StoragePoolRef> {
  try {
    return await lv.storagePoolLookupByName(name);
  } catch (e) {
    if (e instanceof LibvirtError && e.isNoStoragePool()) {
      throw new StorageError(`Storage pool ${name} does not exist`, { cause: e });
    }
    throw e;
  }
}

async function summarize(lv: Libvirt, pool: StoragePoolRef): Promise<PoolDetails> {
  const [info, xml, autostart] = await Promise.all([
    lv.storagePoolGetInfo(pool),
    lv.storagePoolGetXmlDesc(pool),
    lv.storagePoolGetAutostart(pool),
  ]);
  const { type, path, uuid } = parsePoolXml(xml);
  let volumeList: VolumeSummary[] = [];
  let volumes: number | null = null;
  if (info.state === StoragePoolState.RUNNING || info.state === StoragePoolState.DEGRADED) {
    try {
      const vols = withoutChecksumSidecars(await lv.storagePoolListAllVolumes(pool));
      volumes = vols.length;
      const found = await Promise.all(vols.map((v) =>
        volumeSummary(lv, v).catch((e) => {
          // Deleted by someone else since the listing.
          if (e instanceof LibvirtError && e.isNoStorageVol()) return undefined;
          throw e;
        })
      ));
      volumeList = found.filter((v): v is VolumeSummary => v !== undefined)
        .sort((a, b) => a.name.localeCompare(b.name));
    } catch (e) {
      // Stopped by someone else since the state was read: no volume figures.
      if (!(e instanceof LibvirtError && e.isOperationInvalid())) throw e;
    }
  }
  return {
    name: pool.name,
    uuid,
    type,
    state: poolStateName(info.state),
    autostart,
    path,
    capacity: info.capacity,
    allocation: info.allocation,
    available: info.available,
    volumes,
    volumeList,
  };
}

/**
 * `vols` without the checksum sidecars of images (`NAME.sha256` next to a volume `NAME`, see
 * images.ts): they are part of their image, never shown as volumes or images of their own. A
 * `.sha256` volume whose image is gone is kept, so a stray one can be seen and deleted.
 */
export function withoutChecksumSidecars<T extends { name: string }>(vols: readonly T[]): T[] {
  const names = new Set(vols.map((v) => v.name));
  return vols.filter((v) =>
    !(v.name.endsWith(CHECKSUM_SIDECAR_SUFFIX) &&
      names.has(v.name.slice(0, -CHECKSUM_SIDECAR_SUFFIX.length)))
  );
}

/** Suffix of an image's checksum sidecar volume (images.ts `CHECKSUM_SUFFIX`). */
const CHECKSUM_SIDECAR_SUFFIX = ".sha256";

/** Name, path, format, sizes and backing path of one volume. */
export async function volumeSummary(lv: Libvirt, vol: StorageVolRef): Promise<VolumeSummary> {
  const [info, xml] = await Promise.all([lv.storageVolGetInfo(vol), lv.storageVolGetXmlDesc(vol)]);
  const parsed = parseVolumeXml(xml);
  return {
    name: vol.name,
    path: parsed.path ?? vol.key,
    format: parsed.format,
    capacity: info.capacity,
    allocation: info.allocation,
    backingPath: parsed.backingPath,
  };
}

/** Every pool of the host, sorted by name. */
export async function listPools(lv: Libvirt): Promise<PoolSummary[]> {
  const pools = await lv.listAllStoragePools();
  const out = await Promise.all(pools.map(async (p) => {
    try {
      const { volumeList: _, uuid: __, ...summary } = await summarize(lv, p);
      return summary;
    } catch (e) {
      // Undefined by someone else between the listing and our calls.
      if (e instanceof LibvirtError && e.isNoStoragePool()) return undefined;
      throw e;
    }
  }));
  return out.filter((p): p is PoolSummary => p !== undefined)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** One pool with its volumes. @throws {StorageError} when it does not exist */
export async function poolInfo(lv: Libvirt, name: string): Promise<PoolDetails> {
  return await summarize(lv, await lookupPool(lv, name));
}

/**
 * Defines, builds, starts and autostarts a pool (`virsh pool-define` + `pool-build` + `pool-start` +
 * `pool-autostart`). When any step fails, what was done is undone and nothing is left defined.
 *
 * @throws {StorageError} when the pool exists already, the spec is invalid or libvirt refuses a step
 */
export async function addPool(lv: Libvirt, spec: PoolSpec): Promise<PoolDetails> {
  const xml = buildPoolXml(spec);
  try {
    await lv.storagePoolLookupByName(spec.name);
    throw new StorageError(`Storage pool ${spec.name} exists already`);
  } catch (e) {
    if (!(e instanceof LibvirtError && e.isNoStoragePool())) throw e;
  }
  let pool: StoragePoolRef;
  try {
    pool = await lv.storagePoolDefineXml(xml);
  } catch (e) {
    throw new StorageError(`Cannot define pool ${spec.name}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  let step = "build";
  try {
    await lv.storagePoolBuild(pool);
    step = "start";
    await lv.storagePoolCreate(pool);
    step = "autostart";
    await lv.storagePoolSetAutostart(pool, true);
  } catch (e) {
    if (step !== "build") await lv.storagePoolDestroy(pool).catch(() => {});
    await lv.storagePoolUndefine(pool).catch(() => {});
    throw new StorageError(`Cannot ${step} pool ${spec.name}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return await summarize(lv, pool);
}

/** Options of {@link deletePool}. */
export interface DeletePoolOptions {
  /** Delete the pool's volumes first instead of refusing. */
  force?: boolean;
  /** More names to refuse besides {@link PROTECTED_POOLS}, e.g. the configured pools. */
  protect?: readonly string[];
}

/**
 * Stops and undefines a pool. A `dir` pool's empty directory is removed too (libvirt's pool-delete);
 * other types keep their storage (pool-delete of a `logical` pool would remove the volume group).
 *
 * @returns the names of the volumes deleted (with `force`)
 * @throws {StorageError} for foundry's own pools, and for a pool holding volumes without `force`
 */
export async function deletePool(
  lv: Libvirt,
  name: string,
  opts: DeletePoolOptions = {},
): Promise<string[]> {
  if (PROTECTED_POOLS.includes(name) || (opts.protect ?? []).includes(name)) {
    throw new StorageError(
      `Refusing to delete ${name}: foundry keeps its images and VM disks there`,
    );
  }
  const pool = await lookupPool(lv, name);
  const info = await lv.storagePoolGetInfo(pool);
  const running = info.state === StoragePoolState.RUNNING ||
    info.state === StoragePoolState.DEGRADED;
  const deleted: string[] = [];
  if (running) {
    const vols = await lv.storagePoolListAllVolumes(pool);
    if (vols.length > 0 && opts.force !== true) {
      const names = vols.map((v) => v.name).sort();
      const shown = names.slice(0, 5).join(", ") + (names.length > 5 ? ", ..." : "");
      throw new StorageError(
        `Storage pool ${name} holds ${vols.length} volume(s) (${shown})`,
        { hint: { option: "force", effect: "delete them" } },
      );
    }
    for (const v of vols) {
      try {
        await lv.storageVolDelete(v);
        deleted.push(v.name);
      } catch (e) {
        throw new StorageError(
          `Cannot delete volume ${v.name} of pool ${name}: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
    }
  }
  const { type } = parsePoolXml(await lv.storagePoolGetXmlDesc(pool));
  try {
    if (running) await lv.storagePoolDestroy(pool);
    if (type === "dir") await lv.storagePoolDelete(pool).catch(() => {/* not empty: keep it */});
    await lv.storagePoolUndefine(pool);
  } catch (e) {
    throw new StorageError(`Cannot delete pool ${name}: ${(e as Error).message}`, { cause: e });
  }
  return deleted;
}

/** Rescans a pool's volumes (files added or removed behind libvirt's back) and returns it. */
export async function refreshPool(lv: Libvirt, name: string): Promise<PoolDetails> {
  const pool = await lookupPool(lv, name);
  try {
    await lv.storagePoolRefresh(pool);
  } catch (e) {
    throw new StorageError(`Cannot refresh pool ${name}: ${(e as Error).message}`, { cause: e });
  }
  return await summarize(lv, pool);
}
