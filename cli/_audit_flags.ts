/**
 * The audit flags both executables share (`--audit`, `--no-audit`, `--audit-db PATH`), apart from
 * `_audit.ts` so that defining them loads neither SQLite nor the configuration layer.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";

/** Which executable: selects the environment prefix and the default path. */
export type AuditToolName = "virtwork" | "foundry";

/** virtwork's default database: `virtwork.db` in the working directory (as the seed); its
 * configuration file may set `audit` and `audit_db` too. */
export const VIRTWORK_AUDIT_DB = "virtwork.db";

/** Adds `--audit`, `--no-audit` and `--audit-db <path>` to `program` (global options). */
export function addAuditOptions(program: Command, tool: AuditToolName): Command {
  const where = tool === "virtwork"
    ? `${VIRTWORK_AUDIT_DB} in the working directory`
    : "$XDG_DATA_HOME/foundry/audit.db";
  const env = tool.toUpperCase();
  return program
    .option("--audit", `record every operation in the audit database (default; env ${env}_AUDIT)`)
    .option("--no-audit", "do not record anything")
    .option("--audit-db <path>", `audit database file (env ${env}_AUDIT_DB; default ${where})`);
}
