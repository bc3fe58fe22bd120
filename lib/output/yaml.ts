/**
 * Multi-document YAML output, apart from `format.ts`: the yaml package loads only for a command
 * that prints YAML (measured: loading it was ~20 ms of `foundry list`'s start-up).
 *
 * @example
 * ```ts
 * import { formatYamlDocuments } from "./yaml.ts";
 * console.log(formatYamlDocuments([{ name: "vm-1" }, { name: "vm-2" }]));
 * ```
 * @module
 */
import { stringify } from "npm:yaml@^2.9.1";

/** Objects as a multi-document YAML stream (`---` between documents), long lines not folded. */
export function formatYamlDocuments(docs: readonly unknown[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
}
