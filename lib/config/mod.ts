/**
 * Configuration layering shared by the executables: flags > environment > YAML file > defaults.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./mod.ts";
 * const { values } = resolveConfig({ namespace: { kind: "string", default: "virtwork" } }, {
 *   env: { VIRTWORK_NAMESPACE: "perf" },
 * }, { envPrefix: "VIRTWORK_" });
 * ```
 * @module
 */
export {
  ConfigError,
  envName,
  FLAG_SOURCE,
  MAX_CONFIG_BYTES,
  readConfigText,
  resolveConfig,
  snakeCase,
} from "./layered.ts";
export { parseYamlConfig, parseYamlConfigDocument, readYamlConfig } from "./yaml_file.ts";
export type { YamlConfigDocument } from "./yaml_file.ts";
export type {
  ConfigErrorOptions,
  ConfigLayers,
  ConfigProblem,
  ConfigSchema,
  ConfigSource,
  ConfigValues,
  FieldKind,
  FieldSpec,
  ResolveOptions,
  ValueOf,
} from "./layered.ts";
export {
  formatSelector,
  labelKeyProblem,
  LabelSelectorError,
  labelValueProblem,
  matchesSelector,
  MAX_SELECTOR_LENGTH,
  parseLabelSelector,
  selectorFromLabels,
} from "./selector.ts";
export type { LabelSelector, SelectorOperator, SelectorRequirement } from "./selector.ts";
