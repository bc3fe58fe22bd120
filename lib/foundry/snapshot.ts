/**
 * VM snapshots: disk-only external snapshots of a VM's own volumes (a qcow2 overlay per disk,
 * made in the disk's pool and named `{volume}.{snapshot}`), taken with the guest's filesystems
 * frozen through the agent; optionally with the memory state in `{vm}.{snapshot}.mem` beside them.
 *
 * What libvirt 9.0 does and foundry does in its place:
 * - create, list, delete: libvirt's own (9.0 deletes external snapshots by merging the overlay
 *   into the layer below, a block commit); foundry then removes a memory file
 *   libvirt leaves behind. Offline, 9.0 fails to merge foundry's volume disks and snapshots with
 *   children, so a stopped VM is started paused for the merge (no guest code runs) and powered
 *   off again.
 * - revert: libvirt 9.0 refuses external snapshots ("revert to external snapshot not supported
 *   yet"; 9.7 added it). foundry reverts itself: the VM is powered off, each disk's overlay is
 *   replaced by a fresh, empty one on the same backing file (the disk as it was when the snapshot
 *   was taken), and the VM is started again if it was running. Only the newest snapshot of a chain
 *   (one with no children) can be reverted to, and a snapshot with memory only with `disksOnly`
 *   (the memory state is not restored: the guest boots from the disks).
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { createSnapshot, listSnapshots } from "./snapshot.ts";
 * const lv = await Libvirt.connect();
 * await createSnapshot(lv, "web-01", "before-upgrade");
 * console.log(await listSnapshots(lv, "web-01"));
 * await lv.close();
 * ```
 * @module
 */
import { XMLParser } from "npm:fast-xml-parser@^5.12.1";
import {
  type DomainRef,
  DomainState,
  DomainXmlFlags,
  type Libvirt,
  LibvirtError,
  type StorageVolRef,
} from "../libvirt/mod.ts";
import {
  listAllSnapshots,
  SnapshotCreateFlags,
  snapshotCreateXml,
  snapshotCurrent,
  snapshotDelete,
  snapshotGetXmlDesc,
  snapshotLookupByName,
  type SnapshotRef,
} from "../libvirt/snapshot.ts";
import { domainDisks } from "./disks.ts";
import { lookupVm, VmOperationError } from "./lookup.ts";
import { volumeNameBoot, volumeNameData } from "./naming.ts";
import { StorageError } from "./pools.ts";

/** `VIR_ERR_NO_DOMAIN_SNAPSHOT`. */
const NO_DOMAIN_SNAPSHOT = 72;

/** A snapshot name: letters, digits, `_` and `-`, 1 to 63, starting with a letter or digit. */
export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** One disk of a snapshot. */
export interface SnapshotDisk {
  /** Guest device, e.g. `vda`. */
  target: string;
  /** The overlay the snapshot made; the disk's state at snapshot time is its backing file. */
  overlay: string;
}

/** A snapshot as `list` shows it. */
export interface SnapshotInfo {
  /** Snapshot name. */
  name: string;
  /** The VM. */
  vm: string;
  /** When it was taken (ISO 8601). */
  createdAt: string;
  /** libvirt's state word: `disk-snapshot` (disks only), `running`, `shutoff`, ... */
  state: string;
  /** Its parent snapshot, if any. */
  parent?: string;
  /** Whether it is the VM's current snapshot. */
  current: boolean;
  /** The memory state file, when taken with memory. */
  memoryFile?: string;
  /** Its disk overlays. */
  disks: SnapshotDisk[];
  /** Free text given at create time. */
  description?: string;
}

/** Options of {@linkcode createSnapshot}. */
export interface CreateSnapshotOptions {
  /** Freeze the guest's filesystems through the agent (default true; a stopped VM is not). */
  quiesce?: boolean;
  /** Also save the memory state (running VMs only; never quiesced). */
  memory?: boolean;
  /** Free text stored with the snapshot. */
  description?: string;
}

/** Why a snapshot operation was refused; `reason` tells the CLI which way past it to offer. */
export class SnapshotError extends VmOperationError {
  /** `quiesce`: the agent could not freeze; `memory`: the memory state cannot be reverted. */
  readonly reason: "quiesce" | "memory" | "other";
  /** Creates the error. */
  constructor(
    message: string,
    reason: "quiesce" | "memory" | "other" = "other",
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.reason = reason;
  }
}

type XmlNode = Record<string, unknown>;
const parser = new XMLParser({
  ignoreAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name: string) => name === "disk",
});

function text(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as XmlNode)["#text"] === "string") {
    return (v as XmlNode)["#text"] as string;
  }
  return undefined;
}

/** The parts of a `<domainsnapshot>` XML foundry uses. */
export function parseSnapshotXml(xml: string): Omit<SnapshotInfo, "vm" | "current"> {
  const root = (parser.parse(xml) as XmlNode).domainsnapshot as XmlNode | undefined;
  if (!root) throw new TypeError("Expected a <domainsnapshot> document");
  const created = Number(text(root.creationTime));
  const memory = root.memory as XmlNode | undefined;
  const disks: SnapshotDisk[] = [];
  for (const d of ((root.disks as XmlNode | undefined)?.disk as XmlNode[] | undefined) ?? []) {
    if (d["@_snapshot"] !== "external") continue;
    const src = d.source as XmlNode | undefined;
    const file = (src?.["@_file"] ?? src?.["@_dev"]) as string | undefined;
    if (typeof d["@_name"] === "string" && file) {
      disks.push({ target: d["@_name"], overlay: file });
    }
  }
  const info: Omit<SnapshotInfo, "vm" | "current"> = {
    name: text(root.name) ?? "",
    createdAt: Number.isFinite(created) ? new Date(created * 1000).toISOString() : "",
    state: text(root.state) ?? "",
    disks,
  };
  const parent = text((root.parent as XmlNode | undefined)?.name);
  if (parent) info.parent = parent;
  if (memory?.["@_snapshot"] === "external" && typeof memory["@_file"] === "string") {
    info.memoryFile = memory["@_file"];
  }
  const description = text(root.description);
  if (description) info.description = description;
  return info;
}

function escapeXml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll("'", "&apos;").replaceAll('"', "&quot;");
}

/** The overlay's volume name for a VM's disk: `{boot or data volume}.{snapshot}`. */
export function overlayName(vm: string, target: string, snapshot: string): string {
  const base = target === "vda" ? volumeNameBoot(vm) : volumeNameData(vm, target);
  return `${base}.${snapshot}`;
}

/** The memory state file's volume name: `{vm}.{snapshot}.mem`. */
export function memoryFileName(vm: string, snapshot: string): string {
  return `${vm}.${snapshot}.mem`;
}

/** Directory part of a path. */
function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/**
 * The `<domainsnapshot>` XML for an external snapshot of `disks` (guest disks get an overlay in
 * their own directory; CD-ROMs and other devices are left out of it).
 */
export function buildSnapshotXml(
  vm: string,
  snapshot: string,
  disks: readonly { target: string; device: string; path?: string }[],
  opts: { memory?: boolean; description?: string } = {},
): string {
  const parts = [`<domainsnapshot><name>${escapeXml(snapshot)}</name>`];
  if (opts.description) parts.push(`<description>${escapeXml(opts.description)}</description>`);
  const boot = disks.find((d) => d.device === "disk" && d.path);
  if (opts.memory && boot?.path) {
    const file = `${dirOf(boot.path)}/${memoryFileName(vm, snapshot)}`;
    parts.push(`<memory snapshot='external' file='${escapeXml(file)}'/>`);
  } else {
    parts.push(`<memory snapshot='no'/>`);
  }
  parts.push("<disks>");
  for (const d of disks) {
    if (!d.target) continue;
    if (d.device !== "disk" || !d.path) {
      parts.push(`<disk name='${escapeXml(d.target)}' snapshot='no'/>`);
      continue;
    }
    const file = `${dirOf(d.path)}/${overlayName(vm, d.target, snapshot)}`;
    parts.push(
      `<disk name='${escapeXml(d.target)}' snapshot='external' type='file'>` +
        `<driver type='qcow2'/><source file='${escapeXml(file)}'/></disk>`,
    );
  }
  parts.push("</disks></domainsnapshot>");
  return parts.join("");
}

async function foundryVm(lv: Libvirt, name: string) {
  const found = await lookupVm(lv, name);
  if (!found.stored) {
    throw new VmOperationError(`VM ${name} was not created by foundry (no foundry metadata)`);
  }
  return found;
}

async function lookupSnapshot(lv: Libvirt, domain: DomainRef, name: string) {
  try {
    return await snapshotLookupByName(lv, domain, name);
  } catch (e) {
    if (e instanceof LibvirtError && e.code === NO_DOMAIN_SNAPSHOT) {
      throw new SnapshotError(`VM ${domain.name} has no snapshot ${name}`, "other", { cause: e });
    }
    throw e;
  }
}

/** Rescans the pools holding `paths`, so volumes libvirt's snapshot code made or removed show. */
async function refreshPoolsOf(lv: Libvirt, paths: readonly string[]): Promise<void> {
  const dirs = new Set(paths.map(dirOf));
  const pools = await lv.listAllStoragePools(2).catch(() => []);
  await Promise.all(pools.map(async (p) => {
    const xml = await lv.storagePoolGetXmlDesc(p).catch(() => "");
    const path = /<target>\s*<path>([^<]+)<\/path>/.exec(xml)?.[1];
    if (path && dirs.has(path.replace(/\/+$/, ""))) await lv.storagePoolRefresh(p).catch(() => {});
  }));
}

async function volumeAt(lv: Libvirt, path: string): Promise<StorageVolRef | undefined> {
  return await lv.storageVolLookupByPath(path).catch(() => undefined);
}

/**
 * Takes a disk-only external snapshot of VM `vm` named `name` (see the module's notes).
 *
 * @throws {SnapshotError} a bad or taken name, `memory` on a stopped VM, or (reason `quiesce`) the
 *   agent could not freeze the filesystems
 * @throws {StorageError} an overlay or memory file of that name exists already
 */
export async function createSnapshot(
  lv: Libvirt,
  vm: string,
  name: string,
  opts: CreateSnapshotOptions = {},
): Promise<{ snapshot: SnapshotInfo; quiesced: boolean }> {
  if (!SNAPSHOT_NAME.test(name)) {
    throw new SnapshotError(
      `Snapshot name must be 1-63 letters, digits, '_' or '-' starting with a letter or digit, got '${name}'`,
    );
  }
  const { domain } = await foundryVm(lv, vm);
  const exists = await snapshotLookupByName(lv, domain, name).then(() => true, () => false);
  if (exists) throw new SnapshotError(`VM ${vm} already has a snapshot ${name}`);
  const running = (await lv.domainGetState(domain)).state !== DomainState.SHUTOFF;
  if (opts.memory && !running) {
    throw new SnapshotError(`VM ${vm} is not running: there is no memory state to save`, "memory");
  }
  const xml = await lv.domainGetXmlDesc(domain, DomainXmlFlags.INACTIVE);
  const disks = await Promise.all(
    domainDisks(xml).map(async (d) => {
      // A volume disk names its pool and volume; the overlay goes beside the volume's file.
      if (d.path || !d.pool || !d.volume || d.device !== "disk") return d;
      const pool = await lv.storagePoolLookupByName(d.pool);
      return {
        ...d,
        path: await lv.storageVolGetPath(await lv.storageVolLookupByName(pool, d.volume)),
      };
    }),
  );
  const snapXml = buildSnapshotXml(vm, name, disks, opts);
  const planned = parseSnapshotXml(snapXml);
  const files = [...planned.disks.map((d) => d.overlay), planned.memoryFile].filter(
    (f): f is string => f !== undefined,
  );
  await refreshPoolsOf(lv, files);
  for (const f of files) {
    if (await volumeAt(lv, f)) {
      throw new StorageError(`Volume ${f} already exists: a snapshot would overwrite it`);
    }
  }
  const quiesce = running && !opts.memory && opts.quiesce !== false;
  let flags = SnapshotCreateFlags.ATOMIC;
  if (!opts.memory) flags |= SnapshotCreateFlags.DISK_ONLY;
  if (quiesce) flags |= SnapshotCreateFlags.QUIESCE;
  let snap: SnapshotRef;
  try {
    // Taken live even on a stopped VM (started paused for it): libvirt 9.0 records an offline
    // snapshot's volume disks untranslated and then cannot merge it ("snapshot VM disk source
    // and parent disk source are not the same", tried on 9.0.0).
    snap = await whileStarted(lv, domain, () => snapshotCreateXml(lv, domain, snapXml, flags));
  } catch (e) {
    const msg = (e as Error).message;
    if (quiesce && /agent|quiesce|freeze/i.test(msg)) {
      throw new SnapshotError(
        `Cannot freeze the guest's filesystems for snapshot ${name}: ${msg}`,
        "quiesce",
        { cause: e },
      );
    }
    throw new SnapshotError(`Cannot take snapshot ${name} of VM ${vm}: ${msg}`, "other", {
      cause: e,
    });
  } finally {
    await refreshPoolsOf(lv, files);
  }
  const info = parseSnapshotXml(await snapshotGetXmlDesc(lv, snap));
  return { snapshot: { ...info, vm, current: true }, quiesced: quiesce };
}

/** The VM's snapshots, oldest first. */
export async function listSnapshots(lv: Libvirt, vm: string): Promise<SnapshotInfo[]> {
  const { domain } = await lookupVm(lv, vm);
  return await snapshotsOf(lv, domain);
}

async function snapshotsOf(lv: Libvirt, domain: DomainRef): Promise<SnapshotInfo[]> {
  const [refs, current] = await Promise.all([
    listAllSnapshots(lv, domain),
    snapshotCurrent(lv, domain).then((s) => s.name, () => undefined),
  ]);
  const out = await Promise.all(refs.map(async (s) => ({
    ...parseSnapshotXml(await snapshotGetXmlDesc(lv, s)),
    vm: domain.name,
    current: s.name === current,
  })));
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name));
}

/** Options of {@linkcode revertSnapshot}. */
export interface RevertSnapshotOptions {
  /** Revert a snapshot taken with memory by its disks alone (the guest boots afresh). */
  disksOnly?: boolean;
  /** Leave the VM stopped afterwards, even if it was running. */
  noStart?: boolean;
}

/**
 * Reverts VM `vm` to snapshot `name` (see the module's notes): powers it off, replaces each
 * disk's overlay by an empty one on the same backing file, starts it again if it was running.
 * The snapshot stays, so one can revert to it again.
 *
 * @throws {SnapshotError} no such snapshot, newer snapshots on top of it, a disk that no longer
 *   uses its overlay, or (reason `memory`) memory state without `disksOnly`
 */
export async function revertSnapshot(
  lv: Libvirt,
  vm: string,
  name: string,
  opts: RevertSnapshotOptions = {},
): Promise<{ restarted: boolean; disks: SnapshotDisk[] }> {
  const { domain } = await foundryVm(lv, vm);
  const snap = await lookupSnapshot(lv, domain, name);
  const info = parseSnapshotXml(await snapshotGetXmlDesc(lv, snap));
  if (info.memoryFile && !opts.disksOnly) {
    throw new SnapshotError(
      `Snapshot ${name} holds memory state, which libvirt 9.0 cannot restore from an external ` +
        `snapshot; it can be reverted by its disks alone (the guest then boots from them)`,
      "memory",
    );
  }
  const children = (await snapshotsOf(lv, domain)).filter((s) => s.parent === name);
  if (children.length) {
    throw new SnapshotError(
      `Snapshot ${name} has newer snapshots on top of it (${
        children.map((c) => c.name).join(", ")
      }); delete them first`,
    );
  }
  if (!info.disks.length) throw new SnapshotError(`Snapshot ${name} has no external disk`);
  const configXml = await lv.domainGetXmlDesc(domain, DomainXmlFlags.INACTIVE);
  const current = new Map(domainDisks(configXml).map((d) => [d.target, d.path]));
  for (const d of info.disks) {
    if (current.get(d.target) !== d.overlay) {
      throw new SnapshotError(
        `Disk ${d.target} of VM ${vm} no longer uses snapshot ${name}'s overlay ${d.overlay}`,
      );
    }
  }
  await refreshPoolsOf(lv, info.disks.map((d) => d.overlay));
  // Everything that could refuse has been checked: read each overlay's backing before changing.
  const plans = await Promise.all(info.disks.map(async (d) => {
    const vol = await volumeAt(lv, d.overlay);
    if (!vol) throw new StorageError(`Overlay ${d.overlay} of snapshot ${name} is not a volume`);
    const [xml, volInfo] = await Promise.all([
      lv.storageVolGetXmlDesc(vol),
      lv.storageVolGetInfo(vol),
    ]);
    const backing = /<backingStore>\s*<path>([^<]+)<\/path>(?:[\s\S]*?<format type=['"](\w+)['"])?/
      .exec(xml);
    if (!backing?.[1]) throw new StorageError(`Overlay ${d.overlay} has no backing file`);
    return { disk: d, vol, capacity: volInfo.capacity, backing: backing[1], format: backing[2] };
  }));
  const wasRunning = (await lv.domainGetState(domain)).state !== DomainState.SHUTOFF;
  if (wasRunning) {
    // The state since the snapshot is what a revert throws away: no graceful shutdown.
    await lv.domainDestroy(domain).catch(async (e) => {
      if ((await lv.domainGetState(domain)).state !== DomainState.SHUTOFF) throw e;
    });
  }
  for (const p of plans) {
    const pool = await lv.storagePoolLookupByName(p.vol.pool);
    await lv.storageVolDelete(p.vol);
    const xml =
      `<volume><name>${escapeXml(p.vol.name)}</name><capacity unit='bytes'>${p.capacity}` +
      `</capacity><target><format type='qcow2'/></target><backingStore><path>${p.backing}</path>` +
      `<format type='${p.format ?? "qcow2"}'/></backingStore></volume>`;
    try {
      await lv.storageVolCreateXml(pool, xml);
    } catch (e) {
      throw new StorageError(
        `VM ${vm} is stopped and disk ${p.disk.target} has no overlay: cannot make ${p.disk.overlay} again: ${
          (e as Error).message
        }`,
        { cause: e },
      );
    }
  }
  let restarted = false;
  if (wasRunning && !opts.noStart) {
    const { startVm } = await import("./vm.ts");
    await startVm(lv, vm);
    restarted = true;
  }
  return { restarted, disks: info.disks };
}

/**
 * Deletes snapshot `name` of VM `vm`: libvirt merges its overlays into the layers below (live or
 * offline) and drops its metadata; foundry removes its memory file. Returns the files removed.
 */
export async function deleteSnapshot(
  lv: Libvirt,
  vm: string,
  name: string,
): Promise<{ removed: string[] }> {
  const { domain } = await foundryVm(lv, vm);
  const snap = await lookupSnapshot(lv, domain, name);
  return await whileStarted(lv, domain, () => deleteOne(lv, domain, snap));
}

/**
 * Runs `fn` with the domain running: a stopped one is started paused for it (no guest code runs)
 * and powered off again after. libvirt 9.0 merges external snapshots reliably only live: offline
 * it fails for a `type='volume'` disk ("snapshot VM disk source and parent disk source are not the
 * same") and for a snapshot with children ("could not find base disk source in disk source
 * chain"), both tried on 9.0.0.
 */
async function whileStarted<T>(lv: Libvirt, domain: DomainRef, fn: () => Promise<T>): Promise<T> {
  if ((await lv.domainGetState(domain)).state !== DomainState.SHUTOFF) return await fn();
  await lv.domainCreate(domain, 1 /* VIR_DOMAIN_START_PAUSED */);
  try {
    return await fn();
  } finally {
    await lv.domainDestroy(domain).catch(async (e) => {
      if ((await lv.domainGetState(domain)).state !== DomainState.SHUTOFF) throw e;
    });
  }
}

async function deleteOne(
  lv: Libvirt,
  domain: DomainRef,
  snap: SnapshotRef,
): Promise<{ removed: string[] }> {
  const info = parseSnapshotXml(await snapshotGetXmlDesc(lv, snap));
  try {
    await snapshotDelete(lv, snap, 0);
  } catch (e) {
    throw new SnapshotError(
      `Cannot delete snapshot ${snap.name} of VM ${domain.name}: ${(e as Error).message}`,
      "other",
      { cause: e },
    );
  }
  const files = [...info.disks.map((d) => d.overlay), info.memoryFile].filter(
    (f): f is string => f !== undefined,
  );
  await refreshPoolsOf(lv, files);
  const removed: string[] = [];
  const left: string[] = [];
  // libvirt removes a merged overlay itself; a memory file it leaves, and so would a half-done job.
  for (const f of files) {
    const vol = await volumeAt(lv, f);
    if (!vol) {
      removed.push(f);
      continue;
    }
    if (f === info.memoryFile) {
      await lv.storageVolDelete(vol);
      removed.push(f);
    } else left.push(f);
  }
  if (left.length) {
    throw new StorageError(
      `Snapshot ${snap.name} of VM ${domain.name} was deleted, but its overlays are still there: ${
        left.join(", ")
      }`,
    );
  }
  return { removed };
}

/**
 * Removes every snapshot of a VM before it is destroyed, newest first, so that its disks are its
 * own volumes again and no overlay or memory file stays behind. A snapshot foundry did not make
 * (an overlay not named `{volume}.{snapshot}`) loses only its metadata: its files are left alone.
 * Returns the snapshot names removed (also pushed to `done` as each goes).
 */
export async function removeSnapshotsForDestroy(
  lv: Libvirt,
  domain: DomainRef,
  done: string[] = [],
): Promise<string[]> {
  const all = await listAllSnapshots(lv, domain).catch(() => [] as SnapshotRef[]);
  if (!all.length) return done;
  const infos = await snapshotsOf(lv, domain);
  return await whileStarted(lv, domain, async () => {
    for (const s of infos.reverse()) {
      const ref: SnapshotRef = { name: s.name, domain };
      const ours = s.disks.length > 0 &&
        s.disks.every((d) => d.overlay.endsWith(`/${overlayName(domain.name, d.target, s.name)}`));
      if (ours) await deleteOne(lv, domain, ref);
      else await snapshotDelete(lv, ref, 2 /* METADATA_ONLY */);
      done.push(s.name);
    }
    return done;
  });
}
