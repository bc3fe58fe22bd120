/**
 * Collecting the result lines a guest writes to its serial console (see `results.ts`), from any
 * console byte stream: libvirt's domain console or KubeVirt's console subresource. Bounded in
 * time, bytes and samples.
 *
 * @example
 * ```ts
 * import { readDomainResults } from "./console_results.ts";
 * import { Libvirt } from "../libvirt/mod.ts";
 * const lv = await Libvirt.connect();
 * const samples = await readDomainResults(lv, await lv.domainLookupByName("virtwork-cpu-1"), 30_000);
 * ```
 * @module
 */
import { ResultLineSplitter, type ResultSample } from "./results.ts";

export type { ResultSample };

/** Most console bytes read in one collection; reading stops there. */
export const CONSOLE_MAX_BYTES = 16 * 1024 * 1024;

/** Most samples kept from one collection; later ones replace the oldest. */
export const CONSOLE_MAX_SAMPLES = 4096;

/** Bounds and callbacks of a collection. */
export interface CollectOptions {
  /** Stops reading and rejects with the signal's reason (or the reader's interrupt error). */
  signal?: AbortSignal;
  /** Called for each sample as it arrives. */
  onSample?: (sample: ResultSample) => void;
  /** Most bytes read (default {@linkcode CONSOLE_MAX_BYTES}). */
  maxBytes?: number;
  /** Most samples kept, the latest (default {@linkcode CONSOLE_MAX_SAMPLES}). */
  maxSamples?: number;
  /** Stop as soon as this many samples were read (e.g. 1: the first figure is enough). */
  stopAfterSamples?: number;
}

/**
 * How a collection ended: time up, byte bound reached, `stopAfterSamples` reached, console
 * ended, or console failed.
 */
export type CollectEnd = "duration" | "maxBytes" | "samples" | "ended" | "error";

/** A console to collect from: its bytes, and how to let it go. */
export interface ConsoleSource {
  /** The guest's console output. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Releases the console. */
  close(): Promise<void>;
}

/**
 * Reads `source` for `durationMs`, until `maxBytes` were read, or until the console ends
 * (domain stopped) or fails (taken over by another client: `end` "error" with the `error`), and
 * returns the result samples seen, oldest first; closes the source in every case. An abort of
 * `signal` rejects with its reason.
 */
export async function collectConsoleResults(
  source: ConsoleSource,
  durationMs: number,
  opts: CollectOptions = {},
): Promise<{ samples: ResultSample[]; end: CollectEnd; bytes: number; error?: unknown }> {
  const { signal, onSample } = opts;
  const maxBytes = opts.maxBytes ?? CONSOLE_MAX_BYTES;
  const maxSamples = Math.max(1, opts.maxSamples ?? CONSOLE_MAX_SAMPLES);
  const reader = source.readable.getReader();
  let end: CollectEnd = "ended";
  // Ending the duration cancels the stream: a pending read then ends with `done` and the console
  // is finished cleanly (no abort).
  const timer = setTimeout(() => {
    end = "duration";
    reader.cancel().catch(() => {});
  }, Math.max(0, durationMs));
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    reader.cancel().catch(() => {});
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  const splitter = new ResultLineSplitter();
  const samples: ResultSample[] = [];
  let bytes = 0;
  let count = 0;
  let error: unknown;
  try {
    while (!aborted) {
      const r = await reader.read();
      if (r.done) break;
      bytes += r.value.length;
      for (const s of splitter.push(r.value)) {
        if (samples.length >= maxSamples) samples.shift();
        samples.push(s);
        count++;
        onSample?.(s);
      }
      if (opts.stopAfterSamples !== undefined && count >= opts.stopAfterSamples) {
        end = "samples";
        break;
      }
      if (bytes >= maxBytes) {
        end = "maxBytes";
        break;
      }
    }
  } catch (err) {
    if (!aborted) {
      end = "error";
      error = err;
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
    await source.close().catch(() => {});
  }
  if (aborted) throw signal!.reason;
  return end === "error" ? { samples, end, bytes, error } : { samples, end, bytes };
}

/** The console-opening part of lib/libvirt's `Libvirt` (no import: lib/virtwork stays backend-free). */
export interface DomainConsoleOpener<D> {
  /** Opens the domain's console (lib/libvirt `Libvirt.openConsole`). */
  openConsole(
    domain: D,
    opts: { force?: boolean; device?: string; maxBufferedBytes?: number },
  ): Promise<ConsoleSource>;
}

/** Options of {@linkcode readDomainResults}. */
export interface DomainResultsOptions extends CollectOptions {
  /** Take the console over from another client (`virsh console`) instead of failing. */
  force?: boolean;
  /** Console device alias (default the first console). */
  device?: string;
}

/**
 * Reads the result lines of a libvirt domain's console for `durationMs` and returns them, oldest
 * first. Opening fails with lib/libvirt's `LibvirtError` (not running, console held by another
 * client without `force`); a console that ends or fails after opening returns what was read.
 */
export async function readDomainResults<D>(
  lv: DomainConsoleOpener<D>,
  domain: D,
  durationMs: number,
  opts: DomainResultsOptions = {},
): Promise<ResultSample[]> {
  if (opts.signal?.aborted) throw opts.signal.reason;
  const con = await lv.openConsole(domain, {
    maxBufferedBytes: 256 * 1024,
    ...(opts.force ? { force: true } : {}),
    ...(opts.device !== undefined ? { device: opts.device } : {}),
  });
  return (await collectConsoleResults(con, durationMs, opts)).samples;
}
