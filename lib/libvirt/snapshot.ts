/**
 * Domain snapshots and block jobs over the REMOTE program (issue 14, snapshots): typed calls
 * built on {@linkcode Libvirt.callRemote}. Procedure numbers and argument layouts are those of
 * libvirt's `remote_protocol.x` (`remote_domain_snapshot_*`, `remote_domain_block_*`).
 *
 * @example
 * ```ts
 * import { Libvirt } from "./mod.ts";
 * import { listAllSnapshots, snapshotGetXmlDesc } from "./snapshot.ts";
 * const lv = await Libvirt.connect("qemu:///system");
 * const dom = await lv.domainLookupByName("web-01");
 * for (const s of await listAllSnapshots(lv, dom)) console.log(await snapshotGetXmlDesc(lv, s));
 * await lv.close();
 * ```
 * @module
 */
import type { XdrReader, XdrWriter } from "../xdr/mod.ts";
import type { Libvirt } from "./client.ts";
import { Procedure } from "./constants.ts";
import type { CallOptions } from "./rpc.ts";
import {
  type DomainRef,
  readDomain,
  readStr,
  readVol,
  type StoragePoolRef,
  type StorageVolRef,
  writeDomain,
  writeOptStr,
  writePool,
  writeStr,
  writeVol,
} from "./wire.ts";

/** Procedure numbers of `remote_procedure` used here. */
export const SnapshotProcedure = {
  DOMAIN_SNAPSHOT_CREATE_XML: 185,
  DOMAIN_SNAPSHOT_GET_XML_DESC: 186,
  DOMAIN_SNAPSHOT_LOOKUP_BY_NAME: 189,
  DOMAIN_HAS_CURRENT_SNAPSHOT: 190,
  DOMAIN_SNAPSHOT_CURRENT: 191,
  DOMAIN_REVERT_TO_SNAPSHOT: 192,
  DOMAIN_SNAPSHOT_DELETE: 193,
  DOMAIN_BLOCK_JOB_ABORT: 237,
  DOMAIN_GET_BLOCK_JOB_INFO: 238,
  DOMAIN_LIST_ALL_SNAPSHOTS: 274,
  DOMAIN_BLOCK_COMMIT: 290,
} as const;

/** `virDomainSnapshotCreateFlags`. */
export const SnapshotCreateFlags = {
  REDEFINE: 1,
  CURRENT: 2,
  NO_METADATA: 4,
  HALT: 8,
  DISK_ONLY: 16,
  REUSE_EXT: 32,
  /** Freeze the guest's filesystems through the agent while the snapshot is taken. */
  QUIESCE: 64,
  ATOMIC: 128,
  LIVE: 256,
} as const;

/** `virDomainSnapshotDeleteFlags`. */
export const SnapshotDeleteFlags = {
  CHILDREN: 1,
  METADATA_ONLY: 2,
  CHILDREN_ONLY: 4,
} as const;

/** `virDomainBlockJobAbortFlags`. */
export const BlockJobAbortFlags = {
  ASYNC: 1,
  /** End a finished active commit or copy by switching the disk to the new image. */
  PIVOT: 2,
} as const;

/** `virDomainBlockCommitFlags`. */
export const BlockCommitFlags = {
  SHALLOW: 1,
  DELETE: 2,
  /** Commit the active layer (the job then waits for a pivot). */
  ACTIVE: 4,
  RELATIVE: 8,
  BANDWIDTH_BYTES: 16,
} as const;

/** Upper bound on a snapshot listing (`REMOTE_DOMAIN_SNAPSHOT_LIST_MAX`). */
export const SNAPSHOT_LIST_MAX = 16384;

/** A snapshot as the daemon names it on the wire (`remote_nonnull_domain_snapshot`). */
export interface SnapshotRef {
  /** Snapshot name. */
  name: string;
  /** Its domain. */
  domain: DomainRef;
}

/** A block job's progress (`virDomainBlockJobInfo`); `found` false when none runs. */
export interface BlockJobInfo {
  /** Whether a job runs on the disk. */
  found: boolean;
  /** `virDomainBlockJobType`: 1 pull, 2 copy, 3 commit, 4 active commit. */
  type: number;
  /** Bandwidth limit. */
  bandwidth: bigint;
  /** Progress so far, in units of `end`. */
  cur: bigint;
  /** Total; the job is ready (or done) when `cur === end`. */
  end: bigint;
}

/** Reads `remote_nonnull_domain_snapshot`. */
export function readSnapshot(r: XdrReader): SnapshotRef {
  return { name: readStr(r), domain: readDomain(r) };
}
/** Writes `remote_nonnull_domain_snapshot`. */
export function writeSnapshot(w: XdrWriter, s: SnapshotRef): void {
  writeStr(w, s.name);
  writeDomain(w, s.domain);
}

const P = SnapshotProcedure;
const MUTATES: CallOptions = { mutates: true };
/**
 * A merge, a memory save or a copy takes as long as the data it moves: no call timeout (a daemon
 * that stops answering is still caught by keepalive).
 */
const LONG: CallOptions = { mutates: true, timeoutMs: 0 };
const snapFlags = (s: SnapshotRef, flags: number) => (w: XdrWriter) => {
  writeSnapshot(w, s);
  w.writeUint(flags);
};

/** Creates a snapshot from `<domainsnapshot>` XML (`SnapshotCreateFlags`). */
export function snapshotCreateXml(
  lv: Libvirt,
  domain: DomainRef,
  xml: string,
  flags = 0,
): Promise<SnapshotRef> {
  return lv.callRemote(
    P.DOMAIN_SNAPSHOT_CREATE_XML,
    (w) => {
      writeDomain(w, domain);
      writeStr(w, xml);
      w.writeUint(flags);
    },
    readSnapshot,
    MUTATES,
  );
}

/** Every snapshot of `domain` (flags: `virDomainSnapshotListFlags`, 0 for all). */
export function listAllSnapshots(
  lv: Libvirt,
  domain: DomainRef,
  flags = 0,
): Promise<SnapshotRef[]> {
  return lv.callRemote(P.DOMAIN_LIST_ALL_SNAPSHOTS, (w) => {
    writeDomain(w, domain);
    w.writeInt(1);
    w.writeUint(flags);
  }, (r) => {
    const list = r.readArray(SNAPSHOT_LIST_MAX, readSnapshot);
    r.readInt();
    return list;
  });
}

/** Looks a snapshot of `domain` up by name (`VIR_ERR_NO_DOMAIN_SNAPSHOT`, 72, when absent). */
export function snapshotLookupByName(
  lv: Libvirt,
  domain: DomainRef,
  name: string,
): Promise<SnapshotRef> {
  return lv.callRemote(P.DOMAIN_SNAPSHOT_LOOKUP_BY_NAME, (w) => {
    writeDomain(w, domain);
    writeStr(w, name);
    w.writeUint(0);
  }, readSnapshot);
}

/** The snapshot's `<domainsnapshot>` XML. */
export function snapshotGetXmlDesc(lv: Libvirt, snap: SnapshotRef, flags = 0): Promise<string> {
  return lv.callRemote(P.DOMAIN_SNAPSHOT_GET_XML_DESC, snapFlags(snap, flags), readStr);
}

/** Whether `domain` has a current snapshot. */
export async function hasCurrentSnapshot(lv: Libvirt, domain: DomainRef): Promise<boolean> {
  return (await lv.callRemote(P.DOMAIN_HAS_CURRENT_SNAPSHOT, (w) => {
    writeDomain(w, domain);
    w.writeUint(0);
  }, (r) => r.readInt())) !== 0;
}

/** The current snapshot of `domain`; a `LibvirtError` when there is none. */
export function snapshotCurrent(lv: Libvirt, domain: DomainRef): Promise<SnapshotRef> {
  return lv.callRemote(P.DOMAIN_SNAPSHOT_CURRENT, (w) => {
    writeDomain(w, domain);
    w.writeUint(0);
  }, readSnapshot);
}

/** Reverts the domain to `snap` (libvirt 9.0 refuses external snapshots). */
export function revertToSnapshot(lv: Libvirt, snap: SnapshotRef, flags = 0): Promise<void> {
  return lv.callRemote(P.DOMAIN_REVERT_TO_SNAPSHOT, snapFlags(snap, flags), () => {}, MUTATES);
}

/** Deletes `snap` (`SnapshotDeleteFlags`); for an external one, libvirt merges its overlays. */
export function snapshotDelete(lv: Libvirt, snap: SnapshotRef, flags = 0): Promise<void> {
  return lv.callRemote(P.DOMAIN_SNAPSHOT_DELETE, snapFlags(snap, flags), () => {}, LONG);
}

/** Starts a block commit of `disk` from `top` into `base` (null: the chain's ends). */
export function domainBlockCommit(
  lv: Libvirt,
  domain: DomainRef,
  disk: string,
  base: string | null,
  top: string | null,
  flags = 0,
  bandwidth: bigint = 0n,
): Promise<void> {
  return lv.callRemote(
    P.DOMAIN_BLOCK_COMMIT,
    (w) => {
      writeDomain(w, domain);
      writeStr(w, disk);
      writeOptStr(w, base);
      writeOptStr(w, top);
      w.writeUhyper(bandwidth);
      w.writeUint(flags);
    },
    () => {},
    MUTATES,
  );
}

/** The block job running on `disk`, if any. */
export function domainGetBlockJobInfo(
  lv: Libvirt,
  domain: DomainRef,
  disk: string,
): Promise<BlockJobInfo> {
  return lv.callRemote(P.DOMAIN_GET_BLOCK_JOB_INFO, (w) => {
    writeDomain(w, domain);
    writeStr(w, disk);
    w.writeUint(0);
  }, (r) => ({
    found: r.readInt() === 1,
    type: r.readInt(),
    bandwidth: r.readUhyper(),
    cur: r.readUhyper(),
    end: r.readUhyper(),
  }));
}

/**
 * Creates a volume in `pool` from XML with the data of `from` (qemu-img convert for file pools),
 * without a call timeout: the copy takes as long as the data.
 */
export function storageVolCreateXmlFromLong(
  lv: Libvirt,
  pool: StoragePoolRef,
  xml: string,
  from: StorageVolRef,
): Promise<StorageVolRef> {
  return lv.callRemote(
    Procedure.STORAGE_VOL_CREATE_XML_FROM,
    (w) => {
      writePool(w, pool);
      writeStr(w, xml);
      writeVol(w, from);
      w.writeUint(0);
    },
    readVol,
    LONG,
  );
}

/** Ends the block job on `disk` (`BlockJobAbortFlags.PIVOT` to switch to the committed image). */
export function domainBlockJobAbort(
  lv: Libvirt,
  domain: DomainRef,
  disk: string,
  flags = 0,
): Promise<void> {
  return lv.callRemote(
    P.DOMAIN_BLOCK_JOB_ABORT,
    (w) => {
      writeDomain(w, domain);
      writeStr(w, disk);
      w.writeUint(flags);
    },
    () => {},
    MUTATES,
  );
}
