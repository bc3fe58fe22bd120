/** runConsoleSession moves bytes both ways and ends on Ctrl-], the console's end or a signal. */
import assert from "node:assert/strict";
import type { DomainConsole } from "../../lib/libvirt/mod.ts";
import { CONSOLE_ESCAPE, runConsoleSession } from "../../lib/foundry/guest_console.ts";

function fakeConsole() {
  let push!: ReadableStreamDefaultController<Uint8Array>;
  const written: number[] = [];
  let closes = 0;
  const con: DomainConsole = {
    readable: new ReadableStream<Uint8Array>({ start: (c) => void (push = c) }),
    write: (b) => (written.push(...b), Promise.resolve()),
    close: () => (closes++, Promise.resolve()),
  };
  return {
    con,
    written,
    get closes() {
      return closes;
    },
    send: (s: string) => push.enqueue(new TextEncoder().encode(s)),
    end: () => push.close(),
    fail: (e: Error) => push.error(e),
  };
}

/** Keys typed one chunk at a time, with a pause before each; never ends unless told. */
async function* keys(chunks: Uint8Array[], gapMs = 20, thenWait = true) {
  for (const c of chunks) {
    await new Promise((r) => setTimeout(r, gapMs));
    yield c;
  }
  if (thenWait) await new Promise(() => {});
}

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("Ctrl-] leaves; the keys before it in the same chunk still reach the guest", async () => {
  const f = fakeConsole();
  const shown: string[] = [];
  const p = runConsoleSession(f.con, {
    input: keys([bytes(0x61), bytes(0x62, 0x63, CONSOLE_ESCAPE, 0x64)]),
    output: (b) => void shown.push(new TextDecoder().decode(b)),
  });
  f.send("login: ");
  assert.equal(await p, "escape");
  assert.deepEqual(f.written, [0x61, 0x62, 0x63]);
  assert.deepEqual(shown, ["login: "]);
  assert.equal(f.closes, 1);
});

Deno.test("the console's end ends the session; a closed input does not", async () => {
  const f = fakeConsole();
  const shown: string[] = [];
  const p = runConsoleSession(f.con, {
    input: keys([bytes(0x71)], 1, false), // stdin at its end at once (a pipe)
    output: (b) => void shown.push(new TextDecoder().decode(b)),
  });
  await new Promise((r) => setTimeout(r, 50));
  f.send("still here");
  await new Promise((r) => setTimeout(r, 20));
  f.end();
  assert.equal(await p, "ended");
  assert.deepEqual(shown, ["still here"]);
  assert.deepEqual(f.written, [0x71]);
});

Deno.test("a signal ends the session as interrupted, and the console is released", async () => {
  const f = fakeConsole();
  const ctl = new AbortController();
  const p = runConsoleSession(f.con, { input: keys([]), output: () => {}, signal: ctl.signal });
  setTimeout(() => ctl.abort(), 30);
  assert.equal(await p, "interrupted");
  assert.equal(f.closes, 1);
});

Deno.test("a console taken over by another client rejects with its error", async () => {
  const f = fakeConsole();
  const p = runConsoleSession(f.con, { input: keys([]), output: () => {} });
  f.fail(new Error("taken over"));
  await assert.rejects(p, /taken over/);
  assert.equal(f.closes, 1);
});
