/**
 * Configuration layering, generic over a schema: command-line flags > environment variables > a YAML
 * file > defaults, field by field, with the source of each value recorded. Lists come as YAML lists,
 * comma-separated environment values, or repeated flags.
 *
 * @example
 * ```ts
 * import { resolveConfig, type ConfigSchema } from "./layered.ts";
 * const schema = {
 *   namespace: { kind: "string", default: "virtwork" },
 *   vmCount: { kind: "integer", default: 1 },
 *   sshAuthorizedKeys: { kind: "list", default: [] },
 * } as const satisfies ConfigSchema;
 * const { values, sources } = resolveConfig(schema, {
 *   flags: { vmCount: 3 },
 *   env: { APP_NAMESPACE: "perf", APP_SSH_AUTHORIZED_KEYS: "ssh-ed25519 A,ssh-ed25519 B" },
 *   file: { namespace: "ignored", vm_count: 2 },
 * }, { envPrefix: "APP_" });
 * // values.namespace === "perf" (env), values.vmCount === 3 (flag), sources.vmCount === "flag"
 * ```
 * @module
 */

/** The kinds of value a field holds. */
export type FieldKind = "string" | "integer" | "number" | "boolean" | "list";

/** One configuration field. */
export interface FieldSpec {
  /** What kind of value the field holds. */
  kind: FieldKind;
  /** Value when no layer sets it. */
  default: string | number | boolean | readonly string[];
  /** Environment variable; default: prefix + the key in SCREAMING_SNAKE_CASE. */
  env?: string;
  /** Key in the YAML file; default: the key in snake_case. */
  fileKey?: string;
  /** Smallest allowed value of integer and number fields. */
  min?: number;
  /** Allowed values of string fields. */
  choices?: readonly string[];
}

/** Fields by key (camelCase). */
export type ConfigSchema = Record<string, FieldSpec>;

/** The TypeScript type of a field kind. */
export type ValueOf<K extends FieldKind> = K extends "list" ? string[]
  : K extends "boolean" ? boolean
  : K extends "string" ? string
  : number;

/** Resolved values of a schema. */
export type ConfigValues<S extends ConfigSchema> = { [P in keyof S]: ValueOf<S[P]["kind"]> };

/** Where a value came from. */
export type ConfigSource = "flag" | "env" | "file" | "default";

/** The layers to resolve from. */
export interface ConfigLayers {
  /** Values given on the command line, by key; only flags the user actually set. */
  flags?: Readonly<Record<string, unknown>>;
  /** The environment, as a mapping or a lookup such as `Deno.env.get`. */
  env?: Readonly<Record<string, string | undefined>> | ((name: string) => string | undefined);
  /** The parsed YAML file (a mapping). */
  file?: Readonly<Record<string, unknown>>;
  /** Name of the file, for messages. */
  fileName?: string;
}

/** Resolution settings. */
export interface ResolveOptions {
  /** Prefix of environment variables, e.g. `VIRTWORK_`. */
  envPrefix?: string;
  /** Reject file keys the schema does not know (default true); `allowFileKeys` are exempt. */
  strictFile?: boolean;
  /** File keys handled by the caller. */
  allowFileKeys?: readonly string[];
}

/** One positioned problem of a configuration file (the shape of foundry's `Problem`). */
export interface ConfigProblem {
  /** File name. */
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
  /** Field path, `storage.vmsPool`; empty for the file as a whole. */
  path: string;
  /** What was expected and what was found. */
  message: string;
}

/** Options of a {@linkcode ConfigError}. */
export interface ConfigErrorOptions extends ErrorOptions {
  /** Every positioned problem of a configuration file, when the error is about one. */
  problems?: readonly ConfigProblem[];
}

/**
 * A configuration that cannot be used; both CLIs exit with 1, or 2 when the value came from a flag
 * (`source` is {@linkcode FLAG_SOURCE}), which the CLI then names by its own spelling.
 */
export class ConfigError extends Error {
  /** Field key, when the error is about one field. */
  readonly key: string | undefined;
  /**
   * Where the bad value came from: {@linkcode FLAG_SOURCE} for the command line, `env
   * VIRTWORK_VM_COUNT`, or a file (`virtwork.yaml`, `v.yaml:3:12`).
   */
  readonly source: string | undefined;
  /** What was expected and what was found, without the source and key that prefix the message. */
  readonly reason: string;
  /** Every positioned problem of a configuration file; empty otherwise. */
  readonly problems: readonly ConfigProblem[];
  /** Builds the error; `source` and `key` prefix the message: `env APP_MODE mode: must be ...`. */
  constructor(message: string, key?: string, source?: string, options?: ConfigErrorOptions) {
    const prefix = source === undefined || source === ""
      ? ""
      : key === undefined || key === ""
      ? `${source}: `
      : `${source} ${key}: `;
    super(prefix + message, options);
    this.name = "ConfigError";
    this.key = key;
    this.source = source;
    this.reason = message;
    this.problems = options?.problems ?? [];
  }
}

/**
 * The source of a value given on the command line. lib/ knows settings by their keys only; each CLI
 * maps a key to the flag that sets it when it shows the error.
 */
export const FLAG_SOURCE = "flag";

/** `vmCount` → `vm_count`. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The environment variable of a field. */
export function envName(key: string, spec: FieldSpec, prefix = ""): string {
  return spec.env ?? `${prefix}${snakeCase(key).toUpperCase()}`;
}

/** Resolves every field of `schema` from the layers; returns the values and their sources. */
export function resolveConfig<S extends ConfigSchema>(
  schema: S,
  layers: ConfigLayers,
  opts: ResolveOptions = {},
): { values: ConfigValues<S>; sources: Record<keyof S, ConfigSource> } {
  const values: Record<string, unknown> = {};
  const sources: Record<string, ConfigSource> = {};
  const file = layers.file ?? {};
  const fileName = layers.fileName ?? "config file";
  if (opts.strictFile !== false) {
    const known = new Set([
      ...Object.entries(schema).map(([k, s]) => s.fileKey ?? snakeCase(k)),
      ...(opts.allowFileKeys ?? []),
    ]);
    for (const k of Object.keys(file)) {
      if (!known.has(k)) {
        throw new ConfigError(
          `unknown key, expected one of: ${[...known].sort().join(", ")}`,
          k,
          fileName,
        );
      }
    }
  }
  const envLayer = layers.env;
  const lookup = typeof envLayer === "function" ? envLayer : (name: string) => envLayer?.[name];
  for (const [key, spec] of Object.entries(schema)) {
    const env = envName(key, spec, opts.envPrefix);
    const envValue = lookup(env);
    const fileKey = spec.fileKey ?? snakeCase(key);
    let value: unknown;
    let source: ConfigSource;
    let where: string;
    if (layers.flags?.[key] !== undefined) {
      where = FLAG_SOURCE;
      value = fromTyped(spec, layers.flags[key], key, where);
      source = "flag";
    } else if (envValue !== undefined && envValue !== "") {
      where = `env ${env}`;
      value = fromString(spec, envValue, key, where);
      source = "env";
    } else if (file[fileKey] !== undefined && file[fileKey] !== null) {
      where = fileName;
      value = fromTyped(spec, file[fileKey], key, where);
      source = "file";
    } else {
      where = "default";
      value = Array.isArray(spec.default) ? [...spec.default] : spec.default;
      source = "default";
    }
    check(spec, value, key, where);
    values[key] = value;
    sources[key] = source;
  }
  return {
    values: values as ConfigValues<S>,
    sources: sources as Record<keyof S, ConfigSource>,
  };
}

function fromString(spec: FieldSpec, raw: string, key: string, where: string): unknown {
  const s = raw.trim();
  switch (spec.kind) {
    case "string":
      return raw;
    case "integer":
      if (!/^-?\d+$/.test(s)) throw new ConfigError(`must be an integer, got "${raw}"`, key, where);
      return Number(s);
    case "number":
      if (s === "" || !Number.isFinite(Number(s))) {
        throw new ConfigError(`must be a number, got "${raw}"`, key, where);
      }
      return Number(s);
    case "boolean":
      if (/^(true|1|yes|on)$/i.test(s)) return true;
      if (/^(false|0|no|off)$/i.test(s)) return false;
      throw new ConfigError(`must be true or false, got "${raw}"`, key, where);
    case "list":
      return s.split(",").map((x) => x.trim()).filter((x) => x !== "");
  }
}

function fromTyped(spec: FieldSpec, v: unknown, key: string, where: string): unknown {
  if (typeof v === "string" && spec.kind !== "string" && spec.kind !== "list") {
    return fromString(spec, v, key, where);
  }
  switch (spec.kind) {
    case "string":
      if (typeof v !== "string" && typeof v !== "number") {
        throw new ConfigError(`must be a string, got ${describe(v)}`, key, where);
      }
      return String(v);
    case "integer":
      if (!Number.isInteger(v)) {
        throw new ConfigError(`must be an integer, got ${describe(v)}`, key, where);
      }
      return v;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new ConfigError(`must be a number, got ${describe(v)}`, key, where);
      }
      return v;
    case "boolean":
      if (typeof v !== "boolean") {
        throw new ConfigError(`must be true or false, got ${describe(v)}`, key, where);
      }
      return v;
    case "list":
      if (typeof v === "string") return fromString(spec, v, key, where);
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
        throw new ConfigError(`must be a list of strings, got ${describe(v)}`, key, where);
      }
      return [...v];
  }
}

function check(spec: FieldSpec, v: unknown, key: string, where: string): void {
  if ((spec.kind === "integer" || spec.kind === "number") && spec.min !== undefined) {
    if ((v as number) < spec.min) {
      throw new ConfigError(`must be at least ${spec.min}, got ${v}`, key, where);
    }
  }
  if (spec.kind === "string" && spec.choices && !spec.choices.includes(v as string)) {
    throw new ConfigError(
      `must be one of ${spec.choices.join(", ")}, got "${v}"`,
      key,
      where,
    );
  }
}

/** `v` as error messages name it: `null`, `a mapping`, `number 3`, `string "x"`. */
export function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "number") return `number ${v}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Reads a configuration file's text; resolves to undefined when it does not exist, so callers decide
 * whether a missing file is an error.
 * @throws {ConfigError} when the file exists but cannot be read
 */
export function readConfigText(path: string): Promise<string | undefined> {
  // Read synchronously: a configuration file is small, and every command reads one or two (most
  // often absent) before it can start; two async reads cost a `list` about half a millisecond.
  try {
    return Promise.resolve(readBounded(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return Promise.resolve(undefined);
    if (e instanceof ConfigError) return Promise.reject(e);
    return Promise.reject(
      new ConfigError(
        `cannot read config file ${path}: ${(e as Error).message}`,
        undefined,
        undefined,
        {
          cause: e,
        },
      ),
    );
  }
}

/** Largest configuration file read, in bytes: a file above it is refused, never read whole. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

function readBounded(path: string): string {
  const f = Deno.openSync(path);
  try {
    const buf = new Uint8Array(64 * 1024);
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const n = f.readSync(buf);
      if (n === null) break;
      size += n;
      if (size > MAX_CONFIG_BYTES) {
        throw new ConfigError(
          `config file ${path} is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`,
        );
      }
      parts.push(buf.slice(0, n));
    }
    const all = new Uint8Array(size);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new TextDecoder().decode(all);
  } finally {
    f.close();
  }
}
