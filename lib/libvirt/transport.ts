import { after } from "./_timer.ts";
import { ConnectionError, InterruptedError } from "./errors.ts";
import type { LibvirtUri } from "./uri.ts";

/** A byte stream to a libvirt daemon: a socket, or the stdio of an `ssh` child process. */
export interface Transport {
  /** Reads into `p`; resolves to the byte count, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; resolves to the byte count written. */
  write(p: Uint8Array): Promise<number>;
  /** Closes the stream; pending reads end. Safe to call twice. */
  close(): void;
}

/** Options for opening a transport. */
export interface DialOptions {
  /** Give up connecting after this many milliseconds. */
  connectTimeoutMs?: number;
  /** Overrides the `ssh` binary (tests, or a wrapper script). */
  sshCommand?: string;
  /** Gives up connecting when it aborts, with {@linkcode InterruptedError}. */
  signal?: AbortSignal;
}

/** Opens the transport that `uri` names: a unix socket, TCP, or `ssh` running a remote proxy. */
export async function dial(uri: LibvirtUri, opts: DialOptions = {}): Promise<Transport> {
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;
  const signal = opts.signal;
  if (signal?.aborted) throw InterruptedError.from(signal.reason);
  if (uri.transport === "ssh") return sshTransport(uri, opts.sshCommand ?? "ssh");
  const connecting = uri.transport === "unix"
    ? Deno.connect({ transport: "unix", path: uri.socketPath })
    : Deno.connect({ transport: "tcp", hostname: uri.host, port: uri.port });
  let cancelTimer = () => {};
  let onAbort = () => {};
  const timeout = new Promise<never>((_, reject) => {
    cancelTimer = after(
      timeoutMs,
      () => reject(new ConnectionError(`Connecting timed out after ${timeoutMs} ms`, uri.display)),
    );
    onAbort = () => reject(InterruptedError.from(signal?.reason));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const conn = await Promise.race([connecting, timeout]);
    if (uri.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
    return conn;
  } catch (err) {
    // A connect that finishes after the timeout must not leak its socket.
    connecting.then((c) => c.close(), () => {});
    if (err instanceof ConnectionError || err instanceof InterruptedError) throw err;
    const where = uri.transport === "unix" ? uri.socketPath : `${uri.host}:${uri.port}`;
    const hint = err instanceof Deno.errors.NotFound
      ? " (is libvirtd running? start it with 'libvirtd -d')"
      : err instanceof Deno.errors.PermissionDenied
      ? " (permission denied: run as root or join the libvirt group)"
      : "";
    throw new ConnectionError(
      `Cannot connect to ${where}: ${(err as Error).message}${hint}`,
      uri.display,
      { cause: err },
    );
  } finally {
    cancelTimer();
    signal?.removeEventListener("abort", onAbort);
  }
}

function sshTransport(uri: LibvirtUri, ssh: string): Transport {
  const args = ["-T", "-e", "none", "-o", "BatchMode=yes"];
  if (uri.port) args.push("-p", String(uri.port));
  if (uri.user) args.push("-l", uri.user);
  if (uri.keyfile) args.push("-i", uri.keyfile);
  if (uri.noVerify) {
    args.push("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null");
  }
  args.push("--", uri.host, remoteProxyCommand(uri));
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(ssh, { args, stdin: "piped", stdout: "piped", stderr: "piped" })
      .spawn();
  } catch (err) {
    throw new ConnectionError(`Cannot run ${ssh}: ${(err as Error).message}`, uri.display, {
      cause: err,
    });
  }
  const reader = child.stdout.getReader();
  const writer = child.stdin.getWriter();
  // Keep the last lines ssh printed so a failed login explains itself.
  let stderrTail = "";
  const stderrDone = child.stderr.pipeTo(
    new WritableStream({
      write(chunk) {
        stderrTail = (stderrTail + new TextDecoder().decode(chunk)).slice(-2000);
      },
    }),
  ).catch(() => {});
  let leftover: Uint8Array | null = null;
  let closed = false;
  return {
    async read(p) {
      if (!leftover) {
        const r = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (r.done || !r.value) {
          await stderrDone;
          const tail = stderrTail.trim().split("\n").slice(-3).join("; ");
          if (!closed && tail) {
            throw new ConnectionError(`ssh to ${uri.host} ended: ${tail}`, uri.display);
          }
          return null;
        }
        leftover = r.value;
      }
      const n = Math.min(p.length, leftover.length);
      p.set(leftover.subarray(0, n));
      leftover = n === leftover.length ? null : leftover.subarray(n);
      return n;
    },
    async write(p) {
      // The writer may keep the chunk: hand it a copy, since callers reuse their buffers.
      await writer.write(p.slice());
      return p.length;
    },
    close() {
      if (closed) return;
      closed = true;
      writer.close().catch(() => {});
      reader.cancel().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      child.status.catch(() => {});
    },
  };
}

/** The command ssh runs on the remote host: virt-ssh-helper when present, else `nc -U`. */
export function remoteProxyCommand(uri: LibvirtUri): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const helper = `virt-ssh-helper ${q(uri.name)}`;
  const nc = `nc -U ${q(uri.socketPath)}`;
  switch (uri.proxy) {
    case "native":
      return helper;
    case "netcat":
      return nc;
    default:
      return `sh -c ${
        q(`if command -v virt-ssh-helper >/dev/null 2>&1; then exec ${helper}; else exec ${nc}; fi`)
      }`;
  }
}
