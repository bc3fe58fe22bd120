/**
 * Text from outside (a guest, the daemon, an API server) made safe to print on a terminal: escape
 * sequences are removed whole, and so are C0/C1 control characters other than newline and tab,
 * DEL, and the bidirectional overrides, isolates and marks that make a terminal show text in
 * another order than it is stored.
 *
 * @example
 * ```ts
 * import { sanitizeText } from "./sanitize.ts";
 * console.log(sanitizeText("cloud-init: \x1b]52;c;ZXZpbA==\x07done\r")); // "cloud-init: done"
 * ```
 * @module
 */

/** Options of {@linkcode sanitizeText}. */
export interface SanitizeOptions {
  /** Also turn newlines and tabs into spaces (table cells, one-line messages). */
  singleLine?: boolean;
  /**
   * Keep plain colour sequences (`ESC [ digits ; m`, SGR), which can change only how text looks:
   * for text that already carries our own {@linkcode paint} colours.
   */
  keepColors?: boolean;
}

function isSgr(s: string, start: number, end: number): boolean {
  if (end - start < 3 || s.charCodeAt(start + 1) !== 0x5b || s.charCodeAt(end - 1) !== 0x6d) {
    return false;
  }
  for (let k = start + 2; k < end - 1; k++) {
    const c = s.charCodeAt(k);
    if (!(c === 0x3b || (c >= 0x30 && c <= 0x39))) return false;
  }
  return true;
}

const ESC = 0x1b;

function isBidiControl(c: number): boolean {
  return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c === 0x200e ||
    c === 0x200f || c === 0x061c;
}

function isControl(c: number): boolean {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/** Index just past the escape sequence starting at `i` (an ESC), in one forward pass. */
function skipEscape(s: string, i: number): number {
  const n = s.length;
  if (i + 1 >= n) return n;
  const kind = s.charCodeAt(i + 1);
  let j = i + 2;
  if (kind === 0x5b) { // CSI: parameters, intermediates, one final byte
    while (j < n && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x3f) j++;
    while (j < n && s.charCodeAt(j) >= 0x20 && s.charCodeAt(j) <= 0x2f) j++;
    return j < n && s.charCodeAt(j) >= 0x40 && s.charCodeAt(j) <= 0x7e ? j + 1 : j;
  }
  // OSC, DCS, SOS, PM, APC: a string up to ST (ESC \), or BEL for OSC; another ESC ends it.
  if (kind === 0x5d || kind === 0x50 || kind === 0x58 || kind === 0x5e || kind === 0x5f) {
    for (; j < n; j++) {
      const c = s.charCodeAt(j);
      if (c === 0x07 && kind === 0x5d) return j + 1;
      if (c === ESC) return s.charCodeAt(j + 1) === 0x5c ? j + 2 : j;
    }
    return n;
  }
  if (kind >= 0x20 && kind <= 0x2f) { // nF: intermediates, then one final byte (ESC ( B)
    j = i + 1;
    while (j < n && s.charCodeAt(j) >= 0x20 && s.charCodeAt(j) <= 0x2f) j++;
    return j < n && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x7e ? j + 1 : j;
  }
  if (kind >= 0x30 && kind <= 0x7e) return i + 2; // two-byte sequences (ESC c, ESC 7, ESC M)
  return i + 1;
}

/**
 * `text` without terminal escape sequences, control characters (newline and tab are kept, or
 * become spaces with `singleLine`) and bidirectional controls. Runs in linear time.
 */
export function sanitizeText(text: string, opts: SanitizeOptions = {}): string {
  // Most text is printable ASCII throughout: returned as it is, without the general pass.
  let plain = 0;
  while (plain < text.length) {
    const c = text.charCodeAt(plain);
    if (c < 0x20 || c > 0x7e) break;
    plain++;
  }
  if (plain === text.length) return text;
  const parts: string[] = [];
  let clean = 0; // start of the run of characters kept as they are
  let i = plain;
  const n = text.length;
  const cut = (next: number, replacement = "") => {
    if (i > clean) parts.push(text.slice(clean, i));
    if (replacement) parts.push(replacement);
    i = next;
    clean = next;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === ESC) {
      const end = skipEscape(text, i);
      if (opts.keepColors && isSgr(text, i, end)) i = end;
      else cut(end);
    } else if (c === 0x0a || c === 0x09) {
      if (opts.singleLine) cut(i + 1, " ");
      else i++;
    } else if (isControl(c) || isBidiControl(c)) cut(i + 1);
    else i++;
  }
  if (clean === 0) return text;
  if (n > clean) parts.push(text.slice(clean));
  return parts.join("");
}
