/**
 * Running a command in the guest through the agent with its output streamed as it arrives.
 *
 * qemu-ga's `guest-exec-status` hands a command's captured output over only once the command has
 * ended (and keeps at most 16 MiB of it), so a command that runs long (`journalctl -f`) would show
 * nothing. Here the command writes its stdout and stderr to two files in a private directory the
 * guest's `mktemp -d` made (mode 0700), and the host reads them while the command runs, chunk by
 * chunk (`guest-file-read`), so nothing is held but one chunk. The guest needs `/bin/sh` and
 * `mktemp` (every Linux guest foundry makes has them).
 * @module
 */
import { type DomainRef, InterruptedError, type Libvirt } from "../libvirt/mod.ts";
import { agentCall, clip, GuestAgentError, guestExec } from "./agent.ts";

/** Most bytes `-i` may send to a command's stdin: qemu-ga takes them in one JSON message. */
export const GUEST_EXEC_MAX_STDIN = 8 * 1024 * 1024;
/** Bytes asked for per `guest-file-read` of the output files. */
const CHUNK = 65536;
/** Most bytes read from one output file per poll, so stdout cannot starve stderr. */
const PER_POLL = 1024 * 1024;
/** The command line of the wrapper: output to the files in `$0`, then the command itself. */
const WRAPPER = 'exec >"$0/out" 2>"$0/err" && exec "$@"';
/** Makes the private directory and its two files; prints the directory. */
const SETUP = 'umask 077 && d=$(mktemp -d /tmp/foundry-exec.XXXXXXXX) && : >"$d/out" && ' +
  ': >"$d/err" && printf %s "$d"';

/** Options of {@linkcode guestExecStream}. */
export interface GuestExecStreamOptions {
  /** Bytes for the command's stdin (at most {@linkcode GUEST_EXEC_MAX_STDIN}); none: /dev/null. */
  stdin?: Uint8Array;
  /** Ends the command (SIGTERM, SIGKILL 3 s later) after this many milliseconds. */
  timeoutMs?: number;
  /** Ends the command the same way and rejects with {@linkcode InterruptedError}. */
  signal?: AbortSignal;
  /** Receives the command's stdout, chunk by chunk, as it arrives. */
  onStdout?: (bytes: Uint8Array) => void | Promise<void>;
  /** Receives the command's stderr, chunk by chunk, as it arrives. */
  onStderr?: (bytes: Uint8Array) => void | Promise<void>;
  /** Longest pause between two looks at the command, in milliseconds (default 500). */
  maxPollMs?: number;
}

/** How a streamed command ended. */
export interface GuestExecStreamResult {
  /** The guest process's id. */
  pid: number;
  /** Its exit code; 128 + N when signal N ended it (as shells report it). */
  exitCode: number;
  /** The signal that ended it, if one did. */
  signal?: number;
  /** Whether `timeoutMs` passed and foundry ended it. */
  timedOut: boolean;
}

const b64 = (bytes: Uint8Array): string => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(s);
};

const unb64 = (s: string): Uint8Array => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

/** One output file of the command, read from where the last read stopped. */
class OutputFile {
  #atEof = false;
  constructor(
    readonly handle: number,
    readonly sink: ((bytes: Uint8Array) => void | Promise<void>) | undefined,
  ) {}

  /** Reads what was added since the last time (at most `limit` bytes); returns the bytes read. */
  async drain(
    call: <T>(cmd: string, args: Record<string, unknown>) => Promise<T>,
    limit: number,
  ): Promise<number> {
    let got = 0;
    while (got < limit) {
      // glibc keeps a stream at end-of-file once it got there; a seek to here clears it.
      if (this.#atEof) {
        await call("guest-file-seek", { handle: this.handle, offset: 0, whence: "cur" });
        this.#atEof = false;
      }
      const count = Math.min(CHUNK, limit - got);
      const r = await call<{ count: number; "buf-b64"?: string; eof: boolean }>(
        "guest-file-read",
        { handle: this.handle, count },
      );
      const text = typeof r["buf-b64"] === "string" ? r["buf-b64"] : "";
      // An agent that sends more than was asked is cut off, not believed.
      if (Math.floor(text.length / 4) * 3 - 2 > count) {
        throw new GuestAgentError(`guest-file-read sent more than the ${count} bytes asked`);
      }
      const bytes = unb64(text);
      got += bytes.length;
      if (bytes.length) await this.sink?.(bytes);
      if (r.eof || bytes.length < count) {
        this.#atEof = r.eof || bytes.length === 0;
        break;
      }
    }
    return got;
  }
}

/**
 * Runs `argv` in the guest and streams its stdout and stderr to the callbacks as they arrive;
 * resolves when it has ended and all its output was handed over. `timeoutMs` or `signal` end it
 * (SIGTERM to the process, SIGKILL 3 s later; what it started itself may live on).
 *
 * @throws {GuestAgentError} the agent refused (not connected, no `/bin/sh`, no such program is
 *   not one: that is exit code 127 with the shell's message on stderr)
 * @throws {InterruptedError} `signal` aborted (the command was ended first)
 */
export async function guestExecStream(
  lv: Libvirt,
  domain: DomainRef,
  argv: readonly string[],
  opts: GuestExecStreamOptions = {},
): Promise<GuestExecStreamResult> {
  if (argv.length === 0) throw new TypeError("guestExecStream needs a command");
  if (opts.stdin && opts.stdin.length > GUEST_EXEC_MAX_STDIN) {
    throw new RangeError(
      `stdin of ${opts.stdin.length} bytes is more than the ${GUEST_EXEC_MAX_STDIN} bytes the agent takes`,
    );
  }
  const { signal } = opts;
  signal?.throwIfAborted();
  const setup = await guestExec(lv, domain, "/bin/sh", ["-c", SETUP], 30_000);
  const dir = setup.stdout;
  if (setup.exitCode !== 0 || !/^\/tmp\/foundry-exec\.[A-Za-z0-9]+$/.test(dir)) {
    throw new GuestAgentError(
      `could not make a directory for the command's output in the guest: ${
        clip(setup.stderr.trim() || `exit code ${setup.exitCode}`, 500)
      }`,
    );
  }
  // Calls made while ending the command go out even after the signal aborted.
  const call = <T>(cmd: string, args: Record<string, unknown>) =>
    agentCall<T>(lv, domain, cmd, args, 30);
  const handles: number[] = [];
  let running: number | undefined;
  try {
    const out = new OutputFile(
      await call<number>("guest-file-open", { path: `${dir}/out`, mode: "r" }),
      opts.onStdout,
    );
    handles.push(out.handle);
    const err = new OutputFile(
      await call<number>("guest-file-open", { path: `${dir}/err`, mode: "r" }),
      opts.onStderr,
    );
    handles.push(err.handle);
    const { pid } = await call<{ pid: number }>("guest-exec", {
      path: "/bin/sh",
      arg: ["-c", WRAPPER, dir, ...argv],
      ...(opts.stdin ? { "input-data": b64(opts.stdin) } : {}),
    });
    running = pid;
    const started = performance.now();
    let killedAt: number | undefined;
    let timedOut = false;
    let pause = 50;
    const maxPause = opts.maxPollMs ?? 500;
    while (true) {
      const st = await call<{ exited: boolean; exitcode?: number; signal?: number }>(
        "guest-exec-status",
        { pid },
      );
      if (st.exited) {
        running = undefined;
        // Everything it wrote is in the files now: read them to the end.
        while (await out.drain(call, PER_POLL) > 0);
        while (await err.drain(call, PER_POLL) > 0);
        if (signal?.aborted) throw InterruptedError.from(signal.reason);
        const sig = typeof st.signal === "number" ? st.signal : undefined;
        return {
          pid,
          exitCode: sig !== undefined ? 128 + sig : st.exitcode ?? -1,
          ...(sig !== undefined ? { signal: sig } : {}),
          timedOut,
        };
      }
      const got = await out.drain(call, PER_POLL) + await err.drain(call, PER_POLL);
      const now = performance.now();
      const overdue = opts.timeoutMs !== undefined && now - started > opts.timeoutMs;
      if (killedAt === undefined && (overdue || signal?.aborted)) {
        timedOut = overdue && !signal?.aborted;
        killedAt = now;
        await killGuestProcess(lv, domain, pid, "TERM");
      } else if (killedAt !== undefined && now - killedAt > 3_000) {
        await killGuestProcess(lv, domain, pid, "KILL");
        if (now - killedAt > 15_000) {
          throw new GuestAgentError(`process ${pid} in the guest did not end after SIGKILL`);
        }
      }
      pause = got > 0 ? 50 : Math.min(pause * 2, maxPause);
      await sleep(pause, killedAt === undefined ? signal : undefined);
    }
  } finally {
    // Failed or interrupted while the command runs (an agent call in flight rejected): it must
    // not outlive foundry in the guest.
    if (running !== undefined) await endGuestProcess(lv, domain, running);
    for (const handle of handles) {
      await agentCall(lv, domain, "guest-file-close", { handle }, 5).catch(() => {});
    }
    await guestExec(lv, domain, "/bin/rm", ["-rf", "--", dir], 10_000).catch(() => {});
  }
}

/** SIGTERM to `pid`, SIGKILL when it has not ended 3 s later; reaps its status. */
async function endGuestProcess(lv: Libvirt, domain: DomainRef, pid: number): Promise<void> {
  await killGuestProcess(lv, domain, pid, "TERM");
  for (const started = performance.now(); performance.now() - started < 3_000;) {
    const st = await agentCall<{ exited: boolean }>(lv, domain, "guest-exec-status", { pid }, 5)
      .catch(() => ({ exited: true }));
    if (st.exited) return;
    await sleep(200);
  }
  await killGuestProcess(lv, domain, pid, "KILL");
  await agentCall(lv, domain, "guest-exec-status", { pid }, 5).catch(() => {});
}

/** Sends `SIGsig` to `pid` in the guest (the shell's own kill: no procps needed). */
async function killGuestProcess(
  lv: Libvirt,
  domain: DomainRef,
  pid: number,
  sig: "TERM" | "KILL",
): Promise<void> {
  await guestExec(lv, domain, "/bin/sh", ["-c", `kill -${sig} "$1"`, "sh", String(pid)], 10_000)
    .catch(() => {});
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
