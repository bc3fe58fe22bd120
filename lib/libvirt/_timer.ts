/**
 * Timers that cost nothing when they never fire. In Deno the global `setTimeout` lives in a module
 * that is loaded the first time the global is read, about 4 ms of a process that only lists
 * domains (and 10 ms and more on a loaded machine), while `AbortSignal.timeout` is ready at once.
 * Most of this client's timers (connect timeouts, call deadlines, keepalive) are cancelled long
 * before they fire, so {@linkcode after} waits its first {@linkcode GRACE_MS} on an
 * `AbortSignal.timeout` and reads `setTimeout` only for what is left after that.
 *
 * The cost: an `AbortSignal.timeout` cannot be cancelled and keeps the event loop alive until it
 * fires, so a script that ends right after its last call may linger up to GRACE_MS.
 * @module
 */

/** How long the first stage of a timer may hold the event loop, ms. */
export const GRACE_MS = 50;

/** What {@linkcode after} returns: cancels the timer (a no-op once it fired). */
export type CancelTimer = () => void;

/**
 * Calls `fn` after `ms` milliseconds unless cancelled. With `unref`, the part after the first
 * {@linkcode GRACE_MS} does not keep the process alive (as `Deno.unrefTimer`).
 */
export function after(ms: number, fn: () => void, opts: { unref?: boolean } = {}): CancelTimer {
  let cancelled = false;
  let rest: ReturnType<typeof setTimeout> | undefined;
  const first = Math.max(0, Math.min(ms, GRACE_MS));
  AbortSignal.timeout(first).addEventListener("abort", () => {
    if (cancelled) return;
    const left = ms - first;
    if (left <= 0) return fn();
    const t = setTimeout(() => {
      rest = undefined;
      if (!cancelled) fn();
    }, left);
    rest = t;
    if (opts.unref) Deno.unrefTimer(t);
  }, { once: true });
  return () => {
    cancelled = true;
    if (rest !== undefined) clearTimeout(rest);
    rest = undefined;
  };
}
