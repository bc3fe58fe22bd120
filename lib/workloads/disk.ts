/**
 * The disk workload: two fio profiles on a data disk, alternating with pauses.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type DataDisk, type GuestContext } from "./workload.ts";
import { enableUnit, MOUNT_DATA_SCRIPT, mountDataScript, serviceUnit, unitFile } from "./_guest.ts";

/** Unit name of the fio loop. */
export const DISK_UNIT = "virtwork-disk.service";
/** Serial of the data disk; the guest finds it as /dev/disk/by-id/virtio-virtwork-disk. */
export const DISK_SERIAL = "virtwork-disk";
/** Where the data disk is mounted. */
export const DISK_MOUNT = "/mnt/data";
/** Directory of the fio profiles. */
export const FIO_DIR = "/etc/virtwork/fio";
/** The loop script started by the unit. */
export const DISK_LOOP_SCRIPT = "/usr/local/bin/virtwork-disk-loop";

/** The fio job files, by file name: 4K random 70/30 read/write, and 128K sequential write. */
export const FIO_PROFILES: Readonly<Record<string, string>> = {
  "mixed-rw.fio": `[global]
directory=${DISK_MOUNT}
ioengine=libaio
direct=1
time_based=1
runtime=120
size=1g
group_reporting=1

[mixed-rw]
rw=randrw
rwmixread=70
bs=4k
iodepth=16
numjobs=2
`,
  "seq-write.fio": `[global]
directory=${DISK_MOUNT}
ioengine=libaio
direct=1
time_based=1
runtime=120
size=2g
group_reporting=1

[seq-write]
rw=write
bs=128k
iodepth=8
numjobs=1
`,
};

/** Runs fio profiles against a dedicated data disk. */
export class DiskWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "disk";

  /** One blank disk of the configured size, mounted at {@linkcode DISK_MOUNT}. */
  override dataDisks(): readonly DataDisk[] {
    return [{
      name: "data",
      serial: DISK_SERIAL,
      sizeBytes: this.dataDiskBytes,
      mountPath: DISK_MOUNT,
    }];
  }

  /** Installs fio, writes the profiles and a loop that alternates them with 10 s pauses. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    const names = Object.keys(FIO_PROFILES);
    const loop = `#!/bin/bash
set -u
while true; do
${names.map((n) => `  fio ${FIO_DIR}/${n}\n  sleep 10`).join("\n")}
done
`;
    return this.withSsh({
      packages: ["fio"],
      writeFiles: [
        ...names.map((n) => ({
          path: `${FIO_DIR}/${n}`,
          content: FIO_PROFILES[n]!,
          permissions: "0644",
        })),
        mountDataScript(),
        { path: DISK_LOOP_SCRIPT, content: loop, permissions: "0755" },
        unitFile(
          DISK_UNIT,
          serviceUnit({
            description: "virtwork disk I/O (fio)",
            execStartPre: `${MOUNT_DATA_SCRIPT} ${DISK_SERIAL} ${DISK_MOUNT}`,
            execStart: DISK_LOOP_SCRIPT,
          }),
        ),
      ],
      runcmd: enableUnit(DISK_UNIT),
    });
  }
}
