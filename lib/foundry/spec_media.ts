/**
 * What create needs of the spec's media and secrets beyond pools' volumes: the installation ISO
 * (`spec.installMedia`), existing disks used as they are (`bootDisk.volume`, `dataDisks[].volume`),
 * a boot image file outside foundry's pools, and the graphical console's password file. The facts
 * for the runtime checks ({@linkcode specFacts}) are read before anything is created; the ISO's
 * content and the password are read again by create itself.
 *
 * Paths are paths on the host foundry runs on; one that is a volume of a pool of the daemon is
 * used as that volume.
 *
 * @module
 */

import type { Libvirt, StorageVolRef } from "../libvirt/mod.ts";
import type { FoundryConfig } from "./config.ts";
import type { HostSurvey } from "./host_resources.ts";
import {
  detectImageFormat,
  IMAGE_HEADER_BYTES,
  isIso9660,
  ISO9660_MAGIC_OFFSET,
  ISO_HEADER_BYTES,
} from "./image_format.ts";
import { type ImageLocation, resolveImage } from "./naming.ts";
import { StorageError } from "./pools.ts";
import type { HostFacts } from "./preflight.ts";
import type { GraphicsType, VirtualMachine } from "./types.ts";

/** Bytes of a password file's first line read at most ({@linkcode readGraphicsPassword}). */
export const GRAPHICS_PASSWORD_MAX_BYTES = 64;

/** The most bytes of a VNC password: the protocol's DES key takes 8 (longer ones are cut). */
export const VNC_PASSWORD_MAX_BYTES = 8;

/**
 * Where an existing disk (`bootDisk.volume`, `dataDisks[].volume`) is: `/path` is a file,
 * `pool:volume` a pool's volume.
 */
export function resolveDiskRef(ref: string): ImageLocation {
  if (ref.startsWith("/")) return { kind: "path", path: ref };
  const colon = ref.indexOf(":");
  return { kind: "volume", pool: ref.slice(0, colon), volume: ref.slice(colon + 1) };
}

/** Where `vm`'s installation ISO is, resolved as a base image is; undefined without one. */
export function installMediaLocation(
  vm: VirtualMachine,
  config: Pick<FoundryConfig, "imagesPool">,
): ImageLocation | undefined {
  const media = vm.spec.installMedia;
  if (media === undefined) return undefined;
  return resolveImage(media.image, media.imagePool, config.imagesPool);
}

/** The existing disks of `vm` with the spec path of each. */
export function existingDisks(vm: VirtualMachine): { path: string; ref: string }[] {
  const out: { path: string; ref: string }[] = [];
  if (vm.spec.bootDisk.volume !== undefined) {
    out.push({ path: "spec.bootDisk.volume", ref: vm.spec.bootDisk.volume });
  }
  (vm.spec.dataDisks ?? []).forEach((d, i) => {
    if (d.volume !== undefined) out.push({ path: `spec.dataDisks[${i}].volume`, ref: d.volume });
  });
  return out;
}

async function localFileExists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Whether a location exists: a volume in its pool (`survey`'s listing), or a path that is a pool
 * volume or a regular file on this host.
 */
async function locationExists(survey: HostSurvey, loc: ImageLocation): Promise<boolean> {
  if (loc.kind === "volume") {
    const vols = await survey.volumes(loc.pool);
    return vols !== undefined && vols.some((v) => v.name === loc.volume);
  }
  return await survey.fileExists(loc.path) || await localFileExists(loc.path);
}

/**
 * The facts of {@linkcode HostFacts} about `vm`'s media and secrets: whether its installation
 * ISO and existing disks exist, whether a file-path boot image exists on this host (a file outside
 * the pools is imported by create), and what is wrong with its console password file.
 */
export async function specFacts(
  survey: HostSurvey,
  vm: VirtualMachine,
  config: Pick<FoundryConfig, "imagesPool">,
): Promise<Partial<HostFacts>> {
  const out: Partial<HostFacts> = {};
  const media = installMediaLocation(vm, config);
  const image = vm.spec.bootDisk.image;
  const disks = existingDisks(vm);
  const secret = vm.spec.graphics?.passwordSecret;
  const [mediaOk, mediaPool, imageFile, diskOk, password] = await Promise.all([
    media ? locationExists(survey, media) : undefined,
    media?.kind === "volume" ? survey.volumes(media.pool) : undefined,
    image?.startsWith("/") && vm.spec.bootDisk.empty !== true
      ? locationExists(survey, { kind: "path", path: image })
      : undefined,
    Promise.all(disks.map((d) => locationExists(survey, resolveDiskRef(d.ref)))),
    secret !== undefined
      ? readGraphicsPassword(secret, vm.spec.graphics?.type ?? "vnc")
      : undefined,
  ]);
  if (media !== undefined) {
    out.installMedia = { exists: mediaOk === true };
    if (media.kind === "volume") {
      out.installMedia.poolVolumes = mediaPool?.map((v) => v.name);
    }
  }
  if (imageFile !== undefined) out.imageFileExists = imageFile;
  if (disks.length) {
    out.existingDisks = Object.fromEntries(disks.map((d, i) => [d.ref, diskOk[i] === true]));
  }
  if (password !== undefined && "problem" in password) {
    out.graphicsPasswordProblem = password.problem;
  }
  return out;
}

/**
 * Reads a console password from the first line of file `path`: at most
 * {@linkcode GRAPHICS_PASSWORD_MAX_BYTES} bytes are read. Refused (a `problem` that never holds
 * the password): a file that is not a regular file, one group or others may access (as ssh
 * refuses such a key file), an empty first line, anything but printable ASCII, a line longer than
 * 64 bytes, and for `vnc` one longer than {@linkcode VNC_PASSWORD_MAX_BYTES} characters.
 */
export async function readGraphicsPassword(
  path: string,
  type: GraphicsType,
): Promise<{ password: string } | { problem: string }> {
  let file: Deno.FsFile;
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) return { problem: `password file ${path} is not a regular file` };
    file = await Deno.open(path, { read: true });
  } catch (e) {
    return { problem: `cannot read password file ${path}: ${(e as Error).message}` };
  }
  try {
    const st = await file.stat();
    const mode = st.mode ?? 0;
    if ((mode & 0o077) !== 0) {
      return {
        problem: `password file ${path} is accessible by group or others (mode 0${
          (mode & 0o777).toString(8)
        }); chmod 600 it`,
      };
    }
    const buf = new Uint8Array(GRAPHICS_PASSWORD_MAX_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const r = await file.read(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    const bytes = buf.subarray(0, n);
    let end = bytes.indexOf(0x0a);
    if (end < 0) {
      if (n > GRAPHICS_PASSWORD_MAX_BYTES) {
        return {
          problem:
            `password file ${path}: the password is longer than ${GRAPHICS_PASSWORD_MAX_BYTES} bytes`,
        };
      }
      end = n;
    }
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    const line = bytes.subarray(0, end);
    if (line.length === 0) return { problem: `password file ${path}: the first line is empty` };
    // What libvirt's <graphics passwd> and every VNC client take: printable ASCII.
    if (line.some((b) => b < 0x20 || b >= 0x7f)) {
      return {
        problem:
          `password file ${path}: the password must be printable ASCII (no control or non-ASCII characters)`,
      };
    }
    if (type === "vnc" && line.length > VNC_PASSWORD_MAX_BYTES) {
      return {
        problem:
          `password file ${path}: a VNC password has at most ${VNC_PASSWORD_MAX_BYTES} characters, this one has ${line.length}`,
      };
    }
    return { password: new TextDecoder().decode(line) };
  } finally {
    file.close();
  }
}

/** Where an installation ISO is, as the domain XML takes it. */
export type InstallMediaSource = { pool: string; volume: string } | { file: string };

async function volumeHead(lv: Libvirt, vol: StorageVolRef, bytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(bytes);
  let n = 0;
  for await (const chunk of lv.storageVolDownload(vol, { offset: 0, length: bytes })) {
    const part = chunk.subarray(0, bytes - n);
    out.set(part, n);
    n += part.length;
    if (n >= bytes) break;
  }
  return out.subarray(0, n);
}

async function fileHead(path: string, bytes: number): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    if (!(await file.stat()).isFile) throw new Error("not a regular file");
    const out = new Uint8Array(bytes);
    let n = 0;
    while (n < bytes) {
      const r = await file.read(out.subarray(n));
      if (r === null) break;
      n += r;
    }
    return out.subarray(0, n);
  } finally {
    file.close();
  }
}

/**
 * Finds `vm`'s installation ISO and checks that it is an ISO 9660 image (its first
 * {@linkcode ISO_HEADER_BYTES} bytes, read through the volume's stream or from the file): a pool
 * volume (also a path that is one) is given as pool and volume, any other path as the file.
 *
 * @throws {StorageError} it does not exist or is not an ISO 9660 image
 */
export async function resolveInstallMedia(
  lv: Libvirt,
  vm: VirtualMachine,
  config: Pick<FoundryConfig, "imagesPool">,
): Promise<InstallMediaSource | undefined> {
  const loc = installMediaLocation(vm, config);
  if (loc === undefined) return undefined;
  const image = vm.spec.installMedia!.image;
  let head: Uint8Array;
  let source: InstallMediaSource;
  try {
    let vol: StorageVolRef | undefined;
    if (loc.kind === "volume") {
      vol = await lv.storageVolLookupByName(await lv.storagePoolLookupByName(loc.pool), loc.volume);
    } else {
      vol = await lv.storageVolLookupByPath(loc.path).catch(() => undefined);
    }
    if (vol !== undefined) {
      source = { pool: vol.pool, volume: vol.name };
      head = await volumeHead(lv, vol, ISO_HEADER_BYTES);
    } else {
      const path = (loc as { path: string }).path;
      source = { file: path };
      head = await fileHead(path, ISO_HEADER_BYTES);
    }
  } catch (e) {
    throw new StorageError(`Install media ${image}: ${(e as Error).message}`, { cause: e });
  }
  if (!isIso9660(head)) {
    throw new StorageError(
      `Install media ${image} is not an ISO 9660 image (no CD001 at offset ${ISO9660_MAGIC_OFFSET})`,
    );
  }
  return source;
}

/**
 * The formats of `vm`'s existing disks (`bootDisk.volume` at `vda`, `dataDisks[].volume` at their
 * devices), each looked up again: a pool volume's format as libvirt reads it, a file's from its
 * first bytes (`qcow2` by its magic, else `raw`), so the guest sees the disk, not its container.
 *
 * @throws {StorageError} a disk does not exist
 */
export async function existingDiskFormats(
  lv: Libvirt,
  vm: VirtualMachine,
): Promise<Record<string, string>> {
  const disks: { device: string; ref: string }[] = [];
  if (vm.spec.bootDisk.volume !== undefined) {
    disks.push({ device: "vda", ref: vm.spec.bootDisk.volume });
  }
  for (const d of vm.spec.dataDisks ?? []) {
    if (d.volume !== undefined) disks.push({ device: d.device, ref: d.volume });
  }
  const formats = await Promise.all(disks.map(async ({ ref }) => {
    const loc = resolveDiskRef(ref);
    try {
      const vol = loc.kind === "volume"
        ? await lv.storageVolLookupByName(await lv.storagePoolLookupByName(loc.pool), loc.volume)
        : await lv.storageVolLookupByPath(loc.path).catch(() => undefined);
      if (vol !== undefined) {
        const xml = await lv.storageVolGetXmlDesc(vol);
        return /<format\s+type=['"]([a-z0-9]+)['"]/.exec(xml)?.[1] ?? "raw";
      }
      const head = await fileHead((loc as { path: string }).path, IMAGE_HEADER_BYTES);
      return detectImageFormat(head) === "qcow2" ? "qcow2" : "raw";
    } catch (e) {
      throw new StorageError(`Existing disk ${ref}: ${(e as Error).message}`, { cause: e });
    }
  }));
  return Object.fromEntries(disks.map((d, i) => [d.device, formats[i]!]));
}
