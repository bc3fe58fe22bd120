import assert from "node:assert/strict";
import { sanitizeText } from "./sanitize.ts";

Deno.test("sanitizeText() keeps ordinary text, newlines and tabs", () => {
  assert.equal(sanitizeText("VM web-01: état ok\n\tdone ✓"), "VM web-01: état ok\n\tdone ✓");
  assert.equal(sanitizeText(""), "");
});

Deno.test("sanitizeText() removes whole escape sequences: CSI, OSC, DCS and two-byte ones", () => {
  assert.equal(sanitizeText("a\x1b[31mred\x1b[0m b"), "ared b");
  assert.equal(sanitizeText("x\x1b[2J\x1b[Hy"), "xy");
  // OSC 52 would write the clipboard; OSC 8 hides a link target; both end with BEL or ST.
  assert.equal(sanitizeText("p\x1b]52;c;ZXZpbA==\x07q"), "pq");
  assert.equal(sanitizeText("p\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\q"), "plinkq");
  assert.equal(sanitizeText("p\x1bP1$r0m\x1b\\q"), "pq");
  assert.equal(sanitizeText("p\x1bcq\x1b7r"), "pqr");
  // An unterminated OSC runs to the end of the text: none of it is shown.
  assert.equal(sanitizeText("ok\x1b]0;title"), "ok");
  assert.equal(sanitizeText("end\x1b"), "end");
});

Deno.test("sanitizeText() removes C0 and C1 controls other than newline and tab, and DEL", () => {
  assert.equal(sanitizeText("a\rb\bc\x00d\x07e\x7ff"), "abcdef");
  assert.equal(sanitizeText("a\u009b31mb\u0085c\u009dd"), "a31mbcd");
  assert.equal(sanitizeText("a\r\nb"), "a\nb");
});

Deno.test("sanitizeText() removes bidirectional overrides, isolates and marks", () => {
  // "Trojan source": an override makes the terminal show the text in another order.
  assert.equal(sanitizeText("file\u202Egpj.exe"), "filegpj.exe");
  for (
    const c of ["\u202A", "\u202B", "\u202C", "\u202D", "\u2066", "\u2067", "\u2068", "\u2069"]
  ) {
    assert.equal(sanitizeText(`a${c}b`), "ab", `U+${c.codePointAt(0)!.toString(16)}`);
  }
  assert.equal(sanitizeText("a\u200Eb\u200Fc\u061Cd"), "abcd");
});

Deno.test("sanitizeText({ singleLine }) turns newlines and tabs into spaces", () => {
  assert.equal(sanitizeText("a\nb\tc\x1b[1m", { singleLine: true }), "a b c");
});

Deno.test("sanitizeText() is linear on long hostile input", () => {
  const hostile = "\x1b[".repeat(200_000) + "\x1b]".repeat(200_000);
  assert.equal(sanitizeText(hostile).includes("\x1b"), false);
});

Deno.test("sanitizeText({ keepColors }) keeps colour sequences and nothing else", () => {
  assert.equal(
    sanitizeText("\x1b[1;32mok\x1b[0m\x1b[2K\x1b]52;c;eA==\x07\x1b[?25l", { keepColors: true }),
    "\x1b[1;32mok\x1b[0m",
  );
  assert.equal(sanitizeText("\x1b[32mok\x1b[0m"), "ok");
});
