/**
 * Live status lines for long waits in both executables, on top of `lib/output/status_line.ts`:
 * colour only on a terminal and never with `NO_COLOR` (or `TERM=dumb`).
 * @module
 */
import { createStatusLine, type StatusLine } from "../lib/output/status_line.ts";
import { paint, useColor } from "../lib/output/format.ts";

export type { StatusLine } from "../lib/output/status_line.ts";

/** Where a status line goes and what decides its look. */
export interface StatusLineTarget {
  /** Writes text (the stream the stage lines go to). */
  write: (s: string) => void;
  /** Whether that stream is a terminal. */
  isTerminal: boolean;
  /** Environment lookup (`NO_COLOR`, `TERM`). */
  env: (name: string) => string | undefined;
  /** The wait's limit in seconds, shown on the live line. */
  timeoutSeconds?: number | undefined;
}

/** Whether colour is allowed on `t`. */
export function colorAllowed(t: Pick<StatusLineTarget, "isTerminal" | "env">): boolean {
  return useColor({
    isTerminal: t.isTerminal,
    env: { NO_COLOR: t.env("NO_COLOR"), TERM: t.env("TERM") },
  });
}

/** Starts a status line on `t`. */
export function openStatusLine(t: StatusLineTarget): StatusLine {
  return createStatusLine({
    isTerminal: t.isTerminal,
    color: colorAllowed(t),
    write: t.write,
    timeoutSeconds: t.timeoutSeconds,
  });
}

/** A stage line: `✓ text` on a terminal (a green tick with colour), `ok text` otherwise. */
export function stageLine(t: Pick<StatusLineTarget, "isTerminal" | "env">, text: string): string {
  return t.isTerminal ? `${paint("✓", "green", colorAllowed(t))} ${text}` : `ok ${text}`;
}
