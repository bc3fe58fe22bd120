/**
 * Domain events beyond the lifecycle and agent ones `client.ts` subscribes to: reboot, block job
 * (the `BLOCK_JOB_2` form, which names the disk by its target), disk change and device removed.
 * Each uses the daemon's callback registration (`CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY`,
 * one callback ID per subscription) through the client's public `callRemote`, and the event
 * messages reach us through `RpcConnection.onMessage`. The layouts are those of libvirt's
 * `remote_protocol.x` (`remote_domain_event_callback_*_msg`); the decoders are our own.
 * @module
 */
import { XdrReader, type XdrWriter } from "../xdr/mod.ts";
import type { EventSubscription, Libvirt } from "./client.ts";
import { Procedure as P, Program } from "./constants.ts";
import type { RpcConnection } from "./rpc.ts";
import { type DomainRef, readDomain, readOptStr, readStr, writeDomain } from "./wire.ts";

/** `virDomainEventID` of the events this module decodes. */
export const ExtraDomainEventId = {
  REBOOT: 1,
  DISK_CHANGE: 9,
  DEVICE_REMOVED: 15,
  BLOCK_JOB_2: 16,
} as const;

/** `remote_procedure` numbers of their event messages (the callback forms). */
export const ExtraEventProcedure = {
  DOMAIN_EVENT_CALLBACK_REBOOT: 319,
  DOMAIN_EVENT_CALLBACK_DISK_CHANGE: 327,
  DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED: 333,
  DOMAIN_EVENT_BLOCK_JOB_2: 339,
} as const;

/** `virConnectDomainEventBlockJobStatus`. */
export const BlockJobStatus = { COMPLETED: 0, FAILED: 1, CANCELED: 2, READY: 3 } as const;

/** `virDomainBlockJobType`. */
export const BlockJobType = {
  UNKNOWN: 0,
  PULL: 1,
  COPY: 2,
  COMMIT: 3,
  ACTIVE_COMMIT: 4,
  BACKUP: 5,
} as const;

/** `virConnectDomainEventDiskChangeReason`. */
export const DiskChangeReason = { MISSING_ON_START: 0, DROP_MISSING_ON_START: 1 } as const;

/** The guest rebooted (`remote_domain_event_callback_reboot_msg`). */
export interface DomainRebootEvent {
  /** The domain it concerns. */
  domain: DomainRef;
}

/** A block job ended or is ready to pivot (`remote_domain_event_block_job_2_msg`). */
export interface DomainBlockJobEvent {
  /** The domain it concerns. */
  domain: DomainRef;
  /** The disk's target (`vda`) or, for some jobs, its path. */
  disk: string;
  /** {@linkcode BlockJobType} value. */
  type: number;
  /** {@linkcode BlockJobStatus} value. */
  status: number;
}

/** A disk's source changed or was dropped (`remote_domain_event_disk_change_msg`). */
export interface DomainDiskChangeEvent {
  /** The domain it concerns. */
  domain: DomainRef;
  /** The old source path, when there was one. */
  oldSrcPath: string | null;
  /** The new source path, when there is one. */
  newSrcPath: string | null;
  /** The device's alias (`virtio-disk1`). */
  devAlias: string;
  /** {@linkcode DiskChangeReason} value. */
  reason: number;
}

/** A device was unplugged from the guest (`remote_domain_event_device_removed_msg`). */
export interface DomainDeviceRemovedEvent {
  /** The domain it concerns. */
  domain: DomainRef;
  /** The device's alias (`virtio-disk1`, `net1`). */
  devAlias: string;
}

/** Reads a reboot message's body after its callback ID. */
export function decodeRebootEvent(r: XdrReader): DomainRebootEvent {
  return { domain: readDomain(r) };
}

/** Reads a `BLOCK_JOB_2` message's body after its callback ID. */
export function decodeBlockJobEvent(r: XdrReader): DomainBlockJobEvent {
  return { domain: readDomain(r), disk: readStr(r), type: r.readInt(), status: r.readInt() };
}

/** Reads a disk-change message's body after its callback ID. */
export function decodeDiskChangeEvent(r: XdrReader): DomainDiskChangeEvent {
  return {
    domain: readDomain(r),
    oldSrcPath: readOptStr(r),
    newSrcPath: readOptStr(r),
    devAlias: readStr(r),
    reason: r.readInt(),
  };
}

/** Reads a device-removed message's body after its callback ID. */
export function decodeDeviceRemovedEvent(r: XdrReader): DomainDeviceRemovedEvent {
  return { domain: readDomain(r), devAlias: readStr(r) };
}

/** What each kind of event this module handles needs: its ID, message procedure and decoder. */
const KINDS = {
  reboot: {
    id: ExtraDomainEventId.REBOOT,
    proc: ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_REBOOT,
    decode: decodeRebootEvent,
  },
  blockJob: {
    id: ExtraDomainEventId.BLOCK_JOB_2,
    proc: ExtraEventProcedure.DOMAIN_EVENT_BLOCK_JOB_2,
    decode: decodeBlockJobEvent,
  },
  diskChange: {
    id: ExtraDomainEventId.DISK_CHANGE,
    proc: ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_DISK_CHANGE,
    decode: decodeDiskChangeEvent,
  },
  deviceRemoved: {
    id: ExtraDomainEventId.DEVICE_REMOVED,
    proc: ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
    decode: decodeDeviceRemovedEvent,
  },
} as const;

/** The event kinds {@linkcode subscribeDomainEvent} takes. */
export type ExtraEventKind = keyof typeof KINDS;

/** The record each kind's listener receives. */
export interface ExtraEventMap {
  /** The guest rebooted. */
  reboot: DomainRebootEvent;
  /** A block job ended or is ready. */
  blockJob: DomainBlockJobEvent;
  /** A disk source changed. */
  diskChange: DomainDiskChangeEvent;
  /** A device was unplugged. */
  deviceRemoved: DomainDeviceRemovedEvent;
}

/**
 * Per connection and event procedure: callback ID → listener. `onMessage` keeps one handler per
 * procedure, so every subscription of a connection shares one dispatcher.
 */
const dispatchers = new WeakMap<RpcConnection, Map<number, Map<number, (r: XdrReader) => void>>>();

function listenersFor(rpc: RpcConnection, proc: number): Map<number, (r: XdrReader) => void> {
  let procs = dispatchers.get(rpc);
  if (!procs) dispatchers.set(rpc, procs = new Map());
  let listeners = procs.get(proc);
  if (!listeners) {
    const map = new Map<number, (r: XdrReader) => void>();
    listeners = map;
    procs.set(proc, map);
    rpc.onMessage(Program.REMOTE, proc, (payload) => {
      const r = new XdrReader(payload);
      const id = r.readInt();
      map.get(id)?.(r);
    });
  }
  return listeners;
}

/**
 * Calls `listener` for every `kind` event of `domain` (of every domain when null), registered on
 * the daemon so that each subscription receives only its own events. A message that does not
 * decode is dropped (the daemon sent something this version does not understand).
 *
 * @example
 * ```ts
 * import { Libvirt } from "./mod.ts";
 * import { subscribeDomainEvent } from "./events.ts";
 * const lv = await Libvirt.connect();
 * const sub = await subscribeDomainEvent(lv, "reboot", null, (e) => console.log(e.domain.name));
 * // ...
 * await sub.close();
 * await lv.close();
 * ```
 */
export async function subscribeDomainEvent<K extends ExtraEventKind>(
  lv: Libvirt,
  kind: K,
  domain: DomainRef | null,
  listener: (e: ExtraEventMap[K]) => void,
): Promise<EventSubscription> {
  const spec = KINDS[kind];
  const listeners = listenersFor(lv.rpc, spec.proc);
  const id = await lv.callRemote(
    P.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
    (w: XdrWriter) => {
      w.writeInt(spec.id);
      w.writeOptional(domain, writeDomain);
    },
    (r) => r.readInt(),
  );
  listeners.set(id, (r) => {
    let e: ExtraEventMap[K];
    try {
      e = spec.decode(r) as ExtraEventMap[K];
    } catch {
      return;
    }
    listener(e);
  });
  return {
    close: async () => {
      if (!listeners.delete(id) || lv.rpc.closed) return;
      await lv.callRemote(
        P.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
        (w: XdrWriter) => void w.writeInt(id),
        () => undefined,
      );
    },
  };
}
