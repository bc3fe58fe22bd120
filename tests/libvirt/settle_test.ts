/**
 * An interrupt lets a mutating call settle: the daemon does the work whether or not the client
 * listens, so its real answer must reach the caller's rollback. Read-only calls still reject at
 * once. Against a fake daemon whose answers the test releases one by one.
 */
import assert from "node:assert/strict";
import { XdrWriter } from "../../lib/xdr/mod.ts";
import {
  InterruptedError,
  MessageType,
  Procedure,
  Program,
  RpcConnection,
} from "../../lib/libvirt/mod.ts";
import { rawFrame, type ReceivedFrame, startFakeDaemon, writeAll } from "./fake_daemon.ts";

const REMOTE = Program.REMOTE;
const intPayload = (n: number) => new XdrWriter().writeInt(n).bytes().slice();

/** A fake daemon that answers nothing by itself; `answer(proc)` replies to that call. */
function heldDaemon() {
  const calls = new Map<number, { f: ReceivedFrame; conn: Deno.Conn }>();
  let waiters: (() => void)[] = [];
  const fake = startFakeDaemon((f, conn) => {
    calls.set(f.proc, { f, conn });
    for (const w of waiters.splice(0)) w();
  });
  return {
    fake,
    async sent(proc: number) {
      while (!calls.has(proc)) await new Promise<void>((r) => waiters.push(r));
    },
    async answer(proc: number, n: number) {
      const { f, conn } = calls.get(proc)!;
      await writeAll(
        conn,
        rawFrame(
          { prog: f.prog, proc: f.proc, type: MessageType.REPLY, serial: f.serial, status: 0 },
          intPayload(n),
        ),
      );
    },
    close() {
      waiters = [];
      return fake.close();
    },
  };
}

async function connect(port: number, signal: AbortSignal, settleMs?: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return new RpcConnection(conn, {
    uri: "test://fake",
    callTimeoutMs: 60_000,
    signal,
    ...(settleMs !== undefined ? { settleMs } : {}),
  });
}

Deno.test("an abort rejects a read-only call at once and lets a mutating call settle with its reply", async () => {
  const daemon = heldDaemon();
  const ac = new AbortController();
  const rpc = await connect(daemon.fake.port, ac.signal);
  try {
    const read = rpc.call(REMOTE, Procedure.CONNECT_GET_VERSION);
    const define = rpc.call(REMOTE, Procedure.DOMAIN_DEFINE_XML_FLAGS, undefined, {
      mutates: true,
    });
    await daemon.sent(Procedure.CONNECT_GET_VERSION);
    await daemon.sent(Procedure.DOMAIN_DEFINE_XML_FLAGS);
    ac.abort(new InterruptedError("Interrupted by the test"));
    // The read-only call rejects before the daemon has answered anything.
    await assert.rejects(read, InterruptedError);
    assert.equal(rpc.pendingCalls, 1, "the mutating call was dropped");
    await daemon.answer(Procedure.DOMAIN_DEFINE_XML_FLAGS, 42);
    assert.deepEqual([...await define], [...intPayload(42)]);
  } finally {
    await rpc.close();
    await daemon.close();
  }
});

Deno.test("a mutating call unanswered within settleMs after an abort says its outcome is unknown", async () => {
  const daemon = heldDaemon();
  const ac = new AbortController();
  const rpc = await connect(daemon.fake.port, ac.signal, 100);
  try {
    const create = rpc.call(REMOTE, Procedure.STORAGE_VOL_CREATE_XML, undefined, { mutates: true });
    await daemon.sent(Procedure.STORAGE_VOL_CREATE_XML);
    ac.abort(new InterruptedError("Interrupted by SIGINT", { signalName: "SIGINT" }));
    await assert.rejects(create, (e) => {
      assert.ok(e instanceof InterruptedError, String(e));
      assert.equal(e.outcomeUnknown, true);
      assert.equal(e.signalName, "SIGINT");
      assert.match(e.message, /may exist/);
      return true;
    });
    // Its late reply is dropped and the connection still works (a rollback needs it).
    await daemon.answer(Procedure.STORAGE_VOL_CREATE_XML, 1);
    const later = rpc.call(REMOTE, Procedure.CONNECT_GET_VERSION);
    await daemon.sent(Procedure.CONNECT_GET_VERSION);
    await daemon.answer(Procedure.CONNECT_GET_VERSION, 7);
    assert.deepEqual([...await later], [...intPayload(7)]);
    assert.equal(rpc.closed, false);
  } finally {
    await rpc.close();
    await daemon.close();
  }
});
