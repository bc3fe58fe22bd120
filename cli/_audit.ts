/**
 * The audit flags both executables share (`--audit`, `--no-audit`, `--audit-db PATH`), where each
 * keeps its database, and opening it for writing or reading. Precedence: flag > environment
 * (`VIRTWORK_AUDIT`, `VIRTWORK_AUDIT_DB`; `FOUNDRY_AUDIT`, `FOUNDRY_AUDIT_DB`) > default.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";
import type { AuditDb } from "../lib/audit/schema.ts";
import { dirname, join } from "node:path";
import { ConfigError } from "../lib/config/layered.ts";
import { type AuditToolName, VIRTWORK_AUDIT_DB } from "./_audit_flags.ts";
import { type Auditor, noopAuditor } from "../lib/audit/types.ts";
import type { OperationContext, OperationInfo } from "../lib/audit/mod.ts";

/** SQLite (`node:sqlite`) and the audit writers, loaded by the commands that open a database. */
const auditLib = () => import("../lib/audit/mod.ts");

/** Where and whether to audit. */
export interface AuditSettings {
  /** False after `--no-audit`. */
  enabled: boolean;
  /** The database file. */
  path: string;
}

export { addAuditOptions, type AuditToolName, VIRTWORK_AUDIT_DB } from "./_audit_flags.ts";

/** foundry's default database: `$XDG_DATA_HOME/foundry/audit.db` (`~/.local/share/…`). */
export function foundryAuditDbPath(env: Readonly<Record<string, string | undefined>>): string {
  const data = env.XDG_DATA_HOME || (env.HOME ? join(env.HOME, ".local", "share") : undefined);
  if (!data) throw new ConfigError("cannot place the audit database: set XDG_DATA_HOME or HOME");
  return join(data, "foundry", "audit.db");
}

function rootOf(cmd: Command): Command {
  let root = cmd;
  while (root.parent) root = root.parent;
  return root;
}

function parseBool(name: string, v: string): boolean {
  const s = v.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(s)) return true;
  if (["0", "false", "no", "off"].includes(s)) return false;
  throw new ConfigError(`${name}: must be true or false, got "${v}"`);
}

/**
 * The audit flags the user gave on the command line `cmd` belongs to, as configuration keys
 * (`audit`, `auditDb`), for a configuration chain that also reads files and the environment.
 */
export function givenAuditFlags(cmd: Command): { audit?: boolean; auditDb?: string } {
  const root = rootOf(cmd);
  const opts = root.opts() as { audit?: boolean; auditDb?: string };
  return {
    ...(root.getOptionValueSource("audit") === "cli" ? { audit: opts.audit !== false } : {}),
    ...(root.getOptionValueSource("auditDb") === "cli" && opts.auditDb
      ? { auditDb: opts.auditDb }
      : {}),
  };
}

/** The audit settings of the command line `cmd` belongs to (flag > environment > default). */
export function auditSettings(
  cmd: Command,
  tool: AuditToolName,
  env: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
): AuditSettings {
  const root = rootOf(cmd);
  const opts = root.opts() as { audit?: boolean; auditDb?: string };
  const prefix = tool.toUpperCase();
  let enabled = true;
  const envEnabled = env[`${prefix}_AUDIT`];
  if (root.getOptionValueSource("audit") === "cli") enabled = opts.audit !== false;
  else if (envEnabled !== undefined && envEnabled !== "") {
    enabled = parseBool(`${prefix}_AUDIT`, envEnabled);
  }
  const path = opts.auditDb || env[`${prefix}_AUDIT_DB`] ||
    (tool === "virtwork" ? VIRTWORK_AUDIT_DB : foundryAuditDbPath(env));
  return { enabled, path };
}

/** An {@linkcode Auditor} for `settings`, or the no-op one when auditing is off. */
export async function openAuditor(
  settings: AuditSettings,
  opts: { secrets?: readonly string[] } = {},
): Promise<Auditor> {
  if (!settings.enabled) return noopAuditor;
  if (settings.path !== ":memory:") {
    // 0700: the database is its owner's alone (see restrictAuditDbFiles).
    await Deno.mkdir(dirname(settings.path), { recursive: true, mode: 0o700 }).catch((e) => {
      throw new ConfigError(
        `cannot create the directory of audit database ${settings.path}: ${(e as Error).message}` +
          " (use --audit-db PATH or --no-audit)",
        undefined,
        undefined,
        { cause: e },
      );
    });
  }
  const { AuditDbError, SqliteAuditor } = await auditLib();
  try {
    return SqliteAuditor.open(settings.path, opts.secrets ? { secrets: opts.secrets } : {});
  } catch (e) {
    if (e instanceof AuditDbError) {
      throw new ConfigError(
        `${e.message} (use --audit-db PATH or --no-audit)`,
        undefined,
        undefined,
        {
          cause: e,
        },
      );
    }
    throw e;
  }
}

/** The database at `path` for reading, or undefined when no file is there yet. */
export async function openAuditReader(path: string): Promise<AuditDb | undefined> {
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const { openAuditDb } = await auditLib();
  try {
    return openAuditDb(path);
  } catch (e) {
    throw new ConfigError((e as Error).message, undefined, undefined, { cause: e });
  }
}

/** Options of {@linkcode withFoundryAudit}. */
export interface FoundryAuditOptions {
  /** Literal secrets (passwords, keys of the VM spec) to keep out of the database. */
  secrets?: readonly string[];
  /** Environment (default: the process's). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Told when auditing fails; the operation goes on regardless. */
  onAuditError?: (err: Error) => void;
  /** An auditor to use instead of the one the flags select (tests). */
  auditor?: Auditor;
  /** The operation's abort signal (Ctrl-C): a failure after it fired is recorded as interrupted. */
  signal?: AbortSignal;
}

/**
 * Runs one foundry operation audited as the global flags say: opens the database (or not, with
 * `--no-audit`), records start, outcome, duration and error around `fn`, and closes it.
 *
 * @example
 * ```ts ignore
 * await withFoundryAudit(cmd, { resourceType: "vm", name, uri, operation: "create" }, async (op) => {
 *   // … create the VM; op.object({ kind: "volume", name: vol, outcome: "created" }) for each volume
 * });
 * ```
 */
export async function withFoundryAudit<T>(
  cmd: Command,
  info: OperationInfo,
  fn: (op: OperationContext) => Promise<T> | T,
  opts: FoundryAuditOptions = {},
): Promise<T> {
  const auditor = opts.auditor ??
    await openAuditor(auditSettings(cmd, "foundry", opts.env), {
      ...(opts.secrets ? { secrets: opts.secrets } : {}),
    });
  try {
    const { recordOperation } = await auditLib();
    return await recordOperation(auditor, info, fn, {
      ...(opts.onAuditError ? { onAuditError: opts.onAuditError } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } finally {
    if (!opts.auditor) auditor.close();
  }
}

/** Milliseconds as `12.3s`, `-` when unknown. */
export function durationLabel(ms: number | null): string {
  return ms === null ? "-" : `${(ms / 1000).toFixed(1)}s`;
}

/** `s` on one line of at most `max` characters (`…` where cut), `-` when empty. */
export function oneLine(s: string | null, max = 60): string {
  if (s === null || s === "") return "-";
  const line = s.replace(/\s+/g, " ");
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** `2026-01-02T03:04:05.678Z` → `2026-01-02 03:04:05`. */
export function timeLabel(iso: string | null): string {
  return iso === null ? "-" : iso.replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, "");
}
