/**
 * Interrupts, shared by every command of both executables: the first SIGINT, SIGTERM or SIGHUP
 * aborts the run's signal (read-only calls in flight reject, changing ones settle, and the
 * operation undoes what it made); a second
 * one exits at once with code 130. {@linkcode runProgram} opens the scope around each command;
 * commands take its signal with {@linkcode interruptSignal}.
 * @module
 */
import { InterruptedError } from "../lib/libvirt/errors.ts";

/** Exit code after an interrupt (128 + SIGINT), whichever signal it was. */
export const EXIT_INTERRUPTED = 130;

/** The signals that interrupt a command. */
export const INTERRUPT_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** One run's view of interrupts. */
export interface InterruptScope {
  /** Aborts on the first interrupt, with an {@linkcode InterruptedError} as its reason. */
  readonly signal: AbortSignal;
  /** The first signal received (`SIGINT`, ...), or undefined. */
  readonly received: string | undefined;
  /** Stops listening (the outermost scope removes the process's signal handlers). */
  dispose(): void;
}

/** Options of {@linkcode openInterruptScope}. */
export interface InterruptScopeOptions {
  /** Where the notices go (stderr). */
  err: (s: string) => void;
  /** Ends the process on a second interrupt (default `Deno.exit`). */
  exit?: (code: number) => void;
}

interface Root {
  ctl: AbortController;
  received: string | undefined;
  count: number;
  refs: number;
  remove: () => void;
}

let root: Root | null = null;

function listen(opts: InterruptScopeOptions): Root {
  const r: Root = {
    ctl: new AbortController(),
    received: undefined,
    count: 0,
    refs: 0,
    remove: () => {},
  };
  const exit = opts.exit ?? ((code: number) => Deno.exit(code));
  const handlers: [Deno.Signal, () => void][] = [];
  for (const sig of INTERRUPT_SIGNALS) {
    const handler = () => {
      r.count++;
      if (r.count === 1) {
        r.received = sig;
        opts.err(
          `\nInterrupted by ${sig}: stopping and undoing what was started; interrupt again to exit at once\n`,
        );
        r.ctl.abort(new InterruptedError(`Interrupted by ${sig}`, { signalName: sig }));
      } else {
        opts.err(
          `Interrupted again (${sig}): exiting at once; what was not yet undone is left as it is\n`,
        );
        exit(EXIT_INTERRUPTED);
      }
    };
    try {
      Deno.addSignalListener(sig, handler);
      handlers.push([sig, handler]);
    } catch { /* this platform lacks the signal (Windows has only SIGINT and SIGBREAK) */ }
  }
  r.remove = () => {
    for (const [sig, handler] of handlers) {
      try {
        Deno.removeSignalListener(sig, handler);
      } catch { /* already removed */ }
    }
  };
  return r;
}

/**
 * Starts handling interrupts until `dispose()`. Scopes nest: an inner one shares the outer one's
 * signal and handlers, so one Ctrl-C reaches every part of a run.
 */
export function openInterruptScope(opts: InterruptScopeOptions): InterruptScope {
  const r = root ??= listen(opts);
  r.refs++;
  let disposed = false;
  return {
    signal: r.ctl.signal,
    get received() {
      return r.received;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      if (--r.refs === 0) {
        r.remove();
        if (root === r) root = null;
      }
    },
  };
}

/**
 * The signal of the run in progress, which aborts on the first interrupt; undefined outside
 * {@linkcode runProgram} (a command module used as a library).
 */
export function interruptSignal(): AbortSignal | undefined {
  return root?.ctl.signal;
}

/** `{ signal }` of the run in progress, to spread into options (`withFoundryAudit`'s, ...). */
export function signalOption(): { signal?: AbortSignal } {
  const signal = interruptSignal();
  return signal ? { signal } : {};
}
