/**
 * Loads `VirtualMachine` documents from YAML, normalises them and checks every rule of the format.
 *
 * All problems of a file are collected and thrown together as one {@link ValidationError}; each names the
 * file, line, column and field path of the offending node.
 *
 * @example
 * ```ts
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/simple-vm.yaml");
 * console.log(vm?.metadata.name);
 * ```
 *
 * @module
 */

import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments } from "npm:yaml@^2.9.1";
import type { Alias, Document, Node, Pair, YAMLMap } from "npm:yaml@^2.9.1";
import { parseSshPublicKey, SshKeyError } from "../cloudinit/ssh_key.ts";
import {
  codePointName,
  escapeForbidden,
  forbiddenCharacter,
  quoteForTerminal,
} from "../cloudinit/safe_text.ts";
import { type Problem, ValidationError } from "./errors.ts";
import { ipv4ToNumber, isIPv6, parseCidr, parseIPv4 } from "./_net.ts";
import {
  API_VERSION,
  type BootDisk,
  type CloudInit,
  CPU_MODES,
  type CpuMode,
  type DataDisk,
  DOMAIN_TYPES,
  type DomainType,
  type GuestFile,
  KIND,
  LIMITS,
  type NetworkInterface,
  type ObjectMeta,
  RESERVED_GUEST_PATHS,
  type Resources,
  type UserDataExtras,
  type VirtualMachine,
  type VirtualMachineSpec,
} from "./types.ts";

/** Pattern of `metadata.name` after lowercasing. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$/;

/** Longest `metadata.name`: it doubles as the hostname when no FQDN is given, so one DNS label. */
export const NAME_MAX_LENGTH = 63;

/** Key types accepted in `spec.cloudInit.sshAuthorizedKeys`. */
export { SSH_KEY_TYPES } from "../cloudinit/ssh_key.ts";

/** Problems shown of one file; the rest are counted in a last line. */
const PROBLEMS_SHOWN = 50;

const DATA_DEVICE_PATTERN = /^vd([b-z]|[a-z]{2})$/;
const POOL_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}$/;
const VOLUME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}$/;
const BRIDGE_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DISK_SERIAL_PATTERN = /^[A-Za-z0-9_-]+$/;
const PACKAGE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9+._:~-]{0,127}$/;
const PERMISSIONS_PATTERN = /^[0-7]{3,4}$/;
/** Field path of a `writeFiles` entry's content, as prepare() builds it. */
const FILE_CONTENT_PATH = /^spec\.cloudInit\.userData\.writeFiles\[\d+\]\.content$/;

/**
 * Reads a YAML file and returns its `VirtualMachine` documents, normalised and validated.
 *
 * @param path file to read; its name appears in every problem
 * @throws {ValidationError} listing every problem of the file
 */
export async function loadVirtualMachines(path: string): Promise<VirtualMachine[]> {
  return parseVirtualMachines(await readSpecFile(path), path);
}

/**
 * The text of a spec file: a regular file (a FIFO or device could block or never end) of at most
 * `LIMITS.fileBytes`, checked on its size before it is read, and valid UTF-8.
 */
async function readSpecFile(path: string): Promise<string> {
  const refuse = (message: string, line = 1): never => {
    throw new ValidationError([{
      file: escapeForbidden(path),
      line,
      column: 1,
      path: "",
      message,
    }]);
  };
  // A FIFO would block open() itself until a writer comes: look before opening.
  const before = await Deno.stat(path);
  if (!before.isFile) refuse("is not a regular file");
  if (before.size > LIMITS.fileBytes) {
    refuse(`is ${before.size} bytes, more than the limit of ${LIMITS.fileBytes} bytes`);
  }
  using file = await Deno.open(path, { read: true });
  const st = await file.stat();
  if (!st.isFile) refuse("is not a regular file");
  if (st.size > LIMITS.fileBytes) {
    refuse(`is ${st.size} bytes, more than the limit of ${LIMITS.fileBytes} bytes`);
  }
  // The file may grow after stat: never read more than the limit and one byte.
  const buf = new Uint8Array(LIMITS.fileBytes + 1);
  let length = 0;
  while (length < buf.length) {
    const n = await file.read(buf.subarray(length));
    if (n === null) break;
    length += n;
  }
  if (length > LIMITS.fileBytes) refuse(`is more than the limit of ${LIMITS.fileBytes} bytes`);
  const bytes = buf.subarray(0, length);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const text = new TextDecoder("utf-8").decode(bytes);
    const at = text.indexOf("\uFFFD");
    const line = text.slice(0, at < 0 ? 0 : at).split("\n").length;
    return refuse("is not UTF-8 text (a binary file?)", line);
  }
}

/**
 * Parses YAML text holding one or more `VirtualMachine` documents (separated by `---`).
 *
 * Normalisation: `metadata.name` and `spec.cloudInit.fqdn` are lowercased, `metadata.generation` defaults
 * to 1, and a `status` section is dropped (foundry computes status; it never reads it from a file).
 *
 * @param text the YAML (JSON, being YAML, works too)
 * @param file name used in problems, e.g. `vm.yaml`
 * @throws {ValidationError} listing every problem of the text
 */
export function parseVirtualMachines(text: string, file: string): VirtualMachine[] {
  const lineCounter = new LineCounter();
  const checker = new Checker(file, lineCounter);
  if (text.length > LIMITS.fileBytes) {
    checker.problemAt(0, "", `is more than the limit of ${LIMITS.fileBytes} bytes`);
    throw new ValidationError(checker.problems);
  }
  // uniqueKeys is checked by prepare() with a set per mapping: the yaml package compares each
  // key with every earlier one, quadratic in the size of a mapping.
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const all = Array.isArray(docs) ? docs : [];
  const extra = all.filter((d) => d.contents !== null)[LIMITS.vmsPerFile];
  if (extra !== undefined) {
    checker.problemAt(
      extra.contents?.range?.[0] ?? 0,
      "",
      `a file may hold at most ${LIMITS.vmsPerFile} VirtualMachine documents; this is one more`,
    );
    throw new ValidationError(checker.problems);
  }
  const vms: VirtualMachine[] = [];
  for (const doc of all) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const message = err.message.replace(/ at line \d+, column \d+.*$/s, "");
        checker.problemAt(err.pos[0], "", `invalid YAML: ${lowerFirst(message)}`);
      }
      continue;
    }
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null)) continue;
    checker.doc = doc;
    checker.docLine = lineCounter.linePos(contents.range?.[0] ?? 0).line;
    if (!checker.prepare(contents)) continue;
    const vm = checker.virtualMachine(contents);
    if (vm !== undefined) vms.push(vm);
  }
  if (checker.problems.length === 0 && vms.length === 0) {
    checker.problemAt(0, "", `no ${KIND} document found`);
  }
  if (checker.problems.length > 0) {
    const sorted = [...checker.problems].sort((a, b) => a.line - b.line || a.column - b.column);
    const shown = sorted.slice(0, PROBLEMS_SHOWN);
    const last = shown[shown.length - 1]!;
    if (sorted.length > shown.length) {
      shown.push({
        ...last,
        path: "",
        message: `and ${sorted.length - shown.length} more problems`,
      });
    }
    throw new ValidationError(shown);
  }
  return vms;
}

/**
 * Parses a file that must hold exactly one `VirtualMachine`.
 *
 * @throws {ValidationError} on any problem, or when the text holds more than one document
 */
export function parseVirtualMachine(text: string, file: string): VirtualMachine {
  const vms = parseVirtualMachines(text, file);
  const [vm] = vms;
  if (vm === undefined || vms.length !== 1) {
    throw new ValidationError([{
      file,
      line: 1,
      column: 1,
      path: "",
      message: `expected exactly one ${KIND} document, got ${vms.length}`,
    }]);
  }
  return vm;
}

/**
 * The valid name closest to `name` (case-insensitive edit distance), or undefined when none is close.
 *
 * @example
 * ```ts
 * suggest("vcpu", ["vcpus", "memoryGiB"]); // "vcpus"
 * ```
 */
export function suggest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(name.length / 3));
  return bestDistance <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

function lowerFirst(s: string): string {
  return s.length > 0 ? s[0]!.toLowerCase() + s.slice(1) : s;
}

/** A user's string for a message: quoted, escaped, and cut short when long. */
function shown(v: string): string {
  const quoted = v.length > 60 ? `${quoteForTerminal(v.slice(0, 57))}...` : quoteForTerminal(v);
  // Non-ASCII as escapes: a Cyrillic "е" in a name or field must not look like a Latin "e".
  return quoted.replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A short, safe rendering of a scalar for "got ..." in messages. */
function describe(node: unknown): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === "string") {
      return shown(v);
    }
    return escapeForbidden(String(v));
  }
  return "nothing";
}

/** Where the value of an absent key is reported: at the key when there is one, else at the map. */
interface Field {
  node: Node | undefined;
  keyNode: Node | undefined;
}

class Checker {
  readonly problems: Problem[] = [];
  doc: Document.Parsed | undefined;
  /** Addresses used by earlier documents of the file: tap names and MACs derive from them. */
  readonly fileIps = new Map<string, string>();
  /** Names used by earlier documents of the file, with the line of their document. */
  readonly fileNames = new Map<string, number>();
  /** Line where the current document starts. */
  docLine = 1;
  /** Field paths already suggested for a misspelt key: their absence is not reported again. */
  readonly #suggested = new Set<string>();
  /** Each alias's node, found in one pass over the document (yaml's own lookup walks it). */
  readonly #aliasTargets = new Map<Alias, Node>();
  /** Scalars already reported (a forbidden character): no field check reports them again. */
  readonly #reported = new Set<Node>();
  /** Aliases seen in the file so far. */
  #aliases = 0;

  constructor(readonly file: string, readonly lineCounter: LineCounter) {}

  problemAt(offset: number, path: string, message: string): void {
    const { line, col } = this.lineCounter.linePos(offset);
    this.problems.push({
      file: escapeForbidden(this.file),
      line,
      column: col,
      path: escapeForbidden(path),
      message: escapeForbidden(message),
    });
  }

  /**
   * One pass over a document before its fields are checked, in time linear in its size: resolves
   * every alias (at most LIMITS.aliasesPerFile in a file), refuses duplicate keys, nesting deeper
   * than LIMITS.nestingDepth and any string (key or value) with a forbidden character. Returns
   * false when the document cannot be checked further.
   */
  prepare(root: Node): boolean {
    const anchors = new Map<string, Node>();
    let fatal = false;
    const visit = (node: unknown, path: string, depth: number): void => {
      if (fatal || node === null || node === undefined) return;
      if (isAlias(node)) {
        if (++this.#aliases > LIMITS.aliasesPerFile) {
          this.problem(
            node,
            path,
            `a file may use at most ${LIMITS.aliasesPerFile} aliases, got more than ${LIMITS.aliasesPerFile} aliases`,
          );
          fatal = true;
          return;
        }
        const target = anchors.get(node.source);
        if (target !== undefined) this.#aliasTargets.set(node, target);
        else {
          this.problem(
            node,
            path,
            `alias ${
              quoteForTerminal(`*${node.source}`)
            } refers to no anchor before it in this document`,
          );
          this.#reported.add(node);
        }
        return;
      }
      if (depth > LIMITS.nestingDepth) {
        this.problem(node as Node, path, `nested more than ${LIMITS.nestingDepth} levels deep`);
        fatal = true;
        return;
      }
      if (isScalar(node)) {
        if (typeof node.value === "string") {
          // A file's content is the one string that may span lines (and hold tabs).
          const bad = forbiddenCharacter(
            node.value,
            FILE_CONTENT_PATH.test(path) ? "\n\t" : "",
          );
          if (bad !== undefined) {
            this.problem(
              node,
              path,
              `must not contain control characters, got ${
                codePointName(bad.codePoint)
              } at character ${bad.index + 1}`,
            );
            this.#reported.add(node);
          }
        }
      } else if (isMap(node)) {
        const seen = new Set<unknown>();
        for (const pair of (node as YAMLMap<unknown, unknown>).items) {
          visit(pair.key, path, depth + 1);
          const key = isScalar(pair.key) ? pair.key.value : undefined;
          const keyText = typeof key === "string" && !this.#reported.has(pair.key as Node)
            ? key
            : undefined;
          if (key !== undefined && key !== null && typeof key !== "object") {
            if (seen.has(key)) {
              this.problem(
                pair.key as Node,
                keyText === undefined ? path : join(path, keyText),
                `duplicate key ${describe(pair.key)}`,
              );
              this.#reported.add(pair.key as Node);
            }
            seen.add(key);
          }
          visit(pair.value, keyText === undefined ? path : join(path, keyText), depth + 1);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => visit(item, `${path}[${i}]`, depth + 1));
      }
      // Set after the children, so an alias inside its own anchor's node never makes a cycle.
      const anchor = (node as { anchor?: string }).anchor;
      if (anchor !== undefined) anchors.set(anchor, node as Node);
    };
    visit(root, "", 0);
    return !fatal;
  }

  /** Whether prepare() reported this node already. */
  reported(node: unknown): boolean {
    return this.#reported.has(node as Node);
  }

  problem(node: Node | Pair | undefined, path: string, message: string): void {
    // A node prepare() reported (a control character, an unresolved alias) is not reported again.
    if (node !== undefined && this.#reported.has(node as Node)) return;
    const range = node === undefined ? undefined : "range" in node ? node.range : undefined;
    const keyRange = node !== undefined && "key" in node && isScalar(node.key)
      ? node.key.range
      : undefined;
    this.problemAt(range?.[0] ?? keyRange?.[0] ?? 0, path, message);
  }

  deref(node: unknown): Node | undefined {
    if (isAlias(node)) {
      // An unresolved alias stays itself: it was reported, and problems about it are not repeated.
      const target = this.#aliasTargets.get(node);
      return target === undefined ? node : this.deref(target);
    }
    if (node === null || node === undefined) return undefined;
    if (isScalar(node) && node.value === null) return undefined;
    return node as Node;
  }

  /** Checks that `node` is a mapping with only `allowed` keys; returns its fields by name. */
  fields(
    node: Node,
    path: string,
    allowed: readonly string[],
  ): Map<string, Field> | undefined {
    if (!isMap(node)) {
      this.problem(node, path, `must be a mapping, got ${describe(node)}`);
      return undefined;
    }
    const out = new Map<string, Field>();
    for (const pair of (node as YAMLMap<unknown, unknown>).items) {
      const keyNode = this.deref(pair.key);
      if (this.reported(keyNode)) continue;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== "string") {
        this.problem(keyNode, path, `field names must be strings, got ${describe(keyNode)}`);
        continue;
      }
      const fieldPath = join(path, key);
      if (!allowed.includes(key)) {
        const hint = suggest(key, allowed);
        if (hint !== undefined) this.#suggested.add(join(path, hint));
        this.problem(
          keyNode,
          fieldPath,
          hint !== undefined
            ? `unknown field ${shown(key)}, did you mean "${hint}"?`
            : `unknown field ${shown(key)}; valid fields: ${allowed.join(", ")}`,
        );
        continue;
      }
      out.set(key, { node: this.deref(pair.value), keyNode });
    }
    return out;
  }

  /** Reports a required field that is absent, at its key when present (empty value), else at `parent`. */
  missing(parent: Node, f: Field | undefined, path: string, what = "is required"): void {
    if (f === undefined && this.#suggested.has(path)) return;
    this.problem(f?.keyNode ?? parent, path, what);
  }

  string(f: Field | undefined, path: string, parent: Node, required: boolean): string | undefined {
    if (f?.node === undefined) {
      if (required) this.missing(parent, f, path);
      return undefined;
    }
    if (this.reported(f.node)) return undefined;
    if (!isScalar(f.node) || typeof f.node.value !== "string") {
      this.problem(f.node, path, `must be a string, got ${describe(f.node)}`);
      return undefined;
    }
    return f.node.value;
  }

  /** A string value whose content must never be echoed (keys, hashes). */
  secret(node: Node | undefined, path: string): string | undefined {
    if (node === undefined || this.reported(node)) return undefined;
    if (!isScalar(node) || typeof node.value !== "string") {
      const what = isMap(node) ? "a mapping" : isSeq(node) ? "a list" : `a ${typeof node}`;
      this.problem(
        node,
        path,
        `must be a string, got ${isScalar(node) ? typeof node.value : what}`,
      );
      return undefined;
    }
    return node.value;
  }

  boolean(f: Field | undefined, path: string): boolean | undefined {
    if (f?.node === undefined) return undefined;
    if (!isScalar(f.node) || typeof f.node.value !== "boolean") {
      this.problem(f.node, path, `must be true or false, got ${describe(f.node)}`);
      return undefined;
    }
    return f.node.value;
  }

  positiveInteger(
    f: Field | undefined,
    path: string,
    parent: Node,
    required: boolean,
    max = Number.MAX_SAFE_INTEGER,
  ): number | undefined {
    if (f?.node === undefined) {
      if (required) this.missing(parent, f, path);
      return undefined;
    }
    const v = isScalar(f.node) ? f.node.value : undefined;
    if (typeof v === "number" && Number.isFinite(v) && v > max) {
      this.problem(f.node, path, `must be at most ${max}, got ${describe(f.node)}`);
      return undefined;
    }
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      this.problem(f.node, path, `must be a positive integer, got ${describe(f.node)}`);
      return undefined;
    }
    return v;
  }

  list(f: Field | undefined, path: string, max: number, sensitive = false): Node[] | undefined {
    if (f?.node === undefined) return undefined;
    if (!isSeq(f.node)) {
      const got = sensitive && isScalar(f.node) ? `a ${typeof f.node.value}` : describe(f.node);
      this.problem(f.node, path, `must be a list, got ${got}`);
      return undefined;
    }
    if (f.node.items.length > max) {
      this.problem(f.node, path, `may have at most ${max} entries, got ${f.node.items.length}`);
      return undefined;
    }
    return f.node.items.map((item) => this.deref(item) ?? (item as Node));
  }

  stringMap(
    f: Field | undefined,
    path: string,
    max: number,
    check?: (key: string, value: string, keyNode: Node, valueNode: Node) => void,
  ): Record<string, string> | undefined {
    if (f?.node === undefined) return undefined;
    if (!isMap(f.node)) {
      this.problem(f.node, path, `must be a mapping of strings, got ${describe(f.node)}`);
      return undefined;
    }
    const items = (f.node as YAMLMap<unknown, unknown>).items;
    if (items.length > max) {
      this.problem(f.node, path, `may have at most ${max} entries, got ${items.length}`);
      return undefined;
    }
    const out: Record<string, string> = {};
    for (const pair of items) {
      const keyNode = this.deref(pair.key);
      if (this.reported(keyNode) || this.reported(this.deref(pair.value))) continue;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== "string" || keyNode === undefined) {
        this.problem(keyNode, path, `keys must be strings, got ${describe(keyNode)}`);
        continue;
      }
      const valueNode = this.deref(pair.value);
      const keyPath = join(path, key);
      if (!isScalar(valueNode) || typeof valueNode.value !== "string") {
        this.problem(
          valueNode ?? keyNode,
          keyPath,
          `must be a string, got ${describe(valueNode)}` +
            (isScalar(valueNode) && valueNode.value !== null ? " (quote it)" : ""),
        );
        continue;
      }
      check?.(key, valueNode.value, keyNode, valueNode);
      // defineProperty: a key such as "__proto__" is data, not the object's prototype.
      Object.defineProperty(out, key, {
        value: valueNode.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }

  virtualMachine(node: Node): VirtualMachine | undefined {
    const before = this.problems.length;
    const f = this.fields(node, "", ["apiVersion", "kind", "metadata", "spec", "status"]);
    if (f === undefined) return undefined;
    const apiVersion = this.string(f.get("apiVersion"), "apiVersion", node, true);
    if (apiVersion !== undefined && apiVersion !== API_VERSION) {
      this.problem(
        f.get("apiVersion")?.node,
        "apiVersion",
        `must be ${API_VERSION}, got "${apiVersion}"`,
      );
    }
    const kind = this.string(f.get("kind"), "kind", node, true);
    if (kind !== undefined && kind !== KIND) {
      this.problem(f.get("kind")?.node, "kind", `must be ${KIND}, got "${kind}"`);
    }
    const metaField = f.get("metadata");
    const metadata = metaField?.node === undefined
      ? this.missing(node, metaField, "metadata")
      : this.metadata(metaField.node);
    const specField = f.get("spec");
    const spec = specField?.node === undefined
      ? this.missing(node, specField, "spec")
      : this.spec(specField.node);
    if (this.problems.length > before || metadata === undefined || spec === undefined) {
      return undefined;
    }
    return { apiVersion: API_VERSION, kind: KIND, metadata, spec };
  }

  metadata(node: Node): ObjectMeta | undefined {
    const f = this.fields(node, "metadata", ["name", "labels", "annotations", "generation"]);
    if (f === undefined) return undefined;
    const raw = this.string(f.get("name"), "metadata.name", node, true);
    let name: string | undefined;
    if (raw !== undefined) {
      const lower = raw.toLowerCase();
      if (lower.length > NAME_MAX_LENGTH) {
        this.problem(
          f.get("name")?.node,
          "metadata.name",
          `must be at most ${NAME_MAX_LENGTH} characters, got ${lower.length}`,
        );
      } else if (!NAME_PATTERN.test(lower)) {
        this.problem(
          f.get("name")?.node,
          "metadata.name",
          `must start and end with a letter or digit and contain only letters, digits, "-" and "_", got ${
            shown(raw)
          }`,
        );
      } else {
        name = lower;
        const earlier = this.fileNames.get(lower);
        if (earlier !== undefined) {
          this.problem(
            f.get("name")?.node,
            "metadata.name",
            `duplicate name "${lower}", also used by the VirtualMachine at line ${earlier}`,
          );
        } else {
          this.fileNames.set(lower, this.docLine);
        }
      }
    }
    const labels = this.stringMap(
      f.get("labels"),
      "metadata.labels",
      LIMITS.labels,
      (k, v, kn, vn) => {
        if (!isLabelKey(k)) {
          this.problem(
            kn,
            join("metadata.labels", k),
            `label keys must be [prefix/]name with a name of at most 63 letters, digits, "-", "_", "." starting and ending with a letter or digit, got ${
              shown(k)
            }`,
          );
        }
        if (v !== "" && !LABEL_NAME.test(v)) {
          this.problem(
            vn,
            join("metadata.labels", k),
            `label values must be empty or at most 63 letters, digits, "-", "_", "." starting and ending with a letter or digit, got ${
              shown(v)
            }`,
          );
        }
      },
    );
    let annotationChars = 0;
    const annotations = this.stringMap(
      f.get("annotations"),
      "metadata.annotations",
      LIMITS.annotations,
      (k, v, kn) => {
        annotationChars += k.length + v.length;
        if (k.length > LIMITS.annotationKeyLength) {
          this.problem(
            kn,
            "metadata.annotations",
            `annotation keys may have at most ${LIMITS.annotationKeyLength} characters, got ${k.length}`,
          );
        }
      },
    );
    if (annotationChars > LIMITS.annotationsTotalLength) {
      this.problem(
        f.get("annotations")?.node,
        "metadata.annotations",
        `keys and values together may have at most ${LIMITS.annotationsTotalLength} characters, got ${annotationChars}`,
      );
    }
    const generation = this.positiveInteger(
      f.get("generation"),
      "metadata.generation",
      node,
      false,
    );
    if (name === undefined) return undefined;
    const meta: ObjectMeta = { name, generation: generation ?? 1 };
    if (labels !== undefined) meta.labels = labels;
    if (annotations !== undefined) meta.annotations = annotations;
    return meta;
  }

  spec(node: Node): VirtualMachineSpec | undefined {
    const before = this.problems.length;
    const f = this.fields(node, "spec", [
      "vcpus",
      "memoryGiB",
      "bootDisk",
      "dataDisks",
      "networkInterfaces",
      "cloudInit",
      "cpuMode",
      "autostart",
      "storagePool",
      "domainType",
      "resources",
    ]);
    if (f === undefined) return undefined;
    const vcpus = this.positiveInteger(f.get("vcpus"), "spec.vcpus", node, true, LIMITS.vcpus);
    const memoryGiB = this.memory(f.get("memoryGiB"), node);
    const resField = f.get("resources");
    const resources = resField?.node === undefined
      ? undefined
      : this.resources(resField.node, vcpus, memoryGiB);
    const bootField = f.get("bootDisk");
    const bootDisk = bootField?.node === undefined
      ? this.missing(node, bootField, "spec.bootDisk")
      : this.bootDisk(bootField.node);
    const dataDisks = this.dataDisks(f.get("dataDisks"));
    const nicField = f.get("networkInterfaces");
    const networkInterfaces = nicField?.node === undefined
      ? this.missing(node, nicField, "spec.networkInterfaces", "needs at least one interface")
      : this.networkInterfaces(nicField.node);
    const ciField = f.get("cloudInit");
    const cloudInit = ciField?.node === undefined ? undefined : this.cloudInit(ciField.node);
    const cpuMode = this.oneOf(f.get("cpuMode"), "spec.cpuMode", CPU_MODES);
    const autostart = this.boolean(f.get("autostart"), "spec.autostart");
    const storagePool = this.pool(f.get("storagePool"), "spec.storagePool", node);
    const domainType = this.oneOf(f.get("domainType"), "spec.domainType", DOMAIN_TYPES);
    if (
      this.problems.length > before || vcpus === undefined || memoryGiB === undefined ||
      bootDisk === undefined || networkInterfaces === undefined
    ) {
      return undefined;
    }
    const spec: VirtualMachineSpec = { vcpus, memoryGiB, bootDisk, networkInterfaces };
    if (dataDisks !== undefined) spec.dataDisks = dataDisks;
    if (cloudInit !== undefined) spec.cloudInit = cloudInit;
    if (cpuMode !== undefined) spec.cpuMode = cpuMode as CpuMode;
    if (autostart !== undefined) spec.autostart = autostart;
    if (storagePool !== undefined) spec.storagePool = storagePool;
    if (domainType !== undefined) spec.domainType = domainType as DomainType;
    if (resources !== undefined) spec.resources = resources;
    return spec;
  }

  /** `spec.resources`: resize headroom, never below the `vcpus` and `memoryGiB` in use. */
  resources(
    node: Node,
    vcpus: number | undefined,
    memoryGiB: number | undefined,
  ): Resources | undefined {
    const f = this.fields(node, "spec.resources", ["maxVcpus", "maxMemoryGiB"]);
    if (f === undefined) return undefined;
    const before = this.problems.length;
    const maxVcpus = this.positiveInteger(
      f.get("maxVcpus"),
      "spec.resources.maxVcpus",
      node,
      false,
      LIMITS.vcpus,
    );
    const memField = f.get("maxMemoryGiB");
    const maxMemoryGiB = memField?.node === undefined
      ? undefined
      : this.memory(memField, node, "spec.resources.maxMemoryGiB");
    if (maxVcpus !== undefined && vcpus !== undefined && maxVcpus < vcpus) {
      this.problem(
        f.get("maxVcpus")?.node,
        "spec.resources.maxVcpus",
        `must be at least spec.vcpus (${vcpus}), got ${maxVcpus}`,
      );
    }
    if (maxMemoryGiB !== undefined && memoryGiB !== undefined && maxMemoryGiB < memoryGiB) {
      this.problem(
        memField?.node,
        "spec.resources.maxMemoryGiB",
        `must be at least spec.memoryGiB (${memoryGiB}), got ${maxMemoryGiB}`,
      );
    }
    if (this.problems.length > before) return undefined;
    const out: Resources = {};
    if (maxVcpus !== undefined) out.maxVcpus = maxVcpus;
    if (maxMemoryGiB !== undefined) out.maxMemoryGiB = maxMemoryGiB;
    return out;
  }

  memory(f: Field | undefined, parent: Node, path = "spec.memoryGiB"): number | undefined {
    if (f?.node === undefined) {
      this.missing(parent, f, path);
      return undefined;
    }
    const v = isScalar(f.node) ? f.node.value : undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      this.problem(f.node, path, `must be a positive number, got ${describe(f.node)}`);
      return undefined;
    }
    if (v > LIMITS.memoryGiB) {
      this.problem(f.node, path, `must be at most ${LIMITS.memoryGiB} (16 TiB), got ${v}`);
      return undefined;
    }
    if (!Number.isInteger(v * 1024)) {
      this.problem(f.node, path, `must be a whole number of MiB (a multiple of 1/1024), got ${v}`);
      return undefined;
    }
    return v;
  }

  oneOf(f: Field | undefined, path: string, values: readonly string[]): string | undefined {
    if (f?.node === undefined) return undefined;
    const v = isScalar(f.node) ? f.node.value : undefined;
    if (typeof v !== "string" || !values.includes(v)) {
      this.problem(
        f.node,
        path,
        `must be one of ${values.join(", ")}, got ${describe(f.node)}`,
      );
      return undefined;
    }
    return v;
  }

  pool(f: Field | undefined, path: string, parent: Node): string | undefined {
    const v = this.string(f, path, parent, false);
    if (v !== undefined && !POOL_PATTERN.test(v)) {
      this.problem(
        f?.node,
        path,
        `must be a pool name of letters, digits, "_", ".", "+", "-", got ${shown(v)}`,
      );
      return undefined;
    }
    return v;
  }

  bootDisk(node: Node): BootDisk | undefined {
    const before = this.problems.length;
    const f = this.fields(node, "spec.bootDisk", ["sizeGB", "image", "imagePool", "empty"]);
    if (f === undefined) return undefined;
    const sizeGB = this.positiveInteger(
      f.get("sizeGB"),
      "spec.bootDisk.sizeGB",
      node,
      true,
      LIMITS.diskSizeGB,
    );
    const image = this.string(f.get("image"), "spec.bootDisk.image", node, false);
    const imagePool = this.pool(f.get("imagePool"), "spec.bootDisk.imagePool", node);
    const empty = this.boolean(f.get("empty"), "spec.bootDisk.empty");
    if (empty === true && image !== undefined) {
      this.problem(
        f.get("image")?.node,
        "spec.bootDisk.image",
        "must not be set together with empty: true",
      );
    } else if (empty !== true && image === undefined && f.get("image")?.node === undefined) {
      this.problem(
        f.get("image")?.keyNode ?? node,
        "spec.bootDisk.image",
        "is required unless empty: true",
      );
    }
    if (image !== undefined) this.imageReference(f.get("image")?.node, image, imagePool);
    if (this.problems.length > before || sizeGB === undefined) return undefined;
    const disk: BootDisk = { sizeGB };
    if (image !== undefined) disk.image = image;
    if (imagePool !== undefined) disk.imagePool = imagePool;
    if (empty !== undefined) disk.empty = empty;
    return disk;
  }

  imageReference(node: Node | undefined, image: string, imagePool: string | undefined): void {
    const path = "spec.bootDisk.image";
    if (image.startsWith("/")) {
      if (image.length > LIMITS.imagePathLength) {
        this.problem(
          node,
          path,
          `must be a file path of at most ${LIMITS.imagePathLength} characters, got ${image.length}`,
        );
      } else if (
        image.endsWith("/") ||
        image.split("/").slice(1).some((s) => s === "" || s === "." || s === "..")
      ) {
        this.problem(
          node,
          path,
          `must be an absolute file path without empty, "." or ".." parts, got ${
            quoteForTerminal(image)
          }`,
        );
      }
      return;
    }
    const colon = image.indexOf(":");
    const pool = colon >= 0 ? image.slice(0, colon) : undefined;
    const volume = colon >= 0 ? image.slice(colon + 1) : image;
    if (pool !== undefined && !POOL_PATTERN.test(pool)) {
      this.problem(
        node,
        path,
        `must be volume, pool:volume or /path, got ${shown(image)}`,
      );
      return;
    }
    if (!VOLUME_PATTERN.test(volume)) {
      this.problem(
        node,
        path,
        `must be volume, pool:volume or /path, got ${shown(image)}`,
      );
      return;
    }
    if (pool !== undefined && imagePool !== undefined && pool !== imagePool) {
      this.problem(
        node,
        path,
        `names pool "${pool}" but spec.bootDisk.imagePool is "${imagePool}"`,
      );
    }
  }

  dataDisks(f: Field | undefined): DataDisk[] | undefined {
    const items = this.list(f, "spec.dataDisks", LIMITS.dataDisks);
    if (items === undefined) return undefined;
    const disks: DataDisk[] = [];
    const seen = new Map<string, string>();
    const seenSerials = new Map<string, string>();
    items.forEach((item, i) => {
      const path = `spec.dataDisks[${i}]`;
      const g = this.fields(item, path, ["device", "sizeGB", "serial"]);
      if (g === undefined) return;
      const device = this.string(g.get("device"), `${path}.device`, item, true);
      const sizeGB = this.positiveInteger(
        g.get("sizeGB"),
        `${path}.sizeGB`,
        item,
        true,
        LIMITS.diskSizeGB,
      );
      let deviceOk = device !== undefined;
      if (device !== undefined && !DATA_DEVICE_PATTERN.test(device)) {
        this.problem(
          g.get("device")?.node,
          `${path}.device`,
          device === "vda"
            ? `must not be "vda", the boot disk`
            : `must be a virtio disk name vdb to vdz (or vdaa...), got ${shown(device)}`,
        );
        deviceOk = false;
      } else if (device !== undefined && seen.has(device)) {
        this.problem(
          g.get("device")?.node,
          `${path}.device`,
          `duplicate device "${device}", also used by ${seen.get(device)}`,
        );
        deviceOk = false;
      }
      if (device !== undefined) seen.set(device, `${path}.device`);
      const serial = this.string(g.get("serial"), `${path}.serial`, item, false);
      let serialOk = true;
      if (serial !== undefined) {
        serialOk = false;
        if (serial.length > LIMITS.diskSerialLength || !DISK_SERIAL_PATTERN.test(serial)) {
          this.problem(
            g.get("serial")?.node,
            `${path}.serial`,
            `must be 1 to ${LIMITS.diskSerialLength} letters, digits, "_" or "-", got ${
              shown(serial)
            }`,
          );
        } else if (seenSerials.has(serial)) {
          this.problem(
            g.get("serial")?.node,
            `${path}.serial`,
            `duplicate serial "${serial}", also used by ${seenSerials.get(serial)}`,
          );
        } else {
          seenSerials.set(serial, `${path}.serial`);
          serialOk = true;
        }
      }
      if (deviceOk && serialOk && device !== undefined && sizeGB !== undefined) {
        const disk: DataDisk = { device, sizeGB };
        if (serial !== undefined) disk.serial = serial;
        disks.push(disk);
      }
    });
    return disks;
  }

  networkInterfaces(node: Node): NetworkInterface[] | undefined {
    const path = "spec.networkInterfaces";
    const items = this.list({ node, keyNode: undefined }, path, LIMITS.networkInterfaces);
    if (items === undefined) return undefined;
    if (items.length === 0) {
      this.problem(node, path, "needs at least one interface, got an empty list");
      return undefined;
    }
    const before = this.problems.length;
    const nics: NetworkInterface[] = [];
    const seenIps = new Map<string, string>();
    let defaultRoutes = 0;
    items.forEach((item, i) => {
      const p = `${path}[${i}]`;
      const g = this.fields(item, p, ["ip", "gateway", "dnsServers", "bridge", "defaultRoute"]);
      if (g === undefined) return;
      const ip = this.string(g.get("ip"), `${p}.ip`, item, true);
      if (ip !== undefined) {
        const cidr = parseCidr(ip);
        if (cidr === undefined) {
          this.problem(
            g.get("ip")?.node,
            `${p}.ip`,
            `must be an IPv4 address with prefix length, like 192.0.2.10/24, got ${shown(ip)}`,
          );
        } else {
          const hostBits = 32 - cidr.prefix;
          const n = ipv4ToNumber(cidr.octets);
          const hostPart = hostBits === 0 ? 0 : n % 2 ** hostBits;
          if (cidr.prefix <= 30 && (hostPart === 0 || hostPart === 2 ** hostBits - 1)) {
            this.problem(
              g.get("ip")?.node,
              `${p}.ip`,
              `is the ${hostPart === 0 ? "network" : "broadcast"} address of its subnet, got ${ip}`,
            );
          }
          const other = seenIps.get(cidr.address) ?? this.fileIps.get(cidr.address);
          if (other !== undefined) {
            this.problem(
              g.get("ip")?.node,
              `${p}.ip`,
              `duplicate address ${cidr.address}, also used by ${other}`,
            );
          }
          seenIps.set(cidr.address, `${p}.ip`);
          if (!this.fileIps.has(cidr.address)) {
            this.fileIps.set(cidr.address, `${p}.ip of the VirtualMachine at line ${this.docLine}`);
          }
        }
      }
      const gateway = this.string(g.get("gateway"), `${p}.gateway`, item, true);
      if (gateway !== undefined && parseIPv4(gateway) === undefined) {
        this.problem(
          g.get("gateway")?.node,
          `${p}.gateway`,
          `must be an IPv4 address, got ${shown(gateway)}`,
        );
      }
      const dnsItems = this.list(g.get("dnsServers"), `${p}.dnsServers`, LIMITS.dnsServers);
      const dnsServers: string[] = [];
      dnsItems?.forEach((d, j) => {
        const s = this.string({ node: d, keyNode: undefined }, `${p}.dnsServers[${j}]`, d, true);
        if (s === undefined) return;
        if (parseIPv4(s) === undefined && !isIPv6(s)) {
          this.problem(
            d,
            `${p}.dnsServers[${j}]`,
            `must be an IPv4 or IPv6 address, got ${shown(s)}`,
          );
          return;
        }
        dnsServers.push(s);
      });
      const bridge = this.string(g.get("bridge"), `${p}.bridge`, item, true);
      if (bridge !== undefined && !BRIDGE_PATTERN.test(bridge)) {
        this.problem(
          g.get("bridge")?.node,
          `${p}.bridge`,
          `must be a Linux interface name (1 to 15 letters, digits, "_", ".", "-"), got ${
            shown(bridge)
          }`,
        );
      }
      const defaultRoute = this.boolean(g.get("defaultRoute"), `${p}.defaultRoute`);
      if (defaultRoute ?? i === 0) {
        defaultRoutes++;
        if (defaultRoutes > 1) {
          this.problem(
            g.get("defaultRoute")?.node ?? item,
            `${p}.defaultRoute`,
            "only one interface may carry the default route (the first does unless told otherwise)",
          );
        }
      }
      if (ip !== undefined && gateway !== undefined && bridge !== undefined) {
        const nic: NetworkInterface = { ip, gateway, bridge };
        if (dnsItems !== undefined) nic.dnsServers = dnsServers;
        if (defaultRoute !== undefined) nic.defaultRoute = defaultRoute;
        nics.push(nic);
      }
    });
    return this.problems.length > before ? undefined : nics;
  }

  cloudInit(node: Node): CloudInit | undefined {
    const before = this.problems.length;
    const path = "spec.cloudInit";
    const f = this.fields(node, path, [
      "fqdn",
      "sshAuthorizedKeys",
      "passwordHash",
      "sshPwauth",
      "userData",
    ]);
    if (f === undefined) return undefined;
    const rawFqdn = this.string(f.get("fqdn"), `${path}.fqdn`, node, false);
    let fqdn: string | undefined;
    if (rawFqdn !== undefined) {
      fqdn = rawFqdn.toLowerCase();
      const labels = fqdn.split(".");
      if (
        fqdn.length > 253 || labels.length < 2 || !labels.every((l) => DNS_LABEL.test(l)) ||
        /^[0-9]+$/.test(labels[labels.length - 1] ?? "")
      ) {
        this.problem(
          f.get("fqdn")?.node,
          `${path}.fqdn`,
          `must be a fully qualified domain name like host.example.com, got ${shown(rawFqdn)}`,
        );
      }
    }
    const keyItems = this.list(
      f.get("sshAuthorizedKeys"),
      `${path}.sshAuthorizedKeys`,
      LIMITS.sshAuthorizedKeys,
      true,
    );
    const keys: string[] = [];
    keyItems?.forEach((k, i) => {
      const p = `${path}.sshAuthorizedKeys[${i}]`;
      const key = this.secret(k, p);
      if (key === undefined) return;
      try {
        keys.push(parseSshPublicKey(key, { allowOptions: true }).line);
      } catch (e) {
        if (!(e instanceof SshKeyError)) throw e;
        this.problem(k, p, e.message);
      }
    });
    const hashNode = f.get("passwordHash")?.node;
    const passwordHash = this.secret(hashNode, `${path}.passwordHash`);
    if (passwordHash !== undefined) {
      if (passwordHash.length > LIMITS.passwordHashLength) {
        this.problem(
          hashNode,
          `${path}.passwordHash`,
          `must have at most ${LIMITS.passwordHashLength} characters, got ${passwordHash.length}`,
        );
      } else if (!passwordHash.startsWith("$")) {
        this.problem(
          hashNode,
          `${path}.passwordHash`,
          "must be a crypt(3) hash starting with $ (mkpasswd --method=SHA-512), got a value that does not",
        );
      } else if (/[\s:]/.test(passwordHash)) {
        this.problem(
          hashNode,
          `${path}.passwordHash`,
          "must not contain white space or colons, got a value that does",
        );
      } else if (!/^[\x21-\x7e]+$/.test(passwordHash)) {
        this.problem(
          hashNode,
          `${path}.passwordHash`,
          "must be printable ASCII (crypt(3) hashes are), got a value that is not",
        );
      }
    }
    const sshPwauth = this.boolean(f.get("sshPwauth"), `${path}.sshPwauth`);
    const userDataNode = f.get("userData")?.node;
    const userData = userDataNode === undefined ? undefined : this.userData(userDataNode);
    if (this.problems.length > before) return undefined;
    const ci: CloudInit = {};
    if (fqdn !== undefined) ci.fqdn = fqdn;
    if (keyItems !== undefined) ci.sshAuthorizedKeys = keys;
    if (passwordHash !== undefined) ci.passwordHash = passwordHash;
    if (sshPwauth !== undefined) ci.sshPwauth = sshPwauth;
    if (userData !== undefined) ci.userData = userData;
    return ci;
  }

  /** `spec.cloudInit.userData`: packages, files and commands a workload adds; bounded. */
  userData(node: Node): UserDataExtras | undefined {
    const before = this.problems.length;
    const path = "spec.cloudInit.userData";
    const f = this.fields(node, path, ["packages", "writeFiles", "bootcmd", "runcmd"]);
    if (f === undefined) return undefined;
    let total = 0;
    const out: UserDataExtras = {};
    const pkgItems = this.list(f.get("packages"), `${path}.packages`, LIMITS.userDataPackages);
    if (pkgItems !== undefined) {
      out.packages = [];
      pkgItems.forEach((item, i) => {
        const p = `${path}.packages[${i}]`;
        const v = this.string({ node: item, keyNode: undefined }, p, item, true);
        if (v === undefined) return;
        total += v.length;
        if (!PACKAGE_PATTERN.test(v)) {
          this.problem(
            item,
            p,
            `must be a package name (letters, digits, "+", ".", "_", ":", "~", "-"), got ${
              shown(v)
            }`,
          );
          return;
        }
        out.packages!.push(v);
      });
    }
    const fileItems = this.list(f.get("writeFiles"), `${path}.writeFiles`, LIMITS.userDataFiles);
    if (fileItems !== undefined) {
      out.writeFiles = [];
      const seenPaths = new Map<string, string>();
      fileItems.forEach((item, i) => {
        const p = `${path}.writeFiles[${i}]`;
        const g = this.fields(item, p, ["path", "content", "permissions"]);
        if (g === undefined) return;
        const filePath = this.string(g.get("path"), `${p}.path`, item, true);
        const content = this.string(g.get("content"), `${p}.content`, item, true);
        const permissions = this.string(g.get("permissions"), `${p}.permissions`, item, false);
        let ok = filePath !== undefined && content !== undefined;
        if (filePath !== undefined) {
          total += filePath.length;
          const why = guestPathProblem(filePath);
          const other = seenPaths.get(filePath);
          if (why !== undefined || other !== undefined) {
            this.problem(
              g.get("path")?.node,
              `${p}.path`,
              why ?? `duplicate path ${shown(filePath)}, also written by ${other}`,
            );
            ok = false;
          }
          seenPaths.set(filePath, `${p}.path`);
        }
        if (content !== undefined) total += content.length;
        if (permissions !== undefined && !PERMISSIONS_PATTERN.test(permissions)) {
          this.problem(
            g.get("permissions")?.node,
            `${p}.permissions`,
            `must be an octal mode of 3 or 4 digits such as "0644" (quote it), got ${
              shown(permissions)
            }`,
          );
          ok = false;
        }
        if (!ok || filePath === undefined || content === undefined) return;
        const file: GuestFile = { path: filePath, content };
        if (permissions !== undefined) file.permissions = permissions;
        out.writeFiles!.push(file);
      });
    }
    for (const key of ["bootcmd", "runcmd"] as const) {
      const items = this.list(f.get(key), `${path}.${key}`, LIMITS.userDataCommands);
      if (items === undefined) continue;
      const commands: string[][] = [];
      items.forEach((item, i) => {
        const p = `${path}.${key}[${i}]`;
        const args = this.list({ node: item, keyNode: undefined }, p, LIMITS.commandArgs);
        if (args === undefined) return;
        if (args.length === 0) {
          this.problem(item, p, "must be a command as a list of arguments, got an empty list");
          return;
        }
        const argv: string[] = [];
        args.forEach((a, j) => {
          const ap = `${p}[${j}]`;
          if (this.reported(a)) return;
          if (!isScalar(a) || typeof a.value !== "string") {
            this.problem(
              a,
              ap,
              `must be a string, got ${describe(a)}${
                isScalar(a) && a.value !== null ? " (quote it)" : ""
              }`,
            );
            return;
          }
          total += a.value.length;
          argv.push(a.value);
        });
        if (argv.length === args.length) commands.push(argv);
      });
      out[key] = commands;
    }
    if (total > LIMITS.userDataTotalLength) {
      this.problem(
        node,
        path,
        `may hold at most ${LIMITS.userDataTotalLength} characters of paths, contents, arguments and package names together, got ${total}`,
      );
    }
    return this.problems.length > before ? undefined : out;
  }
}

/**
 * Why `path` may not be a `writeFiles` path, or undefined when it may: it must be absolute and
 * normal (no empty, `.` or `..` parts, no final `/`), bounded, and none foundry's configuration
 * writes ({@linkcode RESERVED_GUEST_PATHS}).
 */
export function guestPathProblem(path: string): string | undefined {
  if (path.length > LIMITS.guestPathLength) {
    return `must be a path of at most ${LIMITS.guestPathLength} characters, got ${path.length}`;
  }
  if (
    !path.startsWith("/") || path.endsWith("/") ||
    path.split("/").slice(1).some((s) => s === "" || s === "." || s === "..")
  ) {
    return `must be an absolute file path without empty, "." or ".." parts, got ${shown(path)}`;
  }
  const reserved = RESERVED_GUEST_PATHS.find((r) =>
    r.endsWith("/") ? path.startsWith(r) : path === r
  );
  if (reserved !== undefined) {
    return `${shown(path)} is written by foundry's own cloud-init configuration (${
      reserved.endsWith("/") ? `everything under ${reserved}` : reserved
    }); choose another path`;
  }
  return undefined;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf("/");
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    const labels = prefix.split(".");
    if (prefix.length > 253 || !labels.every((l) => DNS_LABEL.test(l))) return false;
  }
  return LABEL_NAME.test(name);
}

/**
 * Why `line` is not an OpenSSH public key line (`[options] type base64 [comment]`, checked strictly by
 * lib/cloudinit/ssh_key.ts), or undefined when it is one. The key material is never quoted back.
 */
export function sshKeyProblem(line: string): string | undefined {
  try {
    parseSshPublicKey(line, { allowOptions: true });
    return undefined;
  } catch (e) {
    if (e instanceof SshKeyError) return e.message;
    throw e;
  }
}
