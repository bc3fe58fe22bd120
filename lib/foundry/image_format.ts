/**
 * Recognises bootable disk images by their first bytes, as the design asks of `foundry image import`:
 * qcow2 by its magic `QFI\xfb` at offset 0, raw by the MBR boot signature `55 aa` at offset 510 (GPT
 * disks have a protective MBR), and the file name's extension must agree. A qcow2 image must also
 * stand alone to be a base image (see `qcow2.ts`); a raw image has no header to refer elsewhere.
 * Installation media are ISO 9660 images (`spec.installMedia`): the standard identifier `CD001` of
 * the first volume descriptor at offset 32769, in a file named `.iso`.
 *
 * @module
 */

import { qcow2HeaderBytes, qcow2Problem } from "./qcow2.ts";
import type { VolumeFormat } from "./storage_xml.ts";

/** Bytes of an image needed by {@link detectImageFormat} for a disk image. */
export const IMAGE_HEADER_BYTES = 512;

/** Offset of the standard identifier `CD001` of an ISO 9660 image's first volume descriptor. */
export const ISO9660_MAGIC_OFFSET = 32769;

/** Bytes of an image needed to recognise an ISO 9660 image: up to the end of `CD001`. */
export const ISO_HEADER_BYTES = ISO9660_MAGIC_OFFSET + 5;

/** The formats of images foundry keeps: disk images, and ISO 9660 installation media. */
export type ImageFormat = VolumeFormat | "iso";

/** Whether `header` (at least {@link ISO_HEADER_BYTES} bytes) is an ISO 9660 image. */
export function isIso9660(header: Uint8Array): boolean {
  const at = ISO9660_MAGIC_OFFSET;
  return header.length >= ISO_HEADER_BYTES &&
    header[at] === 0x43 && header[at + 1] === 0x44 && header[at + 2] === 0x30 &&
    header[at + 3] === 0x30 && header[at + 4] === 0x31;
}

/**
 * The format of an image from its first bytes, or undefined if none: {@link IMAGE_HEADER_BYTES}
 * tell qcow2 and raw, {@link ISO_HEADER_BYTES} an ISO 9660 image. An ISO that is also a bootable
 * raw disk (an isohybrid image has an MBR) counts as `iso`.
 */
export function detectImageFormat(header: Uint8Array): ImageFormat | undefined {
  if (header[0] === 0x51 && header[1] === 0x46 && header[2] === 0x49 && header[3] === 0xfb) {
    return "qcow2";
  }
  if (isIso9660(header)) return "iso";
  if (header.length >= 512 && header[510] === 0x55 && header[511] === 0xaa) return "raw";
  return undefined;
}

/**
 * Why an image named `name` with first bytes `header` cannot be imported, or undefined when it can.
 *
 * @example
 * ```ts
 * imageProblem("debian-12.raw", new Uint8Array(512)); // "debian-12.raw is not a bootable raw image: ..."
 * ```
 */
export function imageProblem(name: string, header: Uint8Array): string | undefined {
  const ext = /\.(qcow2|raw|iso)$/.exec(name)?.[1] as ImageFormat | undefined;
  if (ext === undefined) {
    return `${name} must end in .qcow2 or .raw (a disk image) or .iso (installation media)`;
  }
  const found = detectImageFormat(header);
  if (found === ext) return undefined;
  if (found === undefined) {
    if (ext === "iso") {
      return `${name} is not an ISO 9660 image: it lacks CD001 at offset ${ISO9660_MAGIC_OFFSET}`;
    }
    return ext === "qcow2"
      ? `${name} is not a qcow2 image: it lacks the QFI\\xfb magic`
      : `${name} is not a bootable raw image: it has no boot signature 55 aa at offset 510`;
  }
  return `${name} is named .${ext} but holds ${found === "iso" ? "an" : "a"} ${found} image`;
}

/**
 * How many leading bytes of an image {@link baseImageProblem} needs, given its first
 * {@link IMAGE_HEADER_BYTES}: those for raw, the first cluster (up to 2 MiB) for qcow2, and
 * {@link ISO_HEADER_BYTES} for an image named `.iso` (`name`, when given).
 */
export function baseImageHeaderBytes(header: Uint8Array, name?: string): number {
  if (name?.endsWith(".iso")) return ISO_HEADER_BYTES;
  return detectImageFormat(header) === "qcow2"
    ? Math.max(IMAGE_HEADER_BYTES, qcow2HeaderBytes(header))
    : IMAGE_HEADER_BYTES;
}

/**
 * Why the image `name` with leading bytes `header` cannot be imported as a base image, or
 * undefined: the checks of {@link imageProblem}, and for qcow2 those of `qcow2Problem` (no
 * external data file, no backing file, no unknown incompatible feature, not corrupt, dirty or
 * encrypted). `header` should hold {@link baseImageHeaderBytes} bytes, or the whole image when it is
 * shorter.
 *
 * @example
 * ```ts
 * baseImageProblem("x.qcow2", new Uint8Array(512)); // "x.qcow2 is not a qcow2 image: ..."
 * ```
 */
export function baseImageProblem(name: string, header: Uint8Array): string | undefined {
  const problem = imageProblem(name, header);
  if (problem !== undefined) return problem;
  return detectImageFormat(header) === "qcow2" ? qcow2Problem(name, header) : undefined;
}
