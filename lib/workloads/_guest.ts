/**
 * Guest content every workload shares: the results library, the package check, the data disk
 * mount, systemd units, and the per-distribution package names.
 *
 * Executables go to /usr/local/bin (SELinux labels it `bin_t`, so systemd may start them on
 * Fedora), sourced and interpreted files to /usr/local/lib/virtwork. Every script reads its paths
 * from the environment first (`VIRTWORK_LIB_DIR`, `VIRTWORK_BIN_DIR`, `VIRTWORK_CONSOLE`,
 * `VIRTWORK_RESULTS_FILE`, `VIRTWORK_INTERVAL`), so the tests run them on the host unchanged.
 * @module
 */
import type { WriteFile } from "../cloudinit/cloud_config.ts";
import type { GuestOs } from "./workload.ts";

/** Directory of the sourced shell library and the result parser. */
export const GUEST_LIB_DIR = "/usr/local/lib/virtwork";
/** Directory of the executables. */
export const GUEST_BIN_DIR = "/usr/local/bin";
/** The shell library every script sources. */
export const COMMON_SH = `${GUEST_LIB_DIR}/common.sh`;
/** The parser that turns a tool's output into a metrics object. */
export const RESULT_PY = `${GUEST_LIB_DIR}/result.py`;
/** `virtwork-ensure-packages WORKLOAD CHECK=PACKAGE...`. */
export const ENSURE_PACKAGES = `${GUEST_BIN_DIR}/virtwork-ensure-packages`;
/** Path of the script that formats (once) and mounts a data disk found by serial. */
export const MOUNT_DATA_SCRIPT = `${GUEST_BIN_DIR}/virtwork-mount-data`;
/**
 * Where the guest appends its result lines; the same path as lib/virtwork/results.ts's
 * `RESULTS_FILE` (a test holds them equal: lib/workloads imports nothing of lib/virtwork).
 */
export const GUEST_RESULTS_FILE = "/var/lib/virtwork/results.jsonl";
/** Results file size past which it is rotated to `<file>.1` (one old generation is kept). */
export const RESULTS_FILE_MAX_BYTES = 1024 * 1024;

/** What a workload needs in the guest, by a name that means the same on every distribution. */
export type GuestNeed =
  | "python3"
  | "stress-ng"
  | "fio"
  | "iperf3"
  | "postgresql-server"
  | "pgbench"
  | "mkfs.ext4";

/** How the guest checks a need: a command on PATH, or an absolute path glob. */
export interface NeedCheck {
  /** Command name or absolute glob. */
  check: string;
  /** Package that provides it. */
  pkg: string;
}

const DEB: Readonly<Record<GuestNeed, NeedCheck>> = {
  "python3": { check: "python3", pkg: "python3" },
  "stress-ng": { check: "stress-ng", pkg: "stress-ng" },
  "fio": { check: "fio", pkg: "fio" },
  "iperf3": { check: "iperf3", pkg: "iperf3" },
  // The metapackage pulls the distribution's current major (Debian 12: postgresql-15, which also
  // ships pgbench; postgresql-client-15 has psql).
  "postgresql-server": { check: "/usr/lib/postgresql/*/bin/initdb", pkg: "postgresql" },
  "pgbench": { check: "/usr/lib/postgresql/*/bin/pgbench", pkg: "postgresql" },
  "mkfs.ext4": { check: "mkfs.ext4", pkg: "e2fsprogs" },
};

const RPM: Readonly<Record<GuestNeed, NeedCheck>> = {
  "python3": { check: "python3", pkg: "python3" },
  "stress-ng": { check: "stress-ng", pkg: "stress-ng" },
  "fio": { check: "fio", pkg: "fio" },
  "iperf3": { check: "iperf3", pkg: "iperf3" },
  "postgresql-server": { check: "postgresql-setup", pkg: "postgresql-server" },
  "pgbench": { check: "pgbench", pkg: "postgresql-contrib" },
  "mkfs.ext4": { check: "mkfs.ext4", pkg: "e2fsprogs" },
};

/** The check and package of every need, per distribution. */
export const GUEST_PACKAGES: Readonly<Record<GuestOs, Readonly<Record<GuestNeed, NeedCheck>>>> = {
  fedora: RPM,
  centos: RPM,
  debian: DEB,
  ubuntu: DEB,
};

/** True for the distributions that use dpkg and postgresql-common. */
export function isDebianFamily(os: GuestOs): boolean {
  return os === "debian" || os === "ubuntu";
}

/** The `CHECK=PACKAGE` arguments of {@linkcode ENSURE_PACKAGES} for `needs` on `os`. */
export function ensureArgs(os: GuestOs, needs: readonly GuestNeed[]): string {
  return needs.map((n) => {
    const c = GUEST_PACKAGES[os][n];
    return `'${c.check}=${c.pkg}'`;
  }).join(" ");
}

/** Settings of a generated systemd service unit. */
export interface UnitOptions {
  /** `Description=`. */
  description: string;
  /** `ExecStart=`. */
  execStart: string;
  /** Extra `After=` units. */
  after?: string[];
  /** `Environment=` assignments (values without spaces or quotes). */
  environment?: Readonly<Record<string, string>>;
  /** Seconds to wait before a restart. */
  restartSec?: number;
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
  for (const [k, v] of Object.entries(o.environment ?? {})) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(k) || !/^[A-Za-z0-9%._:/-]*$/.test(v)) {
      throw new RangeError(`unit environment ${k}=${JSON.stringify(v)} is not a plain assignment`);
    }
    lines.push(`Environment=${k}=${v}`);
  }
  lines.push(
    `ExecStart=${o.execStart}`,
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

/** An executable script under /usr/local/bin. */
export function binFile(name: string, content: string): WriteFile {
  return { path: `${GUEST_BIN_DIR}/${name}`, content, permissions: "0755" };
}

/**
 * The runcmd entry that enables and starts a unit written by write_files. No daemon reload: systemd
 * loads a unit it has never seen from disk when asked to start it, and each reload (an explicit
 * one, and the one `enable` makes unless told not to) cost 15-20 s of a one-vCPU emulated guest's
 * boot in the profile.
 */
export function enableUnit(name: string): string[][] {
  return [["systemctl", "enable", "--now", "--no-reload", name]];
}

/** The first lines of every script: strict mode off for loops, the library sourced. */
export const SCRIPT_HEAD = `#!/bin/bash
set -u
# shellcheck source=/dev/null
. "\${VIRTWORK_LIB_DIR:-${GUEST_LIB_DIR}}/common.sh"
`;

/**
 * The shell library: where results go and how one line is written and bounded. A result line is
 * written to the console (`$VIRTWORK_CONSOLE`, else /dev/ttyS0, else /dev/console; a console that
 * does not drain is given up after 5 s) and appended to `$VIRTWORK_RESULTS_FILE`, which is moved to
 * `<file>.1` when it grows past {@linkcode RESULTS_FILE_MAX_BYTES}.
 */
export function commonSh(resultsFile: string): string {
  return `# virtwork guest library, sourced by every virtwork script.
VIRTWORK_LIB_DIR=\${VIRTWORK_LIB_DIR:-${GUEST_LIB_DIR}}
VIRTWORK_BIN_DIR=\${VIRTWORK_BIN_DIR:-${GUEST_BIN_DIR}}
VIRTWORK_RESULTS_FILE=\${VIRTWORK_RESULTS_FILE:-${resultsFile}}
VIRTWORK_RESULTS_MAX_BYTES=\${VIRTWORK_RESULTS_MAX_BYTES:-${RESULTS_FILE_MAX_BYTES}}
VIRTWORK_INTERVAL=\${VIRTWORK_INTERVAL:-10}
VIRTWORK_CONSOLE=\${VIRTWORK_CONSOLE:-}

# virtwork_write_console LINE
virtwork_write_console() {
  local dev
  if [ -n "$VIRTWORK_CONSOLE" ]; then
    timeout 5 bash -c 'printf "%s\\n" "$1" >>"$2"' _ "$1" "$VIRTWORK_CONSOLE" 2>/dev/null
    return 0
  fi
  for dev in /dev/ttyS0 /dev/console; do
    [ -e "$dev" ] || continue
    if timeout 5 bash -c 'printf "%s\\n" "$1" >>"$2"' _ "$1" "$dev" 2>/dev/null; then
      return 0
    fi
  done
  return 0
}

# virtwork_emit JSON: one marked result line to the console and the results file.
virtwork_emit() {
  local line="VIRTWORK-RESULT $1" size
  virtwork_write_console "$line"
  mkdir -p "$(dirname "$VIRTWORK_RESULTS_FILE")"
  size=$(stat -c %s "$VIRTWORK_RESULTS_FILE" 2>/dev/null || echo 0)
  if [ "$size" -gt "$VIRTWORK_RESULTS_MAX_BYTES" ]; then
    mv -f "$VIRTWORK_RESULTS_FILE" "$VIRTWORK_RESULTS_FILE.1"
  fi
  printf '%s\\n' "$line" >>"$VIRTWORK_RESULTS_FILE"
  printf '%s\\n' "$line" >&2
}

# virtwork_json_string TEXT: TEXT as a JSON string, control characters made spaces, at most 400
# characters.
virtwork_json_string() {
  local s
  s=$(printf '%s' "$1" | tr '\\000-\\037\\177' ' ' | cut -c1-400)
  s=\${s//\\\\/\\\\\\\\}
  s=\${s//\\"/\\\\\\"}
  printf '"%s"' "$s"
}

# virtwork_error WORKLOAD REASON: an error result line.
virtwork_error() {
  virtwork_emit "{\\"v\\":1,\\"workload\\":\\"$1\\",\\"t\\":$(date +%s),\\"error\\":$(virtwork_json_string "$2")}"
}

# virtwork_tail FILE: the last non-empty line of FILE, for error reasons.
virtwork_tail() {
  grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | cut -c1-300
}

# virtwork_report WORKLOAD KIND FILE: parses FILE as KIND's output; emits the metrics, or an error
# and returns 1.
virtwork_report() {
  local metrics err
  err=$(mktemp)
  if metrics=$(python3 "$VIRTWORK_LIB_DIR/result.py" "$2" "$3" 2>"$err"); then
    rm -f "$err"
    virtwork_emit "{\\"v\\":1,\\"workload\\":\\"$1\\",\\"t\\":$(date +%s),\\"metrics\\":$metrics}"
    return 0
  fi
  virtwork_error "$1" "$2 output gave no figures: $(virtwork_tail "$err")"
  rm -f "$err"
  return 1
}
`;
}

/**
 * `virtwork-ensure-packages WORKLOAD CHECK=PACKAGE...`: for each pair whose CHECK (a command on
 * PATH, or an absolute path glob) is missing, installs PACKAGE with apt-get (refreshing the package
 * lists only when the first attempt fails), dnf or yum. Nothing is downloaded when every check
 * passes. When something is still missing afterwards it emits an error result naming what and why,
 * and exits 1.
 */
export function ensurePackagesScript(): string {
  return `${SCRIPT_HEAD}
workload="$1"
shift
have() {
  case "$1" in
    /*) compgen -G "$1" >/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
missing=()
pkgs=()
for spec in "$@"; do
  check="\${spec%%=*}"
  pkg="\${spec#*=}"
  have "$check" && continue
  missing+=("$check")
  case " \${pkgs[*]:-} " in *" $pkg "*) ;; *) pkgs+=("$pkg") ;; esac
done
[ "\${#missing[@]}" -eq 0 ] && exit 0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "virtwork: installing \${pkgs[*]} for $workload" >&2
if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt_install() {
    timeout 1800 apt-get install -y -q --no-install-recommends \\
      -o DPkg::Lock::Timeout=300 "\${pkgs[@]}" >>"$log" 2>&1
  }
  apt_install || { timeout 600 apt-get update -q >>"$log" 2>&1; apt_install; }
elif command -v dnf >/dev/null 2>&1; then
  timeout 1800 dnf install -y -q --setopt=install_weak_deps=False "\${pkgs[@]}" >>"$log" 2>&1
elif command -v yum >/dev/null 2>&1; then
  timeout 1800 yum install -y -q "\${pkgs[@]}" >>"$log" 2>&1
else
  echo "no package manager (apt-get, dnf or yum) found" >>"$log"
fi
still=()
for check in "\${missing[@]}"; do have "$check" || still+=("$check"); done
[ "\${#still[@]}" -eq 0 ] && exit 0
why=$(grep -E '^(E:|Error)' "$log" | tail -n 1 | cut -c1-200)
[ -n "$why" ] || why=$(virtwork_tail "$log")
virtwork_error "$workload" "\${still[*]} not installed and cannot be installed (\${pkgs[*]}): $why"
exit 1
`;
}

/**
 * A script `virtwork-mount-data <serial> <dir>`: waits for `/dev/disk/by-id/virtio-<serial>`,
 * makes an ext4 file system when the disk is blank and mounts it. ext4 because e2fsprogs is in every
 * Fedora and Debian cloud image, xfsprogs is not.
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

/**
 * The parser: `python3 result.py KIND FILE` prints one JSON object of metrics (finite numbers
 * under names that carry their unit, at most 32) or exits 1 with the reason on stderr.
 */
export const RESULT_PY_SOURCE =
  `"""virtwork: turns one tool run's output into a metrics object (python3 result.py KIND FILE)."""
import json
import math
import re
import sys

MAX_INPUT = 8 * 1024 * 1024


def fail(msg):
    sys.stderr.write(msg[:300] + "\\n")
    sys.exit(1)


def read(path):
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return f.read(MAX_INPUT)


def stress_ng(text):
    rates = re.findall(r"^\\s*bogo-ops-per-second-real-time:\\s*([0-9.eE+-]+)\\s*$", text, re.M)
    if not rates:
        # stress-ng's --metrics-brief log: "metrc: [pid] cpu 3619 2.00 2.00 0.00 1807.93 1808.90"
        rates = [m.split()[-2] for m in re.findall(r"metrc: \\[\\d+\\]\\s+[a-z][\\w-]*\\s+[\\d.\\s]+$", text, re.M)]
    if not rates:
        fail("no bogo-ops-per-second-real-time in the stress-ng output")
    return {"bogo_ops_per_s": sum(float(r) for r in rates)}


def fio(text):
    try:
        doc = json.loads(text[text.index("{"):])
    except ValueError as e:
        fail("fio output is not JSON: %s" % e)
    jobs = doc.get("jobs") or []
    if not jobs:
        fail("fio output has no jobs")
    out = {}
    for d in ("read", "write"):
        iops = sum(float(j.get(d, {}).get("iops", 0)) for j in jobs)
        if iops <= 0:
            continue
        out[d + "_iops"] = iops
        out[d + "_bw_kib_per_s"] = sum(float(j.get(d, {}).get("bw", 0)) for j in jobs)
        p99 = [j[d].get("clat_ns", {}).get("percentile", {}).get("99.000000") for j in jobs]
        p99 = [float(p) for p in p99 if p is not None]
        if p99:
            out[d + "_p99_ms"] = max(p99) / 1e6
    if not out:
        errs = [j.get("error") for j in jobs if j.get("error")]
        fail("fio did no I/O" + (" (error %s)" % errs[0] if errs else ""))
    return out


def pgbench(text):
    tps = re.search(r"^tps = ([0-9.]+)", text, re.M)
    lat = re.search(r"^latency average = ([0-9.]+) ms", text, re.M)
    if not tps:
        fail("no tps line in the pgbench output")
    out = {"tps": float(tps.group(1))}
    if lat:
        out["latency_avg_ms"] = float(lat.group(1))
    return out


def iperf3(text):
    try:
        doc = json.loads(text[text.index("{"):])
    except ValueError as e:
        fail("iperf3 output is not JSON: %s" % e)
    if doc.get("error"):
        fail("iperf3: %s" % doc["error"])
    end = doc.get("end") or {}
    sent = (end.get("sum_sent") or {}).get("bits_per_second")
    back = end.get("sum_received_bidir_reverse") or end.get("sum_received") or {}
    received = back.get("bits_per_second")
    if sent is None and received is None:
        fail("iperf3 output has no end sums")
    out = {}
    if sent is not None:
        out["sent_mbit_per_s"] = float(sent) / 1e6
    if received is not None:
        out["received_mbit_per_s"] = float(received) / 1e6
    return out


KINDS = {"stress-ng": stress_ng, "fio": fio, "pgbench": pgbench, "iperf3": iperf3}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in KINDS:
        fail("usage: result.py {%s} FILE" % "|".join(sorted(KINDS)))
    try:
        text = read(sys.argv[2])
    except OSError as e:
        fail("cannot read %s: %s" % (sys.argv[2], e.strerror))
    metrics = KINDS[sys.argv[1]](text)
    clean = {}
    for k, v in list(metrics.items())[:32]:
        if isinstance(v, float) and math.isfinite(v) and re.match(r"^[a-z][a-z0-9_]{0,63}$", k):
            clean[k] = round(v, 3)
    if not clean:
        fail("no finite figures")
    sys.stdout.write(json.dumps(clean, separators=(",", ":")) + "\\n")


main()
`;

/** The files every workload writes: the library, the parser and the package check. */
export function commonFiles(resultsFile: string): WriteFile[] {
  return [
    { path: COMMON_SH, content: commonSh(resultsFile), permissions: "0644" },
    { path: RESULT_PY, content: RESULT_PY_SOURCE, permissions: "0644" },
    { path: ENSURE_PACKAGES, content: ensurePackagesScript(), permissions: "0755" },
  ];
}
