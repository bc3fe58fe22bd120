/**
 * Property-based tests of the XDR codec: whatever the writer writes the reader reads back unchanged,
 * and no input, random or a damaged valid encoding, makes the reader fail with anything but an
 * XdrError or allocate for a length the buffer cannot hold.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { XDR_UNBOUNDED, XdrError, XdrReader, XdrWriter } from "./mod.ts";
import { propertyTests } from "../../tests/_property.ts";

/** One XDR item of a random schema, with the value written for it. */
type Item =
  | { t: "int"; v: number }
  | { t: "uint"; v: number }
  | { t: "hyper"; v: bigint }
  | { t: "uhyper"; v: bigint }
  | { t: "hyperNumber"; v: number }
  | { t: "uhyperNumber"; v: number }
  | { t: "bool"; v: boolean }
  | { t: "enum"; v: number; allowed: number[] }
  | { t: "float"; v: number }
  | { t: "double"; v: number }
  | { t: "string"; v: string; max: number }
  | { t: "opaque"; v: Uint8Array; max: number }
  | { t: "fixed"; v: Uint8Array }
  | { t: "ints"; v: number[]; max: number }
  | { t: "optional"; v: string | null }
  | { t: "union"; v: { d: number; value: number | string } };

const utf8 = (s: string) => new TextEncoder().encode(s).length;

const item: fc.Arbitrary<Item> = fc.oneof(
  fc.integer({ min: -0x80000000, max: 0x7fffffff }).map((v) => ({ t: "int" as const, v })),
  fc.integer({ min: 0, max: 0xffffffff }).map((v) => ({ t: "uint" as const, v })),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map((v) => ({ t: "hyper" as const, v })),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((v) => ({ t: "uhyper" as const, v })),
  fc.maxSafeInteger().map((v) => ({ t: "hyperNumber" as const, v })),
  fc.maxSafeNat().map((v) => ({ t: "uhyperNumber" as const, v })),
  fc.boolean().map((v) => ({ t: "bool" as const, v })),
  fc.uniqueArray(fc.integer({ min: -0x80000000, max: 0x7fffffff }), { minLength: 1, maxLength: 5 })
    .chain((allowed) =>
      fc.constantFrom(...allowed).map((v) => ({ t: "enum" as const, v, allowed }))
    ),
  fc.float().map((v) => ({ t: "float" as const, v })),
  fc.double().map((v) => ({ t: "double" as const, v })),
  fc.tuple(fc.string({ unit: "binary", maxLength: 80 }), fc.nat(8)).map(([v, extra]) => ({
    t: "string" as const,
    v,
    max: utf8(v) + extra,
  })),
  fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.nat(8)).map(([v, extra]) => ({
    t: "opaque" as const,
    v,
    max: v.length + extra,
  })),
  fc.uint8Array({ maxLength: 20 }).map((v) => ({ t: "fixed" as const, v })),
  fc.tuple(fc.array(fc.integer({ min: -0x80000000, max: 0x7fffffff }), { maxLength: 8 }), fc.nat(4))
    .map(([v, extra]) => ({ t: "ints" as const, v, max: v.length + extra })),
  fc.option(fc.string({ unit: "binary-ascii", maxLength: 10 })).map((v) => ({
    t: "optional" as const,
    v,
  })),
  fc.oneof(
    fc.integer({ min: -0x80000000, max: 0x7fffffff }).map((value) => ({ d: 1, value })),
    fc.string({ maxLength: 10 }).map((value) => ({ d: 2, value })),
  ).map((v) => ({ t: "union" as const, v })),
);

const schema = fc.array(item, { maxLength: 12 });

function write(w: XdrWriter, it: Item): void {
  switch (it.t) {
    case "int":
      w.writeInt(it.v);
      break;
    case "uint":
      w.writeUint(it.v);
      break;
    case "hyper":
    case "hyperNumber":
      w.writeHyper(it.v);
      break;
    case "uhyper":
    case "uhyperNumber":
      w.writeUhyper(it.v);
      break;
    case "bool":
      w.writeBool(it.v);
      break;
    case "enum":
      w.writeEnum(it.v, new Set(it.allowed));
      break;
    case "float":
      w.writeFloat(it.v);
      break;
    case "double":
      w.writeDouble(it.v);
      break;
    case "string":
      w.writeString(it.v, it.max);
      break;
    case "opaque":
      w.writeOpaque(it.v, it.max);
      break;
    case "fixed":
      w.writeFixedOpaque(it.v);
      break;
    case "ints":
      w.writeArray(it.v, it.max, (x, n) => x.writeInt(n));
      break;
    case "optional":
      w.writeOptional(it.v, (x, s) => x.writeString(s, 16));
      break;
    case "union": {
      const { d, value } = it.v;
      w.writeUnion(d, (x) => {
        if (typeof value === "number") x.writeInt(value);
        else x.writeString(value);
      });
      break;
    }
  }
}

/** Reads the item the schema says comes next; what it returns mirrors `Item["v"]`. */
function read(r: XdrReader, it: Item): unknown {
  switch (it.t) {
    case "int":
      return r.readInt();
    case "uint":
      return r.readUint();
    case "hyper":
      return r.readHyper();
    case "uhyper":
      return r.readUhyper();
    case "hyperNumber":
      return r.readHyperNumber();
    case "uhyperNumber":
      return r.readUhyperNumber();
    case "bool":
      return r.readBool();
    case "enum":
      return r.readEnum(new Set(it.allowed));
    case "float":
      return r.readFloat();
    case "double":
      return r.readDouble();
    case "string": {
      const s = r.readString(it.max);
      assert.ok(utf8(s) <= it.max * 3, "a decoded string stays within its byte maximum");
      return s;
    }
    case "opaque": {
      const b = r.readOpaque(it.max);
      assert.ok(b.length <= it.max, "decoded opaque data stays within its maximum");
      return b;
    }
    case "fixed":
      return r.readFixedOpaque(it.v.length);
    case "ints": {
      const a = r.readArray(it.max, (x) => x.readInt());
      assert.ok(a.length <= it.max, "a decoded array stays within its maximum");
      return a;
    }
    case "optional":
      return r.readOptional((x) => x.readString(16));
    case "union":
      return r.readUnion<{ d: number; value: number | string }>({
        1: (x) => ({ d: 1, value: x.readInt() }),
        2: (x) => ({ d: 2, value: x.readString() }),
      });
  }
}

function encode(items: readonly Item[]): Uint8Array {
  const w = new XdrWriter(16);
  for (const it of items) write(w, it);
  return w.bytes().slice();
}

/** Decodes `bytes` by `items`; returns the values, or the XdrError; any other throw fails. */
function decode(bytes: Uint8Array, items: readonly Item[]): unknown[] | XdrError {
  const r = new XdrReader(bytes);
  try {
    const out = items.map((it) => read(r, it));
    r.assertDone();
    return out;
  } catch (err) {
    if (err instanceof XdrError) {
      assert.ok(err.offset >= 0 && err.offset <= bytes.length, `offset ${err.offset} in range`);
      return err;
    }
    throw err;
  }
}

/** Damage done to a valid encoding. */
type Mutation =
  | { k: "flip"; at: number; bit: number }
  | { k: "set"; at: number; byte: number }
  | { k: "truncate"; at: number }
  | { k: "extend"; bytes: Uint8Array }
  | { k: "length"; at: number; value: number };

const hugeLength = fc.oneof(
  fc.constantFrom(0x80000000, 0xffffffff, 0x7fffffff, 0x7ffffffc, 0x40000000, 0x01000000),
  fc.integer({ min: 0, max: 0xffffffff }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ k: fc.constant("set" as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ k: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ k: fc.constant("extend" as const), bytes: fc.uint8Array({ maxLength: 12 }) }),
  fc.record({ k: fc.constant("length" as const), at: fc.nat(), value: hugeLength }),
);

function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = bytes.slice();
  for (const m of mutations) {
    switch (m.k) {
      case "flip":
        if (b.length > 0) b[m.at % b.length]! ^= 1 << m.bit;
        break;
      case "set":
        if (b.length > 0) b[m.at % b.length] = m.byte;
        break;
      case "truncate":
        b = b.slice(0, m.at % (b.length + 1));
        break;
      case "extend": {
        const next = new Uint8Array(b.length + m.bytes.length);
        next.set(b);
        next.set(m.bytes, b.length);
        b = next;
        break;
      }
      case "length":
        // Overwrite an aligned word, where lengths and counts live.
        if (b.length >= 4) {
          const at = (m.at % (b.length >> 2)) * 4;
          new DataView(b.buffer).setUint32(at, m.value);
        }
        break;
    }
  }
  return b;
}

propertyTests(import.meta.url, {
  "XDR: whatever XdrWriter writes, XdrReader reads back unchanged, to the last byte": () => {
    fc.assert(
      fc.property(schema, (items) => {
        const bytes = encode(items);
        assert.equal(bytes.length % 4, 0, "XDR data is a multiple of four bytes");
        const decoded = decode(bytes, items);
        assert.ok(!(decoded instanceof XdrError), String(decoded));
        assert.deepEqual(decoded, items.map((it) => it.v));
      }),
      { seed: 0x5d5, numRuns: 400 },
    );
  },

  "XDR: damaged encodings decode or fail with an XdrError, never another error": () => {
    fc.assert(
      fc.property(schema, fc.array(mutation, { minLength: 1, maxLength: 4 }), (items, ms) => {
        decode(mutate(encode(items), ms), items);
      }),
      { seed: 0xdecaf, numRuns: 1000 },
    );
  },

  "XDR: random bytes read as any schema decode or fail with an XdrError": () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), schema, (bytes, items) => {
        decode(bytes, items);
      }),
      { seed: 0xb17e5, numRuns: 1000 },
    );
  },

  "XDR: a length or count above what the buffer holds is refused before anything is allocated":
    () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 0xffffffff }),
          fc.uint8Array({ maxLength: 64 }),
          fc.constantFrom("opaque", "string", "array"),
          (length, rest, kind) => {
            const bytes = new Uint8Array(4 + rest.length);
            new DataView(bytes.buffer).setUint32(0, length);
            bytes.set(rest, 4);
            const need = kind === "array" ? length * 4 : length;
            fc.pre(need > rest.length);
            let items = 0;
            const r = new XdrReader(bytes);
            assert.throws(
              () => {
                if (kind === "opaque") r.readOpaque();
                else if (kind === "string") r.readString();
                else {
                  r.readArray(XDR_UNBOUNDED, (x) => {
                    items++;
                    return x.readInt();
                  });
                }
              },
              (e: unknown) => e instanceof XdrError && e.kind === "short-buffer" && e.offset <= 4,
            );
            assert.equal(items, 0, "no item is decoded for an impossible count");
          },
        ),
        { seed: 0x7fffffff, numRuns: 500 },
      );
    },
});
