import assert from "node:assert/strict";
import { XDR_UNBOUNDED, XdrError, XdrReader, XdrWriter } from "./mod.ts";

const bytes = (...b: number[]) => new Uint8Array(b);
const enc = (f: (w: XdrWriter) => void) => {
  const w = new XdrWriter(4);
  f(w);
  return [...w.bytes()];
};
function throwsXdr(f: () => unknown, kind: string) {
  assert.throws(f, (e: unknown) => e instanceof XdrError && e.kind === kind);
}

Deno.test("writeInt() encodes big-endian two's complement at the boundaries", () => {
  assert.deepEqual(enc((w) => w.writeInt(0)), [0, 0, 0, 0]);
  assert.deepEqual(enc((w) => w.writeInt(-1)), [0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(enc((w) => w.writeInt(2147483647)), [0x7f, 0xff, 0xff, 0xff]);
  assert.deepEqual(enc((w) => w.writeInt(-2147483648)), [0x80, 0, 0, 0]);
  throwsXdr(() => new XdrWriter().writeInt(2147483648), "out-of-range");
  throwsXdr(() => new XdrWriter().writeInt(-2147483649), "out-of-range");
  assert.throws(() => new XdrWriter().writeInt(1.5), TypeError);
});

Deno.test("writeUint() and readUint() cover 0 to 2^32-1", () => {
  assert.deepEqual(enc((w) => w.writeUint(0xffffffff)), [0xff, 0xff, 0xff, 0xff]);
  assert.equal(new XdrReader(bytes(0xff, 0xff, 0xff, 0xfe)).readUint(), 0xfffffffe);
  throwsXdr(() => new XdrWriter().writeUint(-1), "out-of-range");
  throwsXdr(() => new XdrWriter().writeUint(2 ** 32), "out-of-range");
});

Deno.test("hyper and uhyper round-trip their extremes", () => {
  const w = new XdrWriter();
  w.writeHyper(-(1n << 63n)).writeHyper((1n << 63n) - 1n).writeUhyper((1n << 64n) - 1n)
    .writeUhyper(0).writeHyper(-5);
  assert.deepEqual([...w.bytes().subarray(0, 8)], [0x80, 0, 0, 0, 0, 0, 0, 0]);
  const r = new XdrReader(w.bytes());
  assert.equal(r.readHyper(), -(1n << 63n));
  assert.equal(r.readHyper(), (1n << 63n) - 1n);
  assert.equal(r.readUhyper(), (1n << 64n) - 1n);
  assert.equal(r.readUhyperNumber(), 0);
  assert.equal(r.readHyperNumber(), -5);
  r.assertDone();
  throwsXdr(() => new XdrWriter().writeUhyper(1n << 64n), "out-of-range");
  throwsXdr(() => new XdrWriter().writeHyper(1n << 63n), "out-of-range");
  throwsXdr(
    () => new XdrReader(bytes(0, 0x20, 0, 0, 0, 0, 0, 0)).readUhyperNumber(),
    "out-of-range",
  );
});

Deno.test("readBool() rejects values other than 0 and 1", () => {
  assert.equal(new XdrReader(bytes(0, 0, 0, 1)).readBool(), true);
  assert.equal(new XdrReader(bytes(0, 0, 0, 0)).readBool(), false);
  throwsXdr(() => new XdrReader(bytes(0, 0, 0, 2)).readBool(), "bad-bool");
});

Deno.test("readEnum() checks the declared values", () => {
  const allowed = new Set([0, 1, 2]);
  assert.equal(new XdrReader(bytes(0, 0, 0, 2)).readEnum(allowed), 2);
  throwsXdr(() => new XdrReader(bytes(0, 0, 0, 3)).readEnum(allowed), "bad-enum");
  throwsXdr(() => new XdrWriter().writeEnum(7, allowed), "bad-enum");
});

Deno.test("float and double use IEEE 754 big-endian", () => {
  assert.deepEqual(enc((w) => w.writeFloat(1)), [0x3f, 0x80, 0, 0]);
  assert.deepEqual(enc((w) => w.writeDouble(-2)), [0xc0, 0, 0, 0, 0, 0, 0, 0]);
  const r = new XdrReader(new Uint8Array(enc((w) => w.writeDouble(Math.PI).writeFloat(0.5))));
  assert.equal(r.readDouble(), Math.PI);
  assert.equal(r.readFloat(), 0.5);
});

Deno.test("writeString() pads to four bytes with zeros (golden vectors)", () => {
  assert.deepEqual(enc((w) => w.writeString("")), [0, 0, 0, 0]);
  assert.deepEqual(enc((w) => w.writeString("a")), [0, 0, 0, 1, 0x61, 0, 0, 0]);
  assert.deepEqual(enc((w) => w.writeString("abcd")), [0, 0, 0, 4, 0x61, 0x62, 0x63, 0x64]);
  assert.deepEqual(enc((w) => w.writeString("é")), [0, 0, 0, 2, 0xc3, 0xa9, 0, 0]);
});

Deno.test("readString() rejects non-zero padding", () => {
  throwsXdr(() => new XdrReader(bytes(0, 0, 0, 1, 0x61, 0, 1, 0)).readString(), "bad-padding");
});

Deno.test("strings and opaque enforce their maximum length, maximum + 1 fails", () => {
  assert.equal(
    new XdrReader(new Uint8Array(enc((w) => w.writeString("abc", 3)))).readString(3),
    "abc",
  );
  throwsXdr(() => new XdrWriter().writeString("abcd", 3), "too-long");
  throwsXdr(
    () => new XdrReader(new Uint8Array(enc((w) => w.writeString("abcd")))).readString(3),
    "too-long",
  );
  throwsXdr(() => new XdrWriter().writeOpaque(new Uint8Array(5), 4), "too-long");
  // A failed write leaves the writer where it was.
  const w = new XdrWriter();
  w.writeInt(1);
  assert.throws(() => w.writeString("toolong", 2));
  assert.equal(w.length, 4);
});

Deno.test("readString() rejects a length beyond the buffer", () => {
  throwsXdr(() => new XdrReader(bytes(0, 0, 0, 9, 0x61, 0, 0, 0)).readString(), "short-buffer");
});

Deno.test("fixed and variable opaque round-trip with padding", () => {
  const data = bytes(1, 2, 3, 4, 5);
  const w = new XdrWriter().writeFixedOpaque(data).writeOpaque(data, 8).writeOpaque(
    new Uint8Array(),
  );
  assert.deepEqual([...w.bytes()], [
    1,
    2,
    3,
    4,
    5,
    0,
    0,
    0,
    0,
    0,
    0,
    5,
    1,
    2,
    3,
    4,
    5,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
  const r = new XdrReader(w.bytes());
  assert.deepEqual([...r.readFixedOpaque(5)], [...data]);
  assert.deepEqual([...r.readOpaque(8)], [...data]);
  assert.equal(r.readOpaque().length, 0);
  r.assertDone();
  throwsXdr(() => new XdrWriter().writeFixedOpaque(data, 4), "out-of-range");
});

Deno.test("arrays enforce their maximum count and reject impossible counts", () => {
  const w = new XdrWriter().writeArray([1, 2, 3], 3, (x, v) => x.writeInt(v))
    .writeFixedArray([7, 8], 2, (x, v) => x.writeUint(v));
  const r = new XdrReader(w.bytes());
  assert.deepEqual(r.readArray(3, (x) => x.readInt()), [1, 2, 3]);
  assert.deepEqual(r.readFixedArray(2, (x) => x.readUint()), [7, 8]);
  throwsXdr(() => new XdrWriter().writeArray([1, 2, 3, 4], 3, (x, v) => x.writeInt(v)), "too-long");
  throwsXdr(
    () =>
      new XdrReader(new Uint8Array(enc((x) => x.writeArray([1, 2], 9, (y, v) => y.writeInt(v)))))
        .readArray(1, (y) => y.readInt()),
    "too-long",
  );
  // A count of a billion items in an 8-byte buffer is rejected before allocating anything.
  throwsXdr(
    () =>
      new XdrReader(bytes(0x3b, 0x9a, 0xca, 0, 0, 0, 0, 0)).readArray(
        XDR_UNBOUNDED,
        (x) => x.readInt(),
      ),
    "short-buffer",
  );
});

Deno.test("optional data is a boolean flag then the value", () => {
  assert.deepEqual(enc((w) => w.writeOptional(null, (x, v: string) => x.writeString(v))), [
    0,
    0,
    0,
    0,
  ]);
  assert.deepEqual(enc((w) => w.writeOptional("a", (x, v) => x.writeString(v))), [
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    1,
    0x61,
    0,
    0,
    0,
  ]);
  const r = new XdrReader(bytes(0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0));
  assert.equal(r.readOptional((x) => x.readInt()), 7);
  assert.equal(r.readOptional((x) => x.readInt()), null);
  throwsXdr(() => new XdrReader(bytes(0, 0, 0, 5)).readOptional((x) => x.readInt()), "bad-bool");
});

Deno.test("unions pick the arm by discriminant and reject unknown ones", () => {
  const arms: Record<number, (r: XdrReader) => number | string> = {
    1: (r) => r.readInt(),
    7: (r) => r.readString(),
  };
  const w = new XdrWriter().writeUnion(7, (x) => x.writeString("hi")).writeUnion(
    1,
    (x) => x.writeInt(-3),
  );
  const r = new XdrReader(w.bytes());
  assert.equal(r.readUnion(arms), "hi");
  assert.equal(r.readUnion(arms), -3);
  throwsXdr(() => new XdrReader(bytes(0, 0, 0, 9)).readUnion(arms), "bad-union");
  assert.equal(
    new XdrReader(bytes(0, 0, 0, 9)).readUnion<number | string>(arms, (_r, d) => d * 2),
    18,
  );
});

Deno.test("reads past the end fail with short-buffer and the offset", () => {
  const r = new XdrReader(bytes(0, 0, 0, 1, 0, 0));
  r.readInt();
  assert.throws(
    () => r.readInt(),
    (e: unknown) => e instanceof XdrError && e.kind === "short-buffer" && e.offset === 4,
  );
  throwsXdr(() => new XdrReader(bytes(1, 2, 3, 4, 5, 6, 7)).readHyper(), "short-buffer");
});

Deno.test("assertDone() reports trailing bytes", () => {
  const r = new XdrReader(bytes(0, 0, 0, 1, 0, 0, 0, 2));
  r.readInt();
  throwsXdr(() => r.assertDone(), "trailing-bytes");
});

Deno.test("the writer grows past its initial capacity and keeps earlier bytes", () => {
  const w = new XdrWriter(16);
  for (let i = 0; i < 1000; i++) w.writeInt(i);
  w.writeString("x".repeat(5000));
  const r = new XdrReader(w.bytes());
  for (let i = 0; i < 1000; i++) assert.equal(r.readInt(), i);
  assert.equal(r.readString().length, 5000);
  r.assertDone();
});

Deno.test("a reserved header can be patched after the body is written", () => {
  const w = new XdrWriter(8, 8);
  w.writeInt(5);
  w.patchUint(0, w.length).patchUint(4, 0xdeadbeef);
  assert.deepEqual([...w.bytes()], [0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 5]);
});
