/**
 * Multi-document YAML output, written here rather than with the yaml package: loading that package
 * (through Deno's Node compatibility layer) was about 25 ms of every `foundry get`, whose default
 * output is YAML. The data printed is what `JSON.stringify` prints (objects, arrays, strings,
 * numbers, booleans, null; `toJSON` honoured, undefined properties left out), in block style.
 *
 * Strings are plain only when every YAML 1.1 and 1.2 reader takes them back as the same string:
 * never a word a YAML 1.1 reader takes as a boolean or null (`yes`, `on`, `~`), a number, a date or
 * a sexagesimal. Text with line breaks is a literal block (`|`), anything else is double-quoted
 * with JSON's escapes, which YAML's double-quoted style shares. Control, bidirectional-override
 * and other invisible characters are always escaped (`\u001b`), so printed output cannot move a
 * terminal's cursor or reorder what it shows.
 *
 * @example
 * ```ts
 * import { formatYamlDocuments } from "./yaml.ts";
 * console.log(formatYamlDocuments([{ name: "vm-1" }, { name: "vm-2" }]));
 * ```
 * @module
 */

/** Objects as a multi-document YAML stream (`---` between documents), long lines not folded. */
export function formatYamlDocuments(docs: readonly unknown[]): string {
  return docs.map((d) => formatYaml(d)).join("---\n");
}

/** One value as a YAML document, ending with a line break. */
export function formatYaml(value: unknown): string {
  return node(toData(value, true)).join("\n") + "\n";
}

/** JSON's view of a value: `toJSON` called, undefined for what JSON leaves out. */
function toData(value: unknown, inArray: boolean): unknown {
  let v = value;
  if (
    v !== null && typeof v === "object" && typeof (v as { toJSON?: unknown }).toJSON === "function"
  ) {
    v = (v as { toJSON: () => unknown }).toJSON();
  }
  if (v === undefined || typeof v === "function" || typeof v === "symbol") {
    return inArray ? null : undefined;
  }
  return v;
}

/** The lines of `v` at indentation 0 (a block collection, or one scalar line and its block). */
function node(v: unknown): string[] {
  if (Array.isArray(v)) {
    if (v.length === 0) return ["[]"];
    const out: string[] = [];
    for (const item of v) {
      const lines = child(toData(item, true));
      out.push(`- ${lines[0]}`, ...lines.slice(1).map((l) => l === "" ? l : `  ${l}`));
    }
    return out;
  }
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => [k, toData(x, false)] as const)
      .filter(([, x]) => x !== undefined);
    if (entries.length === 0) return ["{}"];
    const out: string[] = [];
    for (const [k, x] of entries) {
      const key = scalarString(k, false)[0]!;
      if (isNonEmptyCollection(x)) {
        // A list under a key is indented like kubectl's (and the yaml package's) output.
        out.push(`${key}:`, ...node(x).map((l) => l === "" ? l : `  ${l}`));
      } else {
        const [head, ...block] = scalar(x);
        out.push(`${key}: ${head}`, ...block.map((l) => l === "" ? l : `  ${l}`));
      }
    }
    return out;
  }
  return scalar(v);
}

/** The lines of a sequence item: a nested collection starts on the dash's line. */
function child(v: unknown): string[] {
  return isNonEmptyCollection(v) ? node(v) : scalar(v);
}

function isNonEmptyCollection(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return v !== null && typeof v === "object" && Object.values(v).some((x) => x !== undefined);
}

/** A scalar's first line, then the lines of its literal block (indented by the caller). */
function scalar(v: unknown): string[] {
  if (v === null) return ["null"];
  if (Array.isArray(v)) return ["[]"]; // empty: a non-empty one is a block (node)
  if (typeof v === "object") return ["{}"];
  if (typeof v === "boolean") return [v ? "true" : "false"];
  if (typeof v === "bigint") return [String(v)];
  if (typeof v === "number") {
    if (Number.isNaN(v)) return [".nan"];
    if (!Number.isFinite(v)) return [v > 0 ? ".inf" : "-.inf"];
    return [String(v)];
  }
  return scalarString(String(v), true);
}

/**
 * Characters never printed as they are: C0 and C1 controls, DEL, line and paragraph separators,
 * bidirectional marks and overrides, zero-width characters, the byte order mark, U+FFFE and U+FFFF,
 * and surrogates that are not part of a pair.
 */
const ESCAPED =
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufffe\uffff\ud800-\udfff]/u;
const ESCAPED_ALL = new RegExp(ESCAPED.source, "gu");

/** Words a YAML 1.1 or 1.2 reader takes as something other than a string. */
const SPECIAL_WORD =
  /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|<<|=)$/;
/** Numbers (with `_`, `0x`, `0o`, `0b`, exponents), `.inf`, `.nan`, dates and sexagesimals. */
const NUMBER_LIKE = new RegExp(
  "^(?:" + [
    "[-+]?(?:[0-9][0-9_]*(?:\\.[0-9_]*)?|\\.[0-9_]*)(?:[eE][-+]?[0-9]+)?", // 1, 1_000, 1.5, .5, 1e3
    "[-+]?0[xX][0-9a-fA-F_]+|[-+]?0[oO][0-7_]+|[-+]?0[bB][01_]+", // 0x1F, 0o17, 0b101
    "[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)",
    "[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\\.[0-9_]*)?", // 1:20 (YAML 1.1 base 60)
  ].join("|") + ")$|^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:$|[Tt \\t])", // dates
);
/** What a plain scalar may hold here: no indicator first, no `: ` or ` #`, no flow characters. */
const PLAIN = /^[^\s\-?:,[\]{}#&*!|>'"%@`](?:[^\n\r\t:#,[\]{}]|:(?=\S)|(?<=\S)#)*$/;

/** A string as a plain scalar, a literal block (`block`: allowed here) or a quoted one. */
function scalarString(s: string, block: boolean): string[] {
  if (ESCAPED.test(s)) return [quoted(s)];
  if (
    s !== "" && s.trim() === s && PLAIN.test(s) && !s.endsWith(":") && !SPECIAL_WORD.test(s) &&
    !NUMBER_LIKE.test(s)
  ) {
    return [s];
  }
  if (block && s.includes("\n") && !s.includes("\r") && !/^[ \t]/.test(s) && s.trim() !== "") {
    const body = s.replace(/\n+$/, "");
    const trailing = s.length - body.length;
    const chomp = trailing === 0 ? "-" : trailing === 1 ? "" : "+";
    const lines = body.split("\n").concat(trailing > 1 ? Array(trailing - 1).fill("") : []);
    return [`|${chomp}`, ...lines];
  }
  return [quoted(s)];
}

/** Double-quoted with JSON's escapes, plus the invisible characters of {@linkcode ESCAPED}. */
function quoted(s: string): string {
  return JSON.stringify(s).replace(
    ESCAPED_ALL,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
