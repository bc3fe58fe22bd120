/**
 * Output formatting for the CLIs: aligned tables, JSON, and colour only on a terminal and never
 * when `NO_COLOR` is set (https://no-color.org). Multi-document YAML is in `yaml.ts`, so that a
 * command that prints no YAML loads no YAML package.
 *
 * @example
 * ```ts
 * import { formatTable } from "./format.ts";
 * console.log(formatTable(["NAME", "PHASE"], [["vm-1", "Running"]]));
 * ```
 * @module
 */
import { sanitizeText } from "./sanitize.ts";

/** Where output goes and what the environment says about colour. */
export interface ColorContext {
  /** True when the output stream is a terminal. */
  isTerminal: boolean;
  /** The environment (only `NO_COLOR` and `TERM` are read). */
  env?: Readonly<Record<string, string | undefined>>;
}

/** True when colour may be used: a terminal, `NO_COLOR` unset or empty, and `TERM` not `dumb`. */
export function useColor(ctx: ColorContext): boolean {
  const env = ctx.env ?? {};
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.TERM === "dumb") return false;
  return ctx.isTerminal;
}

/** ANSI SGR codes used by {@linkcode paint}. */
export const COLORS = {
  red: 31,
  green: 32,
  yellow: 33,
  bold: 1,
  dim: 2,
} as const;

/** Wraps `text` in an ANSI colour when `enabled`, else returns it unchanged. */
export function paint(text: string, color: keyof typeof COLORS, enabled: boolean): string {
  return enabled ? `\x1b[${COLORS[color]}m${text}\x1b[0m` : text;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** Length of `s` as shown, ignoring ANSI escapes; counts code points, not UTF-16 units. */
export function visibleLength(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // Only an escape or a surrogate pair makes the shown length differ from `length`.
    if (c === 0x1b || (c >= 0xd800 && c <= 0xdfff)) return [...s.replace(ANSI, "")].length;
  }
  return s.length;
}

/**
 * Formats rows as a table with a header, columns separated by two spaces and padded to the widest
 * cell (ANSI colours do not count towards width). Ends with a newline. Cells often hold names
 * from the daemon, a guest or an API server: each is cut to one line without control characters
 * or escape sequences other than colours.
 */
export function formatTable(
  headers: readonly string[],
  dirtyRows: readonly (readonly string[])[],
): string {
  const rows = dirtyRows.map((r) =>
    r.map((c) => sanitizeText(c, { singleLine: true, keepColors: true }))
  );
  // Each cell's shown length once: a list of a thousand domains has several thousand cells.
  const lengths = rows.map((r) => headers.map((_, i) => visibleLength(r[i] ?? "")));
  const widths = headers.map((h, i) => {
    let w = visibleLength(h);
    for (const l of lengths) w = Math.max(w, l[i]!);
    return w;
  });
  const line = (cells: readonly string[], shown: readonly number[]) => {
    let out = "";
    const last = headers.length - 1;
    for (let i = 0; i < last; i++) {
      out += (cells[i] ?? "") + " ".repeat(widths[i]! - shown[i]!) + "  ";
    }
    return (out + (cells[last] ?? "")).trimEnd();
  };
  const out = [line(headers, headers.map(visibleLength))];
  for (let r = 0; r < rows.length; r++) out.push(line(rows[r]!, lengths[r]!));
  return out.join("\n") + "\n";
}

/** Pretty JSON with a final newline. */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
