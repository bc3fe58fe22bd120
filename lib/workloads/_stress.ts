/**
 * The guest content of the two stress-ng workloads (cpu, memory): a sample script that runs one
 * slice and reports it, a run script that checks the packages and loops the sample, and the unit.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import type { GuestOs } from "./workload.ts";
import {
  binFile,
  commonFiles,
  enableUnit,
  ensureArgs,
  GUEST_RESULTS_FILE,
  SCRIPT_HEAD,
  serviceUnit,
  unitFile,
} from "./_guest.ts";

/** What differs between the stress-ng workloads. */
export interface StressNgOptions {
  /** Workload name (`cpu`, `memory`). */
  workload: string;
  /** Unit name. */
  unit: string;
  /** Unit description. */
  description: string;
  /** stress-ng and its stressor arguments; `--timeout` and the metrics options are added. */
  stressArgs: string;
  /**
   * A stress-ng command line the run script keeps running in the background for as long as it
   * runs (the memory workload's holder); the run stops with an error result when it exits.
   */
  holdArgs?: string;
  /** Guest distribution. */
  os: GuestOs;
  /** Seconds per slice. */
  intervalSeconds: number;
}

/**
 * The sample script: one slice of `stressArgs`, reported as `bogo_ops_per_s`. With
 * `VIRTWORK_REPORT_ASYNC=1` (the run loop sets it) the slice is parsed and reported in the
 * background and the script returns at once, so the next slice starts without a gap in the load
 * (parsing costs a second or more on an emulated guest).
 */
export function stressSampleScript(o: Pick<StressNgOptions, "workload" | "stressArgs">): string {
  return `${SCRIPT_HEAD}
tmp=$(mktemp -d)
if ! ${o.stressArgs} --timeout "\${VIRTWORK_INTERVAL}s" --metrics-brief \\
  --yaml "$tmp/out.yaml" >"$tmp/log" 2>&1; then
  virtwork_error ${o.workload} "stress-ng failed: $(virtwork_tail "$tmp/log")"
  rm -rf "$tmp"
  exit 1
fi
cat "$tmp/log" >>"$tmp/out.yaml"
if [ "\${VIRTWORK_REPORT_ASYNC:-0}" = 1 ]; then
  (virtwork_report ${o.workload} stress-ng "$tmp/out.yaml"; rm -rf "$tmp") &
  exit 0
fi
rc=0
virtwork_report ${o.workload} stress-ng "$tmp/out.yaml" || rc=$?
rm -rf "$tmp"
exit "$rc"
`;
}

/** Cloud-config of a stress-ng workload. */
export function stressNgFiles(o: StressNgOptions): CloudConfigOptions {
  const sample = `virtwork-${o.workload}-sample`;
  const run = `virtwork-${o.workload}-run`;
  const runScript = `${SCRIPT_HEAD}
"$VIRTWORK_BIN_DIR/virtwork-ensure-packages" ${o.workload} ${
    ensureArgs(o.os, ["stress-ng", "python3"])
  } || exit 1
export VIRTWORK_REPORT_ASYNC=1
${
    o.holdArgs
      ? `${o.holdArgs} --timeout 0 >/dev/null 2>&1 &
holder=$!
trap 'kill "$holder" 2>/dev/null' EXIT
`
      : ""
  }while true; do
${
    o.holdArgs
      ? `  if ! kill -0 "$holder" 2>/dev/null; then
    virtwork_error ${o.workload} "the stress-ng holder exited"
    exit 1
  fi
`
      : ""
  }  "$VIRTWORK_BIN_DIR/${sample}" || sleep "$VIRTWORK_INTERVAL"
done
`;
  return {
    writeFiles: [
      ...commonFiles(GUEST_RESULTS_FILE),
      binFile(sample, stressSampleScript(o)),
      binFile(run, runScript),
      unitFile(
        o.unit,
        serviceUnit({
          description: o.description,
          execStart: `/usr/local/bin/${run}`,
          environment: { VIRTWORK_INTERVAL: String(o.intervalSeconds) },
        }),
      ),
    ],
    runcmd: enableUnit(o.unit),
  };
}
