/**
 * The audit database: five tables (`audit_log` and its details `workload_details`, `vm_details`,
 * `resource_details`, `events`), versioned with `PRAGMA user_version` and brought forward by
 * migrations that only ever add, so a newer release keeps the history an older one wrote.
 *
 * Connections use WAL (readers never wait for the writer), `foreign_keys=ON` and a busy timeout,
 * so several processes can write to one file without `database is locked`.
 *
 * Only the owner may read the file: it is created 0600 before SQLite writes a byte (SQLite gives its
 * -wal and -shm files the database's mode), a directory made for it is 0700, and an existing
 * database, -wal or -shm file readable by others is tightened to 0600 when opened.
 *
 * @example
 * ```ts
 * import { openAuditDb } from "./schema.ts";
 * const db = openAuditDb(":memory:");
 * console.log(db.prepare("PRAGMA user_version").get());
 * db.close();
 * ```
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";

/** One forward step of the schema: `up` moves a database from `version - 1` to `version`. */
export interface Migration {
  /** The `user_version` after this migration. */
  version: number;
  /** SQL statements, run in one transaction. */
  up: string;
}

/** The schema's migrations, in order. Never edit a released one: add the next. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    up: `
CREATE TABLE audit_log (
  id                  INTEGER PRIMARY KEY,
  run_id              TEXT NOT NULL UNIQUE,
  tool                TEXT NOT NULL CHECK (tool IN ('virtwork', 'foundry')),
  operation           TEXT NOT NULL,
  status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
  started_at          TEXT NOT NULL,
  finished_at         TEXT,
  duration_ms         INTEGER,
  namespace           TEXT,
  target              TEXT,
  resource_type       TEXT,
  resource_name       TEXT,
  config_json         TEXT,
  ssh_auth_configured INTEGER NOT NULL DEFAULT 0 CHECK (ssh_auth_configured IN (0, 1)),
  dry_run             INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
  vm_count            INTEGER,
  error_summary       TEXT,
  linked_run_ids      TEXT,
  cleanup_counts      TEXT,
  hostname            TEXT,
  pid                 INTEGER
);
CREATE INDEX idx_audit_log_started_at ON audit_log (started_at);
CREATE INDEX idx_audit_log_tool_operation ON audit_log (tool, operation);
CREATE INDEX idx_audit_log_status ON audit_log (status);
CREATE INDEX idx_audit_log_resource ON audit_log (resource_type, resource_name);

CREATE TABLE workload_details (
  id          INTEGER PRIMARY KEY,
  audit_id    INTEGER NOT NULL REFERENCES audit_log (id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  vm_count    INTEGER NOT NULL,
  config_json TEXT,
  UNIQUE (audit_id, name)
);
CREATE INDEX idx_workload_details_audit_id ON workload_details (audit_id);

CREATE TABLE vm_details (
  id               INTEGER PRIMARY KEY,
  audit_id         INTEGER NOT NULL REFERENCES audit_log (id) ON DELETE CASCADE,
  name             TEXT NOT NULL,
  namespace        TEXT,
  workload         TEXT,
  role             TEXT,
  outcome          TEXT,
  phase            TEXT,
  ready            INTEGER CHECK (ready IN (0, 1)),
  seconds_to_ready REAL,
  error            TEXT,
  created_at       TEXT NOT NULL,
  deleted_at       TEXT,
  deleted_by       INTEGER REFERENCES audit_log (id) ON DELETE SET NULL,
  UNIQUE (audit_id, name)
);
CREATE INDEX idx_vm_details_audit_id ON vm_details (audit_id);
CREATE INDEX idx_vm_details_name ON vm_details (namespace, name);
CREATE INDEX idx_vm_details_deleted_by ON vm_details (deleted_by);

CREATE TABLE resource_details (
  id            INTEGER PRIMARY KEY,
  audit_id      INTEGER NOT NULL REFERENCES audit_log (id) ON DELETE CASCADE,
  kind          TEXT NOT NULL,
  namespace     TEXT,
  name          TEXT NOT NULL,
  action        TEXT NOT NULL
                  CHECK (action IN ('created', 'exists', 'failed', 'deleted', 'delete_failed')),
  source_run_id TEXT,
  error         TEXT,
  at            TEXT NOT NULL
);
CREATE INDEX idx_resource_details_audit_id ON resource_details (audit_id);
CREATE INDEX idx_resource_details_object ON resource_details (kind, namespace, name);
CREATE INDEX idx_resource_details_source_run_id ON resource_details (source_run_id);

CREATE TABLE events (
  id       INTEGER PRIMARY KEY,
  audit_id INTEGER NOT NULL REFERENCES audit_log (id) ON DELETE CASCADE,
  at       TEXT NOT NULL,
  level    TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),
  reason   TEXT NOT NULL,
  object   TEXT,
  message  TEXT NOT NULL
);
CREATE INDEX idx_events_audit_id ON events (audit_id);
CREATE INDEX idx_events_at ON events (at);
`,
  },
  {
    // virtwork --results-after: the latest figures each guest reported, and a workload's own
    // reason for not running. Columns only: a database of version 1 keeps every row it had.
    version: 2,
    up: `
ALTER TABLE vm_details ADD COLUMN results_json TEXT;
ALTER TABLE vm_details ADD COLUMN result_error TEXT;
`,
  },
  {
    // virtwork latency (issue 13): each VM's phase samples (chosen figure, its source, both raw
    // observations) as JSON on its row, and how the run measured them on its entry, so a report
    // can be computed again from the database. Columns only: older rows read as "not measured".
    version: 3,
    up: `
ALTER TABLE vm_details ADD COLUMN phases_json TEXT;
ALTER TABLE audit_log ADD COLUMN latency_json TEXT;
`,
  },
];

/** The schema version this release writes. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Milliseconds a connection waits for another writer before giving up. */
export const BUSY_TIMEOUT_MS = 10_000;

/** The database is of a schema newer than this release knows, or cannot be opened. */
export class AuditDbError extends Error {
  /** The database file. */
  readonly path: string;
  /** Wraps what went wrong with `path`. */
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(`audit database ${path}: ${message}`, options);
    this.name = "AuditDbError";
    this.path = path;
  }
}

/** Options of {@linkcode openAuditDb}. */
export interface OpenOptions {
  /** Migrations to apply (default {@linkcode MIGRATIONS}; tests pass their own). */
  migrations?: readonly Migration[];
  /** Busy timeout in milliseconds (default {@linkcode BUSY_TIMEOUT_MS}). */
  busyTimeoutMs?: number;
}

/** The `PRAGMA user_version` of `db`. */
export function schemaVersion(db: DatabaseSync): number {
  const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
  return row.user_version;
}

/**
 * Brings `db` to the newest version of `migrations`, each step in its own `BEGIN IMMEDIATE`
 * transaction that re-reads the version, so two processes opening a new file at once migrate it
 * once.
 * @throws {RangeError} when the database is newer than the newest migration
 */
export function migrate(db: DatabaseSync, migrations: readonly Migration[] = MIGRATIONS): number {
  const latest = migrations[migrations.length - 1]?.version ?? 0;
  for (const m of migrations) {
    if (schemaVersion(db) >= m.version) continue;
    db.exec("BEGIN IMMEDIATE");
    try {
      const current = schemaVersion(db);
      if (current < m.version) {
        if (current !== m.version - 1) {
          throw new RangeError(`expected schema version ${m.version - 1}, got ${current}`);
        }
        db.exec(m.up);
        db.exec(`PRAGMA user_version = ${m.version}`);
      }
      db.exec("COMMIT");
    } catch (e) {
      db.exec("ROLLBACK");
      throw e;
    }
  }
  const version = schemaVersion(db);
  if (version > latest) {
    throw new RangeError(
      `schema version ${version} is newer than this release supports (${latest}); upgrade it`,
    );
  }
  return version;
}

/** Mode of the database and the files SQLite keeps beside it. */
export const AUDIT_DB_MODE = 0o600;
/** Mode of a directory created for the database. */
export const AUDIT_DIR_MODE = 0o700;

/**
 * Makes sure only the owner can read the database at `path` before SQLite opens it: creates a
 * missing directory {@linkcode AUDIT_DIR_MODE} (an existing one is the user's and stays as it is),
 * creates a missing file {@linkcode AUDIT_DB_MODE}, and tightens an existing database, -wal, -shm or
 * -journal file that others may read or write. Tightening rather than warning: these files have
 * no reader but their owner's tools, and a warning on every run would be read once and ignored. A
 * file of another user (chmod not permitted) is left to its owner.
 */
export function restrictAuditDbFiles(path: string): void {
  if (Deno.build.os === "windows") return;
  Deno.mkdirSync(dirname(path), { recursive: true, mode: AUDIT_DIR_MODE });
  try {
    // createNew: an existing database is never opened for writing here (a reader may not own it).
    Deno.openSync(path, { write: true, createNew: true, mode: AUDIT_DB_MODE }).close();
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    let mode: number;
    try {
      mode = (Deno.statSync(p).mode ?? 0) & 0o777;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    if ((mode & 0o077) === 0) continue;
    try {
      Deno.chmodSync(p, mode & AUDIT_DB_MODE);
    } catch (e) {
      if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
    }
  }
}

/**
 * Runs `fn`, again while SQLite answers "database is locked", for up to `ms` in all. Switching a new
 * database to WAL takes a lock that SQLite's busy handler does not wait for when another process
 * switches it at the same moment (it returns SQLITE_BUSY at once to avoid a deadlock), so two
 * processes opening the same new audit database need this.
 */
function whileBusy<T>(fn: () => T, ms: number): T {
  const until = Date.now() + ms;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let wait = 5;; wait = Math.min(wait * 2, 100)) {
    try {
      return fn();
    } catch (e) {
      if (!/database is locked|SQLITE_BUSY/.test((e as Error).message) || Date.now() >= until) {
        throw e;
      }
      Atomics.wait(nap, 0, 0, wait);
    }
  }
}

/** Whether `path` names a file (not an in-memory or URI database). */
function isFilePath(path: string): boolean {
  return path !== "" && path !== ":memory:" && !path.startsWith("file:");
}

/** An open audit database, as {@linkcode openAuditDb} returns it: callers read it with `reader.ts`. */
export type AuditDb = DatabaseSync;

/**
 * Opens (creating when absent) the audit database at `path` with WAL, foreign keys and a busy
 * timeout, and migrates it to the current schema. The file is made readable by its owner only
 * first (see {@linkcode restrictAuditDbFiles}).
 * @throws {AuditDbError} when the file cannot be opened or its schema is newer than this release
 */
export function openAuditDb(path: string, opts: OpenOptions = {}): DatabaseSync {
  const timeout = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  let db: DatabaseSync | undefined;
  try {
    if (isFilePath(path)) restrictAuditDbFiles(path);
    db = new DatabaseSync(path, { timeout, enableForeignKeyConstraints: true });
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(timeout)}`);
    if (path !== ":memory:") {
      const wal = db.prepare("PRAGMA journal_mode = WAL");
      const row = whileBusy(() => wal.get(), timeout) as { journal_mode: string };
      if (row.journal_mode !== "wal") {
        throw new Error(`cannot switch to WAL mode, journal_mode is ${row.journal_mode}`);
      }
    }
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA synchronous = NORMAL");
    migrate(db, opts.migrations ?? MIGRATIONS);
    return db;
  } catch (e) {
    try {
      db?.close();
    } catch { /* already closed */ }
    throw new AuditDbError(path, (e as Error).message, { cause: e });
  }
}
