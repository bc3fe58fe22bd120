/**
 * Foundry's configuration, in layers: command-line flags over `FOUNDRY_*` environment variables over the
 * configuration files (`~/.config/foundry/config.yaml` over `/etc/foundry/config.yaml`) over defaults.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * const config = await loadConfig({ flags: { uri: "qemu:///system" } });
 * console.log(config.vmsPool, config.vmsPath);
 * ```
 *
 * @module
 */

import {
  ConfigError,
  type ConfigSchema,
  type FieldKind,
  readConfigText,
  resolveConfig,
} from "../config/layered.ts";
import type { HostEntry } from "./fleet_types.ts";
import { resolveImage } from "./naming.ts";
import {
  DEFAULT_IMAGE_POOL,
  DEFAULT_VM_POOL,
  DOMAIN_TYPES,
  type DomainType,
  type VirtualMachine,
} from "./types.ts";

/** Foundry's resolved configuration. */
export interface FoundryConfig {
  /** Libvirt connection URI. */
  uri: string;
  /** Domain type for specs that do not name one; `auto` picks `kvm` when the host offers it. */
  domainType: DomainType | "auto";
  /** Seconds `destroy` waits for a graceful shutdown before it forces the VM off. */
  destroyTimeoutSeconds: number;
  /** Directory under which the two default pools live unless their paths are set. */
  storagePath: string;
  /** Pool of base images. */
  imagesPool: string;
  /** Target directory of the images pool when foundry creates it. */
  imagesPath: string;
  /** Default pool of VM disks. */
  vmsPool: string;
  /** Target directory of the VM pool when foundry creates it. */
  vmsPath: string;
  /** The fleet's hosts (`hosts:` of the configuration file; see fleet.ts); absent without one. */
  hosts?: HostEntry[];
}

/** Configuration given on the command line; every field optional. */
export interface ConfigFlags {
  /** `--config FILE`: read only this file (it must exist). */
  config?: string;
  /** `--connect URI`. */
  uri?: string;
  /** `--domain-type kvm|qemu|auto`. */
  domainType?: string;
  /** `--destroy-timeout SECONDS`. */
  destroyTimeoutSeconds?: number;
  /** `--storage-path DIR`. */
  storagePath?: string;
  /** `--image-pool NAME`. */
  imagesPool?: string;
  /** `--vm-pool NAME`. */
  vmsPool?: string;
}

/** Built-in defaults, the lowest layer. */
export const DEFAULT_CONFIG: Readonly<FoundryConfig> = Object.freeze({
  uri: "qemu:///system",
  domainType: "auto",
  destroyTimeoutSeconds: 5,
  storagePath: "/var/lib/libvirt/images/foundry",
  imagesPool: DEFAULT_IMAGE_POOL,
  imagesPath: "/var/lib/libvirt/images/foundry/images",
  vmsPool: DEFAULT_VM_POOL,
  vmsPath: "/var/lib/libvirt/images/foundry/vms",
});

/** Environment variables read, by configuration field. */
export const CONFIG_ENV = {
  config: "FOUNDRY_CONFIG",
  uri: "FOUNDRY_URI",
  domainType: "FOUNDRY_DOMAIN_TYPE",
  destroyTimeoutSeconds: "FOUNDRY_DESTROY_TIMEOUT",
  storagePath: "FOUNDRY_STORAGE_PATH",
  imagesPool: "FOUNDRY_IMAGE_POOL",
  imagesPath: "FOUNDRY_IMAGES_PATH",
  vmsPool: "FOUNDRY_VM_POOL",
  vmsPath: "FOUNDRY_VMS_PATH",
} as const;

/** The system-wide configuration file. */
export const SYSTEM_CONFIG_FILE = "/etc/foundry/config.yaml";

export { ConfigError };
export type { ConfigErrorOptions, ConfigProblem } from "../config/layered.ts";

/** The values of `domainType`: `auto` and the domain types. */
export const DOMAIN_TYPE_CHOICES: readonly string[] = ["auto", ...DOMAIN_TYPES];

/**
 * Every field with the variable and file key that set it; resolved by lib/config. A bad flag value
 * is reported by its key (`domainType`); the CLI names the flag (cli/foundry/_config_flags.ts).
 */
const CONFIG_SCHEMA = {
  uri: field("string", "uri"),
  domainType: { ...field("string", "domainType"), choices: DOMAIN_TYPE_CHOICES },
  destroyTimeoutSeconds: { ...field("number", "destroyTimeoutSeconds"), min: 0 },
  storagePath: field("string", "storagePath"),
  imagesPool: field("string", "imagesPool"),
  imagesPath: field("string", "imagesPath"),
  vmsPool: field("string", "vmsPool"),
  vmsPath: field("string", "vmsPath"),
} as const satisfies ConfigSchema;

/** Where {@link loadConfig} gets its outside inputs; tests replace them. */
export interface ConfigSources {
  /** Command-line flags. */
  flags?: ConfigFlags;
  /** Environment lookup; `Deno.env.get` by default. */
  env?: (name: string) => string | undefined;
  /** Reads a file, resolving to undefined when it does not exist; `Deno.readTextFile` by default. */
  readFile?: (path: string) => Promise<string | undefined>;
}

type Layer = Partial<FoundryConfig>;

/** Parses a configuration file; its YAML parser loads only when there is a file to read. */
async function parseFile(text: string, file: string): Promise<Layer> {
  return (await import("./config_file.ts")).parseConfigFile(text, file);
}

/** The per-user configuration file: `$XDG_CONFIG_HOME/foundry/config.yaml`, else under `~/.config`. */
export function userConfigFile(env: (name: string) => string | undefined): string | undefined {
  const xdg = env("XDG_CONFIG_HOME");
  if (xdg !== undefined && xdg !== "") return `${xdg}/foundry/config.yaml`;
  const home = env("HOME");
  return home === undefined || home === "" ? undefined : `${home}/.config/foundry/config.yaml`;
}

/**
 * Resolves the configuration from all layers. When `--config` or `FOUNDRY_CONFIG` names a file, only that
 * file is read and it must exist; otherwise the user file overrides the system file and both are optional.
 *
 * @throws {ConfigError} on an unreadable or invalid file, flag or variable
 */
export async function loadConfig(sources: ConfigSources = {}): Promise<FoundryConfig> {
  const env = sources.env ?? ((name: string) => Deno.env.get(name));
  const readFile = sources.readFile ?? readConfigText;
  const flags = sources.flags ?? {};
  const explicit = flags.config ?? (env(CONFIG_ENV.config) || undefined);
  const file: Layer = {};
  if (explicit !== undefined) {
    const text = await readFile(explicit);
    if (text === undefined) throw new ConfigError(`Configuration file ${explicit} does not exist`);
    Object.assign(file, await parseFile(text, explicit));
  } else {
    for (const path of [SYSTEM_CONFIG_FILE, userConfigFile(env)]) {
      if (path === undefined) continue;
      const text = await readFile(path);
      if (text !== undefined) Object.assign(file, await parseFile(text, path));
    }
  }
  const { config: _file, ...fieldFlags } = flags;
  // hosts: is the file's alone (no flag or variable sets a fleet).
  const { hosts, ...fileFields } = file;
  const { values, sources: from } = resolveConfig(CONFIG_SCHEMA, {
    flags: fieldFlags,
    env,
    file: fileFields,
  });
  return {
    ...values,
    domainType: values.domainType as FoundryConfig["domainType"],
    imagesPath: from.imagesPath === "default" ? `${values.storagePath}/images` : values.imagesPath,
    vmsPath: from.vmsPath === "default" ? `${values.storagePath}/vms` : values.vmsPath,
    ...(hosts ? { hosts } : {}),
  };
}

/**
 * The pool a VM's disks go to: the `--pool` flag of `create`, else the spec's `storagePool`, else the
 * configured `vmsPool`.
 */
export function vmPoolFor(vm: VirtualMachine, config: FoundryConfig, poolFlag?: string): string {
  return poolFlag ?? vm.spec.storagePool ?? config.vmsPool;
}

/** Where a VM's boot image is, with the configured images pool as the default pool. */
export function imageLocationFor(
  vm: VirtualMachine,
  config: FoundryConfig,
): ReturnType<typeof resolveImage> | undefined {
  const image = vm.spec.bootDisk.image;
  if (image === undefined) return undefined;
  return resolveImage(image, vm.spec.bootDisk.imagePool, config.imagesPool);
}

/** A schema field of `key` with its default, its `FOUNDRY_*` variable and its file key. */
function field<T extends FieldKind, K extends Exclude<keyof FoundryConfig, "hosts">>(
  kind: T,
  key: K,
) {
  return { kind, default: DEFAULT_CONFIG[key], env: CONFIG_ENV[key], fileKey: key };
}
