/**
 * Reading a libvirt guest's result lines: live from its serial console (the domain's console
 * stream), else the tail of {@linkcode RESULTS_FILE} through the guest agent.
 * @module
 */
import type { DomainRef, Libvirt } from "../../libvirt/mod.ts";
import { guestReadFileTail } from "../../foundry/agent.ts";
import {
  parseResultLine,
  ResultLineSplitter,
  RESULTS_FILE,
  type ResultSample,
} from "../results.ts";

/** Bytes of the results file's tail read through the agent. */
export const RESULTS_TAIL_BYTES = 65536;

/** Most console bytes read from one guest in one collection; the rest is not read. */
export const CONSOLE_MAX_BYTES = 16 * 1024 * 1024;

/** Where a VM's latest sample came from. */
export type ResultSource = "console" | "agent";

/** The console part of `Libvirt` this module uses (lib/libvirt's console stream). */
interface ConsoleLike {
  readonly readable: ReadableStream<Uint8Array>;
  close(): Promise<void>;
}
type OpenConsole = (
  domain: DomainRef,
  opts: { signal?: AbortSignal; maxBufferedBytes?: number },
) => Promise<ConsoleLike>;

/** lib/libvirt's console opener, when this version of it has one. */
export function consoleOpener(lv: Libvirt): OpenConsole | undefined {
  const open = (lv as unknown as { openConsole?: OpenConsole }).openConsole;
  return typeof open === "function" ? open.bind(lv) : undefined;
}

/**
 * Reads `domain`'s console for `durationMs` (or until `signal` aborts) and calls `onSample` for
 * each result line. Resolves false when the console cannot be opened (busy, unsupported), true
 * after reading.
 */
export async function readConsoleSamples(
  lv: Libvirt,
  domain: DomainRef,
  durationMs: number,
  onSample: (s: ResultSample) => void,
  signal?: AbortSignal,
): Promise<boolean> {
  const open = consoleOpener(lv);
  if (!open) return false;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), Math.max(0, durationMs));
  const onAbort = () => stop.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  let con: ConsoleLike;
  try {
    con = await open(domain, { signal: stop.signal, maxBufferedBytes: 256 * 1024 });
  } catch {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    return false;
  }
  const reader = con.readable.getReader();
  // Stopping cancels the stream: a pending read then ends with `done`, never left dangling.
  const cancel = () => void reader.cancel().catch(() => {});
  if (stop.signal.aborted) cancel();
  else stop.signal.addEventListener("abort", cancel, { once: true });
  const splitter = new ResultLineSplitter();
  let bytes = 0;
  try {
    while (bytes < CONSOLE_MAX_BYTES) {
      const r = await reader.read();
      if (r.done) break;
      bytes += r.value.length;
      for (const s of splitter.push(r.value)) onSample(s);
    }
  } catch {
    // The console ended (domain stopped, taken over): what was read stands.
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    stop.signal.removeEventListener("abort", cancel);
    await reader.cancel().catch(() => {});
    await con.close().catch(() => {});
  }
  return true;
}

/** The last result line of the guest's results file, through the agent; undefined when none. */
export async function readAgentSample(
  lv: Libvirt,
  domain: DomainRef,
  signal?: AbortSignal,
): Promise<ResultSample | undefined> {
  const text = await guestReadFileTail(lv, domain, RESULTS_FILE, {
    maxBytes: RESULTS_TAIL_BYTES,
    timeoutMs: 15_000,
    ...(signal ? { signal } : {}),
  });
  const lines = text.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const s = parseResultLine(lines[i]!.replace(/\r$/, ""));
    if (s) return s;
  }
  return undefined;
}
