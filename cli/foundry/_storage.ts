/** Helpers shared by `foundry pool`, `foundry image` and `foundry storage`. */
import { type Command, Option } from "npm:commander@^15.1.0";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { formatJson, formatTable, formatYamlDocuments } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";
import { configFor, withLibvirt } from "./_context.ts";

/** `-o table|name|json|yaml` of commands that make or change one thing (pool add, image import). */
export function outputOption(): Option {
  return new Option("-o, --output <format>", "output format")
    .choices(["table", "name", "json", "yaml"]).default("table");
}

/** Loads the configuration from the global flags, connects, runs `fn` and closes the connection. */
export async function withStorage<T>(
  cmd: Command,
  fn: (lv: Libvirt, config: FoundryConfig) => Promise<T>,
): Promise<T> {
  const config = await configFor(cmd);
  return await withLibvirt(config, (lv) => fn(lv, config));
}

/** Prints `rows` as a table, or `data` as JSON or YAML. */
export function printOutput(
  io: Io,
  format: string,
  data: unknown,
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): void {
  if (format === "json") io.out(formatJson(data));
  else if (format === "yaml") io.out(formatYamlDocuments([data]));
  else io.out(formatTable(headers, rows));
}
