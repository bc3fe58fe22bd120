/**
 * Aborting RPC work against a fake daemon that accepts and then goes silent: every call, stream
 * and connect in flight rejects with InterruptedError once the signal fires, instead of hanging
 * until a timeout; the connection stays usable for a rollback.
 */
import assert from "node:assert/strict";
import { XdrWriter } from "../../lib/xdr/mod.ts";
import {
  InterruptedError,
  Libvirt,
  MessageStatus,
  MessageType,
  Procedure,
  Program,
  RpcConnection,
} from "../../lib/libvirt/mod.ts";
import { rawFrame, type ReceivedFrame, startFakeDaemon, writeAll } from "./fake_daemon.ts";

const REMOTE = Program.REMOTE;
/** Long enough never to decide a test; the old code failed with CallTimeoutError after it. */
const CALL_TIMEOUT_MS = 20_000;

/**
 * Fails the test when `p` has not settled after `ms`: a guard against a hang, never a measure of
 * speed (the promise is awaited; this only bounds how long a broken build can stall the suite).
 */
function hangGuard<T>(p: Promise<T>, ms = 60_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/**
 * A fake daemon; `frame(n)` resolves once the n-th frame (1-based) has arrived, `until(pred)` once
 * a frame matching `pred` has.
 */
function fakeDaemon(handler: (f: ReceivedFrame, conn: Deno.Conn) => void | Promise<void>) {
  const waiters: { pred: (f: ReceivedFrame, n: number) => boolean; resolve: () => void }[] = [];
  let count = 0;
  const fake = startFakeDaemon(async (f, conn) => {
    count++;
    for (const w of waiters.filter((w) => w.pred(f, count))) w.resolve();
    await handler(f, conn);
  });
  const until = (pred: (f: ReceivedFrame, n: number) => boolean) =>
    new Promise<void>((resolve) => {
      if (fake.received.some((f, i) => pred(f, i + 1))) resolve();
      else waiters.push({ pred, resolve });
    });
  return { fake, until, frame: (n = 1) => until((_f, k) => k >= n) };
}

function reply(f: ReceivedFrame, payload = new Uint8Array()): Uint8Array {
  return rawFrame(
    { prog: f.prog, proc: f.proc, type: MessageType.REPLY, serial: f.serial, status: 0 },
    payload,
  );
}

async function* oneChunk(): AsyncGenerator<Uint8Array> {
  yield new Uint8Array(1000);
}

const intPayload = (n: number) => new XdrWriter().writeInt(n).bytes().slice();

function isInterrupt(reason: unknown) {
  return (e: unknown) => {
    assert.ok(e instanceof InterruptedError, `expected InterruptedError, got ${e}`);
    assert.equal(e.cause, reason);
    return true;
  };
}

Deno.test("an abort of the connection's signal rejects a call pending on a silent daemon", async () => {
  const { fake, frame } = fakeDaemon(async (f, conn) => {
    if (f.serial === 1) return; // silent for the first call
    // The first call's reply arrives late, after its abort: dropped, not a protocol error.
    await writeAll(conn, reply({ ...f, serial: 1 }, intPayload(1)));
    await writeAll(conn, reply(f, intPayload(7)));
  });
  const ac = new AbortController();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: fake.port });
  const rpc = new RpcConnection(conn, {
    uri: "test://fake",
    callTimeoutMs: CALL_TIMEOUT_MS,
    signal: ac.signal,
  });
  try {
    const pending = rpc.call(REMOTE, Procedure.CONNECT_GET_VERSION);
    await frame(1);
    const reason = new Error("Ctrl-C");
    ac.abort(reason);
    await hangGuard(assert.rejects(pending, isInterrupt(reason)));
    assert.equal(rpc.pendingCalls, 0);
    // Calls made after the abort still go out (a rollback needs them) and the late reply of the
    // aborted call does not break the connection.
    const later = await hangGuard(rpc.call(REMOTE, Procedure.CONNECT_GET_VERSION));
    assert.deepEqual([...later], [...intPayload(7)]);
    assert.equal(rpc.closed, false);
  } finally {
    await rpc.close();
    await fake.close();
  }
});

Deno.test("a call's own signal rejects it at once; an already aborted signal sends nothing", async () => {
  const { fake, frame } = fakeDaemon(() => {});
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: fake.port });
  const rpc = new RpcConnection(conn, { uri: "test://fake", callTimeoutMs: CALL_TIMEOUT_MS });
  try {
    const ac = new AbortController();
    const pending = rpc.call(REMOTE, Procedure.CONNECT_GET_VERSION, undefined, {
      signal: ac.signal,
    });
    await frame(1);
    const reason = new Error("deadline");
    ac.abort(reason);
    await hangGuard(assert.rejects(pending, isInterrupt(reason)));

    const gone = new Error("before");
    await assert.rejects(
      rpc.call(REMOTE, Procedure.CONNECT_GET_VERSION, undefined, {
        signal: AbortSignal.abort(gone),
      }),
      isInterrupt(gone),
    );
    assert.equal(fake.received.length, 1, "a call with an aborted signal went out");
  } finally {
    await rpc.close();
    await fake.close();
  }
});

Deno.test("Libvirt.connect rejects with InterruptedError when aborted during the handshake", async () => {
  const { fake, frame } = fakeDaemon(() => {}); // accepts, reads AUTH_LIST, never answers
  const ac = new AbortController();
  try {
    const connecting = Libvirt.connect(`qemu+tcp://127.0.0.1:${fake.port}/system`, {
      callTimeoutMs: CALL_TIMEOUT_MS,
      signal: ac.signal,
    });
    await frame(1);
    const reason = new Error("SIGINT");
    ac.abort(reason);
    await hangGuard(assert.rejects(connecting, isInterrupt(reason)));
    await assert.rejects(
      Libvirt.connect(`qemu+tcp://127.0.0.1:${fake.port}/system`, { signal: ac.signal }),
      InterruptedError,
    );
  } finally {
    await fake.close();
  }
});

Deno.test("an abort ends a download waiting for data and an upload waiting for its confirmation", async () => {
  // The daemon accepts each stream call, then sends nothing on the stream and confirms nothing.
  const { fake, frame, until } = fakeDaemon(async (f, conn) => {
    if (f.type === MessageType.CALL) await writeAll(conn, reply(f));
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: fake.port });
  let ac = new AbortController();
  const rpc = new RpcConnection(conn, {
    uri: "test://fake",
    callTimeoutMs: CALL_TIMEOUT_MS,
    signal: ac.signal,
  });
  try {
    const download = (async () => {
      for await (const _ of rpc.download(REMOTE, Procedure.STORAGE_VOL_DOWNLOAD, () => {})) {
        // no data ever comes
      }
    })();
    await frame(1);
    const r1 = new Error("stop download");
    ac.abort(r1);
    await hangGuard(assert.rejects(download, isInterrupt(r1)));
    await rpc.close();

    ac = new AbortController();
    const conn2 = await Deno.connect({ hostname: "127.0.0.1", port: fake.port });
    const rpc2 = new RpcConnection(conn2, {
      uri: "test://fake",
      callTimeoutMs: CALL_TIMEOUT_MS,
      signal: ac.signal,
    });
    try {
      const upload = rpc2.upload(REMOTE, Procedure.STORAGE_VOL_UPLOAD, () => {}, oneChunk());
      // Wait until the end of data went out: the upload now waits for the daemon's confirmation.
      await until((f) =>
        f.proc === Procedure.STORAGE_VOL_UPLOAD && f.type === MessageType.STREAM &&
        f.status === MessageStatus.OK
      );
      const r2 = new Error("stop upload");
      ac.abort(r2);
      await hangGuard(assert.rejects(upload, isInterrupt(r2)));
    } finally {
      await rpc2.close();
    }
  } finally {
    await rpc.close();
    await fake.close();
  }
});
