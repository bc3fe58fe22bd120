/**
 * Loads `VirtualMachine` documents from YAML, normalises them and checks every rule of the format.
 *
 * All problems of a file are collected and thrown together as one {@link ValidationError}; each names the
 * file, line, column and field path of the offending node. `VirtualMachineTemplate` documents (in the
 * same file, or any file of one {@link loadFoundryDocuments} call) are merged under the VMs that name
 * them in `spec.templateRef` before those are checked, and a problem in a field a template gave names
 * the template's file and line.
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

import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  Pair,
  parseAllDocuments,
  YAMLMap,
} from "npm:yaml@^2.9.1";
import type { Alias, Document, Node } from "npm:yaml@^2.9.1";
import { parseSshPublicKey, SshKeyError } from "../cloudinit/ssh_key.ts";
import {
  codePointName,
  escapeForbidden,
  forbiddenCharacter,
  quoteForTerminal,
} from "../cloudinit/safe_text.ts";
import { type Problem, ValidationError } from "./errors.ts";
import { ipv4ToNumber, isIPv6, parseCidr, parseIPv4 } from "./_net.ts";
import { HOST_NAME_PATTERN } from "./config_hosts.ts";
import { macFromIp } from "./naming.ts";
import {
  API_VERSION,
  type BootDisk,
  type CloudInit,
  CPU_MODES,
  type CpuMode,
  type CpuSpec,
  type DataDisk,
  DOMAIN_TYPES,
  type DomainType,
  type Graphics,
  GRAPHICS_TYPES,
  type GraphicsType,
  type GuestFile,
  type InstallMedia,
  KIND,
  LIMITS,
  type NetworkInterface,
  type NumaCell,
  type ObjectMeta,
  type Placement,
  RESERVED_GUEST_PATHS,
  type Resources,
  TEMPLATE_KIND,
  type TemplateRef,
  type UserDataExtras,
  type VirtualMachine,
  type VirtualMachineSpec,
  type VirtualMachineTemplate,
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
const MAC_PATTERN = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;
const CPUSET_PATTERN = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
/** Fields of `spec`. */
const SPEC_FIELDS = [
  "vcpus",
  "memoryGiB",
  "bootDisk",
  "dataDisks",
  "networkInterfaces",
  "cloudInit",
  "cpuMode",
  "cpu",
  "numa",
  "graphics",
  "installMedia",
  "templateRef",
  "autostart",
  "storagePool",
  "domainType",
  "resources",
  "placement",
] as const;
/** Field path of a `writeFiles` entry's content, as prepare() builds it. */
const FILE_CONTENT_PATH = /^spec\.cloudInit\.userData\.writeFiles\[\d+\]\.content$/;

/**
 * Reads a YAML file and returns its `VirtualMachine` documents, normalised and validated. The file
 * may also hold `VirtualMachineTemplate` documents, which its VMs can reference (`templateRef`).
 *
 * @param path file to read; its name appears in every problem
 * @throws {ValidationError} listing every problem of the file
 */
export async function loadVirtualMachines(path: string): Promise<VirtualMachine[]> {
  return parseVirtualMachines(await readSpecFile(path), path);
}

/** Most files {@linkcode loadFoundryDocuments} reads in one call (directories included). */
export const MAX_FILES = 1000;

/** What {@linkcode loadFoundryDocuments} found. */
export interface FoundryDocuments {
  /** Every `VirtualMachine`, its template (if any) merged in, validated; in file order. */
  vms: VirtualMachine[];
  /** Every `VirtualMachineTemplate`; they create nothing. */
  templates: VirtualMachineTemplate[];
  /** Where each VM was written: VM name -> `file:line` of its document. */
  sources: Map<string, string>;
}

/**
 * Loads the foundry documents of files and directories, as `apply -f` takes them: a directory
 * contributes its `*.yaml` and `*.yml` files (sorted by name, not recursive), at most
 * {@linkcode MAX_FILES} files in all. A VM may reference a template of any of the files; names
 * must be unique across them.
 *
 * @param paths files and directories
 * @throws {ValidationError} listing every problem of every file, and when no VM is found
 * @example
 * ```ts
 * import { loadFoundryDocuments } from "./loader.ts";
 * const { vms, sources } = await loadFoundryDocuments(["examples/template.yaml"]);
 * for (const vm of vms) console.log(vm.metadata.name, sources.get(vm.metadata.name));
 * ```
 */
export async function loadFoundryDocuments(paths: readonly string[]): Promise<FoundryDocuments> {
  const files = await specFilesOf(paths);
  if (files.length === 0) {
    throw new ValidationError([{
      file: escapeForbidden(paths[0] ?? ""),
      line: 1,
      column: 1,
      path: "",
      message: `no ${KIND} document found: no *.yaml or *.yml files`,
    }]);
  }
  const inputs: SpecText[] = [];
  for (const file of files) inputs.push({ text: await readSpecFile(file), file });
  return parseFoundryDocuments(inputs);
}

/** The files `paths` name: files as given, directories' YAML files sorted; bounded. */
async function specFilesOf(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const refuse = (file: string, message: string): never => {
    throw new ValidationError([{
      file: escapeForbidden(file),
      line: 1,
      column: 1,
      path: "",
      message,
    }]);
  };
  for (const path of paths) {
    const st = await Deno.stat(path);
    if (!st.isDirectory) {
      out.push(path);
    } else {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) {
        if (!/\.ya?ml$/.test(entry.name)) continue;
        const full = path.endsWith("/") ? `${path}${entry.name}` : `${path}/${entry.name}`;
        // A symbolic link is followed by readSpecFile, which refuses anything but a regular file.
        if (entry.isFile || entry.isSymlink) names.push(full);
        if (out.length + names.length > MAX_FILES) break;
      }
      out.push(...names.sort());
    }
    if (out.length > MAX_FILES) {
      refuse(path, `more than ${MAX_FILES} files to load; split them into several runs`);
    }
  }
  return out;
}

/** One file's text and the name its problems carry. */
export interface SpecText {
  /** The YAML. */
  text: string;
  /** Name used in problems, e.g. `vm.yaml`; relative `passwordSecret` paths resolve from its directory. */
  file: string;
}

/**
 * Parses several files' texts together (see {@linkcode loadFoundryDocuments}): templates of any
 * file serve the VMs of every file.
 *
 * @throws {ValidationError} listing every problem, and when no VM is found
 */
export function parseFoundryDocuments(inputs: readonly SpecText[]): FoundryDocuments {
  const shared = new SharedState();
  const pendingVms: { checker: Checker; doc: Document.Parsed; contents: Node; line: number }[] = [];
  const templates = new Map<string, ParsedTemplate>();
  for (const { text, file } of inputs) {
    const lineCounter = new LineCounter();
    const checker = new Checker(file, lineCounter, shared);
    if (text.length > LIMITS.fileBytes) {
      checker.problemAt(0, "", `is more than the limit of ${LIMITS.fileBytes} bytes`);
      continue;
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
      continue;
    }
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
      const line = lineCounter.linePos(contents.range?.[0] ?? 0).line;
      checker.docLine = line;
      if (!checker.prepare(contents)) continue;
      if (kindOf(contents) !== TEMPLATE_KIND) {
        pendingVms.push({ checker, doc, contents, line });
        continue;
      }
      const t = checker.template(contents);
      if (t === undefined) continue;
      const earlier = templates.get(t.value.metadata.name);
      if (earlier !== undefined) {
        checker.problem(
          t.nameNode,
          "metadata.name",
          `duplicate template name "${t.value.metadata.name}", also used by the VirtualMachineTemplate at ${earlier.checker.file}:${earlier.line}`,
        );
        continue;
      }
      templates.set(t.value.metadata.name, t);
    }
  }
  const vms: VirtualMachine[] = [];
  const sources = new Map<string, string>();
  const usable = [...templates.values()].filter((t) => t.broken !== true);
  for (const { checker, doc, contents, line } of pendingVms) {
    checker.doc = doc;
    checker.docLine = line;
    const vm = checker.virtualMachine(contents, templates);
    if (vm === undefined) continue;
    const earlier = sources.get(vm.metadata.name);
    if (earlier !== undefined) {
      // Within one file the name check reported it already.
      if (!earlier.startsWith(`${checker.file}:`)) {
        checker.problemAt(
          contents.range?.[0] ?? 0,
          "metadata.name",
          `duplicate name "${vm.metadata.name}", also used by the VirtualMachine at ${earlier}`,
        );
      }
      continue;
    }
    sources.set(vm.metadata.name, `${checker.file}:${line}`);
    vms.push(vm);
  }
  if (shared.problems.length === 0 && vms.length === 0 && inputs.length > 0) {
    shared.problems.push({
      file: escapeForbidden(inputs[0]!.file),
      line: 1,
      column: 1,
      path: "",
      message: `no ${KIND} document found`,
    });
  }
  if (shared.problems.length > 0) {
    throw new ValidationError(sortedProblems(shared.problems, inputs));
  }
  return { vms, templates: usable.map((t) => t.value), sources };
}

/** Problems in file order then position, duplicates dropped, at most PROBLEMS_SHOWN and a count. */
function sortedProblems(problems: readonly Problem[], inputs: readonly SpecText[]): Problem[] {
  const order = new Map(inputs.map((f, i) => [escapeForbidden(f.file), i]));
  const seen = new Set<string>();
  const unique = problems.filter((p) => {
    const key = JSON.stringify([p.file, p.line, p.column, p.path, p.message]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const sorted = unique.sort((a, b) =>
    (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line || a.column - b.column
  );
  const shown = sorted.slice(0, PROBLEMS_SHOWN);
  const last = shown[shown.length - 1]!;
  if (sorted.length > shown.length) {
    shown.push({ ...last, path: "", message: `and ${sorted.length - shown.length} more problems` });
  }
  return shown;
}

/** The `kind` a document says it is, when it says so plainly. */
function kindOf(node: Node): unknown {
  if (!isMap(node)) return undefined;
  const pair = (node as YAMLMap<unknown, unknown>).items.find((p) =>
    isScalar(p.key) && p.key.value === "kind"
  );
  return isScalar(pair?.value) ? pair.value.value : undefined;
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
  return parseFoundryDocuments([{ text, file }]).vms;
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

/** What the checkers of the files of one load share. */
class SharedState {
  /** Problems of every file. */
  readonly problems: Problem[] = [];
  /** Each alias's node, found in one pass over each document (yaml's own lookup walks it). */
  readonly aliasTargets = new Map<Alias, Node>();
  /** Scalars already reported (a forbidden character): no field check reports them again. */
  readonly reported = new Set<Node>();
  /** The checker of the file a template's node comes from: problems in merged fields point there. */
  readonly origins = new WeakMap<object, Checker>();
}

/** A validated template and the nodes a VM that references it merges. */
interface ParsedTemplate {
  value: VirtualMachineTemplate;
  checker: Checker;
  line: number;
  nameNode: Node | undefined;
  /** `spec.template.metadata`, merged under the VM's metadata. */
  metadata: Node | undefined;
  /** `spec.template.spec`, merged under the VM's spec. */
  spec: Node | undefined;
  /** The template has problems (reported): its VMs are not checked, which would repeat them. */
  broken?: boolean;
}

class Checker {
  doc: Document.Parsed | undefined;
  /** Addresses used by earlier documents of the file: tap names and MACs derive from them. */
  readonly fileIps = new Map<string, string>();
  /** MACs (given or derived from addresses) of earlier interfaces of the file. */
  readonly fileMacs = new Map<string, string>();
  /** Names used by earlier documents of the file, with the line of their document. */
  readonly fileNames = new Map<string, number>();
  /** Line where the current document starts. */
  docLine = 1;
  /** Field paths already suggested for a misspelt key: their absence is not reported again. */
  readonly #suggested = new Set<string>();
  readonly #aliasTargets: Map<Alias, Node>;
  readonly #reported: Set<Node>;
  /** Aliases seen in the file so far. */
  #aliases = 0;

  constructor(
    readonly file: string,
    readonly lineCounter: LineCounter,
    readonly shared: SharedState = new SharedState(),
  ) {
    this.#aliasTargets = shared.aliasTargets;
    this.#reported = shared.reported;
  }

  /** Problems of every file of the load. */
  get problems(): Problem[] {
    return this.shared.problems;
  }

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
    // A node a template gave is reported in the template's file.
    const owner = node === undefined ? this : this.shared.origins.get(node) ?? this;
    owner.problemAt(range?.[0] ?? keyRange?.[0] ?? 0, path, message);
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
      // A template's own check reported its unknown spec fields already.
      if (!allowed.includes(key) && path === "spec" && this.shared.origins.has(keyNode as object)) {
        continue;
      }
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

  /** Templates a VM of this load may reference (set by parseFoundryDocuments). */
  templates: ReadonlyMap<string, ParsedTemplate> = new Map();

  virtualMachine(
    node: Node,
    templates: ReadonlyMap<string, ParsedTemplate> = new Map(),
  ): VirtualMachine | undefined {
    const before = this.problems.length;
    this.templates = templates;
    const f = this.fields(node, "", ["apiVersion", "kind", "metadata", "spec", "status"]);
    if (f === undefined) return undefined;
    // The template's defaults go under the VM's own fields before anything is checked.
    const template = this.referencedTemplate(f.get("spec")?.node);
    if (template?.broken === true) return undefined;
    for (const [key, under] of [["metadata", template?.metadata], ["spec", template?.spec]]) {
      const field = f.get(key as string);
      if (under === undefined || field?.node === undefined || !isMap(field.node)) continue;
      f.set(key as string, { ...field, node: this.merge(under as Node, field.node) });
    }
    this.apiVersion(f, node);
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

  /** The template `spec.templateRef.name` names, when it names one of this load. */
  referencedTemplate(spec: Node | undefined): ParsedTemplate | undefined {
    const ref = this.deref(this.valueOf(spec, "templateRef"));
    const name = this.deref(this.valueOf(ref, "name"));
    if (!isScalar(name) || typeof name.value !== "string") return undefined;
    return this.templates.get(name.value.toLowerCase());
  }

  /** The value node of `key` in mapping `node`, if any. */
  valueOf(node: Node | undefined, key: string): Node | undefined {
    if (!isMap(node)) return undefined;
    const pair = (node as YAMLMap<unknown, unknown>).items.find((p) => {
      const k = this.deref(p.key);
      return isScalar(k) && k.value === key;
    });
    return pair === undefined ? undefined : (pair.value as Node | null) ?? undefined;
  }

  /**
   * `over` laid on `under`: mappings merge key by key (recursively), anything else (lists,
   * scalars, and a key given without a value, which removes the template's) is `over`'s. The nodes
   * are not copied, so problems still point at the file and line each came from.
   */
  merge(under: Node, over: Node): Node {
    const u = this.deref(under);
    const o = this.deref(over);
    if (!isMap(u) || !isMap(o)) return over;
    const keyOf = (p: Pair<unknown, unknown>): unknown => {
      const k = this.deref(p.key);
      return isScalar(k) ? k.value : p.key;
    };
    const underPairs = new Map((u as YAMLMap<unknown, unknown>).items.map((p) => [keyOf(p), p]));
    const out = new YAMLMap<unknown, unknown>();
    if (o.range !== undefined) out.range = o.range;
    const overKeys = new Set<unknown>();
    for (const pair of (o as YAMLMap<unknown, unknown>).items) {
      const key = keyOf(pair);
      overKeys.add(key);
      const below = underPairs.get(key);
      const ov = this.deref(pair.value);
      const uv = below === undefined ? undefined : this.deref(below.value);
      out.items.push(
        isMap(ov) && isMap(uv) ? new Pair(pair.key, this.merge(uv, ov)) : pair,
      );
    }
    for (const [key, pair] of underPairs) if (!overKeys.has(key)) out.items.push(pair);
    return out;
  }

  /** Marks every node of `root` as this file's, so problems in merged fields point here. */
  own(root: unknown): void {
    const stack: unknown[] = [root];
    while (stack.length > 0) {
      const n = stack.pop();
      if (n === null || typeof n !== "object") continue;
      if (this.shared.origins.has(n)) continue;
      this.shared.origins.set(n, this);
      if (isMap(n)) {
        for (const pair of (n as YAMLMap<unknown, unknown>).items) {
          this.shared.origins.set(pair, this);
          stack.push(pair.key, pair.value);
        }
      } else if (isSeq(n)) stack.push(...n.items);
    }
  }

  /** Reports an `apiVersion` that is absent or not foundry's. */
  apiVersion(f: Map<string, Field>, node: Node): void {
    const apiVersion = this.string(f.get("apiVersion"), "apiVersion", node, true);
    if (apiVersion !== undefined && apiVersion !== API_VERSION) {
      this.problem(
        f.get("apiVersion")?.node,
        "apiVersion",
        `must be ${API_VERSION}, got "${apiVersion}"`,
      );
    }
  }

  /** A `VirtualMachineTemplate` document; its spec is checked as a VM's when a VM uses it. */
  template(node: Node): ParsedTemplate | undefined {
    const before = this.problems.length;
    const f = this.fields(node, "", ["apiVersion", "kind", "metadata", "spec"]);
    if (f === undefined) return undefined;
    this.apiVersion(f, node);
    const metaField = f.get("metadata");
    const meta = metaField?.node === undefined
      ? this.missing(node, metaField, "metadata")
      : this.fields(metaField.node, "metadata", ["name", "labels"]);
    const name = meta === undefined || metaField?.node === undefined
      ? undefined
      : this.objectName(meta.get("name"), metaField.node);
    const labels = this.labels(meta?.get("labels"), "metadata.labels");
    const specField = f.get("spec");
    const spec = specField?.node === undefined
      ? this.missing(node, specField, "spec")
      : this.fields(specField.node, "spec", ["template"]);
    const tplField = spec?.get("template");
    const tpl = tplField?.node === undefined
      ? specField?.node === undefined
        ? undefined
        : this.missing(specField.node, tplField, "spec.template")
      : this.fields(tplField.node, "spec.template", ["metadata", "spec"]);
    const tplMetaNode = tpl?.get("metadata")?.node;
    const tplMeta = tplMetaNode === undefined
      ? undefined
      : this.fields(tplMetaNode, "spec.template.metadata", ["labels", "annotations"]);
    const tplLabels = this.labels(tplMeta?.get("labels"), "spec.template.metadata.labels");
    const tplAnnotations = this.annotations(
      tplMeta?.get("annotations"),
      "spec.template.metadata.annotations",
    );
    const tplSpecField = tpl?.get("spec");
    const tplSpecNode = tplSpecField?.node;
    if (tplSpecNode === undefined) {
      if (tplField?.node !== undefined) {
        this.missing(tplField.node, tplSpecField, "spec.template.spec");
      }
    } else {
      // Field names only: the values are checked in each VM that uses the template.
      const names = this.fields(
        tplSpecNode,
        "spec.template.spec",
        SPEC_FIELDS.filter((k) => k !== "templateRef"),
      );
      if (names !== undefined && this.valueOf(tplSpecNode, "templateRef") !== undefined) {
        this.problem(
          tplSpecNode,
          "spec.template.spec.templateRef",
          "a template may not reference another template",
        );
      }
    }
    if (name === undefined) return undefined;
    if (this.problems.length > before || tplSpecNode === undefined) {
      const value: VirtualMachineTemplate = {
        apiVersion: API_VERSION,
        kind: TEMPLATE_KIND,
        metadata: { name },
        spec: { template: { spec: {} } },
      };
      return {
        value,
        checker: this,
        line: this.docLine,
        nameNode: meta?.get("name")?.node,
        metadata: undefined,
        spec: undefined,
        broken: true,
      };
    }
    this.own(node);
    let specValue: Partial<VirtualMachineSpec>;
    try {
      specValue = tplSpecNode.toJS(this.doc!, { maxAliasCount: LIMITS.aliasesPerFile });
    } catch {
      this.problem(tplSpecNode, "spec.template.spec", "uses too many aliases");
      return undefined;
    }
    const templateMeta: { labels?: Record<string, string>; annotations?: Record<string, string> } =
      {};
    if (tplLabels !== undefined) templateMeta.labels = tplLabels;
    if (tplAnnotations !== undefined) templateMeta.annotations = tplAnnotations;
    const value: VirtualMachineTemplate = {
      apiVersion: API_VERSION,
      kind: TEMPLATE_KIND,
      metadata: labels === undefined ? { name } : { name, labels },
      spec: {
        template: tplMetaNode === undefined
          ? { spec: specValue }
          : { metadata: templateMeta, spec: specValue },
      },
    };
    return {
      value,
      checker: this,
      line: this.docLine,
      nameNode: meta?.get("name")?.node,
      metadata: tplMetaNode,
      spec: tplSpecNode,
    };
  }

  metadata(node: Node): ObjectMeta | undefined {
    const f = this.fields(node, "metadata", ["name", "labels", "annotations", "generation"]);
    if (f === undefined) return undefined;
    const name = this.objectName(f.get("name"), node);
    if (name !== undefined) {
      const earlier = this.fileNames.get(name);
      if (earlier !== undefined) {
        this.problem(
          f.get("name")?.node,
          "metadata.name",
          `duplicate name "${name}", also used by the VirtualMachine at line ${earlier}`,
        );
      } else {
        this.fileNames.set(name, this.docLine);
      }
    }
    const labels = this.labels(f.get("labels"), "metadata.labels");
    const annotations = this.annotations(f.get("annotations"), "metadata.annotations");
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

  /** A VM's or template's `metadata.name`, lowercased, or undefined after reporting why not. */
  objectName(f: Field | undefined, node: Node, path = "metadata.name"): string | undefined {
    const raw = this.string(f, path, node, true);
    if (raw === undefined) return undefined;
    const lower = raw.toLowerCase();
    if (lower.length > NAME_MAX_LENGTH) {
      this.problem(
        f?.node,
        path,
        `must be at most ${NAME_MAX_LENGTH} characters, got ${lower.length}`,
      );
      return undefined;
    }
    if (!NAME_PATTERN.test(lower)) {
      this.problem(
        f?.node,
        path,
        `must start and end with a letter or digit and contain only letters, digits, "-" and "_", got ${
          shown(raw)
        }`,
      );
      return undefined;
    }
    return lower;
  }

  labels(f: Field | undefined, path: string): Record<string, string> | undefined {
    return this.stringMap(f, path, LIMITS.labels, (k, v, kn, vn) => {
      if (!isLabelKey(k)) {
        this.problem(
          kn,
          join(path, k),
          `label keys must be [prefix/]name with a name of at most 63 letters, digits, "-", "_", "." starting and ending with a letter or digit, got ${
            shown(k)
          }`,
        );
      }
      if (v !== "" && !LABEL_NAME.test(v)) {
        this.problem(
          vn,
          join(path, k),
          `label values must be empty or at most 63 letters, digits, "-", "_", "." starting and ending with a letter or digit, got ${
            shown(v)
          }`,
        );
      }
    });
  }

  annotations(f: Field | undefined, path: string): Record<string, string> | undefined {
    let chars = 0;
    const annotations = this.stringMap(f, path, LIMITS.annotations, (k, v, kn) => {
      chars += k.length + v.length;
      if (k.length > LIMITS.annotationKeyLength) {
        this.problem(
          kn,
          path,
          `annotation keys may have at most ${LIMITS.annotationKeyLength} characters, got ${k.length}`,
        );
      }
    });
    if (chars > LIMITS.annotationsTotalLength) {
      this.problem(
        f?.node,
        path,
        `keys and values together may have at most ${LIMITS.annotationsTotalLength} characters, got ${chars}`,
      );
    }
    return annotations;
  }

  spec(node: Node): VirtualMachineSpec | undefined {
    const before = this.problems.length;
    const f = this.fields(node, "spec", SPEC_FIELDS);
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
    const dataDisks = this.dataDisks(f.get("dataDisks"), bootDisk?.volume);
    const nicField = f.get("networkInterfaces");
    const networkInterfaces = nicField?.node === undefined
      ? this.missing(node, nicField, "spec.networkInterfaces", "needs at least one interface")
      : this.networkInterfaces(nicField.node);
    const ciField = f.get("cloudInit");
    const cloudInit = ciField?.node === undefined ? undefined : this.cloudInit(ciField.node);
    const cpuMode = this.oneOf(f.get("cpuMode"), "spec.cpuMode", CPU_MODES);
    const cpuNode = f.get("cpu")?.node;
    const cpu = cpuNode === undefined ? undefined : this.cpu(cpuNode, vcpus, resources?.maxVcpus);
    if (cpu?.value.mode !== undefined && cpuMode !== undefined) {
      this.problem(
        f.get("cpuMode")?.node,
        "spec.cpuMode",
        "must not be set together with spec.cpu.mode (they say the same; keep one)",
      );
    }
    const numa = this.numa(
      f.get("numa"),
      vcpus,
      memoryGiB,
      cpu?.maxVcpus ?? resources?.maxVcpus,
      resources?.maxMemoryGiB,
    );
    const graphicsNode = f.get("graphics")?.node;
    const graphics = graphicsNode === undefined ? undefined : this.graphics(graphicsNode);
    const mediaNode = f.get("installMedia")?.node;
    const installMedia = mediaNode === undefined ? undefined : this.installMedia(mediaNode);
    if (mediaNode !== undefined && bootDisk !== undefined && bootDisk.empty !== true) {
      this.problem(
        mediaNode,
        "spec.installMedia",
        `needs spec.bootDisk.empty: true: the ISO installs the system onto an empty boot disk, and ${
          bootDisk.volume !== undefined ? "an existing volume" : "a disk made from an image"
        } has one already`,
      );
    }
    const refNode = f.get("templateRef")?.node;
    const templateRef = refNode === undefined ? undefined : this.templateRef(refNode);
    const autostart = this.boolean(f.get("autostart"), "spec.autostart");
    const storagePool = this.pool(f.get("storagePool"), "spec.storagePool", node);
    const domainType = this.oneOf(f.get("domainType"), "spec.domainType", DOMAIN_TYPES);
    const placementNode = f.get("placement")?.node;
    const placement = placementNode === undefined ? undefined : this.placement(placementNode);
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
    if (cpu !== undefined) spec.cpu = cpu.value;
    if (numa !== undefined) spec.numa = numa;
    if (graphics !== undefined) spec.graphics = graphics;
    if (installMedia !== undefined) spec.installMedia = installMedia;
    if (templateRef !== undefined) spec.templateRef = templateRef;
    if (autostart !== undefined) spec.autostart = autostart;
    if (storagePool !== undefined) spec.storagePool = storagePool;
    if (domainType !== undefined) spec.domainType = domainType as DomainType;
    if (resources !== undefined) spec.resources = resources;
    if (placement !== undefined) spec.placement = placement;
    return spec;
  }

  /** `spec.placement`: `{host: NAME}` or `{selector: {key: value}}`, not both. */
  placement(node: Node): Placement | undefined {
    const f = this.fields(node, "spec.placement", ["host", "selector"]);
    if (f === undefined) return undefined;
    const hostField = f.get("host");
    const selField = f.get("selector");
    if (hostField !== undefined && selField !== undefined) {
      this.problem(
        selField.keyNode,
        "spec.placement",
        "give host or selector, not both (a named host needs no selector)",
      );
      return undefined;
    }
    if (hostField !== undefined) {
      const host = this.string(hostField, "spec.placement.host", node, true);
      if (host === undefined) return undefined;
      if (host.length > 63 || !HOST_NAME_PATTERN.test(host)) {
        this.problem(
          hostField.node,
          "spec.placement.host",
          `must be a configured host name (lowercase letters, digits and "-", at most 63), got ${
            shown(host)
          }`,
        );
        return undefined;
      }
      return { host };
    }
    if (selField?.node === undefined) {
      this.missing(node, selField, "spec.placement", "needs host or selector");
      return undefined;
    }
    const selector = this.labels(selField, "spec.placement.selector");
    if (selector === undefined) return undefined;
    if (Object.keys(selector).length === 0) {
      this.problem(selField.node, "spec.placement.selector", "needs at least one label");
      return undefined;
    }
    return { selector };
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

  /**
   * `spec.cpu`: a topology whose product is the vCPU maximum (`resources.maxVcpus`; without it the
   * product becomes the maximum, see `resourceMaxima`), and a mode. Returns the maximum it fixes.
   */
  cpu(
    node: Node,
    vcpus: number | undefined,
    maxVcpus: number | undefined,
  ): { value: CpuSpec; maxVcpus: number | undefined } | undefined {
    const path = "spec.cpu";
    const f = this.fields(node, path, ["sockets", "cores", "threads", "mode"]);
    if (f === undefined) return undefined;
    const before = this.problems.length;
    const count = (key: string) =>
      this.positiveInteger(f.get(key), `${path}.${key}`, node, false, LIMITS.vcpus);
    const sockets = count("sockets");
    const cores = count("cores");
    const threads = count("threads");
    const mode = this.oneOf(f.get("mode"), `${path}.mode`, CPU_MODES) as CpuMode | undefined;
    if (this.problems.length > before) return undefined;
    const given = sockets !== undefined || cores !== undefined || threads !== undefined;
    let product: number | undefined;
    if (given) {
      const st = (sockets ?? 1) * (threads ?? 1);
      const shape = `sockets x cores x threads (${sockets ?? 1} x ${cores ?? "?"} x ${
        threads ?? 1
      })`;
      if (maxVcpus !== undefined && cores === undefined && maxVcpus % st !== 0) {
        this.problem(
          node,
          path,
          `sockets x threads (${st}) must divide spec.resources.maxVcpus (${maxVcpus}): cores default to the quotient`,
        );
      } else if (maxVcpus !== undefined && cores !== undefined && st * cores !== maxVcpus) {
        this.problem(
          node,
          path,
          `${shape.replace("?", String(cores))} = ${
            st * cores
          } must equal the vCPU maximum spec.resources.maxVcpus (${maxVcpus})`,
        );
      } else if (maxVcpus === undefined && vcpus !== undefined) {
        product = st * (cores ?? Math.ceil(vcpus / st));
        if (product > LIMITS.vcpus) {
          this.problem(
            node,
            path,
            `makes ${product} vCPUs, more than the limit of ${LIMITS.vcpus}`,
          );
        } else if (product < vcpus) {
          this.problem(
            node,
            path,
            `${
              shape.replace("?", String(cores))
            } = ${product} vCPUs, fewer than spec.vcpus (${vcpus})`,
          );
        }
      }
    }
    if (this.problems.length > before) return undefined;
    const value: CpuSpec = {};
    if (sockets !== undefined) value.sockets = sockets;
    if (cores !== undefined) value.cores = cores;
    if (threads !== undefined) value.threads = threads;
    if (mode !== undefined) value.mode = mode;
    return { value, maxVcpus: product };
  }

  /**
   * `spec.numa`: cells whose vCPU ids (cpuset syntax) cover the vCPU maximum exactly once and
   * whose memory adds up to the memory maximum. libvirt makes `<memory>` the cells' sum when it
   * defines a domain with cells, so the sum IS the maximum (`resources.maxMemoryGiB`, or the
   * maximum when that is absent); `memoryGiB` is what the guest gets of it.
   */
  numa(
    f: Field | undefined,
    vcpus: number | undefined,
    memoryGiB: number | undefined,
    maxVcpus: number | undefined,
    maxMemoryGiB: number | undefined,
  ): NumaCell[] | undefined {
    const path = "spec.numa";
    const items = this.list(f, path, LIMITS.numaCells);
    if (items === undefined) return undefined;
    const before = this.problems.length;
    if (items.length === 0) {
      this.problem(f?.node, path, "needs at least one cell, got an empty list");
      return undefined;
    }
    const cells: NumaCell[] = [];
    const owner = new Map<number, number>();
    let memoryMiB = 0;
    let highest = -1;
    items.forEach((item, i) => {
      const p = `${path}[${i}]`;
      const g = this.fields(item, p, ["cpus", "memoryGiB"]);
      if (g === undefined) return;
      const cpusNode = g.get("cpus")?.node;
      let cpus: string | undefined;
      if (isScalar(cpusNode) && Number.isSafeInteger(cpusNode.value)) {
        cpus = String(cpusNode.value);
      } else cpus = this.string(g.get("cpus"), `${p}.cpus`, item, true);
      const memory = this.memory(g.get("memoryGiB"), item, `${p}.memoryGiB`);
      if (cpus === undefined || memory === undefined) return;
      const ids = cpusetIds(cpus);
      if (ids === undefined) {
        this.problem(
          cpusNode,
          `${p}.cpus`,
          `must be vCPU ids like "0-3" or "0,2,4-5" (ascending ranges below ${LIMITS.vcpus}), got ${
            shown(cpus)
          }`,
        );
        return;
      }
      for (const id of ids) {
        const other = owner.get(id);
        if (other !== undefined && other !== i) {
          this.problem(cpusNode, `${p}.cpus`, `vCPU ${id} is also in spec.numa[${other}].cpus`);
          return;
        }
        owner.set(id, i);
        highest = Math.max(highest, id);
      }
      memoryMiB += Math.round(memory * 1024);
      cells.push({ cpus, memoryGiB: memory });
    });
    if (this.problems.length > before) return undefined;
    const max = maxVcpus ?? highest + 1;
    if (highest >= max) {
      this.problem(
        f?.node,
        path,
        `names vCPU ${highest}, beyond the vCPU maximum of ${max} (ids 0 to ${max - 1})`,
      );
    } else if (owner.size < max) {
      const missing = Array.from({ length: max }, (_, i) => i).filter((i) => !owner.has(i));
      this.problem(
        f?.node,
        path,
        `leaves vCPU ${
          formatCpuset(missing)
        } in no cell; every vCPU of the maximum (${max}) must be in one`,
      );
    } else if (vcpus !== undefined && vcpus > max) {
      this.problem(f?.node, path, `holds ${max} vCPUs, fewer than spec.vcpus (${vcpus})`);
    }
    const sumGiB = memoryMiB / 1024;
    if (maxMemoryGiB !== undefined && Math.round(maxMemoryGiB * 1024) !== memoryMiB) {
      this.problem(
        f?.node,
        path,
        `cells' memory adds up to ${sumGiB} GiB; it must equal spec.resources.maxMemoryGiB (${maxMemoryGiB})`,
      );
    } else if (memoryGiB !== undefined && memoryMiB < Math.round(memoryGiB * 1024)) {
      this.problem(
        f?.node,
        path,
        `cells' memory adds up to ${sumGiB} GiB, less than spec.memoryGiB (${memoryGiB})`,
      );
    } else if (sumGiB > LIMITS.memoryGiB) {
      this.problem(f?.node, path, `cells' memory adds up to more than ${LIMITS.memoryGiB} GiB`);
    }
    return this.problems.length > before ? undefined : cells;
  }

  /** `spec.graphics`: the protocol, a listen address and the password file's path (resolved). */
  graphics(node: Node): Graphics | undefined {
    const path = "spec.graphics";
    const f = this.fields(node, path, ["type", "listen", "passwordSecret"]);
    if (f === undefined) return undefined;
    const before = this.problems.length;
    if (f.get("type")?.node === undefined) this.missing(node, f.get("type"), `${path}.type`);
    const type = this.oneOf(f.get("type"), `${path}.type`, GRAPHICS_TYPES) as
      | GraphicsType
      | undefined;
    const listen = this.string(f.get("listen"), `${path}.listen`, node, false);
    if (listen !== undefined && parseIPv4(listen) === undefined && !isIPv6(listen)) {
      this.problem(
        f.get("listen")?.node,
        `${path}.listen`,
        `must be an IPv4 or IPv6 address (127.0.0.1 for this host only), got ${shown(listen)}`,
      );
    }
    const secret = this.string(f.get("passwordSecret"), `${path}.passwordSecret`, node, false);
    let passwordSecret: string | undefined;
    if (secret !== undefined) {
      if (secret.length === 0 || secret.length > LIMITS.imagePathLength || secret.endsWith("/")) {
        this.problem(
          f.get("passwordSecret")?.node,
          `${path}.passwordSecret`,
          `must be the path of a file holding the password (at most ${LIMITS.imagePathLength} characters), got ${
            shown(secret)
          }`,
        );
      } else {
        passwordSecret = resolveFrom(this.file, secret);
      }
    }
    if (this.problems.length > before || type === undefined) return undefined;
    const out: Graphics = { type };
    if (listen !== undefined) out.listen = listen;
    if (passwordSecret !== undefined) out.passwordSecret = passwordSecret;
    return out;
  }

  /** `spec.installMedia`: the ISO, named as a boot image is. */
  installMedia(node: Node): InstallMedia | undefined {
    const path = "spec.installMedia";
    const f = this.fields(node, path, ["image", "imagePool"]);
    if (f === undefined) return undefined;
    const before = this.problems.length;
    const image = this.string(f.get("image"), `${path}.image`, node, true);
    const imagePool = this.pool(f.get("imagePool"), `${path}.imagePool`, node);
    if (image !== undefined) {
      this.imageReference(f.get("image")?.node, image, imagePool, path);
    }
    if (this.problems.length > before || image === undefined) return undefined;
    return imagePool === undefined ? { image } : { image, imagePool };
  }

  /** `spec.templateRef`: the name of a template of this load. */
  templateRef(node: Node): TemplateRef | undefined {
    const path = "spec.templateRef";
    const f = this.fields(node, path, ["name"]);
    if (f === undefined) return undefined;
    const raw = this.string(f.get("name"), `${path}.name`, node, true);
    if (raw === undefined) return undefined;
    const name = raw.toLowerCase();
    if (!this.templates.has(name)) {
      const names = [...this.templates.keys()];
      const hint = suggest(name, names);
      this.problem(
        f.get("name")?.node,
        `${path}.name`,
        `no VirtualMachineTemplate named ${shown(raw)} in the files loaded${
          hint !== undefined
            ? `, did you mean "${hint}"?`
            : names.length > 0
            ? `; templates: ${names.slice(0, 10).join(", ")}`
            : ""
        }`,
      );
      return undefined;
    }
    return { name };
  }

  /** An existing disk: `pool:volume` or an absolute file path. */
  existingVolume(f: Field | undefined, path: string, parent: Node): string | undefined {
    const v = this.string(f, path, parent, false);
    if (v === undefined) return undefined;
    const before = this.problems.length;
    if (v.startsWith("/")) {
      this.filePath(f?.node, path, v);
    } else {
      const colon = v.indexOf(":");
      if (
        colon < 0 || !POOL_PATTERN.test(v.slice(0, colon)) ||
        !VOLUME_PATTERN.test(v.slice(colon + 1))
      ) {
        this.problem(
          f?.node,
          path,
          `must be pool:volume or an absolute file path, got ${shown(v)}`,
        );
      }
    }
    return this.problems.length > before ? undefined : v;
  }

  /** Reports an absolute file path that is too long or not normal. */
  filePath(node: Node | undefined, path: string, value: string): void {
    if (value.length > LIMITS.imagePathLength) {
      this.problem(
        node,
        path,
        `must be a file path of at most ${LIMITS.imagePathLength} characters, got ${value.length}`,
      );
    } else if (
      value.endsWith("/") ||
      value.split("/").slice(1).some((s) => s === "" || s === "." || s === "..")
    ) {
      this.problem(
        node,
        path,
        `must be an absolute file path without empty, "." or ".." parts, got ${
          quoteForTerminal(value)
        }`,
      );
    }
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
    const f = this.fields(node, "spec.bootDisk", [
      "sizeGB",
      "image",
      "imagePool",
      "empty",
      "volume",
    ]);
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
    const volumeNode = f.get("volume")?.node;
    const volume = this.existingVolume(f.get("volume"), "spec.bootDisk.volume", node);
    if (volumeNode !== undefined && (image !== undefined || empty !== undefined)) {
      this.problem(
        volumeNode,
        "spec.bootDisk.volume",
        `must not be set together with ${
          image !== undefined ? "image" : "empty"
        }: the VM uses the existing disk as it is`,
      );
    } else if (volumeNode !== undefined && imagePool !== undefined) {
      this.problem(
        f.get("imagePool")?.node,
        "spec.bootDisk.imagePool",
        "applies to image only, not to volume",
      );
    } else if (empty === true && image !== undefined) {
      this.problem(
        f.get("image")?.node,
        "spec.bootDisk.image",
        "must not be set together with empty: true",
      );
    } else if (
      volumeNode === undefined && empty !== true && image === undefined &&
      f.get("image")?.node === undefined
    ) {
      this.problem(
        f.get("image")?.keyNode ?? node,
        "spec.bootDisk.image",
        "is required unless empty: true or volume is given",
      );
    }
    if (image !== undefined) this.imageReference(f.get("image")?.node, image, imagePool);
    if (this.problems.length > before || sizeGB === undefined) return undefined;
    const disk: BootDisk = { sizeGB };
    if (image !== undefined) disk.image = image;
    if (imagePool !== undefined) disk.imagePool = imagePool;
    if (empty !== undefined) disk.empty = empty;
    if (volume !== undefined) disk.volume = volume;
    return disk;
  }

  imageReference(
    node: Node | undefined,
    image: string,
    imagePool: string | undefined,
    parent = "spec.bootDisk",
  ): void {
    const path = `${parent}.image`;
    if (image.startsWith("/")) {
      this.filePath(node, path, image);
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
        `names pool "${pool}" but ${parent}.imagePool is "${imagePool}"`,
      );
    }
  }

  dataDisks(f: Field | undefined, bootVolume?: string): DataDisk[] | undefined {
    const items = this.list(f, "spec.dataDisks", LIMITS.dataDisks);
    if (items === undefined) return undefined;
    const disks: DataDisk[] = [];
    const seen = new Map<string, string>();
    const seenSerials = new Map<string, string>();
    const seenVolumes = new Map<string, string>();
    items.forEach((item, i) => {
      const path = `spec.dataDisks[${i}]`;
      const g = this.fields(item, path, ["device", "sizeGB", "serial", "volume"]);
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
      const volume = this.existingVolume(g.get("volume"), `${path}.volume`, item);
      let volumeOk = g.get("volume")?.node === undefined || volume !== undefined;
      if (volume !== undefined) {
        const other = volume === bootVolume ? "spec.bootDisk.volume" : seenVolumes.get(volume);
        if (other !== undefined) {
          this.problem(
            g.get("volume")?.node,
            `${path}.volume`,
            `is also ${other}; a disk can be attached once`,
          );
          volumeOk = false;
        }
        seenVolumes.set(volume, `${path}.volume`);
      }
      if (deviceOk && serialOk && volumeOk && device !== undefined && sizeGB !== undefined) {
        const disk: DataDisk = { device, sizeGB };
        if (serial !== undefined) disk.serial = serial;
        if (volume !== undefined) disk.volume = volume;
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
      const g = this.fields(item, p, [
        "ip",
        "gateway",
        "mac",
        "dnsServers",
        "bridge",
        "defaultRoute",
      ]);
      if (g === undefined) return;
      const mac = this.mac(g.get("mac"), `${p}.mac`, item);
      const macGiven = g.get("mac")?.node !== undefined;
      if (g.get("ip")?.node === undefined && !macGiven) {
        this.missing(item, g.get("ip"), `${p}.ip`, "is required unless mac is given");
      }
      const ip = this.string(g.get("ip"), `${p}.ip`, item, false);
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
      const gateway = this.string(g.get("gateway"), `${p}.gateway`, item, ip !== undefined);
      for (const key of ["gateway", "dnsServers"]) {
        if (g.get("ip")?.node !== undefined || g.get(key)?.node === undefined) continue;
        this.problem(
          g.get(key)?.node,
          `${p}.${key}`,
          "needs ip: cloud-init sets it up with the address (an interface with mac only is addressed by the guest)",
        );
      }
      if (ip !== undefined || mac !== undefined) {
        let effective: string | undefined = mac;
        try {
          effective ??= ip === undefined ? undefined : macFromIp(ip);
        } catch { /* a bad address was reported above */ }
        const other = effective === undefined ? undefined : this.fileMacs.get(effective);
        if (effective !== undefined && other !== undefined && mac !== undefined) {
          this.problem(
            g.get("mac")?.node,
            `${p}.mac`,
            `duplicate MAC ${effective}, also used by ${other}`,
          );
        } else if (effective !== undefined && other !== undefined && !other.includes(".ip ")) {
          this.problem(
            g.get("ip")?.node,
            `${p}.ip`,
            `its MAC ${effective} (derived from the address) is also used by ${other}`,
          );
        } else if (effective !== undefined && other === undefined) {
          this.fileMacs.set(
            effective,
            `${p}.${
              mac !== undefined ? "mac" : "ip"
            } of the VirtualMachine at line ${this.docLine}`,
          );
        }
      }
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
      if (defaultRoute === true && g.get("ip")?.node === undefined) {
        this.problem(
          g.get("defaultRoute")?.node,
          `${p}.defaultRoute`,
          "needs ip and gateway: foundry sets up routes only for interfaces it addresses",
        );
      }
      if ((defaultRoute ?? i === 0) && g.get("ip")?.node !== undefined) {
        defaultRoutes++;
        if (defaultRoutes > 1) {
          this.problem(
            g.get("defaultRoute")?.node ?? item,
            `${p}.defaultRoute`,
            "only one interface may carry the default route (the first does unless told otherwise)",
          );
        }
      }
      if (
        bridge !== undefined &&
        (ip !== undefined ? gateway !== undefined : mac !== undefined)
      ) {
        const nic: NetworkInterface = { bridge };
        if (ip !== undefined) nic.ip = ip;
        if (gateway !== undefined) nic.gateway = gateway;
        if (mac !== undefined) nic.mac = mac;
        if (dnsItems !== undefined) nic.dnsServers = dnsServers;
        if (defaultRoute !== undefined) nic.defaultRoute = defaultRoute;
        nics.push(nic);
      }
    });
    return this.problems.length > before ? undefined : nics;
  }

  /** A unicast MAC address, lowercased. */
  mac(f: Field | undefined, path: string, parent: Node): string | undefined {
    const v = this.string(f, path, parent, false);
    if (v === undefined) return undefined;
    if (!MAC_PATTERN.test(v)) {
      this.problem(f?.node, path, `must be a MAC address like 52:54:00:12:34:56, got ${shown(v)}`);
      return undefined;
    }
    const lower = v.toLowerCase();
    if ((parseInt(lower.slice(0, 2), 16) & 1) === 1 || lower === "00:00:00:00:00:00") {
      this.problem(
        f?.node,
        path,
        `must be a unicast MAC address (the first octet even, not all zero), got ${lower}`,
      );
      return undefined;
    }
    return lower;
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
 * The vCPU ids of a cpuset (`0-3`, `0,2,4-5`: ascending ranges, each id below `LIMITS.vcpus`), or
 * undefined when `cpuset` is not one. libvirt's `^N` exclusions are not accepted.
 */
export function cpusetIds(cpuset: string): number[] | undefined {
  if (cpuset.length > 4 * LIMITS.vcpus || !CPUSET_PATTERN.test(cpuset)) return undefined;
  const ids: number[] = [];
  for (const part of cpuset.split(",")) {
    const [a, b = a] = part.split("-").map(Number) as [number, number?];
    if (b === undefined || a > b || b >= LIMITS.vcpus) return undefined;
    for (let id = a; id <= b; id++) ids.push(id);
    if (ids.length > LIMITS.vcpus) return undefined;
  }
  return ids;
}

/** `ids` in cpuset syntax with ranges: `[0, 1, 2, 5]` is `0-2,5`. */
export function formatCpuset(ids: readonly number[]): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/**
 * `path` resolved against the directory of `file` (itself resolved against the working
 * directory when relative), without `.` and `..` parts: where a `passwordSecret` points.
 */
export function resolveFrom(file: string, path: string): string {
  const base = path.startsWith("/")
    ? ""
    : file.startsWith("/")
    ? file.slice(0, file.lastIndexOf("/"))
    : `${Deno.cwd()}/${file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : ""}`;
  const parts: string[] = [];
  for (const part of `${base}/${path}`.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
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
