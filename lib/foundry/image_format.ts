/**
 * Recognises bootable disk images by their first bytes, as the design asks of `foundry image import`:
 * qcow2 by its magic `QFI\xfb` at offset 0, raw by the MBR boot signature `55 aa` at offset 510 (GPT
 * disks have a protective MBR), and the file name's extension must agree.
 *
 * @module
 */

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
