/**
 * The database workload: PostgreSQL on a data disk with a pgbench loop.
 *
 * Initialisation (mount, initdb, pgbench tables at scale 50) runs as `ExecStartPre`, the benchmark as
 * `ExecStart`, so a failed benchmark restarts without re-running the initialisation steps that
 * already succeeded (each step checks whether it is done).
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type DataDisk, type GuestContext } from "./workload.ts";
import { enableUnit, MOUNT_DATA_SCRIPT, mountDataScript, serviceUnit, unitFile } from "./_guest.ts";

/** Unit name of the pgbench loop. */
export const DATABASE_UNIT = "virtwork-database.service";
/** Serial of the data disk. */
export const DATABASE_SERIAL = "virtwork-db";
/**
 * Mount point of the data disk. The disk holds the whole PostgreSQL home, not `data/` itself: a
 * fresh ext4 file system has `lost+found`, and initdb refuses a non-empty data directory.
 */
export const DATABASE_MOUNT = "/var/lib/pgsql";
/** Initialisation script (ExecStartPre). */
export const DATABASE_INIT_SCRIPT = "/usr/local/bin/virtwork-db-init";
/** Benchmark loop script (ExecStart). */
export const DATABASE_LOOP_SCRIPT = "/usr/local/bin/virtwork-pgbench-loop";

/** PostgreSQL with a continuous pgbench load. */
export class DatabaseWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "database";

  /** One blank disk for the PostgreSQL home. */
  override dataDisks(): readonly DataDisk[] {
    return [{
      name: "pgdata",
      serial: DATABASE_SERIAL,
      sizeBytes: this.dataDiskBytes,
      mountPath: DATABASE_MOUNT,
    }];
  }

  /** Installs PostgreSQL, initialises it on the data disk and loops pgbench. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    const init = `#!/bin/bash
set -euo pipefail
${MOUNT_DATA_SCRIPT} ${DATABASE_SERIAL} ${DATABASE_MOUNT}
chown postgres:postgres ${DATABASE_MOUNT}
chmod 0700 ${DATABASE_MOUNT}
restorecon -R ${DATABASE_MOUNT} 2>/dev/null || true
if [ ! -f ${DATABASE_MOUNT}/data/PG_VERSION ]; then
  postgresql-setup --initdb
fi
systemctl start postgresql.service
if ! runuser -u postgres -- psql -Atqc "select 1 from pg_database where datname = 'pgbench'" | grep -q 1; then
  runuser -u postgres -- createdb pgbench
  runuser -u postgres -- pgbench -i -s 50 pgbench
fi
`;
    const loop = `#!/bin/bash
set -u
while true; do
  runuser -u postgres -- pgbench -c 10 -j 2 -T 300 pgbench
  sleep 10
done
`;
    return this.withSsh({
      packages: ["postgresql-server", "postgresql-contrib"],
      writeFiles: [
        mountDataScript(),
        { path: DATABASE_INIT_SCRIPT, content: init, permissions: "0755" },
        { path: DATABASE_LOOP_SCRIPT, content: loop, permissions: "0755" },
        unitFile(
          DATABASE_UNIT,
          serviceUnit({
            description: "virtwork database load (PostgreSQL pgbench)",
            execStartPre: DATABASE_INIT_SCRIPT,
            execStart: DATABASE_LOOP_SCRIPT,
            timeoutStartSec: "infinity",
          }),
        ),
      ],
      runcmd: enableUnit(DATABASE_UNIT),
    });
  }
}
