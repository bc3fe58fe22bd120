/**
 * The database workload: PostgreSQL on a data disk with a pgbench loop, each pgbench run one
 * result interval long and reported as `tps` and `latency_avg_ms`.
 *
 * The run script checks the packages, mounts the disk, initialises PostgreSQL the distribution's
 * way, creates the pgbench tables (again when an earlier attempt was cut short) and loops pgbench;
 * every step that fails emits an error result and exits, and systemd restarts it.
 *
 * - Fedora / CentOS Stream: `postgresql-setup --initdb` (data in /var/lib/pgsql/data, where the
 *   SELinux policy expects it), `postgresql.service`.
 * - Debian / Ubuntu: postgresql-common's `pg_createcluster -d /var/lib/pgsql/<major>/main <major>
 *   main` (a cluster the package made elsewhere is dropped first), `postgresql@<major>-main.service`
 *   (which runs `pg_ctlcluster`), binaries from /usr/lib/postgresql/<major>/bin.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type DataDisk, type GuestContext, type GuestOs } from "./workload.ts";
import {
  commonFiles,
  enableUnit,
  ensureArgs,
  GUEST_RESULTS_FILE,
  isDebianFamily,
  MOUNT_DATA_SCRIPT,
  mountDataScript,
  SCRIPT_HEAD,
  serviceUnit,
  unitFile,
} from "./_guest.ts";

/** Unit name of the pgbench loop. */
export const DATABASE_UNIT = "virtwork-database.service";
/** Serial of the data disk. */
export const DATABASE_SERIAL = "virtwork-db";
/**
 * Mount point of the data disk, on every distribution. The disk holds the cluster's parent
 * directory, not the data directory itself: a fresh ext4 file system has `lost+found`, and initdb
 * refuses a non-empty data directory.
 */
export const DATABASE_MOUNT = "/var/lib/pgsql";
/** Initialisation script: packages, mount, cluster, pgbench tables. */
export const DATABASE_INIT_SCRIPT = "/usr/local/bin/virtwork-db-init";
/** `virtwork-database-sample`: one pgbench run of the result interval, reported. */
export const DATABASE_SAMPLE_SCRIPT = "/usr/local/bin/virtwork-database-sample";
/** The unit's script: init, then the sample in a loop. */
export const DATABASE_RUN_SCRIPT = "/usr/local/bin/virtwork-database-run";
/**
 * pgbench scale of the test tables (100,000 accounts a unit). 10 took 75 s to build on an idle
 * one-vCPU emulated guest; 5 keeps first results within a few minutes when several such guests
 * share a host, and matches the number of clients.
 */
export const PGBENCH_SCALE = 5;
/** pgbench clients of each run (one per branch row, as pgbench's documentation advises). */
export const PGBENCH_CLIENTS = 5;
/** Name of the benchmark database. */
export const PGBENCH_DATABASE = "pgbench";

/**
 * The sample script: `pgbench -c 5 -j 2 -T <interval>` against `$PGDATABASE` (default
 * {@linkcode PGBENCH_DATABASE}). As root it runs as `$VIRTWORK_PG_OS_USER` (default postgres, peer
 * authentication on the local socket); libpq's `PGHOST`/`PGPORT`/`PGUSER` apply as usual.
 */
export function databaseSampleScript(): string {
  return `${SCRIPT_HEAD}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] && PATH="$pgbin:$PATH"
db="\${PGDATABASE:-${PGBENCH_DATABASE}}"
tmp=$(mktemp -d)
chmod 0755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
as=()
if [ "$(id -u)" = 0 ]; then
  as=(runuser -u "\${VIRTWORK_PG_OS_USER:-postgres}" -- env "PATH=$PATH")
fi
if ! (cd "$tmp" && "\${as[@]}" pgbench -n -c ${PGBENCH_CLIENTS} -j 2 -T "$VIRTWORK_INTERVAL" "$db") \\
  >"$tmp/out" 2>&1; then
  virtwork_error database "pgbench failed: $(virtwork_tail "$tmp/out")"
  exit 1
fi
virtwork_report database pgbench "$tmp/out"
`;
}

/** The distribution's way to get a running cluster whose data lives on the data disk. */
function clusterSteps(os: GuestOs): string {
  if (isDebianFamily(os)) {
    return `ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
data="${DATABASE_MOUNT}/$ver/main"
if [ -d "/etc/postgresql/$ver/main" ]; then
  current=$(pg_conftool -s "$ver" main show data_directory 2>/dev/null || true)
  if [ "$current" != "$data" ] || [ ! -f "$data/PG_VERSION" ]; then
    step "pg_dropcluster $ver main" pg_dropcluster --stop "$ver" main
  fi
fi
if [ ! -d "/etc/postgresql/$ver/main" ]; then
  step "pg_createcluster $ver main" pg_createcluster -d "$data" "$ver" main
fi
step "starting postgresql@$ver-main" systemctl start "postgresql@$ver-main.service"`;
  }
  return `restorecon -R ${DATABASE_MOUNT} 2>/dev/null || true
if [ ! -f ${DATABASE_MOUNT}/data/PG_VERSION ]; then
  step "postgresql-setup --initdb" postgresql-setup --initdb
fi
step "starting postgresql" systemctl start postgresql.service`;
}

/** The init script for `os`. */
export function databaseInitScript(os: GuestOs): string {
  return `${SCRIPT_HEAD}
# step WHAT COMMAND...: runs COMMAND; on failure emits an error result naming WHAT and exits 1.
step() {
  local what="$1" out
  shift
  if ! out=$("$@" 2>&1); then
    virtwork_error database "$what failed: $(printf '%s' "$out" | tail -n 1)"
    exit 1
  fi
}
"$VIRTWORK_BIN_DIR/virtwork-ensure-packages" database ${
    ensureArgs(os, ["postgresql-server", "pgbench", "python3", "mkfs.ext4"])
  } || exit 1
step "mounting the data disk" ${MOUNT_DATA_SCRIPT} ${DATABASE_SERIAL} ${DATABASE_MOUNT}
chown postgres:postgres ${DATABASE_MOUNT}
chmod 0700 ${DATABASE_MOUNT}
${clusterSteps(os)}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] && PATH="$pgbin:$PATH"
cd /
pg() { runuser -u postgres -- env "PATH=$PATH" "$@"; }
for _ in $(seq 1 60); do
  pg psql -Atqc "select 1" >/dev/null 2>&1 && break
  sleep 2
done
step "connecting to PostgreSQL" pg psql -Atqc "select 1"
if [ "$(pg psql -Atqc "select 1 from pg_database where datname = '${PGBENCH_DATABASE}'")" != 1 ]; then
  step "createdb ${PGBENCH_DATABASE}" pg createdb ${PGBENCH_DATABASE}
fi
# pgbench -i drops and recreates its tables, so a run cut short is simply repeated.
branches=$(pg psql -Atqc "select count(*) from pgbench_branches" ${PGBENCH_DATABASE} 2>/dev/null)
if [ "$branches" != ${PGBENCH_SCALE} ]; then
  step "pgbench -i" pg pgbench -i -q -s ${PGBENCH_SCALE} ${PGBENCH_DATABASE}
fi
`;
}

/** PostgreSQL with a continuous pgbench load. */
export class DatabaseWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "database";

  /** One blank disk for the PostgreSQL clusters. */
  override dataDisks(): readonly DataDisk[] {
    return [{
      name: "pgdata",
      serial: DATABASE_SERIAL,
      sizeBytes: this.dataDiskBytes,
      mountPath: DATABASE_MOUNT,
    }];
  }

  /** Installs what is missing, initialises PostgreSQL on the data disk and loops pgbench. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    const run = `${SCRIPT_HEAD}
${DATABASE_INIT_SCRIPT} || exit 1
while true; do
  "$VIRTWORK_BIN_DIR/virtwork-database-sample" || sleep "$VIRTWORK_INTERVAL"
done
`;
    return this.withSsh({
      writeFiles: [
        ...commonFiles(GUEST_RESULTS_FILE),
        mountDataScript(),
        { path: DATABASE_INIT_SCRIPT, content: databaseInitScript(ctx.os), permissions: "0755" },
        { path: DATABASE_SAMPLE_SCRIPT, content: databaseSampleScript(), permissions: "0755" },
        { path: DATABASE_RUN_SCRIPT, content: run, permissions: "0755" },
        unitFile(
          DATABASE_UNIT,
          serviceUnit({
            description: "virtwork database load (PostgreSQL pgbench)",
            execStart: DATABASE_RUN_SCRIPT,
            environment: { VIRTWORK_INTERVAL: String(this.resultIntervalSeconds) },
          }),
        ),
      ],
      runcmd: enableUnit(DATABASE_UNIT),
    });
  }
}
