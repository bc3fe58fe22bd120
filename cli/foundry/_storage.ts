/** Helpers shared by `foundry pool`, `foundry image` and `foundry storage`. */
import { type Command, Option } from "npm:commander@^15.1.0";
import { type FoundryConfig, loadConfig } from "../../lib/foundry/config.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { formatJson, formatTable, formatYamlDocuments } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";

/** `-o table|json|yaml`. */
export function outputOption(): Option {
  return new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"])
    .default("table");
}

/** The configuration with the global flags that exist on the root command. */
export function configFor(cmd: Command): Promise<FoundryConfig> {
  const g = cmd.optsWithGlobals<{
    connect?: string;
    config?: string;
    imagePool?: string;
    vmPool?: string;
    storagePath?: string;
  }>();
  const flags: Parameters<typeof loadConfig>[0] & object = {};
  const f: Record<string, unknown> = {};
  if (g.connect !== undefined) f.uri = g.connect;
  if (g.config !== undefined) f.config = g.config;
  if (g.imagePool !== undefined) f.imagesPool = g.imagePool;
  if (g.vmPool !== undefined) f.vmsPool = g.vmPool;
  if (g.storagePath !== undefined) f.storagePath = g.storagePath;
  flags.flags = f;
  return loadConfig(flags);
}

/** Connects with the configured URI, runs `fn` and closes the connection. */
export async function withLibvirt<T>(
  cmd: Command,
  fn: (lv: Libvirt, config: FoundryConfig) => Promise<T>,
): Promise<T> {
  const config = await configFor(cmd);
  const lv = await Libvirt.connect(config.uri);
  try {
    return await fn(lv, config);
  } finally {
    await lv.close();
  }
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
