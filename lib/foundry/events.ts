/**
 * A live stream of what the daemon reports about VMs: lifecycle (started, stopped, ...), guest
 * agent connected or gone, reboots, block jobs, disk changes and unplugged devices, as plain
 * records through an async iterator.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { watchEvents } from "./events.ts";
 * const lv = await Libvirt.connect();
 * const stop = new AbortController();
 * for await (const e of watchEvents(lv, { domain: "web-01", signal: stop.signal })) {
 *   console.log(e.time, e.vm, e.event, e.detail);
 *   if (e.event === "Started") stop.abort();
 * }
 * await lv.close();
 * ```
 * @module
 */
import {
  type AgentLifecycleEvent,
  type DomainLifecycleEvent,
  type DomainRef,
  type EventSubscription,
  type Libvirt,
  LibvirtError,
} from "../libvirt/mod.ts";
import {
  BlockJobStatus,
  type DomainBlockJobEvent,
  type DomainDeviceRemovedEvent,
  type DomainDiskChangeEvent,
  subscribeDomainEvent,
} from "../libvirt/events.ts";
import { VmNotFoundError } from "./vm_errors.ts";

/** The kinds of event a watch reports. */
export const VM_EVENT_TYPES = [
  "lifecycle",
  "agent",
  "reboot",
  "block-job",
  "disk-change",
  "device-removed",
  "dropped",
] as const;
/** One kind. */
export type VmEventType = typeof VM_EVENT_TYPES[number];

/** One event of one VM. */
export interface VmEvent {
  /** When it was received, RFC 3339 UTC with milliseconds. */
  time: string;
  /** The domain's name ("" for a `dropped` record). */
  vm: string;
  /** What kind of event it is. */
  type: VmEventType;
  /**
   * What happened, one CamelCase word: `Started`, `Stopped`, `AgentConnected`, `Rebooted`,
   * `BlockJobCompleted`, `DiskChanged`, `DeviceRemoved`, `EventsDropped`, ...
   */
  event: string;
  /** More about it in words: `Shutdown`, `channel event`, `vdb commit`, ... */
  detail: string;
  /** The daemon's own codes and fields, for scripts. */
  data: Record<string, string | number | null>;
}

const LIFECYCLE: readonly [string, readonly string[]][] = [
  ["Defined", ["Added", "Updated", "Renamed", "FromSnapshot"]],
  ["Undefined", ["Removed", "Renamed"]],
  ["Started", ["Booted", "Migrated", "Restored", "FromSnapshot", "Wakeup"]],
  ["Suspended", [
    "Paused",
    "Migrated",
    "IOError",
    "Watchdog",
    "Restored",
    "FromSnapshot",
    "APIError",
    "Postcopy",
    "PostcopyFailed",
  ]],
  ["Resumed", ["Unpaused", "Migrated", "FromSnapshot", "Postcopy", "PostcopyFailed"]],
  ["Stopped", ["Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed", "FromSnapshot"]],
  ["Shutdown", ["Finished", "Guest", "Host"]],
  ["PMSuspended", ["Memory", "Disk"]],
  ["Crashed", ["Panicked", "Crashloaded"]],
];
const AGENT_REASONS = ["unknown reason", "domain started", "channel event"];
const BLOCK_JOB_TYPES = ["unknown job", "pull", "copy", "commit", "active commit", "backup"];
const BLOCK_JOB_STATUS: Record<number, string> = {
  [BlockJobStatus.COMPLETED]: "BlockJobCompleted",
  [BlockJobStatus.FAILED]: "BlockJobFailed",
  [BlockJobStatus.CANCELED]: "BlockJobCanceled",
  [BlockJobStatus.READY]: "BlockJobReady",
};
const DISK_CHANGE_REASONS = ["missing on start", "dropped missing on start"];

const now = () => new Date().toISOString();

/** The record of a lifecycle event (`virDomainEventType` and its detail, by name). */
export function lifecycleVmEvent(e: DomainLifecycleEvent, time = now()): VmEvent {
  const [event, details] = LIFECYCLE[e.event] ?? [`Event${e.event}`, []];
  return {
    time,
    vm: e.domain.name,
    type: "lifecycle",
    event,
    detail: details[e.detail] ?? `detail ${e.detail}`,
    data: { event: e.event, detail: e.detail },
  };
}

/** The record of an agent connecting (state 1) or going away (state 2). */
export function agentVmEvent(e: AgentLifecycleEvent, time = now()): VmEvent {
  return {
    time,
    vm: e.domain.name,
    type: "agent",
    event: e.state === 1
      ? "AgentConnected"
      : e.state === 2
      ? "AgentDisconnected"
      : `AgentState${e.state}`,
    detail: AGENT_REASONS[e.reason] ?? `reason ${e.reason}`,
    data: { state: e.state, reason: e.reason },
  };
}

/** The record of a guest reboot. */
export function rebootVmEvent(domain: DomainRef, time = now()): VmEvent {
  return { time, vm: domain.name, type: "reboot", event: "Rebooted", detail: "", data: {} };
}

/** The record of a block job's end (or readiness to pivot). */
export function blockJobVmEvent(e: DomainBlockJobEvent, time = now()): VmEvent {
  return {
    time,
    vm: e.domain.name,
    type: "block-job",
    event: BLOCK_JOB_STATUS[e.status] ?? `BlockJobStatus${e.status}`,
    detail: `${e.disk} ${BLOCK_JOB_TYPES[e.type] ?? `job type ${e.type}`}`,
    data: { disk: e.disk, jobType: e.type, status: e.status },
  };
}

/** The record of a disk whose source changed or was dropped. */
export function diskChangeVmEvent(e: DomainDiskChangeEvent, time = now()): VmEvent {
  const from = e.oldSrcPath ?? "(none)";
  const to = e.newSrcPath ?? "(none)";
  return {
    time,
    vm: e.domain.name,
    type: "disk-change",
    event: "DiskChanged",
    detail: `${e.devAlias} ${from} -> ${to} (${
      DISK_CHANGE_REASONS[e.reason] ?? `reason ${e.reason}`
    })`,
    data: {
      devAlias: e.devAlias,
      oldSrcPath: e.oldSrcPath,
      newSrcPath: e.newSrcPath,
      reason: e.reason,
    },
  };
}

/** The record of a device unplugged from the guest. */
export function deviceRemovedVmEvent(e: DomainDeviceRemovedEvent, time = now()): VmEvent {
  return {
    time,
    vm: e.domain.name,
    type: "device-removed",
    event: "DeviceRemoved",
    detail: e.devAlias,
    data: { devAlias: e.devAlias },
  };
}

/** Events a watch holds for a reader that falls behind, by default. */
export const DEFAULT_EVENT_QUEUE = 1024;

/**
 * A bounded first-in first-out queue of events between the daemon (which never waits) and a
 * reader (which may). When it is full the OLDEST event is dropped to make room, and the reader's
 * next event is a `dropped` record (`EventsDropped`, `data.count`) saying how many were lost, so
 * a slow reader sees the newest state and knows it missed some.
 */
export class EventQueue {
  readonly #max: number;
  #items: VmEvent[] = [];
  #dropped = 0;
  #waiter: ((v: void) => void) | null = null;
  #ended = false;
  #error: Error | undefined;

  /** A queue of at most `max` (>= 1) events. */
  constructor(max: number = DEFAULT_EVENT_QUEUE) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Event queue size must be a positive integer, got ${max}`);
    }
    this.#max = max;
  }

  /** Events lost to overflow not yet reported to the reader. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Adds an event (dropping the oldest when full); ignored after {@linkcode close}. */
  push(e: VmEvent): void {
    if (this.#ended) return;
    if (this.#items.length >= this.#max) {
      this.#items.shift();
      this.#dropped++;
    }
    this.#items.push(e);
    this.#wake();
  }

  /** Ends the queue: the reader gets what is queued, then the end (or `error`, when given). */
  close(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** The next event, waiting for one; undefined once the queue is closed and empty. */
  async next(): Promise<VmEvent | undefined> {
    while (true) {
      if (this.#dropped > 0) {
        const count = this.#dropped;
        this.#dropped = 0;
        return {
          time: now(),
          vm: "",
          type: "dropped",
          event: "EventsDropped",
          detail: `${count} events dropped: the reader fell behind`,
          data: { count },
        };
      }
      const e = this.#items.shift();
      if (e) return e;
      if (this.#ended) {
        if (this.#error) throw this.#error;
        return undefined;
      }
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
  }
}

/** Options of {@linkcode watchEvents}. */
export interface WatchEventsOptions {
  /** Only this domain's events (by name); every domain's when unset. */
  domain?: string;
  /** Ends the stream (the iterator returns; nothing is thrown). */
  signal?: AbortSignal;
  /** Events held for a slow reader (default {@linkcode DEFAULT_EVENT_QUEUE}); see {@linkcode EventQueue}. */
  maxQueue?: number;
  /** Called once every subscription is registered on the daemon: events from now on are seen. */
  onReady?: () => void;
}

/**
 * Streams the daemon's events of one domain (`domain`) or of all, as {@linkcode VmEvent}s, until
 * `signal` aborts or the loop breaks; every subscription is then deregistered. An unknown domain
 * is a {@linkcode VmNotFoundError}; a connection that ends throws its error from the iterator.
 * Events go through a bounded {@linkcode EventQueue}: a reader that falls behind by more than
 * `maxQueue` events loses the oldest ones and is told so by an `EventsDropped` record.
 */
export async function* watchEvents(
  lv: Libvirt,
  opts: WatchEventsOptions = {},
): AsyncGenerator<VmEvent, void, undefined> {
  const signal = opts.signal;
  if (signal?.aborted) return;
  let domain: DomainRef | null = null;
  if (opts.domain !== undefined) {
    try {
      domain = await lv.domainLookupByName(opts.domain);
    } catch (e) {
      if (e instanceof LibvirtError && e.isNoDomain()) {
        throw new VmNotFoundError(opts.domain, { cause: e });
      }
      throw e;
    }
  }
  const queue = new EventQueue(opts.maxQueue);
  const offClose = lv.rpc.onClose((err) => queue.close(err));
  const onAbort = () => queue.close();
  signal?.addEventListener("abort", onAbort, { once: true });
  const subs: EventSubscription[] = [];
  try {
    const push = (e: VmEvent) => queue.push(e);
    const subscribe = async (sub: Promise<EventSubscription>) => subs.push(await sub);
    try {
      await subscribe(lv.onDomainLifecycle(domain, (e) => push(lifecycleVmEvent(e))));
      await subscribe(lv.onAgentLifecycle(domain, (e) => push(agentVmEvent(e))));
      await subscribe(
        subscribeDomainEvent(lv, "reboot", domain, (e) => push(rebootVmEvent(e.domain))),
      );
      await subscribe(
        subscribeDomainEvent(lv, "blockJob", domain, (e) => push(blockJobVmEvent(e))),
      );
      await subscribe(
        subscribeDomainEvent(lv, "diskChange", domain, (e) => push(diskChangeVmEvent(e))),
      );
      await subscribe(
        subscribeDomainEvent(lv, "deviceRemoved", domain, (e) => push(deviceRemovedVmEvent(e))),
      );
    } catch (e) {
      // Stopped while subscribing: the stream ends as it would a moment later.
      if (signal?.aborted) return;
      throw e;
    }
    opts.onReady?.();
    while (true) {
      const e = await queue.next();
      if (e === undefined) return;
      yield e;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    offClose();
    await Promise.all(subs.map((s) => s.close().catch(() => {})));
  }
}
