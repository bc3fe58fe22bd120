/**
 * Property-based tests of libvirt's wire types (wire.ts) and of the frame decoder that splits the
 * daemon's byte stream into messages (RpcConnection's read loop).
 *
 * The frame decoder is fed through an in-memory Transport: a real daemon cannot be made to send
 * damaged frames split at arbitrary points, and the Transport interface is exactly the decoder's input.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { XdrError, XdrReader, XdrWriter } from "../xdr/mod.ts";
import {
  KeepaliveProcedure,
  Limits,
  MessageStatus,
  MessageType,
  Program,
  TypedParamType,
} from "./constants.ts";
import { ConnectionError, LibvirtError, ProtocolError } from "./errors.ts";
import { decodeHeader, encodeFrame, RpcConnection } from "./rpc.ts";
import type { Transport } from "./transport.ts";
import {
  decodeRemoteError,
  readDomain,
  readNetwork,
  readPool,
  readTypedParam,
  readVol,
  type TypedParam,
  uuidFromString,
  uuidToString,
  writeDomain,
  writeNetwork,
  writePool,
  writeVol,
} from "./wire.ts";
import { propertyTests } from "../../tests/_property.ts";

// ---- wire types ----

const name = fc.string({ unit: "binary", maxLength: 40 });
const uuid = fc.uint8Array({ minLength: 16, maxLength: 16 });
const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });

const typedParam: fc.Arbitrary<TypedParam & { type: number }> = fc.oneof(
  int32.map((value) => ({ type: TypedParamType.INT, value })),
  fc.integer({ min: 0, max: 0xffffffff }).map((value) => ({ type: TypedParamType.UINT, value })),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map((value) => ({
    type: TypedParamType.LLONG,
    value,
  })),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((value) => ({
    type: TypedParamType.ULLONG,
    value,
  })),
  fc.double().map((value) => ({ type: TypedParamType.DOUBLE, value })),
  fc.boolean().map((value) => ({ type: TypedParamType.BOOLEAN, value })),
  name.map((value) => ({ type: TypedParamType.STRING, value })),
).chain((p) => name.map((field) => ({ field, ...p })));

function writeTypedParam(w: XdrWriter, p: TypedParam & { type: number }): void {
  w.writeString(p.field, Limits.STRING_MAX).writeInt(p.type);
  const v = p.value;
  switch (p.type) {
    case TypedParamType.INT:
      w.writeInt(v as number);
      break;
    case TypedParamType.UINT:
      w.writeUint(v as number);
      break;
    case TypedParamType.LLONG:
      w.writeHyper(v as bigint);
      break;
    case TypedParamType.ULLONG:
      w.writeUhyper(v as bigint);
      break;
    case TypedParamType.DOUBLE:
      w.writeDouble(v as number);
      break;
    case TypedParamType.BOOLEAN:
      w.writeInt(v ? 1 : 0);
      break;
    default:
      w.writeString(v as string, Limits.STRING_MAX);
  }
}

interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
}

const remoteError: fc.Arbitrary<RemoteError> = fc.record({
  code: int32,
  domain: int32,
  message: fc.option(fc.string({ unit: "binary", maxLength: 60 })),
  level: fc.integer({ min: 0, max: 2 }),
});

/** The whole `remote_error` as the daemon sends it. */
function encodeRemoteError(e: RemoteError): Uint8Array {
  const w = new XdrWriter();
  const optStr = (s: string | null) => w.writeOptional(s, (x, v) => x.writeString(v));
  w.writeInt(e.code).writeInt(e.domain);
  optStr(e.message);
  w.writeInt(e.level).writeBool(false); // dom
  optStr("str1");
  optStr(null);
  optStr(null);
  w.writeInt(0).writeInt(0).writeBool(false); // int1, int2, net
  return w.bytes().slice();
}

function flipSome(bytes: Uint8Array, flips: readonly [number, number][]): Uint8Array {
  const b = bytes.slice();
  for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
  return b;
}

// ---- the frame decoder ----

/** A byte stream that delivers `chunks`, then end of stream; records what the client writes. */
class ScriptedTransport implements Transport {
  readonly written: Uint8Array[] = [];
  #chunks: Uint8Array[];
  #closed = false;
  #go: Promise<void>;
  start!: () => void;

  constructor(chunks: Uint8Array[]) {
    this.#chunks = chunks.map((c) => c.slice());
    this.#go = new Promise((r) => (this.start = r));
  }

  async read(p: Uint8Array): Promise<number | null> {
    await this.#go;
    if (this.#closed) return null;
    const c = this.#chunks.shift();
    if (c === undefined) return null;
    const n = Math.min(c.length, p.length);
    p.set(c.subarray(0, n));
    if (n < c.length) this.#chunks.unshift(c.subarray(n));
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    this.written.push(p.slice());
    return Promise.resolve(p.length);
  }

  close(): void {
    this.#closed = true;
  }
}

/** One message the fake daemon sends. */
type Message =
  | { k: "reply"; call: number; payload: Uint8Array }
  | { k: "error"; call: number; error: RemoteError }
  | { k: "event"; proc: number; payload: Uint8Array }
  | { k: "ping" };

const EVENT_PROCS = [100, 101];
const words = fc.uint8Array({ maxLength: 64 }).map((b) => b.subarray(0, b.length & ~3));

/** Calls (their procedures) and the daemon's messages: one answer per call, in any order. */
const conversation = fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 5 })
  .chain((procs) =>
    fc.tuple(
      fc.constant(procs),
      fc.tuple(
        ...procs.map((_, call) =>
          fc.oneof(
            words.map((payload): Message => ({ k: "reply", call, payload })),
            remoteError.map((error): Message => ({ k: "error", call, error })),
          )
        ),
      ),
      fc.array(
        fc.oneof(
          fc.tuple(fc.constantFrom(...EVENT_PROCS), words).map(([proc, payload]): Message => ({
            k: "event",
            proc,
            payload,
          })),
          fc.constant<Message>({ k: "ping" }),
        ),
        { maxLength: 3 },
      ),
    )
  )
  .chain(([procs, answers, extra]) =>
    fc.shuffledSubarray([...answers, ...extra], {
      minLength: answers.length + extra.length,
    }).map((messages) => ({ procs, messages }))
  );

function frameOf(m: Message, procs: readonly number[]): Uint8Array {
  const body = (b: Uint8Array) => (w: XdrWriter) => void w.writeFixedOpaque(b);
  switch (m.k) {
    case "reply":
      return encodeFrame(
        Program.REMOTE,
        procs[m.call]!,
        MessageType.REPLY,
        m.call + 1,
        MessageStatus.OK,
        body(m.payload),
      );
    case "error":
      return encodeFrame(
        Program.REMOTE,
        procs[m.call]!,
        MessageType.REPLY,
        m.call + 1,
        MessageStatus.ERROR,
        body(encodeRemoteError(m.error)),
      );
    case "event":
      return encodeFrame(
        Program.REMOTE,
        m.proc,
        MessageType.MESSAGE,
        0,
        MessageStatus.OK,
        body(m.payload),
      );
    case "ping":
      return encodeFrame(
        Program.KEEPALIVE,
        KeepaliveProcedure.PING,
        MessageType.MESSAGE,
        0,
        MessageStatus.OK,
      );
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Splits `bytes` at the given points (taken modulo its length). */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p > from) out.push(bytes.subarray(from, p));
    from = p;
  }
  return out;
}

/** The headers of the frames in `bytes`; frames queued together leave in one write. */
function framesIn(bytes: Uint8Array): ReturnType<typeof decodeHeader>[] {
  const out = [];
  for (let at = 0; at < bytes.length;) {
    const h = decodeHeader(bytes.subarray(at));
    out.push(h);
    at += h.length;
  }
  return out;
}

type Settled =
  | { state: "pending" }
  | { state: "resolved"; payload: Uint8Array }
  | { state: "rejected"; error: unknown };

interface Run {
  settled: Settled[];
  events: { proc: number; payload: Uint8Array }[];
  closedWith: Error;
  written: Uint8Array[];
}

/**
 * Opens a connection over `chunks`, issues one call per procedure (serials 1, 2, ...), lets the
 * stream run to its end and returns what became of each call once the connection has closed itself.
 */
async function converse(procs: readonly number[], chunks: Uint8Array[]): Promise<Run> {
  const t = new ScriptedTransport(chunks);
  const rpc = new RpcConnection(t, { uri: "test:///scripted", callTimeoutMs: 0 });
  const closed = new Promise<Error>((resolve) => rpc.onClose(resolve));
  const events: Run["events"] = [];
  for (const proc of EVENT_PROCS) {
    rpc.onMessage(Program.REMOTE, proc, (payload) => events.push({ proc, payload }));
  }
  const settled: Settled[] = procs.map(() => ({ state: "pending" }));
  procs.forEach((proc, i) => {
    rpc.call(Program.REMOTE, proc).then(
      (payload) => (settled[i] = { state: "resolved", payload }),
      (error) => (settled[i] = { state: "rejected", error }),
    );
  });
  t.start();
  const closedWith = await closed;
  await rpc.close();
  // Rejections queued by the close run as microtasks; one macrotask later all have run.
  await new Promise((r) => setTimeout(r, 0));
  return { settled, events, closedWith, written: t.written };
}

const cuts = fc.array(fc.nat(), { maxLength: 6 });

const hugeLength = fc.oneof(
  fc.constantFrom(0x80000000, 0xffffffff, Limits.MESSAGE_MAX + Limits.LENGTH_SIZE + 1),
  fc.integer({ min: Limits.MESSAGE_MAX + Limits.LENGTH_SIZE + 1, max: 0xffffffff }),
);

const damage: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ k: fc.constant("set" as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ k: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ k: fc.constant("extend" as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({
    k: fc.constant("word" as const),
    at: fc.nat(),
    value: fc.oneof(hugeLength, fc.integer({ min: 0, max: 0xffffffff }), fc.nat(8)),
  }),
);

type Damage =
  | { k: "set"; at: number; byte: number }
  | { k: "truncate"; at: number }
  | { k: "extend"; bytes: Uint8Array }
  | { k: "word"; at: number; value: number };

function applyDamage(bytes: Uint8Array, ds: readonly Damage[]): Uint8Array {
  let b: Uint8Array = bytes.slice();
  for (const d of ds) {
    if (d.k === "set") {
      if (b.length > 0) b[d.at % b.length] = d.byte;
    } else if (d.k === "truncate") b = b.slice(0, d.at % (b.length + 1));
    else if (d.k === "extend") b = concat([b, d.bytes]);
    else if (b.length >= 4) {
      // An aligned word: lengths, programs, types, serials and statuses all live in one.
      new DataView(b.buffer).setUint32((d.at % (b.length >> 2)) * 4, d.value);
    }
  }
  return b;
}

/** An error that may end a call: the daemon's own, or the end of the connection. */
function assertTypedEnd(error: unknown): void {
  if (error instanceof LibvirtError) return;
  assert.ok(error instanceof ConnectionError, `a call ended with ${error}`);
  const cause = error.cause;
  assert.ok(
    cause === undefined || cause instanceof ProtocolError || cause instanceof XdrError,
    `a protocol failure is a ProtocolError or an XdrError, got ${cause}`,
  );
}

propertyTests(import.meta.url, {
  "wire: domain, pool, volume and network references round-trip": () => {
    fc.assert(
      fc.property(name, uuid, int32, name, name, (n, u, id, pool, key) => {
        const w = new XdrWriter();
        writeDomain(w, { name: n, uuid: u, id });
        writePool(w, { name: pool, uuid: u });
        writeVol(w, { pool, name: n, key });
        writeNetwork(w, { name: key, uuid: u });
        const r = new XdrReader(w.bytes());
        assert.deepEqual(readDomain(r), { name: n, uuid: u, id });
        assert.deepEqual(readPool(r), { name: pool, uuid: u });
        assert.deepEqual(readVol(r), { pool, name: n, key });
        assert.deepEqual(readNetwork(r), { name: key, uuid: u });
        r.assertDone();
        assert.deepEqual(uuidFromString(uuidToString(u)), u);
        assert.match(
          uuidToString(u),
          /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
        );
      }),
      { seed: 0x1157, numRuns: 300 },
    );
  },

  "wire: typed parameters round-trip, and damaged ones fail only with XdrError": () => {
    fc.assert(
      fc.property(
        fc.array(typedParam, { maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }),
        (params, flips) => {
          const w = new XdrWriter();
          w.writeArray(params, 100, writeTypedParam);
          const bytes = w.bytes().slice();
          const read = (b: Uint8Array) => {
            const r = new XdrReader(b);
            const out = r.readArray(100, readTypedParam);
            r.assertDone();
            return out;
          };
          assert.deepEqual(read(bytes), params.map(({ field, value }) => ({ field, value })));
          try {
            read(flipSome(bytes, flips));
          } catch (err) {
            assert.ok(err instanceof XdrError, `damaged typed params threw ${err}`);
          }
        },
      ),
      { seed: 0x7e7e, numRuns: 400 },
    );
  },

  "wire: decodeRemoteError() reads what the daemon sends and fails only with XdrError": () => {
    fc.assert(
      fc.property(
        remoteError,
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }),
        fc.nat(),
        (e, flips, cut) => {
          const bytes = encodeRemoteError(e);
          const err = decodeRemoteError(bytes);
          assert.ok(err instanceof LibvirtError);
          assert.equal(err.code, e.code);
          assert.equal(err.domain, e.domain);
          assert.equal(err.level, e.level);
          assert.equal(err.message, e.message || `libvirt error code ${e.code}`);
          const damaged = flipSome(bytes, flips).subarray(0, cut % (bytes.length + 1));
          try {
            assert.ok(decodeRemoteError(damaged) instanceof LibvirtError);
          } catch (x) {
            assert.ok(x instanceof XdrError, `a damaged remote_error threw ${x}`);
          }
        },
      ),
      { seed: 0xe770, numRuns: 400 },
    );
  },

  "frames: split anywhere, replies, errors, events and pings reach their owner intact":
    async () => {
      await fc.assert(
        fc.asyncProperty(conversation, cuts, async ({ procs, messages }, at) => {
          const stream = concat(messages.map((m) => frameOf(m, procs)));
          const run = await converse(procs, split(stream, at));
          for (const m of messages) {
            if (m.k === "reply") {
              assert.deepEqual(run.settled[m.call], { state: "resolved", payload: m.payload });
            } else if (m.k === "error") {
              const s = run.settled[m.call]!;
              assert.equal(s.state, "rejected");
              const e = (s as { error: unknown }).error;
              assert.ok(e instanceof LibvirtError, `expected a LibvirtError, got ${e}`);
              assert.equal(e.code, m.error.code);
            }
          }
          assert.deepEqual(
            run.events,
            messages.flatMap((m) => m.k === "event" ? [{ proc: m.proc, payload: m.payload }] : []),
          );
          const pongs = framesIn(concat(run.written)).filter((h) =>
            h.prog === Program.KEEPALIVE && h.proc === KeepaliveProcedure.PONG
          );
          assert.equal(pongs.length, messages.filter((m) => m.k === "ping").length);
          assert.ok(run.closedWith instanceof ConnectionError);
          assert.match(run.closedWith.message, /^libvirtd closed the connection$/);
        }),
        { seed: 0xf4a3e, numRuns: 200 },
      );
    },

  "frames: after damaged input every call settles, with a reply or a typed error": async () => {
    await fc.assert(
      fc.asyncProperty(
        conversation,
        fc.array(damage, { minLength: 1, maxLength: 3 }),
        cuts,
        async ({ procs, messages }, ds, at) => {
          const stream = applyDamage(concat(messages.map((m) => frameOf(m, procs))), ds);
          const run = await converse(procs, split(stream, at));
          run.settled.forEach((s, i) => {
            assert.notEqual(s.state, "pending", `call ${i + 1} never settled`);
            if (s.state === "rejected") assertTypedEnd(s.error);
          });
          assertTypedEnd(run.closedWith);
        },
      ),
      { seed: 0xbadf4a3e, numRuns: 400 },
    );
  },

  "frames: a reply with a bad status or an unreadable remote_error rejects its call": async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.integer({ min: -0x80000000, max: 0x7fffffff }).filter((s) =>
            s !== MessageStatus.OK && s !== MessageStatus.ERROR
          ).map((status) => ({ status, payload: new Uint8Array() })),
          fc.uint8Array({ maxLength: 11 }).map((b) => ({
            status: MessageStatus.ERROR as number,
            payload: b.subarray(0, b.length & ~3),
          })),
        ),
        async ({ status, payload }) => {
          const reply = encodeFrame(
            Program.REMOTE,
            7,
            MessageType.REPLY,
            1,
            status,
            (w) => void w.writeFixedOpaque(payload),
          );
          const run = await converse([7], [reply]);
          const s = run.settled[0]!;
          assert.equal(s.state, "rejected", "the call is not left pending");
          assertTypedEnd((s as { error: unknown }).error);
        },
      ),
      { seed: 0x5747, numRuns: 100 },
    );
  },

  "frames: a length word above libvirt's maximum fails at once, before the body is awaited":
    async () => {
      await fc.assert(
        fc.asyncProperty(hugeLength, fc.uint8Array({ maxLength: 40 }), async (length, rest) => {
          const head = new Uint8Array(4);
          new DataView(head.buffer).setUint32(0, length);
          const run = await converse([1], [head, rest]);
          assert.equal(run.settled[0]!.state, "rejected");
          assert.ok(run.closedWith instanceof ConnectionError);
          assert.ok(run.closedWith.cause instanceof ProtocolError);
          assert.match(run.closedWith.message, /above libvirt's maximum/);
        }),
        { seed: 0x80000000, numRuns: 200 },
      );
    },
});
