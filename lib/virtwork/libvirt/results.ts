/**
 * Reading a libvirt guest's result lines: live from its serial console (the domain's console
 * stream), else the tail of {@linkcode RESULTS_FILE} through the guest agent.
 * @module
 */
import type { DomainRef, Libvirt } from "../../libvirt/mod.ts";
import { guestReadFileTail } from "../../foundry/agent.ts";
import { CONSOLE_MAX_BYTES, readDomainResults } from "../console_results.ts";
import { parseResultLine, RESULTS_FILE, type ResultSample } from "../results.ts";

/** Bytes of the results file's tail read through the agent. */
export const RESULTS_TAIL_BYTES = 65536;

/** Most console bytes read from one guest in one collection; the rest is not read. */
export { CONSOLE_MAX_BYTES };

/** Where a VM's latest sample came from. */
export type ResultSource = "console" | "agent";

/**
 * Reads `domain`'s console for `durationMs` (or until `signal` aborts) and calls `onSample` for
 * each result line: console_results.ts's reader, the one both backends use. Resolves false when
 * the console cannot be opened (busy, not running), true after reading; an abort ends the read
 * and keeps what was seen.
 */
export async function readConsoleSamples(
  lv: Libvirt,
  domain: DomainRef,
  durationMs: number,
  onSample: (s: ResultSample) => void,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    await readDomainResults(lv, domain, durationMs, { onSample, ...(signal ? { signal } : {}) });
    return true;
  } catch {
    // Only opening fails (a read that fails keeps what it saw), or the abort ends the read.
    return signal?.aborted ?? false;
  }
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
