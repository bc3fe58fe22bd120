/**
 * Copies a storage volume from one libvirt host to another over the RPC streams (issue 16):
 * `virStorageVolDownload` on the source into `virStorageVolUpload` on the target, one chunk at a
 * time (memory stays flat whatever the size), the bytes hashed on the way and the copy read back
 * and hashed again: a copy whose SHA-256 differs is removed and refused. The volume is copied as
 * the file it is (a qcow2 overlay keeps its header, and with it the path of its backing file).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Libvirt, StoragePoolRef, StorageVolRef } from "../libvirt/mod.ts";
import { StorageError } from "./pools.ts";

/** A volume copied and verified. */
export interface CopiedVolume {
  /** The new volume on the target. */
  volume: StorageVolRef;
  /** SHA-256 (hex) of its bytes, equal on both hosts. */
  sha256: string;
  /** Bytes copied. */
  bytes: number;
}

/** Options of {@linkcode copyVolume}. */
export interface CopyVolumeOptions {
  /** Bytes copied so far, as they go. */
  onProgress?: (bytes: number) => void;
  /** Ctrl-C: stops the copy, which is then removed. */
  signal?: AbortSignal;
}

async function* hashed(
  chunks: AsyncIterable<Uint8Array>,
  hash: ReturnType<typeof createHash>,
  count: { bytes: number },
  opts: CopyVolumeOptions,
): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) {
    opts.signal?.throwIfAborted();
    hash.update(c);
    count.bytes += c.length;
    yield c;
  }
}

/** SHA-256 (hex) and length of a volume's bytes, streamed from its host. */
export async function volumeSha256(
  lv: Libvirt,
  vol: StorageVolRef,
  signal?: AbortSignal,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  const count = { bytes: 0 };
  for await (const _ of hashed(lv.storageVolDownload(vol), hash, count, signal ? { signal } : {})) {
    // hashed() does the work
  }
  return { sha256: hash.digest("hex"), bytes: count.bytes };
}

/** Escapes text for an XML attribute or element. */
function xmlText(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/'/g, "&apos;").replace(/"/g, "&quot;");
}

/**
 * Copies `vol` of `src` into pool `pool` of `dst` under the same name (see the module
 * documentation). The target volume is made empty and filled with the source's bytes.
 *
 * @throws {StorageError} the target has a volume of that name, or the copy's SHA-256 differs
 *   (the copy is removed on any failure)
 */
export async function copyVolume(
  src: Libvirt,
  vol: StorageVolRef,
  dst: Libvirt,
  pool: StoragePoolRef,
  opts: CopyVolumeOptions = {},
): Promise<CopiedVolume> {
  const exists = await dst.storageVolLookupByName(pool, vol.name).then(() => true, () => false);
  if (exists) {
    throw new StorageError(`volume ${vol.name} exists already in pool ${pool.name} of the target`);
  }
  // An empty file of the right name: the upload writes the source's bytes as they are (a qcow2
  // created here would have its own header, which a shorter source would not overwrite).
  const created = await dst.storageVolCreateXml(
    pool,
    `<volume><name>${
      xmlText(vol.name)
    }</name><capacity unit='bytes'>0</capacity><allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>`,
  );
  try {
    const hash = createHash("sha256");
    const count = { bytes: 0 };
    await dst.storageVolUpload(
      created,
      hashed(src.storageVolDownload(vol), hash, count, opts),
      opts.onProgress ? { onProgress: opts.onProgress } : {},
    );
    const sent = hash.digest("hex");
    const back = await volumeSha256(dst, created, opts.signal);
    if (back.sha256 !== sent || back.bytes !== count.bytes) {
      throw new StorageError(
        `the copy of volume ${vol.name} differs from its source (SHA-256 ${back.sha256}, ${back.bytes} bytes; sent ${sent}, ${count.bytes} bytes)`,
      );
    }
    return { volume: created, sha256: sent, bytes: count.bytes };
  } catch (e) {
    await dst.storageVolDelete(created).catch(() => {});
    throw e;
  }
}
