/**
 * RFC 4506 External Data Representation (XDR): a strict reader and a growable writer.
 *
 * @example
 * ```ts
 * import { XdrReader, XdrWriter } from "./mod.ts";
 * const w = new XdrWriter().writeInt(-1).writeString("hi", 8);
 * const r = new XdrReader(w.bytes());
 * console.log(r.readInt(), r.readString(8)); // -1 "hi"
 * ```
 *
 * @module
 */
export { XdrError } from "./errors.ts";
export type { XdrErrorKind } from "./errors.ts";
export { XDR_UNBOUNDED, XdrReader } from "./reader.ts";
export { XdrWriter } from "./writer.ts";
