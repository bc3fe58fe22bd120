/** A growing byte buffer with a cursor and the field encodings of ECMA-119; private to lib/iso9660. */

/** Writes ECMA-119 fields one after the other. */
export class ByteWriter {
  #buf: Uint8Array;
  #pos = 0;

  constructor(initialSize = 256) {
    this.#buf = new Uint8Array(initialSize);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#pos;
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }

  #check(value: number, max: number): void {
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new RangeError(`Expected an integer from 0 to ${max}, got ${value}`);
    }
  }

  /** 8-bit unsigned (7.1.1). */
  u8(value: number): this {
    this.#check(value, 0xff);
    this.#ensure(1);
    this.#buf[this.#pos++] = value;
    return this;
  }

  /** 16-bit little-endian (7.2.1). */
  u16le(value: number): this {
    this.#check(value, 0xffff);
    return this.u8(value & 0xff).u8(value >>> 8);
  }

  /** 16-bit big-endian (7.2.2). */
  u16be(value: number): this {
    this.#check(value, 0xffff);
    return this.u8(value >>> 8).u8(value & 0xff);
  }

  /** 16-bit both-byte order (7.2.3). */
  u16both(value: number): this {
    return this.u16le(value).u16be(value);
  }

  /** 32-bit little-endian (7.3.1). */
  u32le(value: number): this {
    this.#check(value, 0xffffffff);
    return this.u16le(value & 0xffff).u16le(value >>> 16);
  }

  /** 32-bit big-endian (7.3.2). */
  u32be(value: number): this {
    this.#check(value, 0xffffffff);
    return this.u16be(value >>> 16).u16be(value & 0xffff);
  }

  /** 32-bit both-byte order (7.3.3). */
  u32both(value: number): this {
    return this.u32le(value).u32be(value);
  }

  /** Raw bytes. */
  bytes(data: Uint8Array): this {
    this.#ensure(data.length);
    this.#buf.set(data, this.#pos);
    this.#pos += data.length;
    return this;
  }

  /** `data` then `fill` bytes up to exactly `width` bytes; longer data is a programming error. */
  padded(data: Uint8Array, width: number, fill = 0x20): this {
    if (data.length > width) {
      throw new RangeError(`Expected at most ${width} bytes, got ${data.length}`);
    }
    this.bytes(data);
    return this.fill(width - data.length, fill);
  }

  /** `count` copies of `byte`. */
  fill(count: number, byte = 0): this {
    this.#ensure(count);
    this.#buf.fill(byte, this.#pos, this.#pos + count);
    this.#pos += count;
    return this;
  }

  /** Zero bytes up to the next multiple of `size`. */
  align(size: number): this {
    const rest = this.#pos % size;
    return rest === 0 ? this : this.fill(size - rest);
  }

  /** A copy of the bytes written. */
  toBytes(): Uint8Array {
    return this.#buf.slice(0, this.#pos);
  }
}

/** ASCII bytes of `text`. */
export function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0x7f);
}

/** UCS-2 big-endian bytes of `text` (Joliet). */
export function ucs2(text: string): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out[2 * i] = c >>> 8;
    out[2 * i + 1] = c & 0xff;
  }
  return out;
}

/** `text` in UCS-2 big-endian padded with UCS-2 spaces to `width` bytes. */
export function ucs2Field(text: string, width: number): Uint8Array {
  const out = new Uint8Array(width);
  for (let i = 0; i + 1 < width; i += 2) out[i + 1] = 0x20;
  out.set(ucs2(text).subarray(0, width - (width % 2)));
  return out;
}
