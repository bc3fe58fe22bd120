/**
 * Characters that must never reach a guest's configuration files, a libvirt XML document or a
 * terminal: C0 and C1 control characters and DEL (a newline splits an `authorized_keys` line, an
 * escape sequence drives a terminal), the Unicode line and paragraph separators, bidirectional
 * overrides and isolates (they make text read differently from what it is) and a byte order mark
 * inside text.
 *
 * @example
 * ```ts
 * import { forbiddenCharacter, quoteForTerminal } from "./safe_text.ts";
 * forbiddenCharacter("web\n01"); // { index: 3, codePoint: 10 }
 * quoteForTerminal("a\u001b[2Jb"); // "\"a\\u001b[2Jb\""
 * ```
 * @module
 */

/** Matches one forbidden character (see the module documentation). */
export const FORBIDDEN_CHARACTER =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/;

const FORBIDDEN_GLOBAL = new RegExp(FORBIDDEN_CHARACTER.source, "g");

/** Where the first forbidden character of `text` is, or undefined when there is none. */
export function forbiddenCharacter(
  text: string,
  allowed = "",
): { index: number; codePoint: number } | undefined {
  FORBIDDEN_GLOBAL.lastIndex = 0;
  for (let m = FORBIDDEN_GLOBAL.exec(text); m !== null; m = FORBIDDEN_GLOBAL.exec(text)) {
    if (!allowed.includes(m[0])) return { index: m.index, codePoint: m[0].charCodeAt(0) };
  }
  return undefined;
}

/** `U+001B` style name of a code point, for messages. */
export function codePointName(codePoint: number): string {
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** `text` with every forbidden character written as a `\uXXXX` escape: safe to print. */
export function escapeForbidden(text: string): string {
  return text.replace(
    FORBIDDEN_GLOBAL,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** `text` in double quotes with JSON escapes and no forbidden character left raw. */
export function quoteForTerminal(text: string): string {
  return escapeForbidden(JSON.stringify(text));
}

/**
 * Throws a TypeError naming `what` when `text` holds a forbidden character (other than those in
 * `allowed`, e.g. `"\n\t"` for a file's content).
 */
export function assertSafeText(text: string, what: string, allowed = ""): void {
  const bad = forbiddenCharacter(text, allowed);
  if (bad !== undefined) {
    throw new TypeError(
      `${what} contains the control character ${
        codePointName(bad.codePoint)
      } at index ${bad.index}`,
    );
  }
}
