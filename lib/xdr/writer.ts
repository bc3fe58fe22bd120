import { XdrError } from "./errors.ts";
import { XDR_UNBOUNDED } from "./reader.ts";

const encoder = new TextEncoder();
const INT_MIN = -0x80000000;
const INT_MAX = 0x7fffffff;
const UINT_MAX = 0xffffffff;

/**
 * Encodes RFC 4506 XDR data into a growable buffer.
 *
 * Values out of their type's range and items longer than their declared maximum throw
 * {@linkcode XdrError} (kind `out-of-range` or `too-long`) or `TypeError` for non-integers.
 *
 * @example
 * ```ts
 * import { XdrWriter } from "./mod.ts";
 * const w = new XdrWriter();
 * w.writeString("abc", 16);
 * console.log(w.bytes()); // Uint8Array(8) [0, 0, 0, 3, 97, 98, 99, 0]
 * ```
 */
export class XdrWriter {
  #buf: Uint8Array;
  #view: DataView;
  #pos: number;

  /**
   * Starts an empty buffer.
   * @param capacity initial capacity in bytes
   * @param reserve bytes at the start left for a header that the caller fills in later
   */
  constructor(capacity = 256, reserve = 0) {
    this.#buf = new Uint8Array(Math.max(capacity, reserve, 16));
    this.#view = new DataView(this.#buf.buffer);
    this.#pos = reserve;
  }

  /** Bytes written so far, including any reserved header. */
  get length(): number {
    return this.#pos;
  }

  #grow(n: number): number {
    const at = this.#pos;
    const need = at + n;
    if (need > this.#buf.length) {
      let size = this.#buf.length * 2;
      while (size < need) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.#buf.subarray(0, at));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    this.#pos = need;
    return at;
  }

  #pad(len: number): void {
    const pad = (4 - (len & 3)) & 3;
    if (pad === 0) return;
    const at = this.#grow(pad);
    this.#buf.fill(0, at, this.#pos);
  }

  /** Writes a signed 32-bit integer. */
  writeInt(v: number): this {
    if (!Number.isInteger(v)) throw new TypeError(`Expected an integer, got ${v}`);
    if (v < INT_MIN || v > INT_MAX) {
      throw new XdrError("out-of-range", this.#pos, `Expected a 32-bit signed integer, got ${v}`);
    }
    const at = this.#grow(4);
    this.#view.setInt32(at, v);
    return this;
  }

  /** Writes an unsigned 32-bit integer. */
  writeUint(v: number): this {
    if (!Number.isInteger(v)) throw new TypeError(`Expected an integer, got ${v}`);
    if (v < 0 || v > UINT_MAX) {
      throw new XdrError("out-of-range", this.#pos, `Expected a 32-bit unsigned integer, got ${v}`);
    }
    const at = this.#grow(4);
    this.#view.setUint32(at, v);
    return this;
  }

  /** Writes a signed 64-bit integer from a bigint or a safe integer. */
  writeHyper(v: bigint | number): this {
    const b = typeof v === "bigint" ? v : toBigInt(v);
    if (b < -(1n << 63n) || b >= 1n << 63n) {
      throw new XdrError("out-of-range", this.#pos, `Expected a 64-bit signed integer, got ${b}`);
    }
    const at = this.#grow(8);
    this.#view.setBigInt64(at, b);
    return this;
  }

  /** Writes an unsigned 64-bit integer from a bigint or a safe integer. */
  writeUhyper(v: bigint | number): this {
    const b = typeof v === "bigint" ? v : toBigInt(v);
    if (b < 0n || b >= 1n << 64n) {
      throw new XdrError("out-of-range", this.#pos, `Expected a 64-bit unsigned integer, got ${b}`);
    }
    const at = this.#grow(8);
    this.#view.setBigUint64(at, b);
    return this;
  }

  /** Writes a boolean as 0 or 1. */
  writeBool(v: boolean): this {
    const at = this.#grow(4);
    this.#view.setInt32(at, v ? 1 : 0);
    return this;
  }

  /** Writes an enum value, checked against the allowed values when given. */
  writeEnum(v: number, allowed?: ReadonlySet<number>): this {
    if (allowed && !allowed.has(v)) {
      throw new XdrError(
        "bad-enum",
        this.#pos,
        `Expected one of ${[...allowed].join(", ")}, got ${v}`,
      );
    }
    return this.writeInt(v);
  }

  /** Writes a 32-bit IEEE float. */
  writeFloat(v: number): this {
    const at = this.#grow(4);
    this.#view.setFloat32(at, v);
    return this;
  }

  /** Writes a 64-bit IEEE double. */
  writeDouble(v: number): this {
    const at = this.#grow(8);
    this.#view.setFloat64(at, v);
    return this;
  }

  /** Writes fixed-length opaque data; `data` must be exactly `len` bytes. */
  writeFixedOpaque(data: Uint8Array, len: number = data.length): this {
    if (data.length !== len) {
      throw new XdrError("out-of-range", this.#pos, `Expected ${len} bytes, got ${data.length}`);
    }
    const at = this.#grow(len);
    this.#buf.set(data, at);
    this.#pad(len);
    return this;
  }

  /** Writes variable-length opaque data of at most `max` bytes. */
  writeOpaque(data: Uint8Array, max: number = XDR_UNBOUNDED): this {
    if (data.length > max) {
      throw new XdrError(
        "too-long",
        this.#pos,
        `Expected at most ${max} bytes, got ${data.length}`,
      );
    }
    this.writeUint(data.length);
    return this.writeFixedOpaque(data);
  }

  /** Writes a string as UTF-8 of at most `max` bytes. */
  writeString(s: string, max: number = XDR_UNBOUNDED): this {
    // Reserve the length word, encode in place, then fill the length in: no temporary copy.
    const lenAt = this.#grow(4);
    const room = s.length * 3;
    const at = this.#grow(room);
    const { written } = encoder.encodeInto(s, this.#buf.subarray(at, at + room));
    this.#pos = at + written;
    if (written > max) {
      this.#pos = lenAt;
      throw new XdrError("too-long", lenAt, `Expected at most ${max} bytes, got ${written}`);
    }
    this.#view.setUint32(lenAt, written);
    this.#pad(written);
    return this;
  }

  /** Writes a fixed-length array; `items` must have exactly `len` entries. */
  writeFixedArray<T>(items: readonly T[], len: number, item: (w: XdrWriter, v: T) => void): this {
    if (items.length !== len) {
      throw new XdrError("out-of-range", this.#pos, `Expected ${len} items, got ${items.length}`);
    }
    for (const v of items) item(this, v);
    return this;
  }

  /** Writes a variable-length array of at most `max` items. */
  writeArray<T>(items: readonly T[], max: number, item: (w: XdrWriter, v: T) => void): this {
    if (items.length > max) {
      throw new XdrError(
        "too-long",
        this.#pos,
        `Expected at most ${max} items, got ${items.length}`,
      );
    }
    this.writeUint(items.length);
    for (const v of items) item(this, v);
    return this;
  }

  /** Writes optional data (`*T`): a boolean flag then the value when it is not null or undefined. */
  writeOptional<T>(v: T | null | undefined, item: (w: XdrWriter, v: T) => void): this {
    if (v === null || v === undefined) return this.writeBool(false);
    this.writeBool(true);
    item(this, v);
    return this;
  }

  /** Writes a discriminated union: the discriminant, then its arm. */
  writeUnion(discriminant: number, arm?: (w: XdrWriter) => void): this {
    this.writeInt(discriminant);
    arm?.(this);
    return this;
  }

  /** Overwrites a 32-bit unsigned value at `offset` (for headers reserved at construction). */
  patchUint(offset: number, v: number): this {
    this.#view.setUint32(offset, v);
    return this;
  }

  /** The bytes written so far, as a view of the internal buffer (no copy). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }
}

function toBigInt(v: number): bigint {
  if (!Number.isSafeInteger(v)) throw new TypeError(`Expected a safe integer, got ${v}`);
  return BigInt(v);
}
