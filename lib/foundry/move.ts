/**
 * `foundry move NAME --to HOST` (issue 16): moves a foundry VM from one libvirt host to another,
 * offline. Everything is checked before anything changes: the VM is foundry's with its volume
 * record, the target has no domain of that name, has each volume's pool and no volume of its
 * name, has the bridges of its NICs, has the base image the boot overlay is backed by at the same
 * path (or gets it with `copyImage`), and has every disk the VM uses that foundry did not create.
 * Then the VM is shut down (gracefully, forced off after the timeout), every volume of its record
 * (boot overlay, data disks, cloud-init ISO) is streamed to the same pool on the target under the
 * same name and verified by SHA-256, the domain is defined there with the same XML (UUID, MACs,
 * stored spec and record) and autostart, started when it was running, and only then undefined on
 * the source with its volumes deleted. A failure on the way removes what was made on the target
 * and leaves the source as it was, running again if it was running.
 *
 * @module
 */
import {
  type DomainRef,
  DomainState,
  DomainXmlFlags,
  type Libvirt,
  LibvirtError,
  type StorageVolRef,
  UndefineFlags,
} from "../libvirt/mod.ts";
import { writeDomainRecord } from "./domain_records.ts";
import { hostBridges } from "./host_resources.ts";
import { lookupVm } from "./lookup.ts";
import { IMAGE_ELSEWHERE } from "./placement.ts";
import { storedMetadataXml } from "./metadata.ts";
import { lookupPool, parsePoolXml } from "./pools.ts";
import type { CreatedVolume, StoredVm } from "./stored_metadata.ts";
import { startVm, stopVm } from "./vm.ts";
import { VmOperationError } from "./vm_errors.ts";
import { type CopiedVolume, copyVolume } from "./volume_copy.ts";

/** The steps of a move, in order. */
export const MOVE_STEPS = [
  "check",
  "shutdown",
  "image",
  "volumes",
  "define",
  "start",
  "source",
] as const;
/** One step of a move. */
export type MoveStep = typeof MOVE_STEPS[number];

/** Options of {@linkcode moveVm}. */
export interface MoveOptions {
  /** Seconds to wait for a graceful shutdown before forcing the VM off. */
  timeoutSeconds: number;
  /** Copy the base image the boot overlay needs when the target lacks it. */
  copyImage?: boolean;
  /** Names of the hosts, for messages. */
  from?: string;
  /** Names of the hosts, for messages. */
  to?: string;
  /** Told when a step is done. */
  onStep?: (step: MoveStep, detail: string) => void;
  /** Bytes of the volume being copied so far. */
  onProgress?: (volume: string, bytes: number) => void;
  /** Called before each step; throwing fails the move there (tests inject failures). */
  beforeStep?: (step: MoveStep) => void | Promise<void>;
  /** Ctrl-C: stops a copy; the move is then rolled back. */
  signal?: AbortSignal;
}

/** What a move did. */
export interface MoveResult {
  /** The VM's name. */
  name: string;
  /** Whether it was running (and so was started on the target). */
  wasRunning: boolean;
  /** Each volume moved with its SHA-256. */
  volumes: { pool: string; name: string; sha256: string; bytes: number }[];
  /** The base image copied to the target, when one was. */
  imageCopied?: { pool: string; name: string; sha256: string };
}

/** The move was refused before anything changed. */
export class MoveCheckError extends Error {
  /** Every reason. */
  readonly reasons: readonly string[];
  /** Creates the error. */
  constructor(name: string, reasons: readonly string[]) {
    super(`VM ${name} cannot be moved: ${reasons.join("; ")}; nothing was changed`);
    this.name = "MoveCheckError";
    this.reasons = reasons;
  }
}

/** A disk source of a domain definition: a pool volume or a file. */
export interface DiskSource {
  /** Target device, `vda`. */
  device: string;
  /** Pool and volume, for `type="volume"`. */
  pool?: string;
  /** Volume name, for `type="volume"`. */
  volume?: string;
  /** Path, for `type="file"`. */
  file?: string;
}

/** The disks (and CD-ROMs) of a domain definition with their sources. */
export function diskSources(domainXml: string): DiskSource[] {
  const out: DiskSource[] = [];
  for (const m of domainXml.matchAll(/<disk\b[^>]*>([\s\S]*?)<\/disk>/g)) {
    const body = m[1]!;
    const device = /<target\b[^>]*\bdev=['"]([^'"]+)['"]/.exec(body)?.[1] ?? "?";
    const src = /<source\b([^>]*)\/?>/.exec(body)?.[1] ?? "";
    const attr = (n: string) => new RegExp(`\\b${n}=['"]([^'"]*)['"]`).exec(src)?.[1];
    const pool = attr("pool");
    const volume = attr("volume");
    const file = attr("file");
    const d: DiskSource = { device };
    if (pool !== undefined && volume !== undefined) Object.assign(d, { pool, volume });
    else if (file !== undefined) d.file = file;
    else continue; // an empty CD-ROM
    out.push(d);
  }
  return out;
}

/** The backing file path of a volume's XML (`<backingStore><path>`), if it has one. */
export function backingPathOf(volumeXml: string): string | undefined {
  const store = /<backingStore>([\s\S]*?)<\/backingStore>/.exec(volumeXml)?.[1];
  return store === undefined ? undefined : /<path>([^<]+)<\/path>/.exec(store)?.[1];
}

const exists = <T>(p: Promise<T>) => p.then(() => true, () => false);

/** What the checks found: the source volumes and the image to copy. */
interface MovePlan {
  volumes: { record: CreatedVolume; ref: StorageVolRef }[];
  image?: { ref: StorageVolRef };
}

async function checkMove(
  src: Libvirt,
  dst: Libvirt,
  name: string,
  xml: string,
  record: readonly CreatedVolume[],
  bridges: readonly string[],
  opts: MoveOptions,
): Promise<MovePlan> {
  const reasons: string[] = [];
  const to = opts.to ?? "the target";
  if (await exists(dst.domainLookupByName(name))) reasons.push(`${to} has a domain named ${name}`);
  const have = await hostBridges(dst);
  const missing = bridges.filter((b) => !have.includes(b));
  if (missing.length) reasons.push(`${to} has no bridge ${missing.join(", ")}`);
  const plan: MovePlan = { volumes: [] };
  const dstPools = new Map<string, boolean>();
  for (const v of record) {
    let ref: StorageVolRef;
    try {
      ref = await src.storageVolLookupByName(await lookupPool(src, v.pool), v.name);
    } catch (e) {
      reasons.push(`volume ${v.pool}/${v.name} is missing on the source: ${(e as Error).message}`);
      continue;
    }
    plan.volumes.push({ record: v, ref });
    if (!dstPools.has(v.pool)) {
      dstPools.set(v.pool, await exists(dst.storagePoolLookupByName(v.pool)));
      if (!dstPools.get(v.pool)) reasons.push(`${to} has no pool ${v.pool}`);
    }
    if (dstPools.get(v.pool)) {
      const pool = await dst.storagePoolLookupByName(v.pool);
      if (await exists(dst.storageVolLookupByName(pool, v.name))) {
        reasons.push(`${to} has a volume ${v.pool}/${v.name} already`);
      }
    }
    if (v.role !== "boot") continue;
    const backing = backingPathOf(await src.storageVolGetXmlDesc(ref));
    if (backing === undefined || await exists(dst.storageVolLookupByPath(backing))) continue;
    const image = await src.storageVolLookupByPath(backing).catch(() => undefined);
    if (!opts.copyImage || image === undefined) {
      reasons.push(
        `${to} lacks the base image ${backing} of the boot disk${
          image && !opts.copyImage ? ` (${IMAGE_ELSEWHERE})` : ""
        }`,
      );
      continue;
    }
    const pool = await dst.storagePoolLookupByName(image.pool).catch(() => undefined);
    const path = pool ? parsePoolXml(await dst.storagePoolGetXmlDesc(pool)).path : null;
    if (path === null || `${path.replace(/\/$/, "")}/${image.name}` !== backing) {
      reasons.push(
        `the boot disk is backed by ${backing}, and pool ${image.pool} on ${to} ${
          pool ? `is at ${path ?? "no path"}` : "does not exist"
        }: a copy would not be at that path`,
      );
      continue;
    }
    plan.image = { ref: image };
  }
  // Disks foundry did not create (existing volumes, install ISOs) must be on the target already.
  const own = new Set(record.map((v) => `${v.pool}/${v.name}`));
  for (const d of diskSources(xml)) {
    if (d.pool !== undefined && own.has(`${d.pool}/${d.volume}`)) continue;
    const there = d.file !== undefined
      ? await exists(dst.storageVolLookupByPath(d.file))
      : await exists(
        dst.storagePoolLookupByName(d.pool!).then((p) => dst.storageVolLookupByName(p, d.volume!)),
      );
    if (!there) {
      reasons.push(
        `disk ${d.device} (${
          d.file ?? `${d.pool}/${d.volume}`
        }) is not foundry's and ${to} does not have it`,
      );
    }
  }
  if (reasons.length) throw new MoveCheckError(name, reasons);
  return plan;
}

/**
 * Moves VM `name` from `src` to `dst` offline (see the module documentation).
 *
 * @throws {MoveCheckError} the checks failed; nothing was changed
 * @throws {VmOperationError} a step failed; the target was cleaned up and the source restored
 *   (the message says what could not be)
 */
export async function moveVm(
  src: Libvirt,
  dst: Libvirt,
  name: string,
  opts: MoveOptions,
): Promise<MoveResult> {
  const step = async (s: MoveStep) => {
    opts.signal?.throwIfAborted();
    await opts.beforeStep?.(s);
  };
  await step("check");
  const { domain, stored } = await lookupVm(src, name);
  if (!stored) throw new MoveCheckError(name, ["it is not a foundry VM"]);
  if (!stored.volumes) {
    throw new MoveCheckError(name, [
      "its definition has no record of its volumes (made by an older foundry)",
    ]);
  }
  const state = (await src.domainGetState(domain)).state;
  const wasRunning = state !== DomainState.SHUTOFF;
  if (state !== DomainState.SHUTOFF && state !== DomainState.RUNNING) {
    throw new MoveCheckError(name, [`it is ${stateWord(state)}; start or stop it first`]);
  }
  const bridges = [...new Set(stored.vm.spec.networkInterfaces.map((n) => n.bridge))];
  // The inactive definition with its secrets (a VNC password): what the target defines.
  const xml = await src.domainGetXmlDesc(domain, DomainXmlFlags.INACTIVE | DomainXmlFlags.SECURE);
  const plan = await checkMove(src, dst, name, xml, stored.volumes, bridges, opts);
  const autostart = await src.domainGetAutostart(domain);
  opts.onStep?.("check", `${plan.volumes.length} volumes to copy`);

  const made: { volumes: StorageVolRef[]; defined: boolean; started: boolean } = {
    volumes: [],
    defined: false,
    started: false,
  };
  let stopped = false;
  const result: MoveResult = { name, wasRunning, volumes: [] };
  try {
    if (wasRunning) {
      await step("shutdown");
      const r = await stopVm(src, name, { timeoutSeconds: opts.timeoutSeconds });
      stopped = true;
      opts.onStep?.("shutdown", r.graceful ? "shut down" : "forced off after the timeout");
    }
    if (plan.image) {
      await step("image");
      const pool = await dst.storagePoolLookupByName(plan.image.ref.pool);
      const c = await copy(src, plan.image.ref, dst, pool, opts);
      made.volumes.push(c.volume);
      result.imageCopied = { pool: pool.name, name: c.volume.name, sha256: c.sha256 };
      opts.onStep?.("image", `${pool.name}/${c.volume.name} (SHA-256 ${c.sha256})`);
    }
    await step("volumes");
    for (const v of plan.volumes) {
      const pool = await dst.storagePoolLookupByName(v.record.pool);
      const c = await copy(src, v.ref, dst, pool, opts);
      made.volumes.push(c.volume);
      result.volumes.push({
        pool: pool.name,
        name: c.volume.name,
        sha256: c.sha256,
        bytes: c.bytes,
      });
      opts.onStep?.("volumes", `${pool.name}/${c.volume.name} (SHA-256 ${c.sha256})`);
    }
    await step("define");
    const defined = await dst.domainDefineXml(xml);
    made.defined = true;
    await settleOnTarget(dst, defined, stored, { to: opts.to, autostart, live: false });
    opts.onStep?.("define", `defined on ${opts.to ?? "the target"}`);
    if (wasRunning) {
      await step("start");
      await dst.domainCreate(defined);
      made.started = true;
      opts.onStep?.("start", `running on ${opts.to ?? "the target"}`);
    }
  } catch (e) {
    const left = await rollBack(src, dst, name, made, stopped);
    throw new VmOperationError(
      `VM ${name} not moved: ${(e as Error).message}; ${
        left.length
          ? `rollback incomplete: ${left.join("; ")}`
          : `the source is as it was${stopped ? " and running again" : ""}, nothing is left on ${
            opts.to ?? "the target"
          }`
      }`,
      { cause: e },
    );
  }
  // The target has the VM: only now is it removed from the source.
  await step("source");
  const problems: string[] = [];
  await src.domainUndefine(
    domain,
    UndefineFlags.NVRAM | UndefineFlags.MANAGED_SAVE | UndefineFlags.SNAPSHOTS_METADATA,
  ).catch((e) => problems.push(`domain not undefined: ${(e as Error).message}`));
  for (const v of plan.volumes) {
    await src.storageVolDelete(v.ref).catch((e) => {
      if (!(e instanceof LibvirtError && e.isNoStorageVol())) {
        problems.push(`volume ${v.ref.pool}/${v.ref.name} not deleted: ${(e as Error).message}`);
      }
    });
  }
  if (problems.length) {
    throw new VmOperationError(
      `VM ${name} moved to ${opts.to ?? "the target"}, but the source kept part of it: ${
        problems.join("; ")
      }`,
    );
  }
  opts.onStep?.("source", `removed from ${opts.from ?? "the source"}`);
  return result;
}

/**
 * What a definition alone does not carry to the target: autostart, and for a VM pinned with
 * `placement.host` a stored spec that pins it where it now lives (or the next apply of it would
 * place it back where it was). `live`: the domain runs, its live definition gets the spec too.
 */
async function settleOnTarget(
  dst: Libvirt,
  domain: DomainRef,
  stored: StoredVm,
  opts: { to: string | undefined; autostart: boolean; live: boolean },
): Promise<void> {
  const pinned = stored.vm.spec.placement;
  if (opts.to !== undefined && pinned && "host" in pinned && pinned.host !== opts.to) {
    const vm = { ...stored.vm, spec: { ...stored.vm.spec, placement: { host: opts.to } } };
    await writeDomainRecord(
      dst,
      domain,
      "spec",
      storedMetadataXml(vm, stored.passwordHashSha256),
      opts.live,
    );
  }
  if (opts.autostart) await dst.domainSetAutostart(domain, true);
}

function stateWord(state: number): string {
  return ({ 3: "paused", 4: "shutting down", 6: "crashed", 7: "suspended" } as Record<
    number,
    string
  >)[state] ?? `in state ${state}`;
}

function copy(
  src: Libvirt,
  vol: StorageVolRef,
  dst: Libvirt,
  pool: Awaited<ReturnType<Libvirt["storagePoolLookupByName"]>>,
  opts: MoveOptions,
): Promise<CopiedVolume> {
  const onProgress = opts.onProgress;
  return copyVolume(src, vol, dst, pool, {
    ...(onProgress ? { onProgress: (n: number) => onProgress(vol.name, n) } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** Removes what the move made on the target and starts the source again; what could not be. */
async function rollBack(
  src: Libvirt,
  dst: Libvirt,
  name: string,
  made: { volumes: StorageVolRef[]; defined: boolean; started: boolean },
  stopped: boolean,
): Promise<string[]> {
  const left: string[] = [];
  if (made.defined) {
    const d = await dst.domainLookupByName(name).catch(() => undefined);
    if (d) {
      if (made.started) await dst.domainDestroy(d).catch(() => {});
      await dst.domainUndefine(d, UndefineFlags.NVRAM | UndefineFlags.MANAGED_SAVE).catch((e) =>
        left.push(`domain ${name} still defined on the target: ${(e as Error).message}`)
      );
    }
  }
  for (const v of made.volumes.reverse()) {
    await dst.storageVolDelete(v).catch((e) =>
      left.push(`volume ${v.pool}/${v.name} left on the target: ${(e as Error).message}`)
    );
  }
  if (stopped) {
    await startVm(src, name).catch((e) =>
      left.push(`VM not started again on the source: ${(e as Error).message}`)
    );
  }
  return left;
}

/** `remote_protocol.x`: REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS = 305. */
const PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS = 305;
/** `remote_protocol.x`: REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX. */
const MIGRATE_PARAM_LIST_MAX = 64;
/** `virDomainMigrateFlags` of a live move with storage copy, driven by the source daemon. */
const MigrateFlags = {
  LIVE: 1,
  PEER2PEER: 2,
  PERSIST_DEST: 8,
  UNDEFINE_SOURCE: 16,
  NON_SHARED_DISK: 64,
} as const;

/**
 * Why `--live` cannot move VM `name` from `src` to `dst` (empty: it may be tried): a live move
 * needs a running foundry VM with its volume record, a target without a domain or volumes of its
 * names that has their pools, its bridges and the boot overlay's base image, and two daemons that
 * are not one (libvirt refuses a migration to the host it runs on, which it knows by the host UUID
 * of the capabilities).
 */
export async function liveMoveProblems(
  src: Libvirt,
  dst: Libvirt,
  name: string,
  to?: string,
): Promise<string[]> {
  const out: string[] = [];
  const { domain, stored, xml } = await lookupVm(src, name);
  const state = (await src.domainGetState(domain)).state;
  if (state !== DomainState.RUNNING) {
    out.push(
      `it is ${
        state === DomainState.SHUTOFF ? "shut off" : stateWord(state)
      }, and a live move needs it running`,
    );
  }
  const uuidOf = (caps: string) => /<host>\s*<uuid>([^<]+)<\/uuid>/.exec(caps)?.[1];
  const [a, b] = await Promise.all([src.getCapabilities(), dst.getCapabilities()]);
  const ua = uuidOf(a);
  if (ua !== undefined && ua === uuidOf(b)) {
    out.push(
      `both daemons have the host UUID ${ua} (one machine), and libvirt refuses to migrate a guest to the host it runs on`,
    );
  }
  if (!stored?.volumes) out.push("it is not a foundry VM with a record of its volumes");
  else {
    const bridges = [...new Set(stored.vm.spec.networkInterfaces.map((n) => n.bridge))];
    try {
      await checkMove(src, dst, name, xml, stored.volumes, bridges, {
        timeoutSeconds: 0,
        ...(to !== undefined ? { to } : {}),
      });
    } catch (e) {
      if (!(e instanceof MoveCheckError)) throw e;
      out.push(...e.reasons);
    }
  }
  return out;
}

/** Options of {@linkcode liveMoveVm}. */
export interface LiveMoveOptions {
  /** The target's URI as the source daemon reaches it (it connects there itself). */
  targetUri: string;
  /** The target's name, for messages and a pinned VM's stored spec. */
  to?: string;
  /** Told when a step is done. */
  onStep?: (step: "check" | "image" | "migrate" | "source", detail: string) => void;
  /** Ctrl-C: stops waiting; libvirt goes on with or cancels the migration on its own. */
  signal?: AbortSignal;
}

/**
 * Moves running VM `name` from `src` to `dst` live: libvirt's peer-to-peer migration with storage
 * copy (`virDomainMigratePerform3Params` with LIVE, PEER2PEER, NON_SHARED_DISK, PERSIST_DEST and
 * UNDEFINE_SOURCE), the source daemon connecting to `targetUri` itself. The read-only cloud-init
 * ISO, which libvirt does not copy, is copied first (SHA-256 verified); libvirt creates the other
 * volumes on the target and mirrors them while the guest runs. On success the target gets the
 * source's autostart (and a VM pinned with `placement.host` a stored spec pinning it there,
 * `opts.to`) and the source's volumes are deleted; on failure libvirt keeps the VM running on the
 * source and what this made on the target is removed.
 *
 * @throws {MoveCheckError} {@linkcode liveMoveProblems} found a reason; nothing was changed
 * @throws {VmOperationError} libvirt's migration failed; the source runs as before
 */
export async function liveMoveVm(
  src: Libvirt,
  dst: Libvirt,
  name: string,
  opts: LiveMoveOptions,
): Promise<MoveResult> {
  const why = await liveMoveProblems(src, dst, name, opts.to);
  if (why.length) throw new MoveCheckError(name, why);
  const { domain, stored } = await lookupVm(src, name);
  const autostart = await src.domainGetAutostart(domain);
  const record = stored!.volumes!;
  opts.onStep?.("check", `${record.length} volumes`);
  const result: MoveResult = { name, wasRunning: true, volumes: [] };
  const copied: StorageVolRef[] = [];
  const refs = await Promise.all(
    record.map(async (v) =>
      await src.storageVolLookupByName(await lookupPool(src, v.pool), v.name)
    ),
  );
  try {
    for (const [i, v] of record.entries()) {
      if (v.role !== "cloudinit") continue;
      const c = await copy(src, refs[i]!, dst, await lookupPool(dst, v.pool), {
        timeoutSeconds: 0,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      copied.push(c.volume);
      result.volumes.push({ pool: v.pool, name: v.name, sha256: c.sha256, bytes: c.bytes });
      opts.onStep?.("image", `${v.pool}/${v.name} (SHA-256 ${c.sha256})`);
    }
    const flags = MigrateFlags.LIVE | MigrateFlags.PEER2PEER | MigrateFlags.PERSIST_DEST |
      MigrateFlags.UNDEFINE_SOURCE | MigrateFlags.NON_SHARED_DISK;
    await src.callRemote(
      PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS,
      (w) => {
        w.writeString(domain.name);
        w.writeFixedOpaque(domain.uuid, 16);
        w.writeInt(domain.id);
        w.writeOptional(opts.targetUri, (x, s) => x.writeString(s));
        w.writeArray([], MIGRATE_PARAM_LIST_MAX, () => {});
        w.writeOpaque(new Uint8Array(0));
        w.writeUint(flags);
      },
      (r) => r.readOpaque(),
      { timeoutMs: 0, ...(opts.signal ? { signal: opts.signal } : {}) },
    );
  } catch (e) {
    const left: string[] = [];
    // libvirt may leave the disks it made for the mirror; none of these names existed before.
    for (const v of record) {
      const vol = await dst.storagePoolLookupByName(v.pool)
        .then((p) => dst.storageVolLookupByName(p, v.name))
        .catch(() => undefined);
      if (vol) {
        await dst.storageVolDelete(vol).catch((err) =>
          left.push(`volume ${v.pool}/${v.name} left on the target: ${(err as Error).message}`)
        );
      }
    }
    throw new VmOperationError(
      `VM ${name} not moved live: ${(e as Error).message}; ${
        left.length ? left.join("; ") : "nothing is left on the target"
      }`,
      { cause: e },
    );
  }
  opts.onStep?.("migrate", "running on the target");
  const problems: string[] = [];
  // libvirt carries the definition over, not autostart, and the stored spec as it was.
  await dst.domainLookupByName(name)
    .then((d) => settleOnTarget(dst, d, stored!, { to: opts.to, autostart, live: true }))
    .catch((e) => problems.push(`autostart or stored spec not set there: ${(e as Error).message}`));
  for (const ref of refs) {
    await src.storageVolDelete(ref).catch((e) => {
      if (!(e instanceof LibvirtError && e.isNoStorageVol())) {
        problems.push(`volume ${ref.pool}/${ref.name} not deleted: ${(e as Error).message}`);
      }
    });
  }
  if (problems.length) {
    throw new VmOperationError(
      `VM ${name} moved live, but the source kept part of it: ${problems.join("; ")}`,
    );
  }
  opts.onStep?.("source", "volumes removed from the source");
  return result;
}
