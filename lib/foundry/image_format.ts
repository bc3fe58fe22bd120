/**
 * Recognises bootable disk images by their first bytes, as the design asks of `foundry image import`:
 * qcow2 by its magic `QFI\xfb` at offset 0, raw by the MBR boot signature `55 aa` at offset 510 (GPT
 * disks have a protective MBR), and the file name's extension must agree. A qcow2 image must also
 * stand alone to be a base image (see `qcow2.ts`); a raw image has no header to refer elsewhere.
 *
 * @module
 */

import { qcow2HeaderBytes, qcow2Problem } from "./qcow2.ts";
import type { VolumeFormat } from "./storage_xml.ts";

/** Bytes of an image needed by {@link detectImageFormat}. */
export const IMAGE_HEADER_BYTES = 512;

/** The format of an image from its first {@link IMAGE_HEADER_BYTES} bytes, or undefined if neither. */
export function detectImageFormat(header: Uint8Array): VolumeFormat | undefined {
  if (header[0] === 0x51 && header[1] === 0x46 && header[2] === 0x49 && header[3] === 0xfb) {
    return "qcow2";
  }
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
  const ext = /\.(qcow2|raw)$/.exec(name)?.[1] as VolumeFormat | undefined;
  if (ext === undefined) return `${name} must end in .qcow2 or .raw`;
  const found = detectImageFormat(header);
  if (found === ext) return undefined;
  if (found === undefined) {
    return ext === "qcow2"
      ? `${name} is not a qcow2 image: it lacks the QFI\\xfb magic`
      : `${name} is not a bootable raw image: it has no boot signature 55 aa at offset 510`;
  }
  return `${name} is named .${ext} but holds a ${found} image`;
}

/**
 * How many leading bytes of an image {@link baseImageProblem} needs, given its first
 * {@link IMAGE_HEADER_BYTES}: those for raw, the first cluster (up to 2 MiB) for qcow2.
 */
export function baseImageHeaderBytes(header: Uint8Array): number {
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
