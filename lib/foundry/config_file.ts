/**
 * Foundry's configuration file (see `examples/config.yaml`), parsed with positions. Apart from
 * `config.ts` so that a command run without a configuration file loads no YAML parser:
 * `loadConfig` loads this module when a file exists.
 *
 * @example
 * ```ts
 * import { parseConfigFile } from "./config_file.ts";
 * console.log(parseConfigFile("uri: qemu:///session\n", "config.yaml").uri);
 * ```
 * @module
 */
import { isMap, isScalar, type YAMLMap } from "npm:yaml@^2.9.1";
import { parseYamlConfigDocument } from "../config/yaml_file.ts";
import { ConfigError, DOMAIN_TYPE_CHOICES, type FoundryConfig } from "./config.ts";
import type { DomainType } from "./types.ts";
import { formatProblem } from "./errors.ts";
import { readHostsNode } from "./config_hosts.ts";

type Layer = Partial<FoundryConfig>;

const FILE_FIELDS = [
  "uri",
  "domainType",
  "destroyTimeoutSeconds",
  "storage",
  "hosts",
] as const;
const STORAGE_FIELDS = ["basePath", "imagesPool", "imagesPath", "vmsPool", "vmsPath"] as const;

/**
 * Parses one configuration file (see `examples/config.yaml`); an empty file is an empty layer.
 *
 * @throws {ConfigError} listing every problem with file, line and column
 */
export function parseConfigFile(text: string, file: string): Partial<FoundryConfig> {
  const { map, problems, problem: at } = parseYamlConfigDocument(text, file);
  const layer: Layer = {};
  const visit = (
    fields: YAMLMap,
    prefix: string,
    allowed: readonly string[],
    handle: (key: string, value: unknown, offset: number | undefined, path: string) => void,
  ) => {
    for (const pair of fields.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "";
      const path = prefix === "" ? key : `${prefix}.${key}`;
      const keyOffset = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
      if (!allowed.includes(key)) {
        at(keyOffset, path, `unknown field "${key}"; valid fields: ${allowed.join(", ")}`);
        continue;
      }
      const node = pair.value;
      const offset = isScalar(node) || isMap(node) ? node.range?.[0] : keyOffset;
      if (key === "hosts") {
        layer.hosts = readHostsNode(node, offset, at);
        continue;
      }
      if (key === "storage") {
        if (!isMap(node)) at(offset, path, "must be a mapping");
        else visit(node, path, STORAGE_FIELDS, handle);
        continue;
      }
      handle(key, isScalar(node) ? node.value : node, offset, path);
    }
  };
  if (map !== undefined) {
    visit(map, "", FILE_FIELDS, (key, value, offset, path) => {
      const fail = (what: string) => at(offset, path, `${what}, got ${JSON.stringify(value)}`);
      switch (key) {
        case "destroyTimeoutSeconds":
          if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
            fail("must be a number of seconds of 0 or more");
          } else layer.destroyTimeoutSeconds = value;
          return;
        case "domainType":
          if (typeof value !== "string" || !DOMAIN_TYPE_CHOICES.includes(value)) {
            fail(`must be one of ${DOMAIN_TYPE_CHOICES.join(", ")}`);
          } else layer.domainType = value as DomainType | "auto";
          return;
        default: {
          if (typeof value !== "string" || value === "") {
            fail("must be a non-empty string");
            return;
          }
          const field = key === "basePath" ? "storagePath" : key;
          (layer as Record<string, unknown>)[field] = value;
        }
      }
    });
  }
  if (problems.length > 0) {
    throw new ConfigError(problems.map(formatProblem).join("\n"), undefined, undefined, {
      problems,
    });
  }
  return layer;
}
