/**
 * A fleet of libvirt hosts (issue 16): which hosts a command works on (`--host NAME[,NAME]`,
 * `--host all`, `--host-selector LABELS`), one pooled connection per host that every operation of
 * the command reuses, and a fan-out with bounded parallelism whose result is one
 * {@linkcode HostOutcome} per host. An unreachable host fails on its own, quickly (a connect
 * timeout covers the dial and libvirt's handshake, ssh included), and never stops the others.
 *
 * This module loads no libvirt client code until a host is connected, so that a single-host
 * command that never asks for a fleet pays nothing for it.
 *
 * @example
 * ```ts
 * import { fanOut, HostPool, selectHosts } from "./fleet.ts";
 * const hosts = selectHosts(
 *   [{ name: "a", uri: "qemu:///system" }, { name: "b", uri: "qemu+ssh://root@b/system" }],
 *   { host: "all" },
 * );
 * const pool = new HostPool({ connectTimeoutMs: 5000 });
 * try {
 *   const outcomes = await fanOut(hosts, 4, pool, (_host, lv) => lv.getLibVersion());
 *   for (const o of outcomes) console.log(o.host, o.ok ? o.value : o.error.message);
 * } finally {
 *   await pool.closeAll();
 * }
 * ```
 * @module
 */
import { matchesSelector, parseLabelSelector } from "../config/selector.ts";
import type { Libvirt } from "../libvirt/client.ts";
import { ConnectionError } from "../libvirt/errors.ts";
import { EXIT_PARTIAL, type HostEntry, type HostOutcome } from "./fleet_types.ts";

export { EXIT_PARTIAL };
export type { HostEntry, HostOutcome };

/** Hosts worked on at once unless the caller says otherwise. */
export const DEFAULT_PARALLEL = 4;
/** The most hosts worked on at once. */
export const MAX_PARALLEL = 64;
/** How long a host may take to connect (dial and handshake) before it counts as unreachable. */
export const HOST_CONNECT_TIMEOUT_MS = 10_000;

/** Which hosts to work on: by name, by label selector, or both. */
export interface HostSelection {
  /** `NAME[,NAME...]` or `all`. */
  host?: string;
  /** A Kubernetes label selector over the hosts' labels. */
  hostSelector?: string;
}

/**
 * What is wrong with a host selection: no `hosts:` list to choose from, a host list that names no
 * host, names that are not configured, or a selector that matches no host.
 */
export type HostSelectionProblem = "noHostsList" | "noNames" | "unknownHosts" | "noMatch";

/** A host selection that names no configured host, or hosts without a `hosts:` list. */
export class HostSelectionError extends Error {
  /** What is wrong (the CLI words it with its flags). */
  readonly problem: HostSelectionProblem;
  /** The selection's `hostSelector` (at most 200 characters), when nothing matched it. */
  readonly hostSelector: string | undefined;
  /** Creates the error. */
  constructor(problem: HostSelectionProblem, message: string, hostSelector?: string) {
    super(message);
    this.name = "HostSelectionError";
    this.problem = problem;
    this.hostSelector = hostSelector;
  }
}

/** Whether `sel` asks for a fleet at all (else the single connection works as always). */
export function wantsFleet(sel: HostSelection): boolean {
  return sel.host !== undefined || sel.hostSelector !== undefined;
}

/**
 * The configured hosts `sel` names, in the configuration's order: `--host all` (or no `--host`
 * with a selector) starts from every host, `--host a,b` from those; `--host-selector` keeps the
 * ones whose labels match.
 *
 * @throws {HostSelectionError} without a `hosts:` list, for an unknown name, or when nothing is left
 * @throws {LabelSelectorError} for a bad selector
 */
export function selectHosts(
  hosts: readonly HostEntry[] | undefined,
  sel: HostSelection,
): HostEntry[] {
  if (!hosts || hosts.length === 0) {
    throw new HostSelectionError(
      "noHostsList",
      "Choosing hosts needs a hosts: list in the configuration file (see 'Fleets of hosts' in the README)",
    );
  }
  let chosen: HostEntry[];
  const spec = sel.host?.trim();
  if (spec === undefined || spec === "all") chosen = [...hosts];
  else {
    const names = [...new Set(spec.split(",").map((n) => n.trim()).filter((n) => n !== ""))];
    if (names.length === 0) {
      throw new HostSelectionError("noNames", "The host list needs NAME[,NAME...] or all");
    }
    const unknown = names.filter((n) => !hosts.some((h) => h.name === n));
    if (unknown.length > 0) {
      throw new HostSelectionError(
        "unknownHosts",
        `Unknown host${unknown.length > 1 ? "s" : ""} ${
          unknown.map((n) => `'${n.slice(0, 64)}'`).join(", ")
        }: configured hosts are ${hosts.map((h) => h.name).join(", ")}`,
      );
    }
    chosen = hosts.filter((h) => names.includes(h.name));
  }
  if (sel.hostSelector !== undefined) {
    const selector = parseLabelSelector(sel.hostSelector);
    chosen = chosen.filter((h) => matchesSelector(selector, h.labels ?? {}));
    if (chosen.length === 0) {
      const shown = sel.hostSelector.slice(0, 200);
      throw new HostSelectionError(
        "noMatch",
        `No configured host matches the host selector ${shown}`,
        shown,
      );
    }
  }
  return chosen;
}

/**
 * Parses how many hosts to work on at once, `N` from 1 to {@linkcode MAX_PARALLEL}; undefined
 * gives the default.
 * @throws {RangeError} for anything else
 */
export function parseParallel(text: string | undefined): number {
  if (text === undefined) return DEFAULT_PARALLEL;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1 || n > MAX_PARALLEL) {
    throw new RangeError(
      `Invalid number of hosts at once '${
        text.slice(0, 20)
      }': expected a whole number from 1 to ${MAX_PARALLEL}`,
    );
  }
  return n;
}

/** Options of {@linkcode HostPool}. */
export interface HostPoolOptions {
  /** Per-host limit on dial plus handshake (default {@linkcode HOST_CONNECT_TIMEOUT_MS}). */
  connectTimeoutMs?: number;
  /** Ctrl-C: aborts connecting and, later, the calls in flight (see `Libvirt.connect`). */
  signal?: AbortSignal;
  /** Opens a connection (tests); `Libvirt.connect` by default. */
  connect?: (uri: string, opts: { signal: AbortSignal }) => Promise<Libvirt>;
}

/**
 * One connection per host, opened on first use and shared by every operation of a command;
 * a host that failed to connect keeps its error (it is not tried again within the command).
 */
export class HostPool {
  readonly #opts: HostPoolOptions;
  readonly #conns = new Map<string, Promise<Libvirt>>();

  /** Creates an empty pool. */
  constructor(opts: HostPoolOptions = {}) {
    this.#opts = opts;
  }

  /** The connection to `host`, opened now if it is not yet. */
  get(host: HostEntry): Promise<Libvirt> {
    let c = this.#conns.get(host.name);
    if (!c) {
      c = this.#open(host);
      c.catch(() => {}); // a failed host is reported by its caller
      this.#conns.set(host.name, c);
    }
    return c;
  }

  async #open(host: HostEntry): Promise<Libvirt> {
    const timeoutMs = this.#opts.connectTimeoutMs ?? HOST_CONNECT_TIMEOUT_MS;
    const timer = new AbortController();
    const id = setTimeout(() => timer.abort(), timeoutMs);
    const outer = this.#opts.signal;
    const signal = outer ? AbortSignal.any([outer, timer.signal]) : timer.signal;
    try {
      const connect = this.#opts.connect ??
        (async (uri: string, o: { signal: AbortSignal }) => {
          const { Libvirt } = await import("../libvirt/client.ts");
          return Libvirt.connect(uri, { ...o, connectTimeoutMs: timeoutMs });
        });
      return await connect(host.uri, { signal });
    } catch (e) {
      if (timer.signal.aborted && !outer?.aborted) {
        throw new ConnectionError(
          `no answer from ${host.uri} within ${timeoutMs / 1000} s`,
          host.uri,
          { cause: e },
        );
      }
      throw e;
    } finally {
      clearTimeout(id);
    }
  }

  /** Closes every connection that was opened (best effort, all at once). */
  async closeAll(): Promise<void> {
    const conns = [...this.#conns.values()];
    this.#conns.clear();
    await Promise.all(conns.map((c) => c.then((lv) => lv.close(), () => {}).catch(() => {})));
  }
}

/**
 * Runs `fn` for each host with its pooled connection, at most `parallel` hosts at a time; a host
 * that cannot be connected or whose `fn` throws gives a failed outcome and the others go on.
 * Outcomes come back in the order of `hosts`.
 */
export async function fanOut<T>(
  hosts: readonly HostEntry[],
  parallel: number,
  pool: HostPool,
  fn: (host: HostEntry, lv: Libvirt) => Promise<T>,
): Promise<HostOutcome<T>[]> {
  const out = new Array<HostOutcome<T>>(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      const host = hosts[i]!;
      try {
        const lv = await pool.get(host);
        out[i] = { host: host.name, ok: true, value: await fn(host, lv) };
      } catch (e) {
        out[i] = {
          host: host.name,
          ok: false,
          error: e instanceof Error ? e : new Error(String(e)),
        };
      }
    }
  };
  const n = Math.max(1, Math.min(parallel, hosts.length));
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/** How a fan-out went: `partial` when some hosts failed and others did not. */
export function outcomeSummary(outcomes: readonly HostOutcome<unknown>[]): {
  ok: string[];
  failed: string[];
  partial: boolean;
} {
  const ok = outcomes.filter((o) => o.ok).map((o) => o.host);
  const failed = outcomes.filter((o) => !o.ok).map((o) => o.host);
  return { ok, failed, partial: ok.length > 0 && failed.length > 0 };
}
