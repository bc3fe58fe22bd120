/**
 * A domain's console as a byte stream (REMOTE_PROC_DOMAIN_OPEN_CONSOLE): the guest's serial
 * output arrives on a `ReadableStream`, and bytes written go to the guest's serial input.
 *
 * @module
 */
import { DomainConsoleFlags, Procedure, Program } from "./constants.ts";
import { LibvirtError } from "./errors.ts";
import type { DuplexStream, RpcConnection } from "./rpc.ts";
import { type DomainRef, writeDomain, writeOptStr } from "./wire.ts";

/** Options of {@linkcode openDomainConsole}. */
export interface ConsoleOptions {
  /**
   * The console or serial device's alias (`console0`, `serial0`, `serial1`); default the
   * domain's first console.
   */
  device?: string;
  /**
   * Take the console over when another client holds it (VIR_DOMAIN_CONSOLE_FORCE): that
   * client's stream errors with the daemon's error, or, in libvirt 9.0's race (the daemon's
   * abort skips the stream's error callback when the stream is not being watched at that moment,
   * as while a chunk for that client is in flight), only goes quiet; its `close()` still returns.
   * Without it, opening a held console fails with a LibvirtError whose `isConsoleBusy()` is
   * true.
   */
  force?: boolean;
  /**
   * Aborts opening, and later the open console: a pending read rejects with
   * `InterruptedError` and the daemon is told to abort the stream.
   */
  signal?: AbortSignal;
  /**
   * Most unread bytes held (default 1 MiB). Past it the connection stops reading its socket
   * until the consumer reads, so output is never dropped and memory stays bounded; a consumer
   * that stops reading stalls the connection's other calls, so read or close.
   */
  maxBufferedBytes?: number;
}

/** An open console: the guest's output to read, its input to write, and a way to let go. */
export interface DomainConsole {
  /**
   * The guest's console output, chunk by chunk as the daemon sends it. It closes when the
   * console ends (the domain stopped, or {@linkcode DomainConsole.close}); it errors with the
   * daemon's error when another client took the console over with `force`, with
   * `InterruptedError` after the signal aborted, with `ConnectionError` when the connection
   * ended. Cancelling it closes the console.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /** Sends bytes to the guest's console input; resolves once they left. */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Releases the console (virStreamFinish, or an abort when the stream is already broken) and
   * waits for the daemon to confirm, so the next open finds it free; at most 5 s, as a console
   * the daemon dropped in a takeover is never confirmed. A read still pending resolves as done.
   * Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Opens `domain`'s console over `rpc`. Use {@linkcode Libvirt.openConsole} rather than this.
 *
 * @throws {LibvirtError} from the daemon: no such domain, domain not running
 *   (`isOperationInvalid()`), no such device, console held by another client (`isConsoleBusy()`)
 */
export async function openDomainConsole(
  rpc: RpcConnection,
  domain: DomainRef,
  opts: ConsoleOptions = {},
): Promise<DomainConsole> {
  const flags = DomainConsoleFlags.SAFE | (opts.force ? DomainConsoleFlags.FORCE : 0);
  let stream: DuplexStream;
  try {
    stream = await rpc.openDuplex(
      Program.REMOTE,
      Procedure.DOMAIN_OPEN_CONSOLE,
      (w) => {
        writeDomain(w, domain);
        writeOptStr(w, opts.device ?? null);
        w.writeUint(flags);
      },
      {
        ...(opts.maxBufferedBytes !== undefined ? { maxBufferedBytes: opts.maxBufferedBytes } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
    );
  } catch (err) {
    throw explain(err, domain, opts.device);
  }
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => (closing ??= stream.finish());
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Uint8Array | null;
      try {
        chunk = await stream.read();
      } catch (err) {
        // Free the daemon's side before reporting; the stream is dead either way.
        await stream.abort().catch(() => {});
        throw explain(err, domain, opts.device);
      }
      if (chunk === null) {
        controller.close();
        await close();
      } else controller.enqueue(chunk);
    },
    cancel: () => close(),
  }, { highWaterMark: 0 });
  return {
    readable,
    write: (bytes) => stream.write(bytes),
    close,
  };
}

/** The daemon's error with the domain named and, for a held console, what to do. */
function explain(err: unknown, domain: DomainRef, device: string | undefined): unknown {
  if (!(err instanceof LibvirtError)) return err;
  const what = `console${device ? ` ${device}` : ""} of domain "${domain.name}"`;
  const hint = err.isConsoleBusy()
    ? " (another client holds it; open with force to take over)"
    : "";
  return new LibvirtError({
    code: err.code,
    domain: err.domain,
    level: err.level,
    message: `Cannot read the ${what}${hint}: ${err.message}`,
  }, { cause: err });
}
