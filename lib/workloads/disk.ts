/**
 * The disk workload: two fio profiles on a data disk, taking turns, each run one result interval
 * long and reported from fio's JSON output (IOPS, bandwidth, p99 completion latency).
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type DataDisk, type GuestContext } from "./workload.ts";
import {
  commonFiles,
  enableUnit,
  ensureArgs,
  GUEST_RESULTS_FILE,
  MOUNT_DATA_SCRIPT,
  mountDataScript,
  SCRIPT_HEAD,
  serviceUnit,
  unitFile,
} from "./_guest.ts";

/** Unit name of the fio loop. */
export const DISK_UNIT = "virtwork-disk.service";
/** Serial of the data disk; the guest finds it as /dev/disk/by-id/virtio-virtwork-disk. */
export const DISK_SERIAL = "virtwork-disk";
/** Where the data disk is mounted. */
export const DISK_MOUNT = "/mnt/data";
/** Directory of the fio profiles. */
export const FIO_DIR = "/etc/virtwork/fio";
/** The loop script started by the unit. */
export const DISK_RUN_SCRIPT = "/usr/local/bin/virtwork-disk-run";
/** `virtwork-disk-sample PROFILE`: one fio run of the result interval, reported. */
export const DISK_SAMPLE_SCRIPT = "/usr/local/bin/virtwork-disk-sample";

/**
 * The fio job files, by file name: 4K random 70/30 read/write, and 128K sequential write. The
 * sample script replaces `directory=` with `$VIRTWORK_DISK_DIR` (default {@linkcode DISK_MOUNT})
 * and `runtime=` with the result interval. The files (512 MiB in all) lay out quickly on an
 * emulated guest and fit a 1 GiB data disk; fio lays them out once and later runs reuse them.
 */
export const FIO_PROFILES: Readonly<Record<string, string>> = {
  "mixed-rw.fio": `[global]
directory=${DISK_MOUNT}
ioengine=libaio
direct=1
time_based=1
runtime=10
size=128m
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
runtime=10
size=256m
group_reporting=1

[seq-write]
rw=write
bs=128k
iodepth=8
numjobs=1
`,
};

/** The sample script: one run of the profile given as its argument. */
export function diskSampleScript(): string {
  return `${SCRIPT_HEAD}
profile="$1"
dir="\${VIRTWORK_DISK_DIR:-${DISK_MOUNT}}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|^directory=.*|directory=$dir|" -e "s|^runtime=.*|runtime=$VIRTWORK_INTERVAL|" \\
  "$profile" >"$tmp/job.fio"
if ! fio --output-format=json --output="$tmp/out.json" "$tmp/job.fio" >"$tmp/log" 2>&1; then
  virtwork_error disk "fio $(basename "$profile") failed: $(virtwork_tail "$tmp/log")"
  exit 1
fi
virtwork_report disk fio "$tmp/out.json"
`;
}

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

  /** Checks for fio, mounts the data disk and alternates the profiles. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    const names = Object.keys(FIO_PROFILES);
    const run = `${SCRIPT_HEAD}
"$VIRTWORK_BIN_DIR/virtwork-ensure-packages" disk ${
      ensureArgs(ctx.os, ["fio", "python3", "mkfs.ext4"])
    } || exit 1
if ! out=$(${MOUNT_DATA_SCRIPT} ${DISK_SERIAL} ${DISK_MOUNT} 2>&1); then
  virtwork_error disk "cannot mount the data disk: $out"
  exit 1
fi
while true; do
  for profile in ${names.map((n) => `${FIO_DIR}/${n}`).join(" ")}; do
    "$VIRTWORK_BIN_DIR/virtwork-disk-sample" "$profile" || sleep "$VIRTWORK_INTERVAL"
  done
done
`;
    return this.withSsh({
      writeFiles: [
        ...commonFiles(GUEST_RESULTS_FILE),
        ...names.map((n) => ({
          path: `${FIO_DIR}/${n}`,
          content: FIO_PROFILES[n]!,
          permissions: "0644",
        })),
        mountDataScript(),
        { path: DISK_SAMPLE_SCRIPT, content: diskSampleScript(), permissions: "0755" },
        { path: DISK_RUN_SCRIPT, content: run, permissions: "0755" },
        unitFile(
          DISK_UNIT,
          serviceUnit({
            description: "virtwork disk I/O (fio)",
            execStart: DISK_RUN_SCRIPT,
            environment: { VIRTWORK_INTERVAL: String(this.resultIntervalSeconds) },
          }),
        ),
      ],
      runcmd: enableUnit(DISK_UNIT),
    });
  }
}
