/**
 * A live status line for long waits (`foundry wait`, destroy's grace period, `virtwork run`): on a
 * terminal one line redrawn in place with what is awaited, the time elapsed and the timeout, and
 * cleared at the end; elsewhere (pipes, logs, CI) only the lines that stay, one per stage.
 *
 * @example
 * ```ts
 * import { createStatusLine } from "./status_line.ts";
 * const s = createStatusLine({
 *   isTerminal: Deno.stderr.isTerminal(),
 *   color: false,
 *   timeoutSeconds: 600,
 *   write: (t) => Deno.stderr.writeSync(new TextEncoder().encode(t)),
 * });
 * s.status("waiting for agent");
 * s.line("ok agent after 3.2 s");
 * s.done();
 * ```
 * @module
 */
import { paint } from "./format.ts";
import { sanitizeText } from "./sanitize.ts";

/** Where and how a {@linkcode StatusLine} reports. */
export interface StatusLineOptions {
  /** Redraw one line in place (a terminal) instead of printing only the lines that stay. */
  isTerminal: boolean;
  /** Colour the live line (only honoured on a terminal; callers pass `useColor(...)`). */
  color: boolean;
  /** Writes text. */
  write: (s: string) => void;
  /** The wait's limit, shown as `timeout 600s`; omitted when undefined. */
  timeoutSeconds?: number | undefined;
  /** Clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /** How often a terminal line is redrawn to advance the elapsed time (default 1000 ms; 0: never). */
  redrawMs?: number;
}

/** A running status report. */
export interface StatusLine {
  /** Sets what the live line says (`ready 3/12, failed 0`), drawn at once on a terminal; "" hides it. */
  status(text: string): void;
  /** Prints a line that stays (a stage reached, a VM ready), above the live line on a terminal. */
  line(text: string): void;
  /** Clears the live line and stops redrawing; later calls print nothing more on the live line. */
  done(): void;
}

const CLEAR = "\r\x1b[2K";

/** `41s` from milliseconds, whole seconds. */
function seconds(ms: number): string {
  return `${Math.max(0, Math.floor(ms / 1000))}s`;
}

/** Starts a status report; see {@linkcode StatusLineOptions}. */
export function createStatusLine(opts: StatusLineOptions): StatusLine {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const color = opts.isTerminal && opts.color;
  let text = "";
  let drawn = false;
  let finished = false;
  let timer: ReturnType<typeof setInterval> | undefined;

  const render = () => {
    const limit = opts.timeoutSeconds === undefined
      ? ""
      : ` / timeout ${Math.round(opts.timeoutSeconds)}s`;
    const clock = `elapsed ${seconds(now() - start)}${limit}`;
    const what = sanitizeText(text, { singleLine: true });
    return `${paint(what, "bold", color)}, ${paint(clock, "dim", color)}`;
  };
  const draw = () => {
    if (finished || !opts.isTerminal || text === "") return;
    opts.write(`${CLEAR}${render()}`);
    drawn = true;
  };
  const clear = () => {
    if (drawn) opts.write(CLEAR);
    drawn = false;
  };

  if (opts.isTerminal && (opts.redrawMs ?? 1000) > 0) {
    const t = setInterval(draw, opts.redrawMs ?? 1000);
    Deno.unrefTimer(t);
    timer = t;
  }

  return {
    status(t) {
      text = t;
      if (t === "") clear();
      else draw();
    },
    line(t) {
      if (opts.isTerminal && !finished) {
        clear();
        opts.write(`${t}\n`);
        draw();
      } else opts.write(`${t}\n`);
    },
    done() {
      if (finished) return;
      clear();
      finished = true;
      if (timer !== undefined) clearInterval(timer);
    },
  };
}
