/**
 * Writes ISO 9660 (ECMA-119) images with Joliet and Rock Ridge names: a single root directory of regular
 * files, which is what a cloud-init `cidata` seed needs.
 *
 * The image is deterministic: the same files and options give the same bytes. Timestamps come from
 * `options.date`, a fixed constant by default, never from the clock.
 *
 * Layout (2048-byte blocks): 0-15 system area, 16 primary volume descriptor, 17 Joliet supplementary
 * descriptor, then the terminator, the four path tables, the two root directories, the Rock Ridge
 * continuation area (holding the ER entry) and the file data.
 *
 * @example
 * ```ts
 * import { buildIso } from "./writer.ts";
 * const image = buildIso(
 *   [{ name: "meta-data", data: "instance-id: a\n" }],
 *   { volumeId: "cidata" },
 * );
 * await Deno.writeFile("seed.iso", image);
 * ```
 *
 * @module
 */

import { ascii, ByteWriter, ucs2, ucs2Field } from "./_bytes.ts";

/** Size of a logical block. */
export const BLOCK_SIZE = 2048;

/** The timestamp of every image unless told otherwise: 2000-01-01T00:00:00Z. */
export const DEFAULT_DATE: Date = new Date(Date.UTC(2000, 0, 1, 0, 0, 0));

/** A regular file in the image's root directory. */
export interface IsoFile {
  /**
   * File name as Joliet and Rock Ridge show it, e.g. `user-data`: 1 to 64 characters of UCS-2
   * (U+FFFF at most), 128 bytes of UTF-8 at most, not `.` or `..`, without control characters or any
   * of the characters Joliet forbids (`* / : ; ? \`).
   */
  name: string;
  /** Contents; strings are encoded as UTF-8. */
  data: Uint8Array | string;
}

/** Options of {@link buildIso}. */
export interface IsoOptions {
  /** Volume identifier, at most 16 printable ASCII characters (`cidata` for cloud-init). */
  volumeId: string;
  /** Time stamped on the volume and every file; {@link DEFAULT_DATE} when absent. */
  date?: Date;
  /** Application identifier, at most 128 ASCII characters. */
  applicationId?: string;
}

const ROCK_RIDGE_ID = "RRIP_1991A";
const ROCK_RIDGE_DESCRIPTOR =
  "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ROCK_RIDGE_SOURCE =
  "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

const FLAG_DIRECTORY = 0x02;
const MODE_FILE = 0o100444;
const MODE_DIRECTORY = 0o040555;

interface Entry {
  name: string;
  data: Uint8Array;
  isoId: Uint8Array;
  jolietId: Uint8Array;
  extent: number;
}

/**
 * Builds an ISO 9660 image holding `files` in its root directory, with Joliet (UCS-2 level 3) and Rock
 * Ridge (RRIP 1.09: `NM`, `PX`, `TF`) names, and level 1 (8.3) primary names.
 *
 * @throws {RangeError} on invalid or duplicate file names, or a volume ID that does not fit
 */
export function buildIso(files: readonly IsoFile[], options: IsoOptions): Uint8Array {
  const date = options.date ?? DEFAULT_DATE;
  checkVolumeId(options.volumeId);
  const appId = options.applicationId ?? "";
  if (appId.length > 128 || !/^[\x20-\x7e]*$/.test(appId)) {
    throw new RangeError(`Expected an application ID of at most 128 printable ASCII characters`);
  }
  const entries = prepareEntries(files);

  const recordTime = recordDate(date);
  const primaryRecords = (rootExtent: number, rootSize: number, ceBlock: number): Uint8Array[] => [
    dirRecord(new Uint8Array([0]), rootExtent, rootSize, FLAG_DIRECTORY, recordTime, [
      susp("SP", [0xbe, 0xef, 0]),
      susp("RR", [0x81]),
      susp("CE", [...both32(ceBlock), ...both32(0), ...both32(erEntry().length)]),
      px(MODE_DIRECTORY, 2),
      tf(recordTime),
    ]),
    dirRecord(new Uint8Array([1]), rootExtent, rootSize, FLAG_DIRECTORY, recordTime, [
      susp("RR", [0x81]),
      px(MODE_DIRECTORY, 2),
      tf(recordTime),
    ]),
    ...sorted(entries, (e) => e.isoId).map((e) =>
      dirRecord(e.isoId, e.extent, e.data.length, 0, recordTime, [
        susp("RR", [0x89]),
        susp("NM", [0, ...new TextEncoder().encode(e.name)]),
        px(MODE_FILE, 1),
        tf(recordTime),
      ])
    ),
  ];
  const jolietRecords = (rootExtent: number, rootSize: number): Uint8Array[] => [
    dirRecord(new Uint8Array([0]), rootExtent, rootSize, FLAG_DIRECTORY, recordTime, []),
    dirRecord(new Uint8Array([1]), rootExtent, rootSize, FLAG_DIRECTORY, recordTime, []),
    ...sorted(entries, (e) => e.jolietId).map((e) =>
      dirRecord(e.jolietId, e.extent, e.data.length, 0, recordTime, [])
    ),
  ];

  // Record lengths do not depend on extents, so a first pass with zeros sizes the directories.
  const primaryBlocks = blocksOf(packRecords(primaryRecords(0, 0, 0)).length);
  const jolietBlocks = blocksOf(packRecords(jolietRecords(0, 0)).length);
  const pathTableL = 19;
  const pathTableM = 20;
  const jolietPathTableL = 21;
  const jolietPathTableM = 22;
  const primaryRoot = 23;
  const jolietRoot = primaryRoot + primaryBlocks;
  const ceBlock = jolietRoot + jolietBlocks;
  let next = ceBlock + 1;
  for (const e of entries) {
    e.extent = e.data.length === 0 ? 0 : next;
    next += blocksOf(e.data.length);
  }
  const totalBlocks = next;

  const primaryDir = packRecords(primaryRecords(primaryRoot, primaryBlocks * BLOCK_SIZE, ceBlock));
  const jolietDir = packRecords(jolietRecords(jolietRoot, jolietBlocks * BLOCK_SIZE));

  const image = new Uint8Array(totalBlocks * BLOCK_SIZE);
  const at = (block: number, data: Uint8Array) => image.set(data, block * BLOCK_SIZE);
  const descriptor = (joliet: boolean): Uint8Array =>
    volumeDescriptor({
      joliet,
      volumeId: options.volumeId,
      applicationId: appId,
      totalBlocks,
      pathTableL: joliet ? jolietPathTableL : pathTableL,
      pathTableM: joliet ? jolietPathTableM : pathTableM,
      root: dirRecord(
        new Uint8Array([0]),
        joliet ? jolietRoot : primaryRoot,
        (joliet ? jolietBlocks : primaryBlocks) * BLOCK_SIZE,
        FLAG_DIRECTORY,
        recordTime,
        [],
      ),
      date,
    });
  at(16, descriptor(false));
  at(17, descriptor(true));
  at(18, new ByteWriter().u8(255).bytes(ascii("CD001")).u8(1).toBytes());
  at(pathTableL, pathTable(primaryRoot, false));
  at(pathTableM, pathTable(primaryRoot, true));
  at(jolietPathTableL, pathTable(jolietRoot, false));
  at(jolietPathTableM, pathTable(jolietRoot, true));
  at(primaryRoot, primaryDir);
  at(jolietRoot, jolietDir);
  at(ceBlock, erEntry());
  for (const e of entries) if (e.data.length > 0) at(e.extent, e.data);
  return image;
}

function checkVolumeId(id: string): void {
  if (id.length === 0 || id.length > 16 || !/^[\x20-\x7e]+$/.test(id)) {
    throw new RangeError(
      `Expected a volume ID of 1 to 16 printable ASCII characters, got ${JSON.stringify(id)}`,
    );
  }
}

/**
 * Whether `name` holds a character no name may hold: a control (C0, DEL, C1), one that Joliet forbids
 * (`* / : ; ? \`), or a surrogate, which UCS-2 cannot hold (alone it is not text, in a pair it
 * stands for a character beyond U+FFFF).
 */
function hasBadNameChar(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xdfff)) return true;
    if ("*/:;?\\".includes(name[i]!)) return true;
  }
  return false;
}

function checkFileName(name: string): void {
  const problem = name.length === 0 || name.length > 64
    ? "of 1 to 64 characters"
    : name === "." || name === ".."
    ? `other than "." and ".."`
    : hasBadNameChar(name)
    ? "without control characters, characters beyond U+FFFF or any of * / : ; ? \\"
    : new TextEncoder().encode(name).length > 128
    ? "of at most 128 bytes of UTF-8"
    : undefined;
  if (problem !== undefined) {
    throw new RangeError(`Expected a file name of ${problem}, got ${JSON.stringify(name)}`);
  }
}

function prepareEntries(files: readonly IsoFile[]): Entry[] {
  // In name order, so that neither the 8.3 names (numbered on collision) nor the layout of the data
  // depend on the order of `files`.
  const byName = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const seen = new Set<string>();
  const taken = new Set<string>();
  const entries: Entry[] = [];
  for (const f of byName) {
    checkFileName(f.name);
    if (seen.has(f.name)) throw new RangeError(`Duplicate file name ${JSON.stringify(f.name)}`);
    seen.add(f.name);
    const data = typeof f.data === "string" ? new TextEncoder().encode(f.data) : f.data;
    const isoName = level1Name(f.name, taken);
    taken.add(isoName);
    entries.push({
      name: f.name,
      data,
      isoId: ascii(`${isoName};1`),
      jolietId: ucs2(f.name),
      extent: 0,
    });
  }
  return entries;
}

/** An 8.3 name of d-characters (ECMA-119 level 1), unique among `taken`. */
export function level1Name(name: string, taken: ReadonlySet<string> = new Set()): string {
  const upper = name.toUpperCase();
  const dot = upper.lastIndexOf(".");
  const clean = (s: string) => s.replace(/[^A-Z0-9_]/g, "_");
  let base = clean(dot > 0 ? upper.slice(0, dot) : upper).slice(0, 8);
  const ext = dot > 0 ? clean(upper.slice(dot + 1)).slice(0, 3) : "";
  if (base === "") base = "_";
  let candidate = `${base}.${ext}`;
  for (let n = 1; taken.has(candidate); n++) {
    const suffix = String(n);
    candidate = `${base.slice(0, 8 - suffix.length)}${suffix}.${ext}`;
  }
  return candidate;
}

function blocksOf(bytes: number): number {
  return Math.ceil(bytes / BLOCK_SIZE);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0);
  }
  return a.length - b.length;
}

function sorted(entries: Entry[], key: (e: Entry) => Uint8Array): Entry[] {
  return [...entries].sort((a, b) => compareBytes(key(a), key(b)));
}

function both32(value: number): number[] {
  return [...new ByteWriter(8).u32both(value).toBytes()];
}

/** A SUSP entry: signature, length, version 1, data. */
function susp(signature: string, data: readonly number[]): Uint8Array {
  return new ByteWriter().bytes(ascii(signature)).u8(4 + data.length).u8(1).bytes(
    Uint8Array.from(data),
  ).toBytes();
}

/** RRIP 1.09 POSIX attributes: mode, links, uid 0, gid 0. */
function px(mode: number, links: number): Uint8Array {
  return susp("PX", [...both32(mode), ...both32(links), ...both32(0), ...both32(0)]);
}

/** RRIP time stamps: modify, access and attribute change, in 7-byte form. */
function tf(time: Uint8Array): Uint8Array {
  return susp("TF", [0x0e, ...time, ...time, ...time]);
}

/** The SUSP extension reference that announces Rock Ridge. */
function erEntry(): Uint8Array {
  const id = ascii(ROCK_RIDGE_ID);
  const des = ascii(ROCK_RIDGE_DESCRIPTOR);
  const src = ascii(ROCK_RIDGE_SOURCE);
  return susp("ER", [id.length, des.length, src.length, 1, ...id, ...des, ...src]);
}

/** The 7-byte recording date of a directory record (9.1.5), UTC. */
function recordDate(d: Date): Uint8Array {
  const year = d.getUTCFullYear() - 1900;
  if (year < 0 || year > 255) {
    throw new RangeError(`Expected a year from 1900 to 2155, got ${year + 1900}`);
  }
  return Uint8Array.from([
    year,
    d.getUTCMonth() + 1,
    d.getUTCDate(),
    d.getUTCHours(),
    d.getUTCMinutes(),
    d.getUTCSeconds(),
    0,
  ]);
}

/** The 17-byte volume descriptor date (8.4.26.1), UTC. */
function decDate(d: Date | undefined): Uint8Array {
  if (d === undefined) return new ByteWriter().bytes(ascii("0".repeat(16))).u8(0).toBytes();
  const p = (n: number, w: number) => String(n).padStart(w, "0");
  const text = p(d.getUTCFullYear(), 4) + p(d.getUTCMonth() + 1, 2) + p(d.getUTCDate(), 2) +
    p(d.getUTCHours(), 2) + p(d.getUTCMinutes(), 2) + p(d.getUTCSeconds(), 2) +
    p(Math.floor(d.getUTCMilliseconds() / 10), 2);
  return new ByteWriter().bytes(ascii(text)).u8(0).toBytes();
}

/** A directory record (9.1) with its system use entries. */
function dirRecord(
  id: Uint8Array,
  extent: number,
  size: number,
  flags: number,
  time: Uint8Array,
  systemUse: readonly Uint8Array[],
): Uint8Array {
  const w = new ByteWriter();
  const idPad = id.length % 2 === 0 ? 1 : 0;
  const suLength = systemUse.reduce((n, e) => n + e.length, 0);
  const length = 33 + id.length + idPad + suLength;
  if (length > 255) throw new RangeError(`Directory record of ${length} bytes exceeds 255`);
  w.u8(length).u8(0).u32both(extent).u32both(size).bytes(time).u8(flags).u8(0).u8(0).u16both(1);
  w.u8(id.length).bytes(id).fill(idPad);
  for (const e of systemUse) w.bytes(e);
  return w.toBytes();
}

/** Directory records in blocks: a record never crosses a block boundary (6.8.1.1). */
function packRecords(records: readonly Uint8Array[]): Uint8Array {
  const w = new ByteWriter(BLOCK_SIZE);
  for (const r of records) {
    const room = BLOCK_SIZE - (w.length % BLOCK_SIZE);
    if (r.length > room) w.fill(room);
    w.bytes(r);
  }
  return w.align(BLOCK_SIZE).toBytes();
}

/** A path table holding the root directory only (9.4). */
function pathTable(rootExtent: number, bigEndian: boolean): Uint8Array {
  const w = new ByteWriter(10).u8(1).u8(0);
  if (bigEndian) w.u32be(rootExtent).u16be(1);
  else w.u32le(rootExtent).u16le(1);
  return w.u8(0).u8(0).toBytes();
}

const PATH_TABLE_SIZE = 10;

interface DescriptorFields {
  joliet: boolean;
  volumeId: string;
  applicationId: string;
  totalBlocks: number;
  pathTableL: number;
  pathTableM: number;
  root: Uint8Array;
  date: Date;
}

/** A primary (8.4) or Joliet supplementary (8.5) volume descriptor. */
function volumeDescriptor(f: DescriptorFields): Uint8Array {
  const text = (s: string, width: number) =>
    f.joliet ? ucs2Field(s, width) : new ByteWriter(width).padded(ascii(s), width).toBytes();
  const w = new ByteWriter(BLOCK_SIZE);
  w.u8(f.joliet ? 2 : 1).bytes(ascii("CD001")).u8(1).u8(0);
  w.bytes(text("", 32)); // system identifier
  w.bytes(text(f.volumeId, 32));
  w.fill(8);
  w.u32both(f.totalBlocks);
  if (f.joliet) w.padded(ascii("%/E"), 32, 0); // UCS-2 level 3
  else w.fill(32);
  w.u16both(1).u16both(1).u16both(BLOCK_SIZE);
  w.u32both(PATH_TABLE_SIZE);
  w.u32le(f.pathTableL).u32le(0).u32be(f.pathTableM).u32be(0);
  w.bytes(f.root);
  w.bytes(text("", 128)); // volume set
  w.bytes(text("", 128)); // publisher
  w.bytes(text("", 128)); // data preparer
  w.bytes(text(f.applicationId, 128));
  for (let i = 0; i < 3; i++) w.bytes(text("", 37)); // copyright, abstract, bibliographic files
  w.bytes(decDate(f.date)).bytes(decDate(f.date)).bytes(decDate(undefined)).bytes(decDate(f.date));
  w.u8(1).u8(0);
  return w.align(BLOCK_SIZE).toBytes();
}
