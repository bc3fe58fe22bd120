/** What went wrong while decoding or encoding XDR data. */
export type XdrErrorKind =
  | "short-buffer"
  | "bad-padding"
  | "bad-bool"
  | "bad-enum"
  | "bad-union"
  | "too-long"
  | "out-of-range"
  | "trailing-bytes";

/**
 * A malformed or out-of-range XDR value, with the byte offset at which it was found.
 *
 * @example
 * ```ts
 * import { XdrError, XdrReader } from "./mod.ts";
 * try {
 *   new XdrReader(new Uint8Array(2)).readInt();
 * } catch (e) {
 *   if (e instanceof XdrError) console.log(e.kind, e.offset); // short-buffer 0
 * }
 * ```
 */
export class XdrError extends Error {
  /** The class of problem, for callers that branch on it. */
  readonly kind: XdrErrorKind;
  /** Offset in the buffer where the bad value starts. */
  readonly offset: number;

  /** Creates an error of the given kind at the given offset. */
  constructor(kind: XdrErrorKind, offset: number, message: string) {
    super(`${message} at byte ${offset}`);
    this.name = "XdrError";
    this.kind = kind;
    this.offset = offset;
  }
}
