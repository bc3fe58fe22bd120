import assert from "node:assert/strict";
import { createStatusLine } from "./status_line.ts";

function recorder(isTerminal: boolean, color = false) {
  const out: string[] = [];
  let t = 0;
  const s = createStatusLine({
    isTerminal,
    color,
    timeoutSeconds: 600,
    write: (x) => void out.push(x),
    now: () => t,
    redrawMs: 0,
  });
  return { s, out, tick: (ms: number) => void (t += ms) };
}

Deno.test("status line on a terminal is redrawn in place with elapsed and timeout, then cleared", () => {
  const { s, out, tick } = recorder(true);
  tick(41_000);
  s.status("ready 3/12, failed 0");
  assert.equal(out.join(""), "\r\x1b[2Kready 3/12, failed 0, elapsed 41s / timeout 600s");
  s.line("vm-1 ready");
  assert.equal(
    out.slice(1).join(""),
    "\r\x1b[2Kvm-1 ready\n\r\x1b[2Kready 3/12, failed 0, elapsed 41s / timeout 600s",
  );
  s.status("");
  assert.equal(out.at(-1), "\r\x1b[2K", "an empty status hides the line");
  s.status("ready 4/12, failed 0");
  s.done();
  assert.equal(out.at(-1), "\r\x1b[2K");
  const n = out.length;
  s.status("late");
  s.done();
  assert.equal(out.length, n, "nothing is drawn after done");
});

Deno.test("status line when piped prints only the lines that stay", () => {
  const { s, out } = recorder(false, true);
  s.status("waiting for agent");
  s.line("ok agent after 1.0 s");
  s.done();
  assert.deepEqual(out, ["ok agent after 1.0 s\n"]);
});

Deno.test("status line colours only when asked, and strips escape sequences from the text", () => {
  const plain = recorder(true, false);
  plain.s.status("a\x1b[31mb");
  assert.ok(!plain.out.join("").replace("\r\x1b[2K", "").includes("\x1b"));
  const coloured = recorder(true, true);
  coloured.s.status("x");
  assert.ok(coloured.out.join("").includes("\x1b[1mx\x1b[0m"));
});
