/**
 * Progress of a long transfer (image import and pull): on a terminal one line redrawn in place with a
 * bar, bytes, rate and ETA; elsewhere (logs, CI, pipes) a plain line every tenth of the way, or every
 * few seconds when the total is unknown.
 *
 * @example
 * ```ts
 * import { createProgress } from "./progress.ts";
 * const p = createProgress({
 *   label: "fedora-43.qcow2",
 *   total: 4096,
 *   isTerminal: Deno.stderr.isTerminal(),
 *   write: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)),
 * });
 * p.update(1024);
 * p.update(4096);
 * p.done();
 * ```
 * @module
 */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Bytes in binary units with one decimal from KiB on, e.g. `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

/** Seconds as `1h02m03s`, `2m05s` or `7s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h${pad(m)}m${pad(sec)}s`;
  if (m > 0) return `${m}m${pad(sec)}s`;
  return `${sec}s`;
}

/** Where and how a {@link Progress} reports. */
export interface ProgressOptions {
  /** What is transferred, e.g. the image name. */
  label: string;
  /** Total bytes, when known. */
  total?: number | undefined;
  /** Redraw one line in place (a terminal) instead of printing plain lines. */
  isTerminal: boolean;
  /** Writes text (usually to stderr, so stdout stays parseable). */
  write: (s: string) => void;
  /** Clock in milliseconds; `performance.now` by default (tests pass their own). */
  now?: () => number;
  /** Width of the bar in characters on a terminal (default 24). */
  barWidth?: number;
}

/** A running progress report. */
export interface Progress {
  /** Reports that `bytes` bytes in all have been transferred. */
  update(bytes: number): void;
  /** Ends the report with a final line (size, time and average rate). */
  done(): void;
  /** Ends the report without the summary (the transfer failed); clears a terminal line. */
  fail(): void;
}

/** Starts a progress report; see {@link ProgressOptions}. */
export function createProgress(opts: ProgressOptions): Progress {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const total = opts.total !== undefined && opts.total > 0 ? opts.total : undefined;
  const width = opts.barWidth ?? 24;
  let last = 0;
  let lastDraw = -Infinity;
  let nextTenth = 1;
  let drawn = false;
  let finished = false;

  const rate = (bytes: number, t: number) => {
    const secs = (t - start) / 1000;
    return secs > 0 ? bytes / secs : 0;
  };

  const line = (bytes: number, t: number): string => {
    const r = rate(bytes, t);
    const parts = [opts.label];
    if (total !== undefined) {
      const frac = Math.min(1, bytes / total);
      if (opts.isTerminal) {
        const full = Math.round(frac * width);
        parts.push(`[${"#".repeat(full)}${"-".repeat(width - full)}]`);
      }
      parts.push(`${Math.floor(frac * 100)}%`.padStart(4));
      parts.push(`${formatBytes(bytes)}/${formatBytes(total)}`);
    } else parts.push(formatBytes(bytes));
    parts.push(`${formatBytes(r)}/s`);
    if (total !== undefined) {
      parts.push(`ETA ${r > 0 ? formatDuration((total - bytes) / r) : "--"}`);
    }
    return parts.join("  ");
  };

  return {
    update(bytes) {
      if (finished) return;
      last = bytes;
      const t = now();
      if (opts.isTerminal) {
        if (t - lastDraw < 100) return;
        lastDraw = t;
        opts.write(`\r\x1b[2K${line(bytes, t)}`);
        drawn = true;
        return;
      }
      if (total !== undefined) {
        const tenth = Math.floor((bytes / total) * 10);
        if (tenth >= nextTenth && tenth < 10) {
          nextTenth = tenth + 1;
          opts.write(`${line(bytes, t)}\n`);
        }
      } else if (t - lastDraw >= 5000) {
        if (lastDraw !== -Infinity) opts.write(`${line(bytes, t)}\n`);
        lastDraw = t;
      }
    },
    done() {
      if (finished) return;
      finished = true;
      const t = now();
      const summary =
        `${opts.label}  ${formatBytes(last)} in ${formatDuration((t - start) / 1000)}` +
        `  ${formatBytes(rate(last, t))}/s`;
      opts.write(`${opts.isTerminal && drawn ? "\r\x1b[2K" : ""}${summary}\n`);
    },
    fail() {
      if (finished) return;
      finished = true;
      if (opts.isTerminal && drawn) opts.write("\r\x1b[2K");
    },
  };
}
