/**
 * The output formats every listing of the executables offers, as kubectl's `-o`:
 *
 * - `table` (default): the usual columns; `wide`: the same with more columns;
 * - `name`: `KIND/NAME`, one per line (`vm/web-01`), for scripts and `xargs`;
 * - `json`, `yaml`: the data, for scripts.
 *
 * `--no-headers` drops the header line of `table` and `wide`. A listing with nothing in it never
 * prints an empty table: `table`, `wide` and `name` print nothing on stdout and say
 * `No resources found` (or the caller's words) on stderr, exit 0, as kubectl does; `json` and
 * `yaml` print an empty list.
 *
 * @example
 * ```ts
 * import { renderListing } from "./listing.ts";
 * const { out, err } = renderListing([{ name: "web-01", state: "running" }], {
 *   format: "table",
 *   kind: "vm",
 *   name: (v) => v.name,
 *   columns: [
 *     { header: "NAME", value: (v) => v.name },
 *     { header: "STATE", value: (v) => v.state },
 *   ],
 * });
 * console.log(out, err);
 * ```
 * @module
 */
import { formatJson, formatTable } from "./format.ts";
import { sanitizeText } from "./sanitize.ts";

/** Every format a listing offers. */
export const LIST_FORMATS = ["table", "wide", "name", "json", "yaml"] as const;
/** One of {@linkcode LIST_FORMATS}. */
export type ListFormat = typeof LIST_FORMATS[number];

/** One column of a table. */
export interface Column<T> {
  /** Header, in capitals (`NAME`). */
  header: string;
  /** The cell of `item`. */
  value: (item: T) => string;
  /** Shown only with `-o wide`. */
  wide?: boolean;
}

/** How {@linkcode renderListing} prints. */
export interface ListingOptions<T> {
  /** Output format. */
  format: ListFormat;
  /** Columns of `table` (those without `wide`) and `wide` (all). */
  columns: readonly Column<T>[];
  /** Resource kind for `-o name` (`vm`, `pool`, `image`). */
  kind: string;
  /** The name of `item` for `-o name`. */
  name: (item: T) => string;
  /** Leave out the header line of `table` and `wide`. */
  noHeaders?: boolean;
  /** What `json` and `yaml` print (default: the items). */
  data?: unknown;
  /** The stderr line when nothing is listed (default `No resources found`). */
  empty?: string;
}

/** Text for stdout and stderr. */
export interface Rendered {
  /** For stdout. */
  out: string;
  /** For stderr (the empty-listing note), or "". */
  err: string;
}

/** Whether `text` is one of {@linkcode LIST_FORMATS}. */
export function isListFormat(text: string): text is ListFormat {
  return (LIST_FORMATS as readonly string[]).includes(text);
}

/** Formats `rows` as a table, with or without its header line. */
export function formatRows(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  noHeaders = false,
): string {
  const text = formatTable(headers, rows);
  return noHeaders ? text.slice(text.indexOf("\n") + 1) : text;
}

/** `kind/name` lines, one per item, as `kubectl get -o name` prints them. */
export function formatNames(kind: string, names: readonly string[]): string {
  return names.map((n) => `${kind}/${sanitizeText(n, { singleLine: true })}\n`).join("");
}

let yamlWriter: ((docs: readonly unknown[]) => string) | undefined;

/**
 * Loads the YAML writer (`yaml.ts`) the `yaml` format of {@linkcode renderListing} needs; a command
 * calls it before rendering `-o yaml`, so that other formats never load the yaml package.
 */
export async function loadYamlWriter(): Promise<void> {
  yamlWriter ??= (await import("./yaml.ts")).formatYamlDocuments;
}

/**
 * Renders `items` in `opts.format`; see the module documentation for the rules. `yaml` needs
 * {@linkcode loadYamlWriter} first.
 */
export function renderListing<T>(items: readonly T[], opts: ListingOptions<T>): Rendered {
  const data = opts.data ?? items;
  if (opts.format === "json") return { out: formatJson(data), err: "" };
  if (opts.format === "yaml") {
    const empty = Array.isArray(data) && data.length === 0;
    if (empty) return { out: "[]\n", err: "" };
    if (yamlWriter === undefined) throw new Error("-o yaml: await loadYamlWriter() first");
    return { out: yamlWriter([data]), err: "" };
  }
  if (items.length === 0) return { out: "", err: `${opts.empty ?? "No resources found"}\n` };
  if (opts.format === "name") return { out: formatNames(opts.kind, items.map(opts.name)), err: "" };
  const cols = opts.columns.filter((c) => opts.format === "wide" || !c.wide);
  return {
    out: formatRows(
      cols.map((c) => c.header),
      items.map((i) => cols.map((c) => c.value(i))),
      opts.noHeaders === true,
    ),
    err: "",
  };
}
