/**
 * `foundry events --host ...` (issue 16): the live events of every chosen host of a fleet merged
 * into one stream, each tagged with its host. Each host is watched over its pooled connection by
 * {@linkcode watchEvents} (with its own bounded queue); a host that cannot be reached, or whose
 * connection ends during the watch, becomes a `hostFailed` record and the others go on.
 *
 * @example
 * ```ts
 * import { HostPool } from "./fleet.ts";
 * import { watchFleetEvents } from "./fleet_events.ts";
 * const hosts = [{ name: "a", uri: "qemu:///system" }, { name: "b", uri: "qemu+ssh://root@b/system" }];
 * const pool = new HostPool();
 * const stop = new AbortController();
 * try {
 *   for await (const x of watchFleetEvents(pool, hosts, { signal: stop.signal })) {
 *     if (x.type === "event") console.log(x.host, x.event.vm, x.event.event);
 *     if (x.type === "hostFailed") console.error(x.host, x.error.message);
 *     if (x.type === "event" && x.event.event === "Started") stop.abort();
 *   }
 * } finally {
 *   await pool.closeAll();
 * }
 * ```
 * @module
 */
import { type VmEvent, watchEvents } from "./events.ts";
import type { HostPool } from "./fleet.ts";
import type { HostEntry } from "./fleet_types.ts";
import { VmNotFoundError } from "./vm_errors.ts";

/** One record of a fleet's event stream. */
export type FleetWatchItem =
  /** An event of one host. */
  | { type: "event"; host: string; event: VmEvent }
  /**
   * Once, when every host is watched or has failed: events from then on are seen. `without`:
   * hosts that lack the one VM asked for (not watched, not failed).
   */
  | { type: "watching"; hosts: string[]; without: string[] }
  /** A host could not be watched, or its watch ended with its connection. */
  | { type: "hostFailed"; host: string; error: Error };

/** Options of {@linkcode watchFleetEvents}. */
export interface WatchFleetEventsOptions {
  /** Only this VM's events (by name), on the hosts that have it. */
  domain?: string;
  /** Ends the stream (it returns; nothing is thrown, and hosts that stop are not failures). */
  signal?: AbortSignal;
  /** Events each host holds for a slow reader (see `EventQueue`). */
  maxQueue?: number;
}

interface HostWatch {
  host: HostEntry;
  events?: AsyncGenerator<VmEvent, void, undefined>;
  /** Subscribed, failed, lacking the VM or ended: counted in `watching`. */
  settled: boolean;
  subscribed: boolean;
}

type Step =
  | { w: HostWatch; result: IteratorResult<VmEvent, void> }
  | { w: HostWatch; error: Error };

/**
 * Streams the events of every host of `hosts` (connected through `pool`) as they arrive, until
 * `opts.signal` aborts, the loop breaks, or no host is left (each failed, or lacks `domain`).
 * Every host is watched at once; the reader pulls one event at a time from each host, so each
 * host's queue keeps its bound. The `watching` record comes first of all events: one that arrives
 * while another host still connects is held until then.
 */
export async function* watchFleetEvents(
  pool: HostPool,
  hosts: readonly HostEntry[],
  opts: WatchFleetEventsOptions = {},
): AsyncGenerator<FleetWatchItem, void, undefined> {
  // Ours aborts too when the reader stops early, which ends each host's pending read.
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const watches: HostWatch[] = hosts.map((host) => ({ host, settled: false, subscribed: false }));
  let unsettled = watches.length;
  let allSettled!: () => void;
  const everySettled = new Promise<undefined>((resolve) => allSettled = () => resolve(undefined));
  const settle = (w: HostWatch) => {
    if (w.settled) return;
    w.settled = true;
    if (--unsettled === 0) allSettled();
  };
  if (unsettled === 0) allSettled();
  const pull = async (w: HostWatch): Promise<Step> => {
    try {
      if (!w.events) {
        const lv = await pool.get(w.host);
        w.events = watchEvents(lv, {
          signal,
          ...(opts.domain === undefined ? {} : { domain: opts.domain }),
          ...(opts.maxQueue === undefined ? {} : { maxQueue: opts.maxQueue }),
          onReady: () => {
            w.subscribed = true;
            settle(w);
          },
        });
      }
      return { w, result: await w.events.next() };
    } catch (e) {
      return { w, error: e instanceof Error ? e : new Error(String(e)) };
    }
  };
  const pending = new Map<HostWatch, Promise<Step>>(watches.map((w) => [w, pull(w)]));
  const watched = () => watches.filter((w) => w.subscribed).map((w) => w.host.name);
  const without: string[] = [];
  let announced = false;
  // Events that came before every host was settled: shown after `watching` (one per host).
  const held: { w: HostWatch; event: VmEvent }[] = [];
  try {
    while (pending.size > 0 || held.length > 0) {
      if (!announced && unsettled === 0) {
        announced = true;
        if (!signal.aborted) yield { type: "watching", hosts: watched(), without };
        for (const h of held.splice(0)) {
          pending.set(h.w, pull(h.w));
          yield { type: "event", host: h.w.host.name, event: h.event };
        }
        continue;
      }
      const step = await Promise.race(
        announced ? pending.values() : [...pending.values(), everySettled],
      );
      if (step === undefined) continue;
      const { w } = step;
      pending.delete(w);
      if ("error" in step) {
        const notHere = step.error instanceof VmNotFoundError && !w.subscribed;
        settle(w);
        if (notHere) without.push(w.host.name);
        else if (!signal.aborted) {
          yield { type: "hostFailed", host: w.host.name, error: step.error };
        }
        continue;
      }
      if (step.result.done) {
        settle(w);
        continue;
      }
      if (!announced) held.push({ w, event: step.result.value });
      else {
        pending.set(w, pull(w));
        yield { type: "event", host: w.host.name, event: step.result.value };
      }
    }
    if (!announced && !signal.aborted) yield { type: "watching", hosts: watched(), without };
  } finally {
    stop.abort();
    await Promise.all(watches.map((w) => w.events?.return(undefined).catch(() => {})));
  }
}
