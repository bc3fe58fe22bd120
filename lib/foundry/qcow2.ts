/**
 * The qcow2 header as far as foundry must read it to decide whether an image can be a base image:
 * the fixed fields (QEMU's `docs/interop/qcow2.txt`, all big-endian) and the header extensions
 * that follow them in the first cluster. An image that names another file (a backing file or an
 * external data file) would hand every VM booted from it a file of the host, so those are found
 * here wherever in the first cluster they sit.
 *
 * @example
 * ```ts
 * import { parseQcow2Header, qcow2Problem } from "./qcow2.ts";
 * const head = new Uint8Array(512); // the first bytes of an image
 * if (parseQcow2Header(head) !== undefined) console.log(qcow2Problem("x.qcow2", head));
 * ```
 * @module
 */

/** Bits of the `incompatible_features` field (qcow2 v3, offset 72). */
export const QCOW2_INCOMPATIBLE = {
  DIRTY: 0,
  CORRUPT: 1,
  EXTERNAL_DATA_FILE: 2,
  COMPRESSION_TYPE: 3,
  EXTENDED_L2: 4,
} as const;

/** Header extension types (`magic` of each extension). */
export const QCOW2_EXTENSION = {
  END: 0x00000000,
  BACKING_FORMAT: 0xe2792aca,
  FEATURE_NAME_TABLE: 0x6803f857,
  BITMAPS: 0x23852875,
  FULL_DISK_ENCRYPTION: 0x0537be77,
  EXTERNAL_DATA_FILE: 0x44415441, // "DATA"
} as const;

/** Incompatible features foundry knows (bits 0 to 4); any other bit is refused. */
const KNOWN_INCOMPATIBLE = 0b11111n;

/** The largest qcow2 cluster (`cluster_bits` 21); header extensions never reach past it. */
export const QCOW2_MAX_CLUSTER_BYTES = 2 * 1024 * 1024;

/** Size of the v2 header, where its extensions start. */
const V2_HEADER_LENGTH = 72;
/** Smallest v3 header (up to and including `header_length`). */
const V3_MIN_HEADER_LENGTH = 104;

/** What the qcow2 header says about an image. */
export interface Qcow2Header {
  /** qcow2 version, 2 or 3. */
  version: number;
  /** Virtual disk size in bytes. */
  virtualSize: number;
  /** Whether the image names a backing file. */
  hasBackingFile: boolean;
  /** Whether the image is encrypted (`crypt_method` not 0). */
  encrypted: boolean;
  /** log2 of the cluster size. */
  clusterBits: number;
  /** Where the header extensions start. */
  headerLength: number;
  /** The `incompatible_features` bits (0 for v2). */
  incompatibleFeatures: bigint;
}

/**
 * Reads the fixed qcow2 header fields (version at 4, backing file offset at 8, cluster bits at 20,
 * size at 24, crypt method at 32; for v3 incompatible features at 72 and header length at 100), or
 * undefined when `header` is not qcow2 (no `QFI\xfb` magic) or too short to hold them.
 */
export function parseQcow2Header(header: Uint8Array): Qcow2Header | undefined {
  if (header.length < V2_HEADER_LENGTH) return undefined;
  if (header[0] !== 0x51 || header[1] !== 0x46 || header[2] !== 0x49 || header[3] !== 0xfb) {
    return undefined;
  }
  const dv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const version = dv.getUint32(4);
  const v3 = version >= 3 && header.length >= V3_MIN_HEADER_LENGTH;
  return {
    version,
    virtualSize: Number(dv.getBigUint64(24)),
    hasBackingFile: dv.getBigUint64(8) !== 0n,
    encrypted: dv.getUint32(32) !== 0,
    clusterBits: dv.getUint32(20),
    headerLength: v3 ? dv.getUint32(100) : V2_HEADER_LENGTH,
    incompatibleFeatures: v3 ? dv.getBigUint64(72) : 0n,
  };
}

/**
 * How many leading bytes of a qcow2 image {@link qcow2Problem} needs: the whole first cluster,
 * where the header extensions live (at most {@link QCOW2_MAX_CLUSTER_BYTES}).
 */
export function qcow2HeaderBytes(header: Uint8Array): number {
  const q = parseQcow2Header(header);
  if (q === undefined || q.clusterBits < 9 || q.clusterBits > 21) return header.length;
  return 2 ** q.clusterBits;
}

/**
 * The types of the header extensions in `header` (which should hold the first cluster, see
 * {@link qcow2HeaderBytes}), or a reason why they cannot be read.
 */
export function qcow2Extensions(header: Uint8Array): number[] | string {
  const q = parseQcow2Header(header);
  if (q === undefined) return "it is not a qcow2 header";
  const cluster = 2 ** q.clusterBits;
  const dv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const types: number[] = [];
  let off = q.headerLength;
  while (off < cluster) {
    if (off + 8 > cluster) return "its header extensions run past the first cluster";
    if (off + 8 > header.length) return "its header extensions are cut short";
    const type = dv.getUint32(off);
    const len = dv.getUint32(off + 4);
    if (type === QCOW2_EXTENSION.END) return types;
    off += 8;
    if (len > cluster - off) return "its header extensions run past the first cluster";
    types.push(type);
    off += Math.ceil(len / 8) * 8;
  }
  return types;
}

function bits(mask: bigint): number[] {
  const out: number[] = [];
  for (let b = 0; b < 64; b++) if ((mask >> BigInt(b)) & 1n) out.push(b);
  return out;
}

/**
 * Why the qcow2 image `name` with leading bytes `header` (its first cluster, see
 * {@link qcow2HeaderBytes}) cannot be a base image, or undefined when it can: an unknown version,
 * a malformed header, incompatible features foundry does not know, the corrupt or dirty bit, an
 * external data file (feature bit 2 or the `DATA` extension), a backing file, encryption, or a
 * virtual size of 0. Names inside the image (data or backing file) are never quoted.
 */
export function qcow2Problem(name: string, header: Uint8Array): string | undefined {
  const q = parseQcow2Header(header);
  if (q === undefined) return `${name} is not a qcow2 image: its header is cut short`;
  if (q.version !== 2 && q.version !== 3) {
    return `${name} has qcow2 version ${q.version}; expected 2 or 3`;
  }
  if (q.clusterBits < 9 || q.clusterBits > 21) {
    return `${name} has a qcow2 cluster_bits of ${q.clusterBits}; expected 9 to 21`;
  }
  if (q.version === 3 && header.length < V3_MIN_HEADER_LENGTH) {
    return `${name} is not a qcow2 image: its header is cut short`;
  }
  if (
    q.version === 3 &&
    (q.headerLength < V3_MIN_HEADER_LENGTH || q.headerLength % 8 !== 0 ||
      q.headerLength > 2 ** q.clusterBits)
  ) {
    return `${name} has a qcow2 header_length of ${q.headerLength}; expected a multiple of 8 ` +
      `from ${V3_MIN_HEADER_LENGTH} to the cluster size`;
  }
  const unknown = q.incompatibleFeatures & ~KNOWN_INCOMPATIBLE;
  if (unknown !== 0n) {
    return `${name} has incompatible qcow2 features foundry does not know (bit ${
      bits(unknown).join(", bit ")
    }); it cannot tell what the image refers to`;
  }
  const has = (bit: number) => ((q.incompatibleFeatures >> BigInt(bit)) & 1n) === 1n;
  const dataFile = `${name} uses an external data file; a base image must hold its own data`;
  if (has(QCOW2_INCOMPATIBLE.EXTERNAL_DATA_FILE)) return dataFile;
  if (q.hasBackingFile) return `${name} has a backing file; a base image must stand alone`;
  if (has(QCOW2_INCOMPATIBLE.CORRUPT)) {
    return `${name} is marked corrupt; repair it with qemu-img check -r all first`;
  }
  if (has(QCOW2_INCOMPATIBLE.DIRTY)) {
    return `${name} was not closed cleanly (dirty bit set); run qemu-img check -r all first`;
  }
  if (q.encrypted) return `${name} is an encrypted qcow2 image; base images cannot be encrypted`;
  const extensions = qcow2Extensions(header);
  if (typeof extensions === "string") return `${name} is not a usable qcow2 image: ${extensions}`;
  // qemu refuses a data file name without the feature bit; so do we, wherever it sits.
  if (extensions.includes(QCOW2_EXTENSION.EXTERNAL_DATA_FILE)) return dataFile;
  if (extensions.includes(QCOW2_EXTENSION.FULL_DISK_ENCRYPTION)) {
    return `${name} is an encrypted qcow2 image; base images cannot be encrypted`;
  }
  if (q.virtualSize === 0) return `${name} has a virtual size of 0 bytes`;
  return undefined;
}
