/**
 * YAML configuration files: parsed with positions, so every problem names its line and column.
 * Apart from `layered.ts` so that resolving flags, environment and defaults (and a configuration
 * file that does not exist) loads no YAML parser: a command loads this module when it has a file
 * to read.
 *
 * @example
 * ```ts
 * import { parseYamlConfig } from "./yaml_file.ts";
 * const file = parseYamlConfig("namespace: perf\n", "virtwork.yaml"); // { namespace: "perf" }
 * ```
 * @module
 */
import {
  type Document,
  isMap,
  isScalar,
  LineCounter,
  parseDocument,
  type YAMLMap,
} from "npm:yaml@^2.9.1";
import { ConfigError, type ConfigProblem, describe, readConfigText } from "./layered.ts";

/**
 * Reads a YAML configuration file that must hold a mapping.
 * @throws {ConfigError} for a missing file, invalid YAML (with line and column) or a non-mapping
 */
export async function readYamlConfig(path: string): Promise<Record<string, unknown>> {
  const text = await readConfigText(path);
  if (text === undefined) throw new ConfigError(`cannot read config file ${path}: file not found`);
  return parseYamlConfig(text, path);
}

/**
 * Parses YAML configuration text; see {@linkcode readYamlConfig}.
 * @throws {ConfigError} for invalid YAML (with line and column) or a non-mapping
 */
export function parseYamlConfig(text: string, name: string): Record<string, unknown> {
  const { doc, map, problems } = parseYamlConfigDocument(text, name);
  const first = problems[0];
  if (first !== undefined) {
    throw new ConfigError(
      `${name}:${first.line}:${first.column}: ${first.message}`,
      undefined,
      undefined,
      {
        problems,
      },
    );
  }
  return map === undefined ? {} : doc.toJS() as Record<string, unknown>;
}

/** A YAML configuration file parsed with positions; see {@linkcode parseYamlConfigDocument}. */
export interface YamlConfigDocument {
  /** The parsed document. */
  doc: Document.Parsed;
  /** The top-level mapping; undefined for an empty file and when the file has problems. */
  map: YAMLMap | undefined;
  /** Problems found: invalid YAML or a top level that is not a mapping, then those of `problem`. */
  problems: ConfigProblem[];
  /** Records a problem at a source offset of the text (its start when undefined). */
  problem(offset: number | undefined, path: string, message: string): void;
}

/**
 * Parses YAML configuration text keeping positions, for callers that check the file's fields
 * themselves and report every problem with its line and column. Duplicate keys are errors.
 */
export function parseYamlConfigDocument(text: string, file: string): YamlConfigDocument {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const problems: ConfigProblem[] = [];
  const problem = (offset: number | undefined, path: string, message: string) => {
    const { line, col } = lineCounter.linePos(offset ?? 0);
    problems.push({ file, line, column: col, path, message });
  };
  for (const err of doc.errors) {
    const message = err.message.replace(/ at line \d+, column \d+.*$/s, "");
    problem(err.pos[0], "", `invalid YAML: ${message}`);
  }
  let map: YAMLMap | undefined;
  const contents = doc.contents;
  if (
    problems.length === 0 && contents !== null && !(isScalar(contents) && contents.value === null)
  ) {
    if (isMap(contents)) map = contents;
    else {
      const what = describe(contents.toJSON());
      problem(contents.range?.[0], "", `must be a mapping of settings, got ${what}`);
    }
  }
  return { doc, map, problems, problem };
}
