/**
 * A small validator for Swagger 2.0 definitions, our own code: `$ref`, `type`, `format: int-or-string`,
 * `required`, `properties`, `items`, `additionalProperties` and `enum`. Objects with declared
 * `properties` are closed, as the API server's strict field validation treats them: an unknown field
 * is an error, which catches typos such as `runstrategy`.
 *
 * @example
 * ```ts
 * const v = await OpenApiValidator.fromFile("../shared/schemas/kubevirt-openapi-v2.json");
 * const problems = v.validate("v1.VirtualMachine", manifest);
 * ```
 * @module
 */

/** A Swagger 2.0 schema object (the parts this validator reads). */
export interface SchemaObject {
  $ref?: string;
  /** One type, or (in this schema, an extension of 2.0) a list of accepted types. */
  type?: string | string[];
  format?: string;
  required?: string[];
  properties?: Record<string, SchemaObject>;
  items?: SchemaObject;
  additionalProperties?: boolean | SchemaObject;
  enum?: unknown[];
}

/** One validation problem: a JSON path and what was wrong. */
export interface SchemaProblem {
  path: string;
  message: string;
}

/** Path of the KubeVirt schema, resolved from this file (the repository sits beside `shared/`). */
export const KUBEVIRT_SCHEMA_PATH = new URL(
  "../../../shared/schemas/kubevirt-openapi-v2.json",
  import.meta.url,
);

/** Validates values against the `definitions` of a Swagger 2.0 document. */
export class OpenApiValidator {
  readonly #definitions: Record<string, SchemaObject>;

  /** Wraps a parsed Swagger 2.0 document. */
  constructor(document: { definitions?: Record<string, SchemaObject> }) {
    if (!document.definitions) throw new TypeError("document has no definitions");
    this.#definitions = document.definitions;
  }

  /** Reads and parses a Swagger 2.0 JSON file. */
  static async fromFile(path: string | URL): Promise<OpenApiValidator> {
    return new OpenApiValidator(JSON.parse(await Deno.readTextFile(path)));
  }

  /** True when the document defines `name`. */
  has(name: string): boolean {
    return name in this.#definitions;
  }

  /** Validates `value` against `definitions[name]`; returns every problem found (empty when valid). */
  validate(name: string, value: unknown): SchemaProblem[] {
    const problems: SchemaProblem[] = [];
    this.#check({ $ref: `#/definitions/${name}` }, value, "", problems);
    return problems;
  }

  #resolve(ref: string): SchemaObject {
    const prefix = "#/definitions/";
    if (!ref.startsWith(prefix)) throw new TypeError(`unsupported $ref ${ref}`);
    const def = this.#definitions[ref.slice(prefix.length)];
    if (!def) throw new TypeError(`unknown $ref ${ref}`);
    return def;
  }

  #check(schema: SchemaObject, value: unknown, path: string, out: SchemaProblem[]): void {
    if (schema.$ref) schema = { ...this.#resolve(schema.$ref), ...withoutRef(schema) };
    const at = path === "" ? "." : path;
    if (value === null || value === undefined) return; // omitted/nullable: only `required` matters
    if (schema.enum && !schema.enum.includes(value)) {
      out.push({ path: at, message: `must be one of ${JSON.stringify(schema.enum)}` });
    }
    if (schema.format === "int-or-string") {
      if (typeof value !== "string" && !Number.isInteger(value)) {
        out.push({ path: at, message: `must be an integer or a string, got ${typeName(value)}` });
      }
      return;
    }
    if (Array.isArray(schema.type)) {
      const types = schema.type;
      const ok = types.some((t) => this.#matchesScalar(t, value));
      if (!ok) {
        out.push({
          path: at,
          message: `must be one of types ${types.join("|")}, got ${typeName(value)}`,
        });
      }
      return;
    }
    switch (schema.type) {
      case "string":
        if (typeof value !== "string") out.push({ path: at, message: expected("string", value) });
        return;
      case "boolean":
        if (typeof value !== "boolean") out.push({ path: at, message: expected("boolean", value) });
        return;
      case "integer":
        if (!Number.isInteger(value)) out.push({ path: at, message: expected("integer", value) });
        return;
      case "number":
        if (typeof value !== "number") out.push({ path: at, message: expected("number", value) });
        return;
      case "array":
        if (!Array.isArray(value)) {
          out.push({ path: at, message: expected("array", value) });
          return;
        }
        if (schema.items) {
          value.forEach((v, i) => this.#check(schema.items!, v, `${path}[${i}]`, out));
        }
        return;
      case "object":
      case undefined:
        if (schema.type === undefined && !schema.properties && !schema.additionalProperties) {
          return; // no type: anything (e.g. RawExtension)
        }
        if (typeof value !== "object" || Array.isArray(value)) {
          out.push({ path: at, message: expected("object", value) });
          return;
        }
        this.#checkObject(schema, value as Record<string, unknown>, path, out);
        return;
      default:
        throw new TypeError(`unsupported schema type ${schema.type} at ${at}`);
    }
  }

  #matchesScalar(type: string, value: unknown): boolean {
    switch (type) {
      case "string":
        return typeof value === "string";
      case "integer":
        return Number.isInteger(value);
      case "number":
        return typeof value === "number";
      case "boolean":
        return typeof value === "boolean";
      case "null":
        return value === null;
      default:
        throw new TypeError(`unsupported type ${type} in a type list`);
    }
  }

  #checkObject(
    schema: SchemaObject,
    obj: Record<string, unknown>,
    path: string,
    out: SchemaProblem[],
  ): void {
    for (const key of schema.required ?? []) {
      if (obj[key] === undefined) out.push({ path: `${path}.${key}`, message: "is required" });
    }
    const props = schema.properties;
    const extra = schema.additionalProperties;
    for (const [key, v] of Object.entries(obj)) {
      const sub = props?.[key];
      if (sub) this.#check(sub, v, `${path}.${key}`, out);
      else if (typeof extra === "object") this.#check(extra, v, `${path}.${key}`, out);
      else if (props && extra !== true) {
        out.push({ path: `${path}.${key}`, message: "is not a known field" });
      }
    }
  }
}

function withoutRef(s: SchemaObject): SchemaObject {
  const { $ref: _ref, ...rest } = s;
  return rest;
}

function typeName(v: unknown): string {
  return Array.isArray(v) ? "array" : v === null ? "null" : typeof v;
}

function expected(type: string, v: unknown): string {
  return `must be ${
    type === "integer" || type === "array" || type === "object" ? "an" : "a"
  } ${type}, got ${typeName(v)}`;
}

/** Formats problems as one line each, `path: message`. */
export function formatProblems(problems: readonly SchemaProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join("\n");
}
