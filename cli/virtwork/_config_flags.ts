/**
 * The flag of each of virtwork's settings: the one place a flag's spelling is kept. The run and
 * cleanup commands and the root (`_root.ts`) declare their options with these names, and a bad
 * value that lib/kubevirt/config.ts reports by its key is shown with its flag.
 *
 * @module
 */
import type { VirtworkSettings } from "../../lib/virtwork/config.ts";
import { nameSettingFlag } from "../_setting_flags.ts";

/** Setting key → flag, for every setting a flag sets. */
export const VIRTWORK_SETTING_FLAGS = {
  namespace: "--namespace",
  workloads: "--workloads",
  vmCount: "--vm-count",
  cpuCores: "--cpu-cores",
  memory: "--memory",
  diskSize: "--disk-size",
  containerDiskImage: "--container-disk-image",
  noWait: "--no-wait",
  timeout: "--timeout",
  pollInterval: "--poll-interval",
  dryRun: "--dry-run",
  verbose: "--verbose",
  sshUser: "--ssh-user",
  sshPassword: "--ssh-password",
  // Keys from --ssh-key-file are named by file and line; a bad one given inline by its flag.
  sshAuthorizedKeys: "--ssh-key",
  kubeconfig: "--kubeconfig",
  context: "--context",
  qps: "--qps",
  burst: "--burst",
  output: "--output",
  audit: "--audit",
  auditDb: "--audit-db",
  target: "--target",
  connect: "--connect",
  image: "--image",
  imagePool: "--image-pool",
  bridge: "--bridge",
  subnet: "--subnet",
  gateway: "--gateway",
  os: "--os",
  resultsAfter: "--results-after",
  report: "--report",
  runId: "--run-id",
  config: "--config",
} as const satisfies Record<keyof VirtworkSettings | "runId" | "config", `--${string}`>;

/** `err` naming the flag of the setting it is about (see `nameSettingFlag`). */
export function withVirtworkFlag<E>(err: E): E {
  return nameSettingFlag(err, VIRTWORK_SETTING_FLAGS);
}
