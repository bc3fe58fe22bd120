import assert from "node:assert/strict";
import { createProgress, formatBytes, formatDuration } from "./progress.ts";

Deno.test("formatBytes() uses binary units with one decimal", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(2 ** 30), "1.0 GiB");
});

Deno.test("formatDuration() prints hours, minutes and seconds", () => {
  assert.equal(formatDuration(7), "7s");
  assert.equal(formatDuration(125), "2m05s");
  assert.equal(formatDuration(3723), "1h02m03s");
  assert.equal(formatDuration(Infinity), "--");
});

Deno.test("createProgress() on a terminal redraws one line with bar, rate and ETA", () => {
  let t = 0;
  const out: string[] = [];
  const p = createProgress({
    label: "img.raw",
    total: 1000,
    isTerminal: true,
    write: (s) => out.push(s),
    now: () => t,
    barWidth: 10,
  });
  t = 1000;
  p.update(500);
  t = 1050; // throttled: under 100 ms since the last draw
  p.update(600);
  t = 2000;
  p.update(1000);
  p.done();
  assert.equal(out.length, 3);
  assert.equal(out[0], "\r\x1b[2Kimg.raw  [#####-----]   50%  500 B/1000 B  500 B/s  ETA 1s");
  assert.ok(out[1]!.includes("[##########]  100%"));
  assert.equal(out[2], "\r\x1b[2Kimg.raw  1000 B in 2s  500 B/s\n");
});

Deno.test("createProgress() off a terminal prints a plain line per tenth, no escapes", () => {
  let t = 0;
  const out: string[] = [];
  const p = createProgress({
    label: "x",
    total: 100,
    isTerminal: false,
    write: (s) => out.push(s),
    now: () => t,
  });
  for (let b = 1; b <= 100; b++) {
    t += 10;
    p.update(b);
  }
  p.done();
  assert.equal(out.length, 10); // 10%..90% and the summary
  assert.ok(out.every((l) => !l.includes("\x1b") && l.endsWith("\n")));
  assert.ok(out[0]!.startsWith("x   10%  10 B/100 B"));
  assert.ok(out[9]!.startsWith("x  100 B in 1s"));
});

Deno.test("createProgress() without a total prints bytes every five seconds", () => {
  let t = 0;
  const out: string[] = [];
  const p = createProgress({
    label: "y",
    isTerminal: false,
    write: (s) => out.push(s),
    now: () => t,
  });
  p.update(1);
  t = 6000;
  p.update(2048);
  p.fail();
  assert.deepEqual(out, ["y  2.0 KiB  341 B/s\n"]);
});
