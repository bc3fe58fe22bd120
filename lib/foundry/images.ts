/**
 * Base images in a libvirt pool: import a local file, pull one over HTTP(S), list, show and delete
 * them. Everything goes through the libvirt client's volume streams, so it works on a remote host too.
 *
 * - The format comes from the first bytes (see `image_format.ts`); the name's extension must match it.
 *   Installation media are ISO 9660 images named `.iso` (`spec.installMedia`).
 *   A qcow2 image must stand alone: no backing file, no external data file, no incompatible feature
 *   foundry does not know, not encrypted (see `qcow2.ts`; its whole first cluster is checked).
 * - Only regular files are imported (a FIFO or device could block or never end); a pull takes only
 *   http(s) URLs, wants a checksum unless told to skip it, and stops at a size limit and at connect
 *   and idle timeouts.
 * - Data streams into a new volume chunk by chunk; memory stays flat whatever the image size.
 * - The SHA-256 is computed on the way (in a worker, overlapping the upload) and kept in a sidecar
 *   volume `NAME.sha256` next to the image, in `sha256sum` format. Dir pools have no place for
 *   per-volume metadata in libvirt (a volume XML has no description), and a sidecar volume is written
 *   and read through the same streams, so it also works remotely. Listings hide the sidecars.
 * - Any failure (bad checksum, truncated body, HTTP error, libvirt refusal, interruption) removes the
 *   partial volume and its checksum before the {@link StorageError} is thrown; when that removal
 *   fails too, the message names what was left behind.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { importImage } from "./images.ts";
 * const lv = await Libvirt.connect("qemu:///system");
 * const image = await importImage(lv, "foundry-images", "/tmp/fedora-43.qcow2", "fedora-43.qcow2");
 * console.log(image.sha256, image.virtualSize);
 * await lv.close();
 * ```
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { XMLParser } from "npm:fast-xml-parser@^5.12.1";
import { STATUS_CODES } from "node:http";
import type { request } from "npm:undici@^8.13.1";
import {
  InterruptedError,
  type Libvirt,
  LibvirtError,
  type StoragePoolRef,
  type StorageVolRef,
} from "../libvirt/mod.ts";
import {
  baseImageHeaderBytes,
  baseImageProblem,
  detectImageFormat,
  IMAGE_HEADER_BYTES,
  type ImageFormat,
} from "./image_format.ts";
import { lookupPool, StorageError, volumeSummary } from "./pools.ts";

export { baseImageProblem } from "./image_format.ts";
export { parseQcow2Header } from "./qcow2.ts";
export type { Qcow2Header } from "./qcow2.ts";

/** Suffix of the sidecar volume that keeps an image's SHA-256. */
export const CHECKSUM_SUFFIX = ".sha256";

/** Bytes read from a local file per chunk (measured: 4 MiB beats 1 MiB and 256 KiB on upload). */
const READ_CHUNK = 4 * 1024 * 1024;
/** Chunks the hashing worker may hold at once; bounds memory while it catches up. */
const HASH_BUFFERS = 6;

/** The steps of an import or pull, in order; {@link TransferOptions.beforeStep} runs before each. */
export const IMPORT_STEPS = [
  "source",
  "check",
  "volume",
  "upload",
  "checksum",
  "verify",
] as const;
/**
 * One step of an import or pull: open the file or send the request (`source`), read and check the
 * header (`check`), create the volume (`volume`), stream the data (`upload`), write the checksum
 * sidecar (`checksum`), refresh the pool and read the result back (`verify`).
 */
export type ImportStep = typeof IMPORT_STEPS[number];

/** The largest body `pullImage` accepts unless told otherwise: 64 GiB. */
export const DEFAULT_MAX_PULL_BYTES = 64 * 2 ** 30;
/** Milliseconds `pullImage` waits for a TCP (or TLS) connection by default. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** Milliseconds `pullImage` waits for the response or the next data of the body by default. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/**
 * A pull that cannot be valid as asked (a URL that is not http(s), no checksum and no explicit
 * opt-out); nothing was fetched or created.
 */
export class ImageRequestError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ImageRequestError";
  }
}

/** A pull stopped by one of its limits: the size cap, the connect timeout or the idle timeout. */
export class PullLimitError extends StorageError {
  /** Which limit. */
  readonly limit: "size" | "connect" | "idle";
  /** Its value, in bytes for `size` and milliseconds for the timeouts. */
  readonly value: number;
  /** Creates the error. */
  constructor(
    limit: PullLimitError["limit"],
    value: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "PullLimitError";
    this.limit = limit;
    this.value = value;
  }
}

/** A checksum to verify a download against. */
export interface Checksum {
  /** Hash algorithm. */
  algorithm: "sha256" | "sha512";
  /** Lower-case hex digest. */
  hex: string;
}

/**
 * Parses `sha256:HEX` or `sha512:HEX`.
 *
 * @throws {RangeError} naming what is wrong (the text is the user's, not the daemon's)
 */
export function parseChecksum(text: string): Checksum {
  const m = /^(sha256|sha512):([0-9a-fA-F]+)$/.exec(text.trim());
  const want = { sha256: 64, sha512: 128 } as const;
  if (m === null) {
    throw new RangeError(
      `a checksum must be sha256:HEX or sha512:HEX, got ${JSON.stringify(text.slice(0, 200))}`,
    );
  }
  const algorithm = m[1] as Checksum["algorithm"];
  const hex = m[2]!.toLowerCase();
  if (hex.length !== want[algorithm]) {
    throw new RangeError(
      `a ${algorithm} checksum has ${want[algorithm]} hex digits, got ${hex.length}`,
    );
  }
  return { algorithm, hex };
}

/** A URL fit for messages: no user name or password, and the query (often a token) hidden. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    const hidden = u.search !== "";
    u.search = "";
    u.hash = "";
    return u.href + (hidden ? "?…" : "");
  } catch {
    return "<invalid URL>";
  }
}

/**
 * The image name a URL implies: its last path segment, decoded.
 *
 * @throws {StorageError} when the URL has none
 */
export function imageNameFromUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StorageError(`Not a URL: ${JSON.stringify(redactUrl(url))}`);
  }
  const seg = u.pathname.split("/").pop() ?? "";
  let name = "";
  try {
    name = decodeURIComponent(seg);
  } catch { /* malformed escape: no name */ }
  if (name === "" || name.includes("/")) {
    throw new StorageError(`Cannot take an image name from ${redactUrl(url)}`, {
      hint: { option: "name" },
    });
  }
  return name;
}

/** One disk that uses an image. */
export interface ImageUse {
  /** The overlay volume backed by the image (`pool/name`), or null when a VM uses the image itself. */
  volume: string | null;
  /** Path of the overlay (or of the image when used directly). */
  path: string;
  /** The VM whose disk it is, or null for an overlay no VM uses. */
  vm: string | null;
}

/** A base image as `foundry image list` shows it. */
export interface ImageSummary {
  /** Volume name, e.g. `fedora-43.qcow2`. */
  name: string;
  /** Pool holding it. */
  pool: string;
  /** Path on the host. */
  path: string;
  /** Format libvirt reports. */
  format: string | null;
  /** Virtual size in bytes (the file size for raw images). */
  virtualSize: number;
  /** Bytes used on disk. */
  allocation: number;
  /** SHA-256 recorded at import, or null for volumes foundry did not import. */
  sha256: string | null;
  /** How many disks use it (overlays backed by it, VM disks on it directly). */
  users: number;
}

/** An image with the disks and VMs that use it. */
export interface ImageDetails extends ImageSummary {
  /** Every disk that uses it. */
  usedBy: ImageUse[];
}

/** Options of {@link importImage} and {@link pullImage}. */
export interface TransferOptions {
  /** Called once the size is known (undefined when the server does not say). */
  onStart?: (total: number | undefined) => void;
  /** Bytes sent to libvirtd so far. */
  onProgress?: (bytes: number) => void;
  /** Aborting stops the transfer and removes the partial volume. */
  signal?: AbortSignal;
  /**
   * Called before each step; throwing stops the import and removes what it made. Tests use it to
   * inject a failure before every step.
   */
  beforeStep?: (step: ImportStep) => void | Promise<void>;
}

/** Options of {@link pullImage}. */
export interface PullOptions extends TransferOptions {
  /** Image name; the URL's file name by default. */
  name?: string;
  /** Expected checksum of the body; required unless {@link PullOptions.insecureSkipChecksum}. */
  checksum?: Checksum;
  /** Pull without a checksum: the caller accepts whatever the server sends. */
  insecureSkipChecksum?: boolean;
  /** Largest body accepted, in bytes ({@link DEFAULT_MAX_PULL_BYTES} by default). */
  maxBytes?: number;
  /** Time allowed to connect ({@link DEFAULT_CONNECT_TIMEOUT_MS} by default). */
  connectTimeoutMs?: number;
  /**
   * Time allowed without a byte from the server, for the response and between pieces of its body
   * ({@link DEFAULT_IDLE_TIMEOUT_MS} by default).
   */
  idleTimeoutMs?: number;
}

// ---- hashing ----

interface Hasher {
  /** Hashes a copy of `chunk`; the caller keeps it. */
  update(chunk: Uint8Array): Promise<void>;
  /** A buffer of at least {@link READ_CHUNK} bytes for the caller to fill and {@link give} back. */
  take(): Promise<ArrayBuffer>;
  /** Hashes `chunk`, which must view a buffer from {@link take} from offset 0; the caller loses it. */
  give(chunk: Uint8Array): Promise<void>;
  digest(): Promise<Record<string, string>>;
  close(): void;
}

function inlineHasher(algorithms: readonly string[]): Hasher {
  const hashes = algorithms.map((a) => [a, createHash(a)] as const);
  const update = (c: Uint8Array) => {
    for (const [, h] of hashes) h.update(c);
    return Promise.resolve();
  };
  return {
    update,
    take: () => Promise.resolve(new ArrayBuffer(READ_CHUNK)),
    give: update,
    digest: () => Promise.resolve(Object.fromEntries(hashes.map(([a, h]) => [a, h.digest("hex")]))),
    close: () => {},
  };
}

/**
 * Hashes in a worker, so hashing overlaps the upload; falls back to the main thread when the worker
 * cannot start (e.g. a `deno compile` binary built without `--include lib/foundry/_hash_worker.ts`).
 */
async function createHasher(algorithms: readonly string[]): Promise<Hasher> {
  let worker: Worker;
  try {
    worker = new Worker(new URL("./_hash_worker.ts", import.meta.url).href, { type: "module" });
  } catch {
    return inlineHasher(algorithms);
  }
  const started = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    worker.onmessage = () => {
      clearTimeout(timer);
      resolve(true);
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      clearTimeout(timer);
      resolve(false);
    };
    worker.postMessage({ type: "init", algorithms });
  });
  if (!started) {
    worker.terminate();
    return inlineHasher(algorithms);
  }
  // At most HASH_BUFFERS chunks wait in the worker. Every ack wakes every waiter, which then
  // checks its own condition again, so no wake-up is lost (a single shared slot deadlocked imports
  // of ~50 MB and more under load).
  let inflight = 0;
  const waiters: (() => void)[] = [];
  const wakeAll = () => {
    for (const w of waiters.splice(0)) w();
  };
  // File chunks are read into buffers that come back from the worker with its ack and are reused:
  // fresh 4 MiB buffers per chunk cost ~0.4 CPU-s per GiB in page faults and zeroing (measured).
  const free: ArrayBuffer[] = [];
  let created = 0;
  let finish: ((d: Record<string, string>) => void) | undefined;
  let fail: ((e: Error) => void) | undefined;
  let failure: Error | undefined;
  worker.onmessage = (e: MessageEvent) => {
    const m = e.data as { type: "ack"; buf?: ArrayBuffer } | {
      type: "digest";
      digests: Record<string, string>;
    };
    if (m.type === "ack") {
      inflight--;
      if (m.buf !== undefined && m.buf.byteLength === READ_CHUNK) free.push(m.buf);
      wakeAll();
    } else finish?.(m.digests);
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    failure = new Error(`Hashing failed: ${e.message}`);
    wakeAll();
    fail?.(failure);
  };
  const post = async (buf: ArrayBuffer, len: number) => {
    while (inflight >= HASH_BUFFERS && !failure) await new Promise<void>((r) => waiters.push(r));
    if (failure) throw failure;
    inflight++;
    worker.postMessage({ type: "data", buf, len }, [buf]);
  };
  return {
    update: (chunk) => post(chunk.slice().buffer, chunk.length),
    async take() {
      while (true) {
        if (failure) throw failure;
        const b = free.pop();
        if (b !== undefined) return b;
        // The reader holds two (one sent, one filling), the worker up to HASH_BUFFERS.
        if (created < HASH_BUFFERS + 2) {
          created++;
          return new ArrayBuffer(READ_CHUNK);
        }
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    give(chunk) {
      // A chunk that starts its own buffer (the file reader's, already sent) moves without a copy.
      if (chunk.byteOffset === 0) return post(chunk.buffer as ArrayBuffer, chunk.length);
      return post(chunk.slice().buffer, chunk.length);
    },
    digest() {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        finish = resolve;
        fail = reject;
        worker.postMessage({ type: "end" });
      });
    },
    close() {
      worker.terminate();
    },
  };
}

// ---- sources ----

/** Where {@link readFileChunks} gets its buffers; the hasher's own once it exists. */
interface BufferSource {
  take(): Promise<ArrayBuffer>;
}

/**
 * Reads `file` in large chunks into buffers from `buffers`, the next read overlapping the caller's use
 * of the current chunk. Each chunk's buffer belongs to the caller once yielded.
 */
async function* readFileChunks(
  file: Deno.FsFile,
  buffers: BufferSource,
): AsyncGenerator<Uint8Array> {
  const fill = (buf: Uint8Array): Promise<number> => {
    const p = (async () => {
      let n = 0;
      while (n < buf.length) {
        const r = await file.read(buf.subarray(n));
        if (r === null) break;
        n += r;
      }
      return n;
    })();
    // A read still under way when the import stops fails once the file closes; nobody awaits it then.
    p.catch(() => {});
    return p;
  };
  let buf = new Uint8Array(await buffers.take(), 0, READ_CHUNK);
  let pending = fill(buf);
  while (true) {
    const n = await pending;
    if (n === 0) return;
    const current = buf.subarray(0, n);
    if (n < READ_CHUNK) pending = Promise.resolve(0);
    else {
      buf = new Uint8Array(await buffers.take(), 0, READ_CHUNK);
      pending = fill(buf);
    }
    yield current;
  }
}

/** Chunks taken from a source ahead of the upload (copied), and whether the source ended. */
interface Peeked {
  buffered: Uint8Array[];
  ended: boolean;
}

/**
 * Takes more chunks from `it` into `peeked` until `want` bytes are in hand or it ends; returns the
 * first `want` (or fewer) bytes.
 */
async function peekHead(
  it: AsyncIterator<Uint8Array>,
  want: number,
  peeked: Peeked,
): Promise<Uint8Array> {
  let have = peeked.buffered.reduce((n, b) => n + b.length, 0);
  while (have < want && !peeked.ended) {
    const r = await it.next();
    if (r.done) {
      peeked.ended = true;
      break;
    }
    peeked.buffered.push(r.value.slice());
    have += r.value.length;
  }
  const head = new Uint8Array(Math.min(have, want));
  let off = 0;
  for (const b of peeked.buffered) {
    if (off >= head.length) break;
    const part = b.subarray(0, head.length - off);
    head.set(part, off);
    off += part.length;
  }
  return head;
}

// ---- the upload ----

interface UploadRequest {
  lv: Libvirt;
  pool: StoragePoolRef;
  name: string;
  /** What the data is, for messages: a file path or a redacted URL. */
  what: string;
  source: AsyncIterator<Uint8Array>;
  /** Set when `source` reads into buffers from here: they are then handed to the hasher uncopied. */
  buffers?: BufferSource;
  /** Exact size when known. */
  size: number | undefined;
  checksum?: Checksum | undefined;
  /** Largest body accepted (pulls); the upload stops before sending a byte more. */
  maxBytes?: number | undefined;
  opts: TransferOptions;
}

/** Runs `beforeStep` and honours an abort before `step` begins. */
async function enterStep(name: string, opts: TransferOptions, step: ImportStep): Promise<void> {
  if (opts.signal?.aborted) throw new StorageError(`Import of ${name} interrupted`);
  await opts.beforeStep?.(step);
}

async function volumeExists(lv: Libvirt, pool: StoragePoolRef, name: string): Promise<boolean> {
  try {
    await lv.storageVolLookupByName(pool, name);
    return true;
  } catch (e) {
    if (e instanceof LibvirtError && e.isNoStorageVol()) return false;
    throw e;
  }
}

function volumeXml(name: string, capacity: number): string {
  // Created raw and sparse with the exact byte count: the upload then leaves a byte-identical file,
  // and libvirt's pool refresh probes the real format (qcow2 reports its virtual size).
  const esc = name.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return `<volume><name>${esc}</name><capacity unit='bytes'>${capacity}</capacity>` +
    `<allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>`;
}

function checkName(name: string): void {
  if (name === "" || name.includes("/") || name.startsWith(".")) {
    throw new StorageError(
      `Image name ${JSON.stringify(name)} must be a file name without "/" and not start with "."`,
    );
  }
  if (name.endsWith(CHECKSUM_SUFFIX)) {
    throw new StorageError(`Image name ${name} must not end in ${CHECKSUM_SUFFIX}`);
  }
}

async function uploadImage(req: UploadRequest): Promise<ImageSummary> {
  const { lv, pool, name, opts } = req;
  await enterStep(name, opts, "check");
  const peeked: Peeked = { buffered: [], ended: false };
  let head = await peekHead(req.source, IMAGE_HEADER_BYTES, peeked);
  // A qcow2 image's header extensions may sit anywhere in its first cluster (up to 2 MiB).
  // An ISO 9660 image's identifier sits at 32769.
  head = await peekHead(req.source, baseImageHeaderBytes(head, name), peeked);
  const problem = baseImageProblem(name, head);
  if (problem !== undefined) throw new StorageError(`Cannot import ${req.what}: ${problem}`);
  const format = detectImageFormat(head) as ImageFormat;
  for (const n of [name, name + CHECKSUM_SUFFIX]) {
    if (await volumeExists(lv, pool, n)) {
      throw new StorageError(`Image ${n} exists already in pool ${pool.name}`);
    }
  }
  await enterStep(name, opts, "volume");
  opts.onStart?.(req.size);
  let vol: StorageVolRef;
  try {
    vol = await lv.storageVolCreateXml(pool, volumeXml(name, req.size ?? 0));
  } catch (e) {
    // Interrupted before the daemon said: the volume may exist, ours or a racing import's.
    const unknown = e instanceof InterruptedError && e.outcomeUnknown;
    throw new StorageError(
      `Cannot create volume ${name} in pool ${pool.name}: ${(e as Error).message}` +
        (unknown ? `; may be left: ${pool.name}/${name}` : ""),
      { cause: e },
    );
  }
  let sidecar: StorageVolRef | undefined;
  let sidecarUnknown = false;
  let hasher: Hasher | undefined;
  try {
    await enterStep(name, opts, "upload");
    const algorithms = ["sha256"];
    if (req.checksum && req.checksum.algorithm !== "sha256") {
      algorithms.push(req.checksum.algorithm);
    }
    const h = hasher = await createHasher(algorithms);
    if (req.buffers) req.buffers.take = () => h.take();
    let sent = 0;
    let digests: Record<string, string> = {};
    const signal = opts.signal;
    // Checked as each chunk arrives, before it is sent: a source that grows or never ends stops at
    // once, and no byte past a limit reaches the volume.
    const count = (n: number) => {
      if (signal?.aborted) throw new StorageError(`Import of ${name} interrupted`);
      sent += n;
      if (req.size !== undefined && sent > req.size) {
        throw new StorageError(`${req.what} grew past its ${req.size} bytes during the import`);
      }
      if (req.maxBytes !== undefined && sent > req.maxBytes) {
        throw new PullLimitError(
          "size",
          req.maxBytes,
          `${req.what} sent more than the size limit of ${req.maxBytes} bytes`,
        );
      }
    };
    const data = async function* (): AsyncGenerator<Uint8Array> {
      for (const b of peeked.buffered) {
        count(b.length);
        await h.update(b);
        yield b;
      }
      if (!peeked.ended) {
        while (true) {
          const r = await req.source.next();
          if (r.done) break;
          count(r.value.length);
          if (req.buffers) {
            // Sent first, then handed to the hashing worker without a copy.
            yield r.value;
            await h.give(r.value);
          } else {
            await h.update(r.value);
            yield r.value;
          }
        }
      }
      if (req.size !== undefined && sent < req.size) {
        throw new StorageError(
          `${req.what} ended after ${sent} of ${req.size} bytes; the image is truncated`,
        );
      }
      digests = await h.digest();
      // Checked before the stream is finished, so a bad image is never committed.
      if (req.checksum && digests[req.checksum.algorithm] !== req.checksum.hex) {
        throw new StorageError(
          `Checksum mismatch for ${req.what}: expected ${req.checksum.algorithm}:${req.checksum.hex}, ` +
            `got ${req.checksum.algorithm}:${digests[req.checksum.algorithm]}`,
        );
      }
    };
    await lv.storageVolUpload(vol, data(), {
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    const sha256 = digests.sha256!;
    await enterStep(name, opts, "checksum");
    const line = new TextEncoder().encode(`${sha256}  ${name}\n`);
    sidecar = await lv.storageVolCreateXml(pool, volumeXml(name + CHECKSUM_SUFFIX, line.length))
      .catch((e) => {
        sidecarUnknown = e instanceof InterruptedError && e.outcomeUnknown;
        throw e;
      });
    await lv.storageVolUpload(
      sidecar,
      (async function* () {
        yield line;
      })(),
    );
    await enterStep(name, opts, "verify");
    // libvirt refreshes the pool after an upload in a thread of its own; refresh now so the probed
    // format and virtual size are there when we read them.
    await lv.storagePoolRefresh(pool);
    const v = await volumeSummary(lv, await lv.storageVolLookupByName(pool, name));
    if (v.format !== null && v.format !== format) {
      throw new StorageError(`libvirt reads ${name} as ${v.format}, not ${format}`);
    }
    return {
      name,
      pool: pool.name,
      path: v.path,
      format: v.format ?? format,
      virtualSize: v.capacity,
      allocation: v.allocation,
      sha256,
      users: 0,
    };
  } catch (e) {
    const left: string[] = [];
    for (const v of [vol, sidecar]) {
      if (v === undefined) continue;
      try {
        await lv.storageVolDelete(v);
      } catch (d) {
        left.push(`${pool.name}/${v.name} (${(d as Error).message})`);
      }
    }
    const err = e instanceof StorageError
      ? e
      : new StorageError(`Cannot import ${req.what}: ${(e as Error).message}`, { cause: e });
    if (left.length > 0) err.message += `; cleanup also failed, left behind: ${left.join(", ")}`;
    if (sidecarUnknown) err.message += `; may be left: ${pool.name}/${name}${CHECKSUM_SUFFIX}`;
    throw err;
  } finally {
    hasher?.close();
  }
}

/** What a non-regular file is, for messages. */
function fileKind(st: Deno.FileInfo): string {
  if (st.isDirectory) return "a directory";
  if (st.isFifo) return "a FIFO (named pipe)";
  if (st.isCharDevice) return "a character device";
  if (st.isBlockDevice) return "a block device";
  if (st.isSocket) return "a socket";
  return "not a regular file";
}

/**
 * Imports the local file `path` as image `name` into `poolName`; see the module notes. Only a
 * regular file is read: it is checked before it is opened (opening a FIFO would block until a
 * writer comes, a device may never end) and checked again, by inode, once open.
 *
 * @throws {StorageError} with the reason; nothing is left behind
 */
export async function importImage(
  lv: Libvirt,
  poolName: string,
  path: string,
  name: string,
  opts: TransferOptions = {},
): Promise<ImageSummary> {
  checkName(name);
  await enterStep(name, opts, "source");
  let before: Deno.FileInfo;
  try {
    before = await Deno.stat(path);
  } catch (e) {
    throw new StorageError(`Cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!before.isFile) throw new StorageError(`${path} is ${fileKind(before)}, not a regular file`);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new StorageError(`Cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await file.stat();
    if (!st.isFile || st.ino !== before.ino || st.dev !== before.dev) {
      throw new StorageError(`${path} was replaced while it was being opened; nothing imported`);
    }
    const pool = await lookupPool(lv, poolName);
    const buffers: BufferSource = { take: () => Promise.resolve(new ArrayBuffer(READ_CHUNK)) };
    return await uploadImage({
      lv,
      pool,
      name,
      what: path,
      source: readFileChunks(file, buffers),
      buffers,
      size: st.size,
      opts,
    });
  } finally {
    file.close();
  }
}

/**
 * Checks that `url` can be pulled at all: an http or https URL.
 *
 * @throws {ImageRequestError} for any other scheme (file:, ftp:, data: ...) or no URL
 */
export function checkPullUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ImageRequestError(`Not a URL: ${JSON.stringify(redactUrl(url))}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new ImageRequestError(
      `Only http and https URLs can be pulled, got ${u.protocol} (${redactUrl(url)})`,
    );
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** The code of an undici error or of its cause (fetch wraps them in "fetch failed"). */
function undiciCode(e: unknown): string | undefined {
  for (let c: unknown = e, i = 0; c instanceof Error && i < 4; c = c.cause, i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("UND_ERR")) return code;
  }
  return undefined;
}

/** The message of `e` with the messages of its causes, which say what really failed. */
function causeChain(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e, i = 0; c !== undefined && c !== null && i < 4; i++) {
    const m = c instanceof Error ? c.message : String(c);
    if (m !== "" && !parts.includes(m)) parts.push(m);
    c = c instanceof Error ? c.cause : undefined;
  }
  return parts.join(": ");
}

/**
 * Downloads `url` straight into a new volume of `poolName` (no temporary file), with the format
 * checks of an import; see the module notes. The URL must be http(s); a checksum is required
 * unless `insecureSkipChecksum`; the body may not exceed `maxBytes` (checked against the declared
 * length before anything is created, and as data arrives); connecting and every wait for data have
 * a timeout. Credentials in the URL are sent as HTTP basic authentication and never shown.
 *
 * @throws {ImageRequestError} for a URL that is not http(s) or a missing checksum (nothing fetched)
 * @throws {PullLimitError} when the size limit or a timeout stopped it
 * @throws {StorageError} on an HTTP error, a truncated body, a checksum mismatch or a bad image;
 *   nothing is left behind
 */
export async function pullImage(
  lv: Libvirt,
  poolName: string,
  url: string,
  opts: PullOptions = {},
): Promise<ImageSummary> {
  checkPullUrl(url);
  const shown = redactUrl(url);
  if (opts.checksum === undefined && opts.insecureSkipChecksum !== true) {
    throw new ImageRequestError(
      `No checksum for ${shown}: give the expected one, or skip the check explicitly`,
    );
  }
  const name = opts.name ?? imageNameFromUrl(url);
  checkName(name);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_PULL_BYTES;
  const connectMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  for (
    const [what, v] of [["maxBytes", maxBytes], ["connectTimeoutMs", connectMs], [
      "idleTimeoutMs",
      idleMs,
    ]] as const
  ) {
    if (!(v > 0) || !Number.isSafeInteger(Math.ceil(v))) {
      throw new RangeError(`${what} must be a positive number, got ${v}`);
    }
  }
  // Error messages may quote the URL, credentials and token included.
  const secret = [url, new URL(url).href];
  const scrub = (e: unknown) => {
    let m = causeChain(e);
    for (const s of secret) m = m.split(s).join(shown);
    return m;
  };
  const pool = await lookupPool(lv, poolName);
  await enterStep(name, opts, "source");
  // undici's request(), not fetch: it has a connect timeout and a timeout for the response
  // headers, and (unlike its fetch on Deno) reports a body cut short at once. The body's idle
  // timeout is ours (below), so time spent waiting for libvirtd while the body is paused never
  // counts. It honours http_proxy, https_proxy and no_proxy as Deno's fetch does; redirects are
  // followed to http(s) only, and credentials are dropped when one leaves the origin. Loaded here:
  // every other image command, and foundry's start-up, does without undici (~25 ms measured).
  const { EnvHttpProxyAgent, interceptors, request } = await import("npm:undici@^8.13.1");
  const agent = new EnvHttpProxyAgent({
    connect: { timeout: Math.ceil(connectMs) },
    headersTimeout: Math.ceil(idleMs),
    bodyTimeout: 0,
  });
  const target = new URL(url);
  const headers: Record<string, string> = {};
  if (target.username !== "" || target.password !== "") {
    const user = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    headers.authorization = `Basic ${Buffer.from(user, "utf8").toString("base64")}`;
    target.username = "";
    target.password = "";
  }
  let body: Awaited<ReturnType<typeof request>>["body"] | undefined;
  try {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(target.href, {
        dispatcher: agent.compose(interceptors.redirect({ maxRedirections: 10 })),
        headers,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (e) {
      const code = undiciCode(e);
      if (code === "UND_ERR_CONNECT_TIMEOUT") {
        throw new PullLimitError(
          "connect",
          connectMs,
          `Cannot connect to ${shown} within the connect timeout of ${seconds(connectMs)}`,
          { cause: e },
        );
      }
      if (code === "UND_ERR_HEADERS_TIMEOUT") {
        throw new PullLimitError(
          "idle",
          idleMs,
          `No response from ${shown} within the idle timeout of ${seconds(idleMs)}`,
          { cause: e },
        );
      }
      throw new StorageError(`Cannot download ${shown}: ${scrub(e)}`, { cause: e });
    }
    body = res.body;
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw new StorageError(
        `Cannot download ${shown}: HTTP ${res.statusCode} ${STATUS_CODES[res.statusCode] ?? ""}`
          .trim(),
      );
    }
    const header = (h: string) => {
      const v = res.headers[h];
      return Array.isArray(v) ? v.join(", ") : v;
    };
    const encoding = header("content-encoding");
    if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") {
      // Not asked for (no Accept-Encoding); the stored bytes must be the image itself.
      throw new StorageError(`Cannot download ${shown}: the server sent it ${encoding}-encoded`);
    }
    const length = header("content-length");
    const size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    if (size !== undefined && size > maxBytes) {
      throw new PullLimitError(
        "size",
        maxBytes,
        `${shown} is ${size} bytes, more than the size limit of ${maxBytes} bytes`,
      );
    }
    const chunks = res.body[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
    let received = 0;
    const source: AsyncIterator<Uint8Array> = {
      async next() {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const idle = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(
              new PullLimitError(
                "idle",
                idleMs,
                `No data from ${shown} for ${seconds(idleMs)} after ${received} bytes`,
              ),
            );
          }, idleMs);
        });
        try {
          const c = await Promise.race([chunks.next(), idle]);
          if (c.done) return { done: true, value: undefined };
          received += c.value.length;
          // A plain view of the Buffer, whose slice() copies (Buffer's would share its memory).
          return {
            done: false,
            value: new Uint8Array(c.value.buffer, c.value.byteOffset, c.value.byteLength),
          };
        } catch (e) {
          if (e instanceof PullLimitError) throw e;
          throw new StorageError(`Download of ${shown} failed: ${scrub(e)}`, { cause: e });
        } finally {
          clearTimeout(timer);
        }
      },
    };
    return await uploadImage({
      lv,
      pool,
      name,
      what: shown,
      source,
      size,
      checksum: opts.checksum,
      maxBytes,
      opts,
    });
  } finally {
    // Destroying a body not read to its end emits an "aborted" error; that is the point here.
    body?.on("error", () => {});
    body?.destroy();
    // Closes the connection, so a server still sending (past a limit) sees the client go.
    await agent.destroy().catch(() => {});
  }
}

// ---- list, info, delete ----

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  isArray: (name) => name === "disk",
});

async function readSidecar(
  lv: Libvirt,
  pool: StoragePoolRef,
  name: string,
): Promise<string | null> {
  let vol: StorageVolRef;
  try {
    vol = await lv.storageVolLookupByName(pool, name + CHECKSUM_SUFFIX);
  } catch (e) {
    if (e instanceof LibvirtError && e.isNoStorageVol()) return null;
    throw e;
  }
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of lv.storageVolDownload(vol)) {
    parts.push(chunk.slice());
    total += chunk.length;
    if (total > 4096) break;
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  const text = new TextDecoder().decode(all);
  return /^([0-9a-f]{64})\b/.exec(text)?.[1] ?? null;
}

interface DiskUsage {
  /** Every volume of every running pool with its backing path. */
  volumes: { pool: string; name: string; path: string; backingPath: string | null }[];
  /** Disk source path (resolved for volume disks) to the VMs using it. */
  vmsByPath: Map<string, string[]>;
}

/** Scans volumes and domains once, for the usage of any number of images. */
async function diskUsage(lv: Libvirt): Promise<DiskUsage> {
  const pools = await lv.listAllStoragePools(2 /* VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE */);
  const volumes: DiskUsage["volumes"] = [];
  await Promise.all(pools.map(async (p) => {
    let vols: StorageVolRef[];
    try {
      vols = await lv.storagePoolListAllVolumes(p);
    } catch {
      return; // stopped meanwhile
    }
    await Promise.all(vols.map(async (v) => {
      try {
        const s = await volumeSummary(lv, v);
        volumes.push({ pool: p.name, name: v.name, path: s.path, backingPath: s.backingPath });
      } catch { /* deleted meanwhile */ }
    }));
  }));
  const byPoolVol = new Map(volumes.map((v) => [`${v.pool}\0${v.name}`, v.path]));
  const vmsByPath = new Map<string, string[]>();
  const domains = await lv.listAllDomains();
  await Promise.all(domains.map(async (d) => {
    let xml: string;
    try {
      xml = await lv.domainGetXmlDesc(d);
    } catch {
      return;
    }
    const doc = parser.parse(xml) as {
      domain?: { devices?: { disk?: { source?: Record<string, string> }[] } };
    };
    for (const disk of doc.domain?.devices?.disk ?? []) {
      const src = disk.source ?? {};
      const path = src["@_file"] ?? src["@_dev"] ??
        (src["@_pool"] !== undefined && src["@_volume"] !== undefined
          ? byPoolVol.get(`${src["@_pool"]}\0${src["@_volume"]}`)
          : undefined);
      if (path === undefined) continue;
      const list = vmsByPath.get(path) ?? [];
      if (!list.includes(d.name)) list.push(d.name);
      vmsByPath.set(path, list);
    }
  }));
  return { volumes, vmsByPath };
}

function usesOf(usage: DiskUsage, imagePath: string): ImageUse[] {
  const uses: ImageUse[] = [];
  for (const v of usage.volumes) {
    if (v.backingPath !== imagePath) continue;
    const vms = usage.vmsByPath.get(v.path) ?? [];
    if (vms.length === 0) uses.push({ volume: `${v.pool}/${v.name}`, path: v.path, vm: null });
    for (const vm of vms) uses.push({ volume: `${v.pool}/${v.name}`, path: v.path, vm });
  }
  for (const vm of usage.vmsByPath.get(imagePath) ?? []) {
    uses.push({ volume: null, path: imagePath, vm });
  }
  return uses.sort((a, b) =>
    (a.vm ?? "").localeCompare(b.vm ?? "") || (a.volume ?? "").localeCompare(b.volume ?? "")
  );
}

async function details(
  lv: Libvirt,
  pool: StoragePoolRef,
  vol: StorageVolRef,
  usage: DiskUsage,
): Promise<ImageDetails> {
  const [s, sha256] = await Promise.all([
    volumeSummary(lv, vol),
    readSidecar(lv, pool, vol.name),
  ]);
  const usedBy = usesOf(usage, s.path);
  return {
    name: vol.name,
    pool: pool.name,
    path: s.path,
    format: s.format,
    virtualSize: s.capacity,
    allocation: s.allocation,
    sha256,
    users: usedBy.length,
    usedBy,
  };
}

/** The images of `poolName` (its volumes but the checksum sidecars), sorted by name. */
export async function listImages(lv: Libvirt, poolName: string): Promise<ImageSummary[]> {
  const pool = await lookupPool(lv, poolName);
  const vols = (await lv.storagePoolListAllVolumes(pool))
    .filter((v) => !v.name.endsWith(CHECKSUM_SUFFIX));
  const usage = await diskUsage(lv);
  const out = await Promise.all(vols.map(async (v) => {
    const { usedBy: _, ...summary } = await details(lv, pool, v, usage);
    return summary;
  }));
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

async function lookupImage(
  lv: Libvirt,
  poolName: string,
  name: string,
): Promise<{ pool: StoragePoolRef; vol: StorageVolRef }> {
  const pool = await lookupPool(lv, poolName);
  if (name.endsWith(CHECKSUM_SUFFIX)) {
    throw new StorageError(`${name} is the checksum of an image, not an image`);
  }
  try {
    return { pool, vol: await lv.storageVolLookupByName(pool, name) };
  } catch (e) {
    if (e instanceof LibvirtError && e.isNoStorageVol()) {
      throw new StorageError(`Image ${name} does not exist in pool ${poolName}`, { cause: e });
    }
    throw e;
  }
}

/** One image with its path and the disks and VMs that use it. */
export async function imageInfo(
  lv: Libvirt,
  poolName: string,
  name: string,
): Promise<ImageDetails> {
  const { pool, vol } = await lookupImage(lv, poolName, name);
  return await details(lv, pool, vol, await diskUsage(lv));
}

/**
 * Deletes an image and its checksum. Refuses while any volume uses it as its backing store or a VM
 * disk uses it directly, naming the VMs, unless `force`.
 *
 * @returns what used the image (non-empty only with `force`)
 * @throws {StorageError} when it is in use without `force`, or does not exist
 */
export async function deleteImage(
  lv: Libvirt,
  poolName: string,
  name: string,
  opts: { force?: boolean } = {},
): Promise<ImageUse[]> {
  const { pool, vol } = await lookupImage(lv, poolName, name);
  const info = await details(lv, pool, vol, await diskUsage(lv));
  if (info.usedBy.length > 0 && opts.force !== true) {
    const vms = [...new Set(info.usedBy.map((u) => u.vm).filter((v) => v !== null))].sort();
    const orphans = info.usedBy.filter((u) => u.vm === null).map((u) => u.volume);
    const who = [
      vms.length > 0 ? `VM(s) ${vms.join(", ")}` : "",
      orphans.length > 0 ? `volume(s) ${orphans.join(", ")}` : "",
    ].filter((s) => s !== "").join(" and ");
    throw new StorageError(`Image ${name} is in use by ${who}`, {
      hint: { option: "force", effect: "delete it anyway" },
    });
  }
  try {
    await lv.storageVolDelete(vol);
  } catch (e) {
    throw new StorageError(`Cannot delete image ${name}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await lv.storageVolDelete(await lv.storageVolLookupByName(pool, name + CHECKSUM_SUFFIX));
  } catch (e) {
    if (!(e instanceof LibvirtError && e.isNoStorageVol())) throw e;
  }
  return info.usedBy;
}

// ---- a boot image file outside the pools ----

/** SHA-256 of the local file `path`, lowercase hex, read in chunks (memory stays flat). */
async function sha256OfFile(path: string): Promise<string> {
  const file = await Deno.open(path, { read: true });
  try {
    const hash = createHash("sha256");
    const buf = new Uint8Array(READ_CHUNK);
    while (true) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
    return hash.digest("hex");
  } finally {
    file.close();
  }
}

/** The image a file outside the pools became ({@link imageFromFile}). */
export interface ImageFromFile {
  /** The image's volume in the image pool. */
  volume: StorageVolRef;
  /** Whether this call imported it (false: an earlier import with the same SHA-256 was reused). */
  imported: boolean;
}

/**
 * The image pool's copy of the local file `path` (a boot image outside foundry's pools), named
 * after the file: an image of that name with the same SHA-256 is reused; otherwise the file is
 * imported as `foundry image import` does (same checks). A VM's overlay is then backed by this
 * copy, never by the user's file, which could change under the VM.
 *
 * @throws {StorageError} the file cannot be imported, or an image of its name with other content
 *   (or no recorded checksum) is in the pool
 */
export async function imageFromFile(
  lv: Libvirt,
  poolName: string,
  path: string,
  opts: TransferOptions = {},
): Promise<ImageFromFile> {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const pool = await lookupPool(lv, poolName);
  for (let attempt = 0;; attempt++) {
    let vol: StorageVolRef | undefined;
    try {
      vol = await lv.storageVolLookupByName(pool, name);
    } catch (e) {
      if (!(e instanceof LibvirtError && e.isNoStorageVol())) throw e;
    }
    if (vol !== undefined) {
      const [recorded, mine] = await Promise.all([
        readSidecar(lv, pool, name),
        sha256OfFile(path).catch((e) => {
          throw new StorageError(`Cannot read ${path}: ${(e as Error).message}`, { cause: e });
        }),
      ]);
      if (recorded === mine) return { volume: vol, imported: false };
      throw new StorageError(
        recorded === null
          ? `Boot image ${path}: image ${name} in pool ${poolName} has the same name and no ` +
            `recorded SHA-256, so it cannot be told to be the same file; import the file under ` +
            `another name and refer to that`
          : `Boot image ${path} (sha256 ${mine}) differs from image ${name} already in pool ` +
            `${poolName} (sha256 ${recorded}); import the file under another name and refer to that`,
      );
    }
    try {
      await importImage(lv, poolName, path, name, opts);
      return { volume: await lv.storageVolLookupByName(pool, name), imported: true };
    } catch (e) {
      // A concurrent create imported the same name first: compare with that one.
      if (attempt === 0 && e instanceof StorageError && /exists already/.test(e.message)) continue;
      throw e;
    }
  }
}
