/**
 * virtwork's configuration, for both targets: the field schema with the design's defaults,
 * `VIRTWORK_*` environment variables, and the YAML file's optional per-workload `workloads:`
 * mapping. `target` chooses the platform (`kubevirt`, the default, or `libvirt`); the libvirt
 * settings (`connect`, `image`, `bridge`, `subnet`, ...) are checked when that target runs.
 *
 * @example
 * ```ts
 * const cfg = await loadVirtworkConfig({ flags: { vmCount: 2 }, env: Deno.env.toObject() });
 * console.log(cfg.namespace, cfg.workloads.map((w) => w.name));
 * ```
 * @module
 */
import { isMap, isScalar } from "npm:yaml@^2.9.1";
import {
  ConfigError,
  type ConfigSchema,
  type ConfigSource,
  type ConfigValues,
  FLAG_SOURCE,
  readConfigText,
  resolveConfig,
} from "../config/layered.ts";
import { parseYamlConfig, parseYamlConfigDocument } from "../config/yaml_file.ts";
import { sshKeyProblem } from "../cloudinit/ssh_key.ts";
import { ALL_WORKLOAD_NAMES } from "../workloads/registry.ts";
import { formatQuantity, isQuantity, quantityBytes } from "../workloads/quantity.ts";
import { GUEST_OSES, type WorkloadConfig } from "../workloads/workload.ts";
import { DEFAULTS } from "./defaults.ts";

/** Prefix of virtwork's environment variables. */
export const ENV_PREFIX = "VIRTWORK_";

/** Every setting, its kind and default. Env: `VIRTWORK_<SNAKE_KEY>`; YAML key: `<snake_key>`. */
export const VIRTWORK_CONFIG_SCHEMA = {
  namespace: { kind: "string", default: DEFAULTS.NAMESPACE },
  workloads: { kind: "list", default: ALL_WORKLOAD_NAMES },
  vmCount: { kind: "integer", default: DEFAULTS.VM_COUNT },
  cpuCores: { kind: "integer", default: DEFAULTS.CPU_CORES },
  memory: { kind: "string", default: DEFAULTS.MEMORY },
  diskSize: { kind: "string", default: DEFAULTS.DATA_DISK_SIZE },
  containerDiskImage: { kind: "string", default: DEFAULTS.CONTAINER_DISK_IMAGE },
  noWait: { kind: "boolean", default: false },
  timeout: { kind: "integer", default: DEFAULTS.READY_TIMEOUT_SECONDS },
  pollInterval: { kind: "number", default: DEFAULTS.POLL_INTERVAL_SECONDS },
  dryRun: { kind: "boolean", default: false },
  verbose: { kind: "boolean", default: false },
  sshUser: { kind: "string", default: DEFAULTS.SSH_USER },
  sshPassword: { kind: "string", default: "" },
  sshAuthorizedKeys: { kind: "list", default: [] },
  kubeconfig: { kind: "string", default: "" },
  context: { kind: "string", default: "" },
  qps: { kind: "number", default: DEFAULTS.QPS },
  burst: { kind: "integer", default: DEFAULTS.BURST },
  output: { kind: "string", default: "table", choices: ["table", "json"] },
  audit: { kind: "boolean", default: true },
  auditDb: { kind: "string", default: DEFAULTS.AUDIT_DB },
  target: { kind: "string", default: DEFAULTS.TARGET },
  connect: { kind: "string", default: "" },
  image: { kind: "string", default: "" },
  imagePool: { kind: "string", default: "" },
  bridge: { kind: "string", default: "" },
  subnet: { kind: "string", default: "" },
  gateway: { kind: "string", default: "" },
  os: { kind: "string", default: "" },
  resultsAfter: { kind: "integer", default: 0 },
  report: { kind: "string", default: "" },
} as const satisfies ConfigSchema;

/** The platforms `target` names. */
export const TARGETS = ["kubevirt", "libvirt"] as const;

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

/** Bounds of virtwork's settings, checked before anything touches a cluster. */
export const VIRTWORK_LIMITS = {
  /** VMs per workload (the network workload runs this many pairs). */
  vmCount: { min: 1, max: 500 },
  /** vCPU cores per VM. */
  cpuCores: { min: 1, max: 256 },
  /** Memory per VM, bytes: 64 MiB to 4 TiB. */
  memoryBytes: { min: 64 * 2 ** 20, max: 4 * 2 ** 40 },
  /** Data disk size, bytes: 1 MiB to 64 TiB. */
  diskBytes: { min: 2 ** 20, max: 64 * 2 ** 40 },
  /** Readiness (and cleanup wait) timeout, seconds: up to a day. */
  timeoutSeconds: { min: 1, max: 86400 },
  /** Seconds between polls. */
  pollIntervalSeconds: { min: 0.01, max: 3600 },
  /** Client-side requests per second. */
  qps: { min: 0.1, max: 10000 },
  /** Client-side request burst. */
  burst: { min: 1, max: 10000 },
  /** Authorised SSH keys. */
  sshKeys: { max: 100 },
  /** Length of the container disk image reference. */
  imageLength: { max: 1024 },
  /** Length of the SSH password. */
  passwordLength: { max: 1024 },
  /** Seconds `--results-after` reads results: up to a day. */
  resultsAfterSeconds: { min: 0, max: 86400 },
  /** Length of the libvirt settings (URI, image, bridge, subnet, gateway, report path). */
  libvirtValueLength: { max: 4096 },
} as const;

/**
 * A setting that breaks virtwork's rules or those the Kubernetes API would apply (CLI exit 2).
 * `where` names the environment variable, or file, line, column and field; a value given on the
 * command line is {@linkcode FLAG_SOURCE}, and the CLI names the flag that sets `key`.
 */
export class SettingValidationError extends Error {
  /** Setting key, e.g. `namespace`. */
  readonly key: string;
  /** Where the value came from: `flag`, `env VIRTWORK_NAMESPACE`, `v.yaml:3:12 namespace`. */
  readonly where: string;
  /** What was expected and what was found, without `where`. */
  readonly reason: string;
  /**
   * Builds the error; the message reads `<where>: <message>`, or `flag <key>: <message>`.
   *
   * @param key setting key
   * @param where origin of the value
   * @param message what was expected and what was found
   */
  constructor(key: string, where: string, message: string) {
    super(`${where === FLAG_SOURCE ? `${where} ${key}` : where}: ${message}`);
    this.name = "ValidationError";
    this.key = key;
    this.where = where;
    this.reason = message;
  }
}

/** Bytes of a Kubernetes quantity (lib/workloads' parser, the one both tools use). */
export { quantityBytes };

/** A DNS-1123 label, as the API server requires of Namespace names. */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A label value, as the API server requires (empty or up to 63 characters). */
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** Why `name` is not a DNS-1123 label of at most 63 characters, or undefined when it is one. */
export function dnsLabelProblem(name: string): string | undefined {
  if (name.length > 63) return `must be no more than 63 characters, got ${name.length}`;
  if (!DNS1123_LABEL.test(name)) {
    return `must be a lowercase RFC 1123 label: lower case alphanumeric characters or '-', ` +
      `starting and ending with an alphanumeric character (e.g. 'my-name'), got ${
        JSON.stringify(name)
      }`;
  }
  return undefined;
}
/** Why `id` cannot be a `virtwork/run-id` label value, or undefined when it can. */
export function runIdProblem(id: string): string | undefined {
  if (id === "") return "must not be empty";
  if (id.length > 63) return `must be no more than 63 characters, got ${id.length}`;
  if (!LABEL_VALUE.test(id)) {
    return `must be a label value: alphanumerics, '-', '_' or '.', starting and ending with an ` +
      `alphanumeric character, got ${JSON.stringify(id)}`;
  }
  return undefined;
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\/:@+-]*$/;
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/** Where a setting's value came from, for messages; file values get their line and column. */
type Locate = (key: string, source: ConfigSource, workload?: string) => string;

/**
 * Resolves flags > env > YAML file > defaults. The file's `workloads` may be a list of names or a
 * mapping `name: {enabled, vm_count, cpu_cores, memory}`; mapping values apply to their workload
 * unless a flag or environment variable sets the same setting. Every value is then checked against
 * {@linkcode VIRTWORK_LIMITS} and the rules the API server applies (namespace names, SSH keys).
 *
 * @throws {ConfigError} for unreadable files and values of the wrong type
 * @throws {SettingValidationError} for values out of bounds or in the wrong format, and unknown
 *   workload names
 */
export async function loadVirtworkConfig(o: LoadConfigOptions = {}): Promise<VirtworkConfig> {
  const env = o.env ?? {};
  const configPath = o.configPath ?? env[`${ENV_PREFIX}CONFIG`];
  const fileName = configPath ?? "config file";
  let position: (path: string[]) => string | undefined = () => undefined;
  let file: Record<string, unknown>;
  if (o.file) file = o.file;
  else if (configPath) {
    const text = await readConfigText(configPath);
    if (text === undefined) {
      throw new ConfigError(`cannot read config file ${configPath}: file not found`);
    }
    file = parseYamlConfig(text, configPath);
    const parsed = parseYamlConfigDocument(text, configPath);
    position = (path) => {
      let node: unknown = parsed.map;
      for (const key of path) {
        if (!isMap(node)) return undefined;
        const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
        if (!pair) return undefined;
        node = pair.value;
      }
      const offset = (node as { range?: [number] } | null)?.range?.[0];
      parsed.problem(offset, "", "");
      const p = parsed.problems.pop()!;
      return `${configPath}:${p.line}:${p.column}`;
    };
  } else file = {};
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
    fileName,
  }, { envPrefix: ENV_PREFIX, allowFileKeys: ["workloads"] });

  const locate: Locate = (key, source, workload) => {
    const fileKey = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (workload !== undefined) {
      const path = `workloads.${workload}.${fileKey}`;
      return `${position(["workloads", workload, fileKey]) ?? fileName} ${path}`;
    }
    switch (source) {
      case "flag":
        return FLAG_SOURCE;
      case "env":
        return `env ${ENV_PREFIX}${fileKey.toUpperCase()}`;
      case "file":
        return `${position([fileKey]) ?? fileName} ${fileKey}`;
      default:
        return `default ${key}`;
    }
  };
  validateSettings(values, sources, locate);

  // An unknown name is a bad value like any other (exit 2), named by its flag, variable or line.
  const known = new Set(ALL_WORKLOAD_NAMES);
  const unknown = (name: string) =>
    `unknown workload "${name}", expected one of: ${ALL_WORKLOAD_NAMES.join(", ")}`;
  for (const name of values.workloads) {
    if (!known.has(name)) {
      throw new SettingValidationError(
        "workloads",
        locate("workloads", sources.workloads),
        unknown(name),
      );
    }
  }
  for (const name of Object.keys(perWorkload)) {
    if (!known.has(name)) {
      const at = position(["workloads", name]) ?? fileName;
      throw new SettingValidationError("workloads", `${at} workloads.${name}`, unknown(name));
    }
  }
  // A misspelt per-workload key would otherwise be ignored without a word.
  const perKeys = ["enabled", "vm_count", "cpu_cores", "memory"];
  for (const [name, per] of Object.entries(perWorkload)) {
    const at = (key?: string) =>
      position(key === undefined ? ["workloads", name] : ["workloads", name, key]) ?? fileName;
    if (per === null || typeof per !== "object" || Array.isArray(per)) {
      throw new ConfigError("must be a mapping of settings", `workloads.${name}`, at());
    }
    for (const key of Object.keys(per)) {
      if (!perKeys.includes(key)) {
        throw new ConfigError(
          `unknown key, expected one of: ${perKeys.join(", ")}`,
          `workloads.${name}.${key}`,
          at(key),
        );
      }
    }
    if (per.enabled !== undefined && typeof per.enabled !== "boolean") {
      throw new ConfigError(
        `must be true or false, got ${JSON.stringify(per.enabled)}`,
        `workloads.${name}.enabled`,
        at("enabled"),
      );
    }
  }
  const names = [...new Set(values.workloads)];
  const explicit = (k: keyof VirtworkSettings) => sources[k] === "flag" || sources[k] === "env";
  const selected: SelectedWorkload[] = [];
  for (const name of names) {
    const per = perWorkload[name] ?? {};
    const pick = <T>(
      key: "vmCount" | "cpuCores" | "memory",
      check: (v: unknown) => string | undefined,
    ): T => {
      const fileKey = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      if (explicit(key) || per[fileKey] === undefined) return values[key] as T;
      const problem = check(per[fileKey]);
      if (problem !== undefined) {
        throw new SettingValidationError(key, locate(key, "file", name), problem);
      }
      return per[fileKey] as T;
    };
    const enabled = per.enabled === undefined ? true : per.enabled === true;
    const config: WorkloadConfig = {
      enabled,
      vmCount: pick("vmCount", (v) => intProblem(v, VIRTWORK_LIMITS.vmCount)),
      cpuCores: pick("cpuCores", (v) => intProblem(v, VIRTWORK_LIMITS.cpuCores)),
      memory: pick("memory", (v) => quantityProblem(v, VIRTWORK_LIMITS.memoryBytes)),
    };
    if (config.enabled) selected.push({ name, config });
  }
  return { ...values, selected, sources };
}

/**
 * Checks resolved settings against {@linkcode VIRTWORK_LIMITS} and the API server's rules.
 * @throws {SettingValidationError} naming the first bad setting and where it came from
 */
function validateSettings(
  values: VirtworkSettings,
  sources: Record<keyof VirtworkSettings, ConfigSource>,
  locate: Locate,
): void {
  const fail = (key: keyof VirtworkSettings, message: string): never => {
    throw new SettingValidationError(key, locate(key, sources[key]), message);
  };
  const checks: [keyof VirtworkSettings, string | undefined][] = [
    ["namespace", dnsLabelProblem(values.namespace)],
    ["vmCount", intProblem(values.vmCount, VIRTWORK_LIMITS.vmCount)],
    ["cpuCores", intProblem(values.cpuCores, VIRTWORK_LIMITS.cpuCores)],
    ["memory", quantityProblem(values.memory, VIRTWORK_LIMITS.memoryBytes)],
    ["diskSize", quantityProblem(values.diskSize, VIRTWORK_LIMITS.diskBytes)],
    ["containerDiskImage", imageProblem(values.containerDiskImage)],
    ["timeout", intProblem(values.timeout, VIRTWORK_LIMITS.timeoutSeconds)],
    ["pollInterval", numberProblem(values.pollInterval, VIRTWORK_LIMITS.pollIntervalSeconds)],
    ["qps", numberProblem(values.qps, VIRTWORK_LIMITS.qps)],
    ["burst", intProblem(values.burst, VIRTWORK_LIMITS.burst)],
    [
      "sshUser",
      USER_NAME.test(values.sshUser)
        ? undefined
        : `must be a Linux user name (lower case letters, ` +
          `digits, '_' or '-', starting with a letter or '_', at most 32), got ${
            JSON.stringify(values.sshUser)
          }`,
    ],
    [
      "sshPassword",
      CONTROL.test(values.sshPassword)
        ? "must not contain control characters (such as a newline)"
        : values.sshPassword.length > VIRTWORK_LIMITS.passwordLength.max
        ? `must be at most ${VIRTWORK_LIMITS.passwordLength.max} characters`
        : undefined,
    ],
    ["context", CONTROL.test(values.context) ? "must not contain control characters" : undefined],
    [
      "target",
      (TARGETS as readonly string[]).includes(values.target)
        ? undefined
        : `must be one of ${TARGETS.join(", ")}, got ${JSON.stringify(values.target)}`,
    ],
    [
      "os",
      values.os === "" || (GUEST_OSES as readonly string[]).includes(values.os)
        ? undefined
        : `must be one of ${GUEST_OSES.join(", ")}, got ${JSON.stringify(values.os)}`,
    ],
    ["resultsAfter", intProblem(values.resultsAfter, VIRTWORK_LIMITS.resultsAfterSeconds)],
    ...(["connect", "image", "imagePool", "bridge", "subnet", "gateway", "report"] as const).map(
      (k): [keyof VirtworkSettings, string | undefined] => [k, plainProblem(values[k])],
    ),
  ];
  for (const [key, problem] of checks) if (problem !== undefined) fail(key, problem);
  const keys = values.sshAuthorizedKeys;
  if (keys.length > VIRTWORK_LIMITS.sshKeys.max) {
    fail("sshAuthorizedKeys", `at most ${VIRTWORK_LIMITS.sshKeys.max} keys, got ${keys.length}`);
  }
  keys.forEach((k, i) => {
    const problem = sshKeyProblem(k);
    if (problem !== undefined) fail("sshAuthorizedKeys", `key ${i + 1}: ${problem}`);
  });
}

function plainProblem(v: string): string | undefined {
  if (CONTROL.test(v)) return "must not contain control characters";
  const max = VIRTWORK_LIMITS.libvirtValueLength.max;
  return v.length > max ? `must be at most ${max} characters, got ${v.length}` : undefined;
}

function intProblem(v: unknown, b: { min: number; max: number }): string | undefined {
  if (!Number.isInteger(v)) return `must be an integer, got ${JSON.stringify(v)}`;
  return numberProblem(v, b);
}

function numberProblem(v: unknown, b: { min: number; max: number }): string | undefined {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    return `must be a number, got ${JSON.stringify(v)}`;
  }
  if (v < b.min || v > b.max) return `must be from ${b.min} to ${b.max}, got ${v}`;
  return undefined;
}

function quantityProblem(v: unknown, b: { min: number; max: number }): string | undefined {
  if (typeof v !== "string" || !isQuantity(v)) {
    return `must be a Kubernetes quantity such as 2Gi, got ${JSON.stringify(v)}`;
  }
  // Larger than a safe integer is past every maximum.
  const bytes = quantityBytes(v) ?? Infinity;
  if (bytes < b.min || bytes > b.max) {
    return `must be from ${formatQuantity(b.min)} to ${formatQuantity(b.max)}, got ${v}`;
  }
  return undefined;
}

function imageProblem(v: string): string | undefined {
  if (v.length > VIRTWORK_LIMITS.imageLength.max) {
    return `must be at most ${VIRTWORK_LIMITS.imageLength.max} characters, got ${v.length}`;
  }
  if (!IMAGE_REF.test(v)) {
    return `must be an image reference such as quay.io/containerdisks/fedora:41, got ${
      JSON.stringify(v)
    }`;
  }
  return undefined;
}
