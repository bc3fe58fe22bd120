/**
 * The libvirt backend's console read goes through console_results.ts's reader: result lines
 * arrive as samples, a console that cannot be opened is `false` (the backend then asks the agent),
 * an abort keeps what was read, and the console is released in every case.
 */
import assert from "node:assert/strict";
import type { DomainRef, Libvirt } from "../../lib/libvirt/mod.ts";
import { readConsoleSamples } from "../../lib/virtwork/libvirt/results.ts";
import { RESULT_MARKER, type ResultSample } from "../../lib/virtwork/results.ts";

const DOMAIN = { name: "h1-fake", uuid: new Uint8Array(16), id: 1 } as unknown as DomainRef;

function line(workload: string, metrics: Record<string, number>): string {
  return `${RESULT_MARKER}${JSON.stringify({ v: 1, workload, t: 1764669600, metrics })}\r\n`;
}

/** A Libvirt whose openConsole gives `chunks` and then stays open (or fails with `fail`). */
function fakeLibvirt(chunks: string[], fail?: Error): { lv: Libvirt; closed: () => number } {
  let closed = 0;
  const lv = {
    openConsole(_d: DomainRef, _o: unknown) {
      if (fail) return Promise.reject(fail);
      const enc = new TextEncoder();
      const readable = new ReadableStream<Uint8Array>({
        start(c) {
          for (const ch of chunks) c.enqueue(enc.encode(ch));
        },
      });
      return Promise.resolve({
        readable,
        close: () => {
          closed++;
          return Promise.resolve();
        },
      });
    },
  } as unknown as Libvirt;
  return { lv, closed: () => closed };
}

Deno.test("readConsoleSamples() hands every result line on the console to onSample", async () => {
  const full = line("cpu", { bogo_ops_per_s: 12.5 });
  const { lv, closed } = fakeLibvirt([
    "boot noise\r\n",
    full.slice(0, 20),
    full.slice(20),
    line("cpu", { bogo_ops_per_s: 13 }),
  ]);
  const got: ResultSample[] = [];
  assert.equal(await readConsoleSamples(lv, DOMAIN, 200, (s) => got.push(s)), true);
  assert.deepEqual(got.map((s) => s.metrics), [{ bogo_ops_per_s: 12.5 }, { bogo_ops_per_s: 13 }]);
  assert.equal(closed(), 1);
});

Deno.test("readConsoleSamples() is false when the console cannot be opened", async () => {
  const { lv } = fakeLibvirt([], new Error("console is busy"));
  const got: ResultSample[] = [];
  assert.equal(await readConsoleSamples(lv, DOMAIN, 200, (s) => got.push(s)), false);
  assert.deepEqual(got, []);
});

Deno.test("readConsoleSamples() ends on an abort, keeping what it read", async () => {
  const { lv, closed } = fakeLibvirt([line("memory", { bogo_ops_per_s: 3 })]);
  const stop = new AbortController();
  const got: ResultSample[] = [];
  const t0 = performance.now();
  setTimeout(() => stop.abort(), 50);
  assert.equal(await readConsoleSamples(lv, DOMAIN, 60_000, (s) => got.push(s), stop.signal), true);
  assert.ok(performance.now() - t0 < 30_000, "the abort ended the read");
  assert.equal(got.length, 1);
  assert.equal(closed(), 1);
});
