/**
 * virtwork's configuration: the field schema with the design's defaults, `VIRTWORK_*` environment
 * variables, and the YAML file's optional per-workload `workloads:` mapping.
 *
 * @example
 * ```ts
 * const cfg = await loadVirtworkConfig({ flags: { vmCount: 2 }, env: Deno.env.toObject() });
 * console.log(cfg.namespace, cfg.workloads.map((w) => w.name));
 * ```
 * @module
 */
import {
  ConfigError,
  type ConfigSchema,
  type ConfigSource,
  type ConfigValues,
  readYamlConfig,
  resolveConfig,
} from "../config/layered.ts";
import { ALL_WORKLOAD_NAMES } from "../workloads/registry.ts";
import type { WorkloadConfig } from "../workloads/workload.ts";
import { DEFAULTS } from "./constants.ts";

/** Prefix of virtwork's environment variables. */
export const ENV_PREFIX = "VIRTWORK_";

/** Every setting, its kind and default. Env: `VIRTWORK_<SNAKE_KEY>`; YAML key: `<snake_key>`. */
export const VIRTWORK_CONFIG_SCHEMA = {
  namespace: { kind: "string", default: DEFAULTS.NAMESPACE },
  workloads: { kind: "list", default: ALL_WORKLOAD_NAMES },
  vmCount: { kind: "integer", default: DEFAULTS.VM_COUNT, min: 0 },
  cpuCores: { kind: "integer", default: DEFAULTS.CPU_CORES, min: 1 },
  memory: { kind: "string", default: DEFAULTS.MEMORY },
  diskSize: { kind: "string", default: DEFAULTS.DATA_DISK_SIZE },
  containerDiskImage: { kind: "string", default: DEFAULTS.CONTAINER_DISK_IMAGE },
  noWait: { kind: "boolean", default: false },
  timeout: { kind: "integer", default: DEFAULTS.READY_TIMEOUT_SECONDS, min: 1 },
  pollInterval: { kind: "number", default: DEFAULTS.POLL_INTERVAL_SECONDS, min: 0.01 },
  dryRun: { kind: "boolean", default: false },
  verbose: { kind: "boolean", default: false },
  sshUser: { kind: "string", default: DEFAULTS.SSH_USER },
  sshPassword: { kind: "string", default: "" },
  sshAuthorizedKeys: { kind: "list", default: [] },
  kubeconfig: { kind: "string", default: "" },
  context: { kind: "string", default: "" },
  qps: { kind: "number", default: DEFAULTS.QPS, min: 0.1 },
  burst: { kind: "integer", default: DEFAULTS.BURST, min: 1 },
  output: { kind: "string", default: "table", choices: ["table", "json"] },
  audit: { kind: "boolean", default: true },
  auditDb: { kind: "string", default: DEFAULTS.AUDIT_DB },
} as const satisfies ConfigSchema;

/** Resolved flat settings. */
export type VirtworkSettings = ConfigValues<typeof VIRTWORK_CONFIG_SCHEMA>;

/** One selected workload and its settings. */
export interface SelectedWorkload {
  /** Workload name. */
  name: string;
  /** Its resolved settings. */
  config: WorkloadConfig;
}

/** The resolved configuration. */
export interface VirtworkConfig extends VirtworkSettings {
  /** The enabled workloads with their per-workload settings, in the order given. */
  selected: SelectedWorkload[];
  /** Where each flat setting came from. */
  sources: Record<keyof VirtworkSettings, ConfigSource>;
}

/** Inputs of {@linkcode loadVirtworkConfig}. */
export interface LoadConfigOptions {
  /** Settings the user gave as flags (only those actually given). */
  flags?: Partial<Record<keyof VirtworkSettings, unknown>>;
  /** The environment. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Path of the YAML file (`--config` or `VIRTWORK_CONFIG`). */
  configPath?: string;
  /** Parsed file content instead of a path (tests). */
  file?: Record<string, unknown>;
}

const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;

/**
 * Resolves flags > env > YAML file > defaults. The file's `workloads` may be a list of names or a
 * mapping `name: {enabled, vm_count, cpu_cores, memory}`; mapping values apply to their workload
 * unless a flag or environment variable sets the same setting.
 *
 * @throws {ConfigError} for unreadable files, bad values and unknown workload names
 */
export async function loadVirtworkConfig(o: LoadConfigOptions = {}): Promise<VirtworkConfig> {
  const env = o.env ?? {};
  const configPath = o.configPath ?? env[`${ENV_PREFIX}CONFIG`];
  let file = o.file ?? (configPath ? await readYamlConfig(configPath) : {});
  let perWorkload: Record<string, Record<string, unknown>> = {};
  const w = file.workloads;
  if (w && typeof w === "object" && !Array.isArray(w)) {
    perWorkload = w as Record<string, Record<string, unknown>>;
    const { workloads: _drop, ...rest } = file;
    file = rest;
  }
  const { values, sources } = resolveConfig(VIRTWORK_CONFIG_SCHEMA, {
    flags: o.flags ?? {},
    env,
    file,
    fileName: configPath ?? "config file",
  }, { envPrefix: ENV_PREFIX, allowFileKeys: ["workloads"] });

  for (const key of ["memory", "diskSize"] as const) {
    if (!QUANTITY.test(values[key])) {
      throw new ConfigError(
        `must be a Kubernetes quantity such as 2Gi, got "${values[key]}"`,
        key,
        sources[key],
      );
    }
  }
  const known = new Set(ALL_WORKLOAD_NAMES);
  for (const name of [...values.workloads, ...Object.keys(perWorkload)]) {
    if (!known.has(name)) {
      throw new ConfigError(
        `unknown workload "${name}", expected one of: ${ALL_WORKLOAD_NAMES.join(", ")}`,
        "workloads",
        sources.workloads,
      );
    }
  }
  const names = [...new Set(values.workloads)];
  const explicit = (k: keyof VirtworkSettings) => sources[k] === "flag" || sources[k] === "env";
  const selected: SelectedWorkload[] = [];
  for (const name of names) {
    const per = perWorkload[name] ?? {};
    const where = `${configPath ?? "config file"} workloads.${name}`;
    const pick = <T>(
      key: keyof VirtworkSettings,
      fileKey: string,
      check: (v: unknown) => v is T,
    ) => {
      if (explicit(key) || per[fileKey] === undefined) return values[key] as T;
      if (!check(per[fileKey])) {
        throw new ConfigError(
          `has an invalid value ${JSON.stringify(per[fileKey])}`,
          fileKey,
          where,
        );
      }
      return per[fileKey] as T;
    };
    const enabled = per.enabled === undefined ? true : per.enabled === true;
    const config: WorkloadConfig = {
      enabled,
      vmCount: pick("vmCount", "vm_count", isNonNegativeInt),
      cpuCores: pick("cpuCores", "cpu_cores", isPositiveInt),
      memory: pick("memory", "memory", isQuantity),
    };
    if (config.enabled) selected.push({ name, config });
  }
  return { ...values, selected, sources };
}

function isNonNegativeInt(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0;
}

function isPositiveInt(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1;
}

function isQuantity(v: unknown): v is string {
  return typeof v === "string" && QUANTITY.test(v);
}
