/**
 * An interactive serial-console session: the guest's console output goes to the user, the user's
 * keys go to the guest, until the escape key (`Ctrl-]`), the end of the console, or an interrupt.
 * The terminal itself (raw mode) is the caller's business; this only moves bytes.
 * @module
 */
import type { DomainConsole } from "../libvirt/mod.ts";

/** The key that leaves a console session: `Ctrl-]` (0x1d), as virsh and telnet use. */
export const CONSOLE_ESCAPE = 0x1d;

/** Why a console session ended. */
export type ConsoleEnd =
  /** The user pressed the escape key. */
  | "escape"
  /** The console closed: the domain stopped. */
  | "ended"
  /** `signal` aborted (SIGINT, SIGTERM, SIGHUP from outside: in raw mode Ctrl-C goes to the guest). */
  | "interrupted";

/** Where a session's bytes come from and go to. */
export interface ConsoleSessionIo {
  /** The user's keys. Its end (a closed pipe) does not end the session: output keeps coming. */
  input: AsyncIterable<Uint8Array>;
  /** Shows the guest's output. */
  output: (bytes: Uint8Array) => Promise<void> | void;
  /** Ends the session as "interrupted". */
  signal?: AbortSignal;
  /** The escape byte (default {@linkcode CONSOLE_ESCAPE}). */
  escape?: number;
}

/**
 * Runs a console session on the open console `con` and releases it at the end (a clean finish,
 * never an abort: libvirt 9.0's daemon can deadlock when an abort races another client's forced
 * open of the same console). Resolves with why it ended; rejects with the console's error (another
 * client took it over with force, the connection ended).
 */
export async function runConsoleSession(
  con: DomainConsole,
  io: ConsoleSessionIo,
): Promise<ConsoleEnd> {
  const escape = io.escape ?? CONSOLE_ESCAPE;
  let finish!: (end: ConsoleEnd) => void;
  let fail!: (err: unknown) => void;
  let over = false;
  const ended = new Promise<ConsoleEnd>((resolve, reject) => {
    finish = (end) => {
      over = true;
      resolve(end);
    };
    fail = (err) => {
      over = true;
      reject(err);
    };
  });
  const reader = con.readable.getReader();
  const onAbort = () => finish("interrupted");
  if (io.signal?.aborted) onAbort();
  io.signal?.addEventListener("abort", onAbort, { once: true });

  const pumpOut = (async () => {
    while (!over) {
      const { done, value } = await reader.read();
      if (done) return finish("ended");
      if (!over) await io.output(value);
    }
  })().catch((e) => over ? undefined : fail(e));

  const pumpIn = (async () => {
    for await (const chunk of io.input) {
      if (over) return;
      const at = chunk.indexOf(escape);
      const part = at < 0 ? chunk : chunk.subarray(0, at);
      if (part.length) await con.write(part);
      if (at >= 0) return finish("escape");
    }
    // The input ended (a pipe closed): the output still shows until the console ends.
  })().catch((e) => over ? undefined : fail(e));

  try {
    return await ended;
  } finally {
    io.signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
    await con.close().catch(() => {});
    // The output pump ends with the console; the input pump may wait on a key that never comes.
    await pumpOut;
    void pumpIn;
  }
}
