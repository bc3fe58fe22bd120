import type { WriteFile } from "../cloudinit/cloud_config.ts";

/** Settings of a generated systemd service unit. */
export interface UnitOptions {
  description: string;
  execStartPre?: string;
  execStart: string;
  /** Extra `[Unit]` lines, e.g. `After=postgresql.service`. */
  after?: string[];
  /** Seconds to wait before a restart. */
  restartSec?: number;
  /** `TimeoutStartSec` value; long first-boot initialisation needs `infinity`. */
  timeoutStartSec?: string;
}

/** Renders a service unit that starts after the network is up and restarts forever. */
export function serviceUnit(o: UnitOptions): string {
  const after = ["network-online.target", ...(o.after ?? [])];
  const lines = [
    "[Unit]",
    `Description=${o.description}`,
    `Wants=network-online.target`,
    `After=${after.join(" ")}`,
    "",
    "[Service]",
    "Type=simple",
  ];
  if (o.execStartPre) lines.push(`ExecStartPre=${o.execStartPre}`);
  lines.push(`ExecStart=${o.execStart}`);
  if (o.timeoutStartSec) lines.push(`TimeoutStartSec=${o.timeoutStartSec}`);
  lines.push(
    "Restart=always",
    `RestartSec=${o.restartSec ?? 10}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  );
  return lines.join("\n");
}

/** The `write_files` entry of a unit under /etc/systemd/system. */
export function unitFile(name: string, content: string): WriteFile {
  return { path: `/etc/systemd/system/${name}`, content, permissions: "0644" };
}

/** The runcmd entries that load and start a unit. */
export function enableUnit(name: string): string[][] {
  return [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", name]];
}

/** Path of the script that formats (once) and mounts a data disk found by serial. */
export const MOUNT_DATA_SCRIPT = "/usr/local/bin/virtwork-mount-data";

/**
 * A script `virtwork-mount-data <serial> <dir>`: waits for `/dev/disk/by-id/virtio-<serial>`,
 * makes an ext4 file system when the disk is blank and mounts it. ext4 because e2fsprogs is in every
 * Fedora cloud image, xfsprogs is not.
 */
export function mountDataScript(): WriteFile {
  const content = `#!/bin/bash
set -euo pipefail
serial="$1"
dir="$2"
dev="/dev/disk/by-id/virtio-$serial"
for _ in $(seq 1 90); do
  [ -b "$dev" ] && break
  sleep 2
done
if [ ! -b "$dev" ]; then
  echo "data disk $dev not found" >&2
  exit 1
fi
if ! blkid "$dev" >/dev/null 2>&1; then
  mkfs.ext4 -q "$dev"
fi
mkdir -p "$dir"
if ! mountpoint -q "$dir"; then
  mount "$dev" "$dir"
fi
`;
  return { path: MOUNT_DATA_SCRIPT, content, permissions: "0755" };
}
