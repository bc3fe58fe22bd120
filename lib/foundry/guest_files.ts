/**
 * Copying files between this host and a guest through the agent (`guest-file-*`), byte for byte.
 * Neither side ever holds a partial file under the real name: the data goes to a temporary file
 * beside the destination, renamed over it only once complete, and removed on failure.
 * @module
 */
import { type DomainRef, type Libvirt, LibvirtError } from "../libvirt/mod.ts";
import {
  clip,
  GuestAgentError,
  guestExec,
  GuestFileTooLargeError,
  readGuestHandle,
  withGuestFile,
} from "./agent.ts";

/** Default size limit of a copy, either way: 256 MiB. */
export const GUEST_COPY_MAX_BYTES = 256 * 1024 * 1024;
/** Bytes per `guest-file-write` (64 KiB once in base64). */
const WRITE_CHUNK = 48 * 1024;

/** Options of {@linkcode copyToGuest} and {@linkcode copyFromGuest}. */
export interface GuestCopyOptions {
  /** Refuse a file larger than this many bytes (default {@linkcode GUEST_COPY_MAX_BYTES}). */
  maxBytes?: number;
  /** Told the bytes copied so far and the total (when known) after each chunk. */
  onProgress?: (done: number, total: number | undefined) => void;
  /** Aborts the copy (the temporary file is removed). */
  signal?: AbortSignal;
}

/** What a copy did. */
export interface GuestCopyResult {
  /** The file written (a directory destination gets the source's name appended). */
  destination: string;
  /** Bytes copied. */
  bytes: number;
}

const b64 = (bytes: Uint8Array): string => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(s);
};

/** The last part of a slash-separated path (`/a/b/` gives `b`). */
export function baseName(path: string): string {
  const parts = path.split("/").filter((p) => p !== "");
  return parts.at(-1) ?? "";
}

function dirName(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/**
 * Makes the temporary file in the guest (mode 0600, beside the destination) and prints the
 * destination and the temporary file's path. `$1` the destination, `$2` the source's name for a
 * directory destination.
 */
const PREPARE = 'set -e; umask 077; dest=$1; if [ -d "$dest" ]; then dest=${dest%/}/$2; fi; ' +
  'dir=$(dirname -- "$dest"); base=$(basename -- "$dest"); ' +
  'tmp=$(mktemp "$dir/.$base.foundry-XXXXXX"); printf "%s\\n%s" "$dest" "$tmp"';
/** Gives the temporary file its mode and renames it over the destination. */
const COMMIT = 'chmod "$1" "$2" && mv -f -- "$2" "$3"';

async function shell(lv: Libvirt, domain: DomainRef, script: string, args: string[]) {
  const r = await guestExec(lv, domain, "/bin/sh", ["-c", script, "sh", ...args], 30_000);
  if (r.exitCode !== 0) {
    throw new GuestAgentError(clip(r.stderr.trim() || `exit code ${r.exitCode}`, 500));
  }
  return r.stdout;
}

/**
 * Copies the local file `local` to `guestPath` in the guest (into it, when it is a directory),
 * with the local file's permission bits.
 *
 * @throws {GuestFileTooLargeError} the file is larger than `maxBytes`
 * @throws {GuestAgentError} the guest refused (no such directory, no space, ...)
 */
export async function copyToGuest(
  lv: Libvirt,
  domain: DomainRef,
  local: string,
  guestPath: string,
  opts: GuestCopyOptions = {},
): Promise<GuestCopyResult> {
  const maxBytes = opts.maxBytes ?? GUEST_COPY_MAX_BYTES;
  const file = await Deno.open(local, { read: true });
  try {
    const info = await file.stat();
    if (!info.isFile) throw new TypeError(`${local} is not a regular file`);
    if (info.size > maxBytes) throw new GuestFileTooLargeError(local, maxBytes);
    opts.signal?.throwIfAborted();
    let prepared: string;
    try {
      prepared = await shell(lv, domain, PREPARE, [guestPath, baseName(local)]);
    } catch (e) {
      throw new GuestAgentError(`cannot write ${guestPath} in the guest: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const [destination = "", tmp = ""] = prepared.split("\n");
    if (!destination || !tmp.includes(".foundry-")) {
      throw new GuestAgentError(`cannot write ${guestPath} in the guest: unexpected answer`);
    }
    try {
      let done = 0;
      await withGuestFile(lv, domain, tmp, "w", {
        timeoutMs: Infinity,
        ...(opts.signal ? { signal: opts.signal } : {}),
      }, async (call, handle) => {
        const buf = new Uint8Array(WRITE_CHUNK);
        while (true) {
          opts.signal?.throwIfAborted();
          const n = await file.read(buf);
          if (n === null) break;
          if (done + n > maxBytes) throw new GuestFileTooLargeError(local, maxBytes);
          const chunk = buf.subarray(0, n);
          const r = await call<{ count: number }>("guest-file-write", {
            handle,
            "buf-b64": b64(chunk),
          });
          if (r.count !== n) {
            throw new GuestAgentError(`writing ${tmp} in the guest: ${r.count} of ${n} bytes`);
          }
          done += n;
          opts.onProgress?.(done, info.size);
        }
        await call("guest-file-flush", { handle });
      });
      const mode = ((info.mode ?? 0o644) & 0o7777).toString(8);
      await shell(lv, domain, COMMIT, [mode, tmp, destination]);
      return { destination, bytes: done };
    } catch (e) {
      await guestExec(lv, domain, "/bin/rm", ["-f", "--", tmp], 10_000).catch(() => {});
      throw e;
    }
  } finally {
    file.close();
  }
}

/**
 * Copies `guestPath` from the guest to the local `local` (into it, when it is a directory). The
 * new file has mode 0644 unless it replaces one, whose mode it keeps.
 *
 * @throws {GuestFileTooLargeError} the file is larger than `maxBytes`
 * @throws {GuestAgentError} the guest refused (no such file, a directory, ...)
 */
export async function copyFromGuest(
  lv: Libvirt,
  domain: DomainRef,
  guestPath: string,
  local: string,
  opts: GuestCopyOptions = {},
): Promise<GuestCopyResult> {
  const maxBytes = opts.maxBytes ?? GUEST_COPY_MAX_BYTES;
  let destination = local;
  let mode = 0o644;
  try {
    const st = await Deno.stat(local);
    if (st.isDirectory) destination = `${local.replace(/\/+$/, "")}/${baseName(guestPath)}`;
    else if (st.mode !== null) mode = st.mode & 0o7777;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (destination !== local) {
    const st = await Deno.stat(destination).catch(() => null);
    if (st?.isDirectory) throw new TypeError(`${destination} is a directory`);
    if (st?.mode != null) mode = st.mode & 0o7777;
  }
  const tmp = await Deno.makeTempFile({
    dir: dirName(destination),
    prefix: `.${baseName(destination)}.foundry-`,
    suffix: ".part",
  });
  try {
    const out = await Deno.open(tmp, { write: true, truncate: true });
    let bytes = 0;
    try {
      bytes = await withGuestFile(lv, domain, guestPath, "r", {
        timeoutMs: Infinity,
        ...(opts.signal ? { signal: opts.signal } : {}),
      }, async (call, handle) => {
        const end = await call<{ position: number }>("guest-file-seek", {
          handle,
          offset: 0,
          whence: "end",
        });
        const size = Number.isSafeInteger(end.position) && end.position > 0
          ? end.position
          : undefined;
        if (size !== undefined && size > maxBytes) {
          throw new GuestFileTooLargeError(guestPath, maxBytes);
        }
        await call("guest-file-seek", { handle, offset: 0, whence: "set" });
        let done = 0;
        return await readGuestHandle(call, handle, guestPath, maxBytes, async (chunk) => {
          opts.signal?.throwIfAborted();
          for (let off = 0; off < chunk.length;) off += await out.write(chunk.subarray(off));
          done += chunk.length;
          opts.onProgress?.(done, size);
        });
      });
      await out.sync();
    } finally {
      out.close();
    }
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, destination);
    return { destination, bytes };
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw openError(e, `cannot read ${guestPath} in the guest`);
  }
}

/**
 * The daemon's wrapping of an agent's refusal to open a file ("internal error: unable to execute
 * QEMU agent command 'guest-file-open': failed to open file ...") as a short GuestAgentError.
 */
function openError(e: unknown, what: string): unknown {
  if (!(e instanceof LibvirtError)) return e;
  const m = /'guest-file-open': (.*)$/s.exec(e.message);
  return m ? new GuestAgentError(`${what}: ${clip(m[1]!, 500)}`, { cause: e }) : e;
}
