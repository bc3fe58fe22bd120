/**
 * The QEMU guest agent through libvirt: ping, run a command, read a file, list addresses. All of
 * it travels over the virtio channel, never over the guest's network.
 * @module
 */
import { type DomainRef, InterruptedError, type Libvirt, LibvirtError } from "../libvirt/mod.ts";

/** Longest agent error text kept: the guest writes it, and it ends up in messages. */
const MAX_AGENT_ERROR_CHARS = 1000;
/** Default cap of {@linkcode guestReadFile}, in bytes. */
export const GUEST_READ_MAX_BYTES = 1024 * 1024;
/** Default total time of {@linkcode guestReadFile}, in milliseconds. */
export const GUEST_READ_TIMEOUT_MS = 30_000;
/** Bytes asked for per `guest-file-read`. */
const READ_CHUNK = 65536;

/** A guest agent command failed or returned an error. */
export class GuestAgentError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GuestAgentError";
  }
}

/** A guest file is larger than the reader's cap: the guest may be hostile (`/dev/zero`). */
export class GuestFileTooLargeError extends GuestAgentError {
  /** The file's path in the guest. */
  readonly path: string;
  /** The cap in bytes. */
  readonly maxBytes: number;
  /** Creates the error. */
  constructor(path: string, maxBytes: number) {
    super(`${path} is larger than ${maxBytes} bytes; not read further`);
    this.name = "GuestFileTooLargeError";
    this.path = path;
    this.maxBytes = maxBytes;
  }
}

/**
 * Sends one agent command and returns its `return` member. The agent's error text is the guest's:
 * it is cut to a bounded length (printing it safely is the caller's business).
 * @param opts.signal aborts the call ({@linkcode InterruptedError})
 */
export async function agentCall<T = unknown>(
  lv: Libvirt,
  domain: DomainRef,
  execute: string,
  args?: Record<string, unknown>,
  timeoutSec = 10,
  opts: { signal?: AbortSignal } = {},
): Promise<T> {
  const cmd = JSON.stringify(args ? { execute, arguments: args } : { execute });
  const reply = JSON.parse(await lv.qemuAgentCommand(domain, cmd, timeoutSec, 0, opts)) as {
    return?: T;
    error?: { desc?: unknown };
  };
  if (reply.error) {
    const desc = typeof reply.error.desc === "string" ? reply.error.desc : "agent error";
    throw new GuestAgentError(`${execute}: ${clip(desc, MAX_AGENT_ERROR_CHARS)}`);
  }
  return reply.return as T;
}

/** `text`, cut to `max` characters with a note of how much was left out. */
export function clip(text: string, max: number): string {
  return text.length <= max
    ? text
    : `${text.slice(0, max)}... (${text.length - max} more characters)`;
}

/** Whether the agent answers `guest-ping` now (false while it is not connected). */
export async function guestPing(
  lv: Libvirt,
  domain: DomainRef,
  timeoutSec = 2,
  opts: { signal?: AbortSignal } = {},
): Promise<boolean> {
  try {
    await agentCall(lv, domain, "guest-ping", undefined, timeoutSec, opts);
    return true;
  } catch (e) {
    if (e instanceof LibvirtError || e instanceof GuestAgentError) return false;
    throw e;
  }
}

/** Result of a command run in the guest. */
export interface GuestExecResult {
  /** Exit code (-1 when killed by a signal). */
  exitCode: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

const b64Bytes = (s?: string) =>
  s ? Uint8Array.from(atob(s), (c) => c.charCodeAt(0)) : new Uint8Array();
const decodeB64 = (s?: string) => new TextDecoder().decode(b64Bytes(s));

/** Runs `path args...` in the guest and waits (up to `timeoutMs`) for it to finish. */
export async function guestExec(
  lv: Libvirt,
  domain: DomainRef,
  path: string,
  args: string[] = [],
  timeoutMs = 30_000,
): Promise<GuestExecResult> {
  const { pid } = await agentCall<{ pid: number }>(lv, domain, "guest-exec", {
    path,
    arg: args,
    "capture-output": true,
  });
  const deadline = performance.now() + timeoutMs;
  let delay = 20;
  while (true) {
    const st = await agentCall<{
      exited: boolean;
      exitcode?: number;
      signal?: number;
      "out-data"?: string;
      "err-data"?: string;
    }>(lv, domain, "guest-exec-status", { pid });
    if (st.exited) {
      return {
        exitCode: st.exitcode ?? -1,
        stdout: decodeB64(st["out-data"]),
        stderr: decodeB64(st["err-data"]),
      };
    }
    if (performance.now() > deadline) {
      throw new GuestAgentError(`${path} did not finish within ${timeoutMs} ms in the guest`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}

/** Limits of {@linkcode guestReadFile}. */
export interface GuestReadOptions {
  /** Refuse a file larger than this many bytes (default 1 MiB). */
  maxBytes?: number;
  /** Give up after this many milliseconds in all (default 30000). */
  timeoutMs?: number;
  /** Aborts the read (Ctrl-C); it rejects with {@linkcode InterruptedError}. */
  signal?: AbortSignal;
}

/** An agent command bound to one file read's deadline and signal. */
type FileCall = <T>(execute: string, args: Record<string, unknown>) => Promise<T>;

/**
 * Opens `path` in the guest with `mode`, runs `fn` with the open handle, and always closes the
 * handle. Bounded by `opts.timeoutMs` in all (default 30000; `Infinity` for none, each agent call
 * then has 30 s): past it the call rejects with {@linkcode GuestAgentError}.
 */
export async function withGuestFile<T>(
  lv: Libvirt,
  domain: DomainRef,
  path: string,
  mode: "r" | "w" | "a" | "r+",
  opts: { timeoutMs?: number; signal?: AbortSignal },
  fn: (call: FileCall, handle: number) => Promise<T>,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? GUEST_READ_TIMEOUT_MS;
  const deadline = new AbortController();
  const timer = Number.isFinite(timeoutMs)
    ? setTimeout(() => deadline.abort(new Error(`Reading ${path} took too long`)), timeoutMs)
    : undefined;
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline.signal]) : deadline.signal;
  const agentSec = Number.isFinite(timeoutMs) ? Math.max(1, Math.ceil(timeoutMs / 1000)) : 30;
  const call: FileCall = <T>(cmd: string, args: Record<string, unknown>) =>
    agentCall<T>(lv, domain, cmd, args, agentSec, { signal });
  try {
    const handle = await call<number>("guest-file-open", { path, mode });
    try {
      return await fn(call, handle);
    } finally {
      // Closed with a deadline of its own: the read's may be what ended it.
      const closing = new AbortController();
      const closeTimer = setTimeout(() => closing.abort(), 5_000);
      await agentCall(lv, domain, "guest-file-close", { handle }, 2, { signal: closing.signal })
        .catch(() => {});
      clearTimeout(closeTimer);
    }
  } catch (e) {
    if (e instanceof InterruptedError && deadline.signal.aborted && !opts.signal?.aborted) {
      throw new GuestAgentError(`reading ${path} did not finish within ${timeoutMs} ms`, {
        cause: e,
      });
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads an open guest file from its position to its end, chunk by chunk, handing each chunk to
 * `onChunk`; returns the bytes read. At most `maxBytes`: past them it throws
 * {@linkcode GuestFileTooLargeError}, or with `stopAtCap` stops there (a tail). Checked before
 * decoding: an agent may send more than was asked.
 */
export async function readGuestHandle(
  call: FileCall,
  handle: number,
  path: string,
  maxBytes: number,
  onChunk: (bytes: Uint8Array) => void | Promise<void>,
  stopAtCap = false,
): Promise<number> {
  let total = 0;
  while (!stopAtCap || total < maxBytes) {
    // One byte past the cap is enough to know the file is too large.
    const count = Math.min(READ_CHUNK, maxBytes - total + (stopAtCap ? 0 : 1));
    const r = await call<{ count: number; "buf-b64"?: string; eof: boolean }>(
      "guest-file-read",
      { handle, count },
    );
    const b64 = typeof r["buf-b64"] === "string" ? r["buf-b64"] : "";
    if (total + Math.floor(b64.length / 4) * 3 - 2 > maxBytes) {
      throw new GuestFileTooLargeError(path, maxBytes);
    }
    const bytes = b64Bytes(b64);
    total += bytes.length;
    if (!stopAtCap && total > maxBytes) throw new GuestFileTooLargeError(path, maxBytes);
    await onChunk(bytes);
    if (r.eof || bytes.length === 0) break;
  }
  return total;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return all;
}

/**
 * Reads a whole (small) file from the guest as text. The guest decides what the file holds, so the
 * read is bounded: at most `maxBytes` ({@linkcode GuestFileTooLargeError} beyond) and `timeoutMs`
 * in all, however the agent answers. Throws {@linkcode GuestAgentError} when it cannot read.
 */
export function guestReadFile(
  lv: Libvirt,
  domain: DomainRef,
  path: string,
  opts: GuestReadOptions = {},
): Promise<string> {
  const maxBytes = opts.maxBytes ?? GUEST_READ_MAX_BYTES;
  return withGuestFile(lv, domain, path, "r", opts, async (call, handle) => {
    const parts: Uint8Array[] = [];
    await readGuestHandle(call, handle, path, maxBytes, (b) => void parts.push(b));
    return new TextDecoder().decode(concat(parts));
  });
}

/**
 * The last `maxBytes` bytes (at most) of a guest file as text, for a file that only grows (a log,
 * a results file): the read starts `maxBytes` before the end, so the file's size does not matter.
 * The first line may be cut. Bounded like {@linkcode guestReadFile}: at most `maxBytes` (default
 * 64 KiB) and `timeoutMs` in all. Throws {@linkcode GuestAgentError} when it cannot read.
 */
export function guestReadFileTail(
  lv: Libvirt,
  domain: DomainRef,
  path: string,
  opts: GuestReadOptions = {},
): Promise<string> {
  const maxBytes = opts.maxBytes ?? 65536;
  return withGuestFile(lv, domain, path, "r", opts, async (call, handle) => {
    const end = await call<{ position: number }>("guest-file-seek", {
      handle,
      offset: 0,
      whence: "end",
    });
    const size = Number.isSafeInteger(end.position) && end.position > 0 ? end.position : 0;
    await call("guest-file-seek", {
      handle,
      offset: Math.max(0, size - maxBytes),
      whence: "set",
    });
    const parts: Uint8Array[] = [];
    await readGuestHandle(call, handle, path, maxBytes, (b) => void parts.push(b), true);
    return new TextDecoder().decode(concat(parts));
  });
}

/** One interface as the agent reports it (`guest-network-get-interfaces`). */
export interface GuestInterface {
  /** Name in the guest, e.g. `enp1s0`. */
  name: string;
  /** MAC address. */
  hardwareAddress: string;
  /** Addresses with prefix lengths. */
  addresses: { type: "ipv4" | "ipv6"; address: string; prefix: number }[];
}

/** The guest's interfaces and addresses, straight from the agent. */
export async function guestInterfaces(
  lv: Libvirt,
  domain: DomainRef,
  opts: { signal?: AbortSignal } = {},
): Promise<GuestInterface[]> {
  const list = await agentCall<{
    name: string;
    "hardware-address"?: string;
    "ip-addresses"?: { "ip-address-type": "ipv4" | "ipv6"; "ip-address": string; prefix: number }[];
  }[]>(lv, domain, "guest-network-get-interfaces", undefined, 10, opts);
  return list.map((i) => ({
    name: i.name,
    hardwareAddress: i["hardware-address"] ?? "",
    addresses: (i["ip-addresses"] ?? []).map((a) => ({
      type: a["ip-address-type"],
      address: a["ip-address"],
      prefix: a.prefix,
    })),
  }));
}
