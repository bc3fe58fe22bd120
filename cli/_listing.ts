/**
 * `-o table|wide|name|json|yaml` and `--no-headers` for every listing of both executables, and the
 * printing that goes with them (lib/output/listing.ts has the rules).
 * @module
 */
import { type Command, Option } from "npm:commander@^15.1.0";
import {
  LIST_FORMATS,
  type ListFormat,
  type ListingOptions,
  loadYamlWriter,
  renderListing,
} from "../lib/output/listing.ts";
import type { Io } from "./_program.ts";

/** Options a listing command receives from {@linkcode addListingOptions}. */
export interface ListingFlags {
  output: ListFormat;
  /** False with `--no-headers`. */
  headers: boolean;
}

/**
 * Adds `-o, --output` (one of `formats`, default `def`) and `--no-headers` to `cmd`; with
 * `-o yaml`, the YAML writer loads before the action runs (no other format loads it).
 */
export function addListingOptions(
  cmd: Command,
  def: ListFormat = "table",
  formats: readonly ListFormat[] = LIST_FORMATS,
): Command {
  return cmd
    .addOption(
      new Option("-o, --output <format>", `output format: ${formats.join(", ")}`)
        .choices(formats).default(def),
    )
    .option("--no-headers", "leave out the header line of table and wide output")
    .hook("preAction", async (_cmd, action) => {
      if (action.opts().output === "yaml") await loadYamlWriter();
    });
}

/** Prints `items` as `flags` ask; an empty listing is a note on stderr (see lib/output/listing.ts). */
export function printListing<T>(
  io: Io,
  flags: ListingFlags,
  items: readonly T[],
  opts: Omit<ListingOptions<T>, "format" | "noHeaders">,
): void {
  const { out, err } = renderListing(items, {
    ...opts,
    format: flags.output,
    noHeaders: flags.headers === false,
  });
  if (out) io.out(out);
  if (err) io.err(err);
}
