/**
 * Our own ISO 9660 writer, with Joliet and Rock Ridge names, for cloud-init `cidata` seeds.
 *
 * @example
 * ```ts
 * import { buildIso } from "./mod.ts";
 * const iso = buildIso([{ name: "meta-data", data: "instance-id: a\n" }], { volumeId: "cidata" });
 * ```
 *
 * @module
 */

export { BLOCK_SIZE, buildIso, DEFAULT_DATE, level1Name } from "./writer.ts";
export type { IsoFile, IsoOptions } from "./writer.ts";
