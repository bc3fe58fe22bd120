/**
 * Kubernetes label selectors, parsed and matched the way `kubectl get -l` does: one implementation for
 * both executables (foundry filters its VMs with it; virtwork can check a selector before it goes to an
 * API server).
 *
 * Grammar (requirements separated by commas, all of which must hold):
 *
 * | requirement          | matches labels that                                  |
 * | -------------------- | ---------------------------------------------------- |
 * | `key=value`, `key==value` | have `key` with exactly `value`                 |
 * | `key!=value`         | lack `key`, or have it with another value           |
 * | `key in (a,b)`       | have `key` with one of the values                   |
 * | `key notin (a,b)`    | lack `key`, or have it with none of the values      |
 * | `key`                | have `key` (any value)                              |
 * | `!key`               | lack `key`                                          |
 * | `key>N`, `key<N`     | have `key` with an integer value above / below N    |
 *
 * Keys are `[prefix/]name` (prefix a DNS subdomain of at most 253 characters, name at most 63 of
 * letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit); values are empty or such
 * a name. Whitespace around words is allowed. An empty selector matches everything.
 *
 * @example
 * ```ts
 * import { matchesSelector, parseLabelSelector } from "./selector.ts";
 * const sel = parseLabelSelector("role in (web,db),env!=prod,!legacy");
 * console.log(matchesSelector(sel, { role: "web", env: "dev" })); // true
 * ```
 * @module
 */

/** Operators of a selector requirement, spelled as Kubernetes spells them in its API. */
export type SelectorOperator =
  | "="
  | "!="
  | "in"
  | "notin"
  | "exists"
  | "!"
  | "gt"
  | "lt";

/** One requirement of a selector: `key`, an operator and its values (none for `exists` and `!`). */
export interface SelectorRequirement {
  /** Label key. */
  readonly key: string;
  /** What the label must satisfy. */
  readonly operator: SelectorOperator;
  /** Values: one for `=`, `!=`, `gt`, `lt`; one or more for `in`, `notin`; none otherwise. */
  readonly values: readonly string[];
}

/** A parsed selector: every requirement must hold. */
export interface LabelSelector {
  /** Requirements, in the order given. */
  readonly requirements: readonly SelectorRequirement[];
}

/** A selector that is not valid Kubernetes selector syntax; the message says where and why. */
export class LabelSelectorError extends Error {
  /** The selector text as given. */
  readonly selector: string;
  /** What is wrong, without the selector. */
  readonly reason: string;
  /** Builds the error: `Invalid label selector 'TEXT': REASON`. */
  constructor(selector: string, reason: string) {
    super(`Invalid label selector ${quote(selector)}: ${reason}`);
    this.name = "LabelSelectorError";
    this.selector = selector;
    this.reason = reason;
  }
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
/** Longest selector text accepted: far above any real one, and keeps errors and parsing small. */
export const MAX_SELECTOR_LENGTH = 4096;

function quote(s: string): string {
  // Shown in a one-line error: control characters would break the line or drive a terminal.
  const shown = s.length > 200 ? `${s.slice(0, 200)}…` : s;
  // deno-lint-ignore no-control-regex
  return `'${shown.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, "?")}'`;
}

/** Why `key` is not a Kubernetes label key, or undefined when it is one. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (
      prefix === "" || prefix.length > 253 || !prefix.split(".").every((l) => DNS_LABEL.test(l))
    ) {
      return `key ${
        quote(key)
      }: the prefix must be a DNS subdomain (lowercase, at most 253 characters)`;
    }
  }
  if (!NAME.test(name)) {
    return `key ${quote(key)}: the name must be at most 63 letters, digits, '-', '_' or '.', ` +
      `starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a Kubernetes label value, or undefined when it is one. */
export function labelValueProblem(value: string): string | undefined {
  if (value === "" || NAME.test(value)) return undefined;
  return `value ${quote(value)}: must be empty or at most 63 letters, digits, '-', '_' or '.', ` +
    `starting and ending with a letter or digit`;
}

type Token =
  | { kind: "word"; text: string; at: number }
  | { kind: "op"; text: "=" | "==" | "!=" | "!" | "(" | ")" | "," | ">" | "<"; at: number }
  | { kind: "end"; at: number };

function tokenize(text: string, fail: (reason: string) => never): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === " " || c === "\t") {
      i++;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === "==" || two === "!=") {
      out.push({ kind: "op", text: two, at: i });
      i += 2;
      continue;
    }
    if ("=!(),<>".includes(c)) {
      out.push({ kind: "op", text: c as "=" | "!" | "(" | ")" | "," | "<" | ">", at: i });
      i++;
      continue;
    }
    let j = i;
    while (j < text.length && !" \t=!(),<>".includes(text[j]!)) j++;
    const word = text.slice(i, j);
    // deno-lint-ignore no-control-regex
    if (/[\x00-\x1f\x7f-\x9f]/.test(word)) fail(`control character at position ${i + 1}`);
    out.push({ kind: "word", text: word, at: i });
    i = j;
  }
  out.push({ kind: "end", at: text.length });
  return out;
}

/**
 * Parses a Kubernetes label selector. Several texts (repeated `-l` flags) are joined with commas, so
 * all of their requirements must hold.
 *
 * @throws {LabelSelectorError} on bad syntax, an invalid key or value, or an empty `in (...)` set
 */
export function parseLabelSelector(text: string | readonly string[]): LabelSelector {
  const whole = typeof text === "string" ? text : text.join(",");
  const fail = (reason: string): never => {
    throw new LabelSelectorError(whole, reason);
  };
  if (whole.length > MAX_SELECTOR_LENGTH) fail(`longer than ${MAX_SELECTOR_LENGTH} characters`);
  const tokens = tokenize(whole, fail);
  let p = 0;
  const peek = () => tokens[p]!;
  const next = () => tokens[p++]!;
  const at = (t: Token) => `at position ${t.at + 1}`;
  const describe = (t: Token) => t.kind === "end" ? "the end" : `'${t.text}' ${at(t)}`;
  const key = (t: Token): string => {
    if (t.kind !== "word") fail(`expected a label key, found ${describe(t)}`);
    const k = (t as { text: string }).text;
    const problem = labelKeyProblem(k);
    if (problem) fail(problem);
    return k;
  };
  const value = (allowEmpty: boolean, integer = false): string => {
    const t = peek();
    if (t.kind !== "word") {
      if (allowEmpty && (t.kind === "end" || t.text === "," || t.text === ")")) return "";
      fail(`expected a value, found ${describe(t)}`);
    }
    p++;
    const v = (t as { text: string }).text;
    if (integer) return v;
    const problem = labelValueProblem(v);
    if (problem) fail(problem);
    return v;
  };
  const requirements: SelectorRequirement[] = [];
  // An empty or blank selector selects everything, as in Kubernetes.
  if (peek().kind === "end") return { requirements };
  for (;;) {
    const first = next();
    if (first.kind === "op" && first.text === "!") {
      requirements.push({ key: key(next()), operator: "!", values: [] });
    } else {
      const k = key(first);
      const op = peek();
      if (op.kind === "end" || (op.kind === "op" && op.text === ",")) {
        requirements.push({ key: k, operator: "exists", values: [] });
      } else if (op.kind === "op" && (op.text === "=" || op.text === "==" || op.text === "!=")) {
        p++;
        requirements.push({
          key: k,
          operator: op.text === "!=" ? "!=" : "=",
          values: [value(true)],
        });
      } else if (op.kind === "op" && (op.text === ">" || op.text === "<")) {
        p++;
        const v = value(false, true);
        if (!/^-?\d+$/.test(v)) fail(`'${op.text}' needs an integer value, got ${quote(v)}`);
        requirements.push({ key: k, operator: op.text === ">" ? "gt" : "lt", values: [v] });
      } else if (op.kind === "word" && (op.text === "in" || op.text === "notin")) {
        p++;
        const open = next();
        if (!(open.kind === "op" && open.text === "(")) {
          fail(`expected '(' after '${op.text}', found ${describe(open)}`);
        }
        const values: string[] = [];
        if (peek().kind === "op" && (peek() as { text: string }).text === ")") {
          fail(`'${op.text}' needs at least one value ${at(peek())}`);
        }
        for (;;) {
          values.push(value(true));
          const sep = next();
          if (sep.kind === "op" && sep.text === ")") break;
          if (!(sep.kind === "op" && sep.text === ",")) {
            fail(`expected ',' or ')' in the values of '${op.text}', found ${describe(sep)}`);
          }
        }
        requirements.push({ key: k, operator: op.text, values: [...new Set(values)] });
      } else {
        fail(
          `expected one of '=', '==', '!=', 'in', 'notin', '>', '<', ',' or the end after ` +
            `${quote(k)}, found ${describe(op)}`,
        );
      }
    }
    const sep = next();
    if (sep.kind === "end") break;
    if (!(sep.kind === "op" && sep.text === ",")) fail(`expected ',' found ${describe(sep)}`);
    if (peek().kind === "end") fail("a selector cannot end with ','");
  }
  return { requirements };
}

/** Whether `labels` satisfy every requirement of `sel` (an empty selector matches everything). */
export function matchesSelector(
  sel: LabelSelector,
  labels: Readonly<Record<string, string>>,
): boolean {
  return sel.requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const v = has ? labels[r.key]! : undefined;
    switch (r.operator) {
      case "=":
        return has && v === r.values[0];
      case "!=":
        return !has || v !== r.values[0];
      case "in":
        return has && r.values.includes(v!);
      case "notin":
        return !has || !r.values.includes(v!);
      case "exists":
        return has;
      case "!":
        return !has;
      case "gt":
      case "lt": {
        if (!has || !/^-?\d+$/.test(v!)) return false;
        const n = Number(v);
        const limit = Number(r.values[0]);
        return r.operator === "gt" ? n > limit : n < limit;
      }
    }
  });
}

/** The selector in Kubernetes' canonical text, as an API server's `labelSelector` parameter takes it. */
export function formatSelector(sel: LabelSelector): string {
  return sel.requirements.map((r) => {
    switch (r.operator) {
      case "=":
      case "!=":
        return `${r.key}${r.operator}${r.values[0]}`;
      case "in":
      case "notin":
        return `${r.key} ${r.operator} (${r.values.join(",")})`;
      case "exists":
        return r.key;
      case "!":
        return `!${r.key}`;
      case "gt":
        return `${r.key}>${r.values[0]}`;
      case "lt":
        return `${r.key}<${r.values[0]}`;
    }
  }).join(",");
}

/** A selector of `key=value` requirements for each entry of `labels`. */
export function selectorFromLabels(labels: Readonly<Record<string, string>>): LabelSelector {
  return {
    requirements: Object.entries(labels).map(([key, v]) => ({ key, operator: "=", values: [v] })),
  };
}
