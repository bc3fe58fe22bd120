/**
 * Output formatting shared by the executables: tables, JSON, multi-document YAML and colour rules.
 * This barrel loads the yaml package; a command on a start-up path imports the modules it needs.
 *
 * @example
 * ```ts
 * import { formatTable, paint, useColor } from "./mod.ts";
 * const color = useColor({ isTerminal: Deno.stdout.isTerminal(), env: Deno.env.toObject() });
 * console.log(formatTable(["VM", "PHASE"], [["vm-1", paint("Running", "green", color)]]));
 * ```
 * @module
 */
export { COLORS, formatJson, formatTable, paint, useColor, visibleLength } from "./format.ts";
export { formatYamlDocuments } from "./yaml.ts";
export type { ColorContext } from "./format.ts";
export { sanitizeText } from "./sanitize.ts";
export type { SanitizeOptions } from "./sanitize.ts";
export {
  formatNames,
  formatRows,
  isListFormat,
  LIST_FORMATS,
  loadYamlWriter,
  renderListing,
} from "./listing.ts";
export type { Column, ListFormat, ListingOptions, Rendered } from "./listing.ts";
