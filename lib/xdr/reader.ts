import { XdrError } from "./errors.ts";

const decoder = new TextDecoder();

/** Strings up to this length are decoded by hand when ASCII: TextDecoder's call cost dominates. */
const SHORT_STRING = 64;

function shortString(bytes: Uint8Array, at: number, len: number): string {
  let s = "";
  for (let i = at, end = at + len; i < end; i++) {
    const b = bytes[i]!;
    if (b >= 0x80) return decoder.decode(bytes.subarray(at, at + len));
    s += String.fromCharCode(b);
  }
  return s;
}

/** Largest value a 32-bit XDR length may take; used when a field has no declared maximum. */
export const XDR_UNBOUNDED = 0xffffffff;

/**
 * Decodes RFC 4506 XDR data from a byte buffer with strict bounds, padding and length checks.
 *
 * Every read checks that enough bytes remain, that padding bytes are zero and that variable-length
 * items stay within their declared maximum; violations throw {@linkcode XdrError}.
 *
 * @example
 * ```ts
 * import { XdrReader } from "./mod.ts";
 * const r = new XdrReader(new Uint8Array([0, 0, 0, 3, 0x61, 0x62, 0x63, 0]));
 * console.log(r.readString(16)); // "abc"
 * r.assertDone();
 * ```
 */
export class XdrReader {
  #bytes: Uint8Array;
  #view: DataView;
  #pos = 0;

  /** Reads from `bytes`, starting at its first byte. */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Current read offset in bytes. */
  get offset(): number {
    return this.#pos;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#bytes.length - this.#pos;
  }

  #need(n: number): number {
    const at = this.#pos;
    if (n > this.#bytes.length - at) {
      throw new XdrError(
        "short-buffer",
        at,
        `Expected ${n} more bytes, found ${this.#bytes.length - at}`,
      );
    }
    this.#pos = at + n;
    return at;
  }

  #padding(len: number): void {
    const pad = (4 - (len & 3)) & 3;
    if (pad === 0) return;
    const at = this.#need(pad);
    for (let i = 0; i < pad; i++) {
      if (this.#bytes[at + i] !== 0) {
        throw new XdrError("bad-padding", at + i, "Expected zero padding, found a non-zero byte");
      }
    }
  }

  /** Reads a signed 32-bit integer. */
  readInt(): number {
    return this.#view.getInt32(this.#need(4));
  }

  /** Reads an unsigned 32-bit integer. */
  readUint(): number {
    return this.#view.getUint32(this.#need(4));
  }

  /** Reads a signed 64-bit integer. */
  readHyper(): bigint {
    return this.#view.getBigInt64(this.#need(8));
  }

  /** Reads an unsigned 64-bit integer. */
  readUhyper(): bigint {
    return this.#view.getBigUint64(this.#need(8));
  }

  /**
   * Reads an unsigned 64-bit integer as a number; throws when it exceeds 2^53 - 1.
   * Handy for sizes and counters that never come near that bound.
   */
  readUhyperNumber(): number {
    const at = this.#pos;
    const v = this.readUhyper();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new XdrError("out-of-range", at, `Expected an integer below 2^53, found ${v}`);
    }
    return Number(v);
  }

  /** Reads a signed 64-bit integer as a number; throws when it is not a safe integer. */
  readHyperNumber(): number {
    const at = this.#pos;
    const v = this.readHyper();
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new XdrError("out-of-range", at, `Expected a safe integer, found ${v}`);
    }
    return Number(v);
  }

  /** Reads a boolean; any value other than 0 or 1 is an error. */
  readBool(): boolean {
    const at = this.#pos;
    const v = this.readInt();
    if (v === 0) return false;
    if (v === 1) return true;
    throw new XdrError("bad-bool", at, `Expected a boolean 0 or 1, found ${v}`);
  }

  /**
   * Reads an enum value and checks it against the allowed values.
   * @param allowed the declared values; when omitted any 32-bit value is accepted
   */
  readEnum(allowed?: ReadonlySet<number>): number {
    const at = this.#pos;
    const v = this.readInt();
    if (allowed && !allowed.has(v)) {
      throw new XdrError("bad-enum", at, `Expected one of ${[...allowed].join(", ")}, found ${v}`);
    }
    return v;
  }

  /** Reads a 32-bit IEEE float. */
  readFloat(): number {
    return this.#view.getFloat32(this.#need(4));
  }

  /** Reads a 64-bit IEEE double. */
  readDouble(): number {
    return this.#view.getFloat64(this.#need(8));
  }

  /** Reads fixed-length opaque data of `len` bytes plus padding; returns a view, not a copy. */
  readFixedOpaque(len: number): Uint8Array {
    const at = this.#need(len);
    const out = this.#bytes.subarray(at, at + len);
    this.#padding(len);
    return out;
  }

  #length(max: number): number {
    const at = this.#pos;
    const len = this.readUint();
    if (len > max) {
      throw new XdrError("too-long", at, `Expected a length of at most ${max}, found ${len}`);
    }
    return len;
  }

  /** Reads variable-length opaque data of at most `max` bytes; returns a view, not a copy. */
  readOpaque(max: number = XDR_UNBOUNDED): Uint8Array {
    return this.readFixedOpaque(this.#length(max));
  }

  /** Reads a string of at most `max` bytes, decoded as UTF-8. */
  readString(max: number = XDR_UNBOUNDED): string {
    const len = this.#length(max);
    const at = this.#need(len);
    const s = len <= SHORT_STRING
      ? shortString(this.#bytes, at, len)
      : decoder.decode(this.#bytes.subarray(at, at + len));
    this.#padding(len);
    return s;
  }

  /** Reads a fixed-length array of `len` items. */
  readFixedArray<T>(len: number, item: (r: XdrReader) => T): T[] {
    const out = new Array<T>(len);
    for (let i = 0; i < len; i++) out[i] = item(this);
    return out;
  }

  /** Reads a variable-length array of at most `max` items. */
  readArray<T>(max: number, item: (r: XdrReader) => T): T[] {
    const at = this.#pos;
    const len = this.#length(max);
    // Every item takes at least 4 bytes: reject impossible counts before allocating.
    if (len * 4 > this.remaining) {
      throw new XdrError(
        "short-buffer",
        at,
        `Expected ${len} array items, only ${this.remaining} bytes remain`,
      );
    }
    return this.readFixedArray(len, item);
  }

  /** Reads optional data (`*T`): a boolean flag then the value when present. */
  readOptional<T>(item: (r: XdrReader) => T): T | null {
    return this.readBool() ? item(this) : null;
  }

  /**
   * Reads a discriminated union: the discriminant, then the arm chosen for it.
   * @param arms the decoder of each allowed discriminant
   * @param fallback the default arm; when absent an unknown discriminant is an error
   */
  readUnion<T>(
    arms: Readonly<Record<number, (r: XdrReader) => T>>,
    fallback?: (r: XdrReader, discriminant: number) => T,
  ): T {
    const at = this.#pos;
    const d = this.readInt();
    const arm = arms[d];
    if (arm) return arm(this);
    if (fallback) return fallback(this, d);
    throw new XdrError("bad-union", at, `Expected a known union discriminant, found ${d}`);
  }

  /** Throws unless every byte has been read. */
  assertDone(): void {
    if (this.remaining !== 0) {
      throw new XdrError(
        "trailing-bytes",
        this.#pos,
        `Expected the end of the data, ${this.remaining} bytes remain`,
      );
    }
  }
}
