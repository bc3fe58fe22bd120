/**
 * The `hosts:` list of foundry's configuration file (issue 16), read from its YAML nodes so that
 * every problem names its line: unknown keys, duplicate names, bad URIs, labels and limits are
 * refused. Loaded by config_file.ts, which has the YAML parser loaded already.
 *
 * @module
 */
import { isMap, isScalar, isSeq, type YAMLMap } from "npm:yaml@^2.9.1";
import { labelKeyProblem, labelValueProblem } from "../config/selector.ts";
import { parseUri } from "../libvirt/uri.ts";
import type { HostEntry } from "./fleet_types.ts";

/** A host's name: `--host` and the HOST column use it. */
export const HOST_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** The most hosts a configuration may list. */
export const MAX_HOSTS = 1000;

const HOST_KEYS = ["name", "uri", "labels", "limits"] as const;
const LIMIT_KEYS = ["maxVms", "reserveMemoryGiB"] as const;

/** Records a problem at a source offset with its field path (parseYamlConfigDocument's `problem`). */
export type ProblemAt = (offset: number | undefined, path: string, message: string) => void;

/** A host name's problem, or undefined when it is a good name. */
export function hostNameProblem(name: string): string | undefined {
  if (name.length > 63 || !HOST_NAME_PATTERN.test(name)) {
    return "must be lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";
  }
  return undefined;
}

const offsetOf = (n: unknown): number | undefined =>
  (n as { range?: [number, number, number] } | null)?.range?.[0];

function scalarText(node: unknown): string | undefined {
  if (!isScalar(node)) return undefined;
  const v = node.value;
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean"
    ? String(v)
    : undefined;
}

/** Walks a mapping's pairs, refusing keys not in `allowed`. */
function eachField(
  map: YAMLMap,
  path: string,
  allowed: readonly string[],
  at: ProblemAt,
  fn: (key: string, value: unknown, offset: number | undefined, path: string) => void,
): void {
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    const p = `${path}.${key}`;
    if (!allowed.includes(key)) {
      at(offsetOf(pair.key), p, `unknown field "${key}"; valid fields: ${allowed.join(", ")}`);
      continue;
    }
    fn(key, pair.value, offsetOf(pair.value) ?? offsetOf(pair.key), p);
  }
}

/**
 * Reads the `hosts:` node: a sequence of `{name, uri, labels?, limits?}` mappings. Every problem
 * goes to `at`; the hosts without problems are returned.
 */
export function readHostsNode(
  node: unknown,
  offset: number | undefined,
  at: ProblemAt,
): HostEntry[] {
  if (!isSeq(node)) {
    at(offset, "hosts", "must be a list of {name, uri, labels, limits} entries");
    return [];
  }
  if (node.items.length > MAX_HOSTS) {
    at(offset, "hosts", `must list at most ${MAX_HOSTS} hosts, got ${node.items.length}`);
    return [];
  }
  const out: HostEntry[] = [];
  const seen = new Map<string, number>();
  node.items.forEach((item, i) => {
    const path = `hosts[${i}]`;
    if (!isMap(item)) {
      at(offsetOf(item) ?? offset, path, "must be a mapping {name, uri, labels, limits}");
      return;
    }
    const host: Partial<HostEntry> = {};
    let bad = false;
    const fail = (o: number | undefined, p: string, message: string) => {
      bad = true;
      at(o, p, message);
    };
    eachField(item, path, HOST_KEYS, fail, (key, value, o, p) => {
      if (key === "name" || key === "uri") {
        const text = scalarText(value);
        if (
          text === undefined || text === "" ||
          typeof (value as { value?: unknown }).value !== "string"
        ) {
          return fail(o, p, "must be a non-empty string");
        }
        if (key === "name") {
          const problem = hostNameProblem(text);
          if (problem) return fail(o, p, `${problem}, got ${JSON.stringify(text.slice(0, 100))}`);
          const before = seen.get(text);
          if (before !== undefined) {
            return fail(o, p, `duplicate host name "${text}" (also hosts[${before}])`);
          }
          seen.set(text, i);
          host.name = text;
        } else {
          try {
            parseUri(text, { runtimeDir: "/run/user/0", home: "/root" });
          } catch (e) {
            return fail(o, p, (e as Error).message);
          }
          host.uri = text;
        }
        return;
      }
      if (!isMap(value)) return fail(o, p, "must be a mapping");
      if (key === "labels") {
        const labels: Record<string, string> = {};
        for (const pair of value.items) {
          const k = isScalar(pair.key) ? String(pair.key.value) : "";
          const v = scalarText(pair.value);
          const lp = `${p}.${k}`;
          const problem = labelKeyProblem(k) ??
            (v === undefined ? "must be a string" : labelValueProblem(v));
          if (problem) fail(offsetOf(pair.value) ?? offsetOf(pair.key), lp, problem);
          else labels[k] = v!;
        }
        host.labels = labels;
        return;
      }
      const limits: NonNullable<HostEntry["limits"]> = {};
      eachField(value, p, LIMIT_KEYS, fail, (lk, lv, lo, lpath) => {
        const n = isScalar(lv) ? lv.value : undefined;
        if (lk === "maxVms") {
          if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
            return fail(
              lo,
              lpath,
              `must be a whole number of 0 or more, got ${JSON.stringify(n ?? null)}`,
            );
          }
          limits.maxVms = n;
        } else {
          if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
            return fail(
              lo,
              lpath,
              `must be a number of GiB of 0 or more, got ${JSON.stringify(n ?? null)}`,
            );
          }
          limits.reserveMemoryGiB = n;
        }
      });
      host.limits = limits;
    });
    for (const required of ["name", "uri"] as const) {
      if (
        host[required] === undefined &&
        !item.items.some((p) => isScalar(p.key) && p.key.value === required)
      ) {
        fail(offsetOf(item), `${path}.${required}`, "is required");
      }
    }
    if (!bad && host.name !== undefined && host.uri !== undefined) out.push(host as HostEntry);
  });
  return out;
}
