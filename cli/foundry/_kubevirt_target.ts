/**
 * `--target kubevirt` of `foundry create`, `get`, `list` and `destroy`: the same v1alpha1 spec on a
 * KubeVirt cluster (lib/foundry/kubevirt.ts does the work). Loaded by those commands with a dynamic
 * import only when `--target kubevirt` is given: the Kubernetes client costs start-up that the
 * libvirt path never pays.
 *
 * The cluster is found as virtwork finds it (`--kubeconfig`, else in-cluster, `KUBECONFIG`,
 * `~/.kube/config`; `--context`), namespace `-n` (default `default`).
 * @module
 */
import { ApiException, CoreV1Api, CustomObjectsApi } from "npm:@kubernetes/client-node@^2.0.1";
import { LineCounter, parseAllDocuments } from "npm:yaml@^2.9.1";
import { parseLabelSelector } from "../../lib/config/selector.ts";
import { ValidationError } from "../../lib/foundry/errors.ts";
import {
  type ApiObject,
  type ClusterObject,
  createOnCluster,
  destroyOnCluster,
  getFromCluster,
  getOrUndefined,
  type KubevirtManifests,
  kubevirtManifests,
  KubevirtMappingError,
  type KubevirtOptions,
  type KubevirtResource,
  type KubevirtVmEntry,
  listFromCluster,
  MissingNetworkError,
  NAD_API_VERSION,
  NAD_RESOURCE,
  redactedObjects,
} from "../../lib/foundry/kubevirt.ts";
import type { KubevirtApplyCluster, VmPlan } from "../../lib/foundry/kubevirt_apply.ts";
import { loadVirtualMachines } from "../../lib/foundry/loader.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import { VmNotFoundError } from "../../lib/foundry/vm_errors.ts";
import { connect, type KubeClient } from "../../lib/kubevirt/client.ts";
import { ConnectionError, KubeApiError } from "../../lib/kubevirt/errors.ts";
import type { KubeObject } from "../../lib/kubevirt/manifests.ts";
import { formatJson, paint } from "../../lib/output/format.ts";
import type { Column } from "../../lib/output/listing.ts";
import { printListing } from "../_listing.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import { ExitCode, exitCodeFor, type Io, setExitCode } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { interruptSignal, signalOption } from "../_signals.ts";
import type { Command } from "npm:commander@^15.1.0";
import { colorFor, envOf, progress } from "./_context.ts";

/** The cluster options every `--target kubevirt` command takes. */
export interface ClusterFlags {
  /** `--kubeconfig FILE`. */
  kubeconfig?: string;
  /** `--context NAME`. */
  context?: string;
  /** `-n, --namespace NAME` (default `default`). */
  namespace?: string;
}

/** The options of `foundry create --target kubevirt`. */
export interface KubevirtCreateFlags extends ClusterFlags {
  dryRun?: boolean;
  /** `progress` (default), `json`, or with `--dry-run` `yaml` (default) or `json`. */
  output?: string;
  imageUrl?: string;
  /** `--install-media-url SOURCE`. */
  installMediaUrl?: string;
  /** `--allow-lossy`: a real create may drop what KubeVirt cannot carry over (warned of). */
  allowLossy?: boolean;
  /** `--image NAME=SOURCE`, repeated. */
  image?: string[];
  createNetworks?: boolean;
  storageClass?: string;
  /** False with `--no-start`. */
  start?: boolean;
  /** `--target`: these options need `kubevirt`. */
  target?: string;
  /** libvirt options refused on this target. */
  pool?: string;
  wait?: string | boolean;
}

/** Default namespace of the KubeVirt target. */
export const DEFAULT_NAMESPACE = "default";

function usage(message: string): Error {
  return Object.assign(new Error(message), { exitCode: ExitCode.VALIDATION });
}

function namespaceOf(flags: ClusterFlags): string {
  const ns = flags.namespace ?? DEFAULT_NAMESPACE;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns) || ns.length > 63) {
    throw usage(`Invalid --namespace '${ns}': expected a lowercase RFC 1123 label`);
  }
  return ns;
}

/** `--image NAME=SOURCE` entries as a map. */
function imageMap(entries: readonly string[] | undefined): Record<string, string> | undefined {
  if (!entries?.length) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf("=");
    if (eq <= 0 || eq === e.length - 1) {
      throw usage(`Invalid --image '${e}': expected NAME=URL or NAME=pvc:NAMESPACE/NAME`);
    }
    out[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The cluster client: lib/kubevirt's KubeClient, and NetworkAttachmentDefinitions beside it.

/**
 * lib/kubevirt's client for the kinds it knows, Multus's custom objects and whole-object updates
 * (apply) through the same config.
 */
class FoundryCluster implements KubevirtApplyCluster {
  readonly #client: KubeClient;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;

  constructor(client: KubeClient) {
    this.#client = client;
    this.#custom = client.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#core = client.kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Replaces a Secret or a VirtualMachine (PUT), once: a conflict or an error is the caller's. */
  replace(
    resource: "secrets" | "virtualmachines",
    namespace: string,
    obj: ClusterObject,
  ): Promise<ApiObject> {
    const name = obj.metadata.name;
    if (resource === "secrets") {
      return this.#nad(
        `update Secret ${namespace}/${name}`,
        () => this.#core.replaceNamespacedSecret({ name, namespace, body: obj as never }),
      ) as Promise<ApiObject>;
    }
    return this.#nad(
      `update VirtualMachine ${namespace}/${name}`,
      () =>
        this.#custom.replaceNamespacedCustomObject({
          group: "kubevirt.io",
          version: "v1",
          namespace,
          plural: "virtualmachines",
          name,
          body: obj,
        }),
    );
  }

  /** Resolves once every request sent has ended, those an interrupt gave up on included. */
  settle(): Promise<boolean> {
    return this.#client.settle();
  }

  /** Where objects of `namespace` go, for audit records: `https://server (namespace ns)`. */
  where(namespace: string): string {
    return `${this.#client.server} (namespace ${namespace})`;
  }

  /** The same cluster without the interrupt signal, to undo what an interrupted create made. */
  detached(): FoundryCluster {
    return new FoundryCluster(this.#client.detached());
  }

  async #nad<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    await this.#client.throttle();
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiException) {
        let body: { reason?: string; message?: string } = {};
        try {
          body = typeof e.body === "string" ? JSON.parse(e.body) : (e.body ?? {});
        } catch {
          // not a Status: the code alone says enough
        }
        throw new KubeApiError(
          operation,
          e.code,
          body.reason ?? "",
          body.message ?? "no Status message",
        );
      }
      const cause = (e as { cause?: { code?: string } })?.cause;
      throw new ConnectionError(
        `${operation}: cannot reach ${this.#client.server}: ${
          cause?.code ?? (e as Error)?.message ?? String(e)
        }`,
        [],
        { cause: e },
      );
    }
  }

  #coords(namespace: string) {
    const [group, version] = NAD_API_VERSION.split("/") as [string, string];
    return { group, version, namespace, plural: NAD_RESOURCE };
  }

  create(resource: KubevirtResource, namespace: string, obj: ClusterObject): Promise<ApiObject> {
    if (resource !== NAD_RESOURCE) {
      return this.#client.create(resource, namespace, obj as KubeObject);
    }
    return this.#nad(
      `create NetworkAttachmentDefinition ${namespace}/${obj.metadata.name}`,
      () => this.#custom.createNamespacedCustomObject({ ...this.#coords(namespace), body: obj }),
    );
  }

  get(resource: KubevirtResource, namespace: string, name: string): Promise<ApiObject> {
    if (resource !== NAD_RESOURCE) return this.#client.get(resource, namespace, name);
    return this.#nad(
      `get NetworkAttachmentDefinition ${namespace}/${name}`,
      () => this.#custom.getNamespacedCustomObject({ ...this.#coords(namespace), name }),
    );
  }

  async list(
    resource: KubevirtResource,
    namespace: string,
    labelSelector?: string,
  ): Promise<ApiObject[]> {
    if (resource !== NAD_RESOURCE) return this.#client.list(resource, namespace, labelSelector);
    const res = await this.#nad(
      `list NetworkAttachmentDefinition in ${namespace}`,
      () =>
        this.#custom.listNamespacedCustomObject({
          ...this.#coords(namespace),
          ...(labelSelector ? { labelSelector } : {}),
        }),
    );
    return (res.items ?? []) as ApiObject[];
  }

  async delete(resource: KubevirtResource, namespace: string, name: string): Promise<void> {
    if (resource !== NAD_RESOURCE) return this.#client.delete(resource, namespace, name);
    await this.#nad(
      `delete NetworkAttachmentDefinition ${namespace}/${name}`,
      () => this.#custom.deleteNamespacedCustomObject({ ...this.#coords(namespace), name }),
    );
  }
}

/** Connects as virtwork does; no configuration found is a connection error with a hint. */
function clusterFor(cmd: Command, flags: ClusterFlags): FoundryCluster {
  const lookup = envOf(cmd);
  const env: Record<string, string | undefined> = {};
  for (const k of ["KUBECONFIG", "HOME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"]) {
    env[k] = lookup(k);
  }
  const signal = interruptSignal();
  try {
    const { client } = connect({
      ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}),
      ...(flags.context ? { context: flags.context } : {}),
      env,
      ...(signal ? { signal } : {}),
    });
    return new FoundryCluster(client);
  } catch (e) {
    if (e instanceof ConnectionError && e.message.startsWith("no cluster configuration found")) {
      throw new ConnectionError(
        `${e.message}; pass --kubeconfig or set KUBECONFIG, or try --dry-run, which needs no cluster`,
        [],
        { cause: e },
      );
    }
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// create

/** Where field `path` of VM `vmName` is in the YAML `text`: its line and column, else the VM's. */
export function locateField(
  text: string,
  vmName: string,
  path: string,
): { line: number; column: number } {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc });
  const keys: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    keys.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  }
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    const name = doc.getIn?.(["metadata", "name"]);
    if (typeof name !== "string" || name.toLowerCase() !== vmName) continue;
    for (let n = keys.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(keys.slice(0, n), true);
      const at = (node as { range?: [number, number, number] } | undefined)?.range?.[0];
      if (at !== undefined) {
        const pos = lc.linePos(at);
        return { line: pos.line, column: pos.col };
      }
    }
  }
  return { line: 1, column: 1 };
}

/** A mapping error as the loader reports bad input: `file:line:column path: message`. */
function asValidationError(file: string, text: string, e: KubevirtMappingError): ValidationError {
  const { line, column } = locateField(text, e.vmName, e.path);
  const flag = e.path === "spec.installMedia.image" ? "--install-media-url" : "--image-url";
  return new ValidationError([{
    file,
    line,
    column,
    path: e.path,
    message: e.message.slice(e.path.length + 2) +
      (e.unsourcedImage === undefined
        ? ""
        : `: pass ${flag} URL|pvc:NAMESPACE/NAME, or --image ${e.unsourcedImage || "NAME"}=URL`),
  }], { cause: e });
}

/**
 * Warns of every field the objects carry over only in part (`warning: VM NAME: path: detail`);
 * without `allow` (a write to a cluster without --allow-lossy), refuses the first of them as a
 * ValidationError at its file and line, before anything is sent.
 */
async function checkLossy(
  io: Io,
  fileOf: string | ((vmName: string) => string),
  all: readonly KubevirtManifests[],
  allow: boolean,
  action = "create",
): Promise<void> {
  for (const m of all) {
    for (const l of m.lossy) {
      io.err(`warning: VM ${m.vm.metadata.name}: ${l.path}: ${l.detail}\n`);
    }
  }
  if (allow) return;
  const first = all.find((m) => m.lossy.length > 0);
  if (!first) return;
  const l = first.lossy[0]!;
  const name = first.vm.metadata.name;
  const file = typeof fileOf === "string" ? fileOf : fileOf(name);
  const { line, column } = locateField(await Deno.readTextFile(file), name, l.path);
  throw new ValidationError([{
    file,
    line,
    column,
    path: l.path,
    message:
      `KubeVirt carries this field over only in part (see the warnings); pass --allow-lossy to ${action} the VM without it`,
  }]);
}

/** Every VM's objects, or the first mapping error as a ValidationError (exit 2). */
async function manifestsOf(
  fileOf: string | ((vmName: string) => string),
  vms: readonly VirtualMachine[],
  flags: Pick<
    KubevirtCreateFlags,
    "image" | "imageUrl" | "installMediaUrl" | "storageClass" | "start"
  >,
  namespace: string,
  fallback?: (vm: VirtualMachine) => Pick<
    KubevirtOptions,
    "imageUrl" | "installMediaUrl" | "storageClass"
  >,
): Promise<KubevirtManifests[]> {
  const images = imageMap(flags.image);
  const out: KubevirtManifests[] = [];
  for (const vm of vms) {
    const from = fallback?.(vm) ?? {};
    const o: KubevirtOptions = {
      namespace,
      ...(flags.imageUrl !== undefined ? { imageUrl: flags.imageUrl } : {}),
      ...(flags.installMediaUrl !== undefined ? { installMediaUrl: flags.installMediaUrl } : {}),
      ...(images ? { images } : {}),
      ...(flags.storageClass !== undefined
        ? { storageClass: flags.storageClass }
        : from.storageClass !== undefined
        ? { storageClass: from.storageClass }
        : {}),
      noStart: flags.start === false,
    };
    try {
      // A source the flags do not give is the one the cluster's VM was made from (apply).
      for (let attempt = 0;; attempt++) {
        try {
          out.push(kubevirtManifests(vm, o));
          break;
        } catch (e) {
          if (!(e instanceof KubevirtMappingError) || e.unsourcedImage === undefined) throw e;
          if (e.path === "spec.bootDisk.image" && from.imageUrl && !o.imageUrl) {
            o.imageUrl = from.imageUrl;
          } else if (
            e.path === "spec.installMedia.image" && from.installMediaUrl && !o.installMediaUrl
          ) o.installMediaUrl = from.installMediaUrl;
          else throw e;
        }
      }
    } catch (e) {
      if (e instanceof KubevirtMappingError) {
        const file = typeof fileOf === "string" ? fileOf : fileOf(vm.metadata.name);
        throw asValidationError(file, await Deno.readTextFile(file), e);
      }
      throw e;
    }
  }
  return out;
}

/** One `Error: WHAT: ...` line per failure of undoing what a failed operation did. */
function printRollbackErrors(io: Io, e: unknown, what: string): void {
  for (const u of (e as { rollbackErrors?: unknown[] }).rollbackErrors ?? []) {
    const text = u instanceof Error ? u.message : String(u);
    io.err(`Error: ${what}: ${sanitizeText(text, { singleLine: true })}\n`);
  }
}

/** A missing network as the user reads it: the flag that creates it, exit 2. */
function withNetworkHint(e: MissingNetworkError): Error {
  const them = e.networks.length === 1 ? "it" : "them";
  return Object.assign(new Error(`${e.message}; create ${them} or pass --create-networks`), {
    exitCode: ExitCode.VALIDATION,
    cause: e,
  });
}

/** `foundry create FILE --target kubevirt`. */
export async function kubevirtCreate(
  io: Io,
  file: string,
  flags: KubevirtCreateFlags,
  cmd: Command,
): Promise<void> {
  if (flags.target !== "kubevirt") {
    throw usage(
      "--dry-run, --image-url, --image, --install-media-url, --create-networks, --storage-class, " +
        "--allow-lossy, --kubeconfig, --context and --namespace need --target kubevirt",
    );
  }
  if (flags.pool !== undefined) throw usage("--pool has no meaning with --target kubevirt");
  if (flags.wait !== undefined) throw usage("--wait is not available with --target kubevirt");
  const dryRun = flags.dryRun === true;
  const output = flags.output === undefined || flags.output === "progress"
    ? (dryRun ? "yaml" : "progress")
    : flags.output;
  const allowed = dryRun ? ["yaml", "json"] : ["progress", "json"];
  if (!allowed.includes(output)) {
    throw usage(
      `Invalid output format '${output}': expected one of ${allowed.join(", ")}${
        dryRun ? " with --dry-run" : ""
      }`,
    );
  }
  if (flags.imageUrl !== undefined && flags.image?.length) {
    throw usage("Give --image-url or --image NAME=SOURCE, not both");
  }
  const namespace = namespaceOf(flags);
  // The file and the mapping are checked before any connection: bad input never reaches the cluster.
  const vms = await loadVirtualMachines(file);
  const all = await manifestsOf(file, vms, flags, namespace);
  for (const [i, m] of all.entries()) {
    for (const note of m.notes) io.err(`note: VM ${vms[i]!.metadata.name}: ${note}\n`);
  }
  await checkLossy(io, file, all, dryRun || flags.allowLossy === true);
  if (dryRun) return printObjects(io, all, flags.createNetworks === true, output);

  const api = clusterFor(cmd, flags);
  const say = output === "json" ? () => {} : progress(io);
  const results: { name: string; namespace: string; outcome: string; created: string[] }[] = [];
  for (const m of all) {
    const name = m.vm.metadata.name;
    if (output !== "json") io.out(`Creating VM '${name}' in namespace ${namespace}...\n`);
    try {
      const vm = vms[all.indexOf(m)]!;
      const secrets = [
        ...(vm.spec.cloudInit?.passwordHash ? [vm.spec.cloudInit.passwordHash] : []),
        ...(vm.spec.cloudInit?.sshAuthorizedKeys ?? []),
      ];
      const r = await withFoundryAudit(cmd, {
        resourceType: "vm",
        name,
        uri: api.where(namespace),
        operation: "create",
        details: {
          target: "kubevirt",
          vcpus: vm.spec.vcpus,
          memoryGiB: vm.spec.memoryGiB,
          interfaces: vm.spec.networkInterfaces.length,
          dataDisks: vm.spec.dataDisks?.length ?? 0,
          sshAuthConfigured: secrets.length > 0,
        },
      }, async (op) => {
        const r = await createOnCluster(api, m, {
          createNetworks: flags.createNetworks === true,
          rollbackApi: api.detached(),
          onStep: (_step, detail) => say(`${detail} created`),
        });
        for (const c of r.created) {
          const [kind, objName] = c.split("/") as [string, string];
          op.object({ kind, namespace, name: objName, outcome: "created" });
        }
        return r;
      }, { secrets, ...signalOption() });
      results.push({ name, namespace, outcome: r.outcome, created: r.created });
      if (output !== "json") {
        io.out(
          r.outcome === "unchanged"
            ? `VM '${name}' unchanged (exists with the same spec)\n`
            : `Successfully created VM '${name}'\n`,
        );
      }
    } catch (e) {
      printRollbackErrors(io, e, "could not remove what the failed create made");
      if (e instanceof MissingNetworkError) throw withNetworkHint(e);
      if (results.length === 0) throw e;
      // The VMs before this one stay, as the libvirt path keeps them; say what exists.
      io.err(`Error: ${sanitizeText((e as Error).message, { singleLine: true })}\n`);
      io.err(
        `created before the failure: ${results.map((r) => r.name).join(", ")}\n`,
      );
      setExitCode(cmd, exitCodeFor(e));
      break;
    }
  }
  if (output === "json") io.out(formatJson(results));
}

/** Prints the objects of a dry run: NADs (with `--create-networks`), Secrets redacted, VMs. */
async function printObjects(
  io: Io,
  all: readonly KubevirtManifests[],
  withNetworks: boolean,
  output: string,
): Promise<void> {
  const objects: ClusterObject[] = [];
  const nads = new Set<string>();
  for (const m of all) {
    for (const o of redactedObjects(m, withNetworks)) {
      if (o.kind === "NetworkAttachmentDefinition") {
        if (nads.has(o.metadata.name)) continue;
        nads.add(o.metadata.name);
      }
      objects.push(o);
    }
  }
  if (all.some((m) => m.secret)) {
    io.err("note: Secret data is redacted in this output; create sends the real data\n");
  }
  if (output === "json") {
    return io.out(formatJson({ apiVersion: "v1", kind: "List", items: objects }));
  }
  const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
  io.out(formatYamlDocuments(objects));
}

// ---------------------------------------------------------------------------------------------
// get and list

/** `-o` and `--no-headers`, as list and get receive them. */
export interface KubevirtOutputFlags extends ClusterFlags {
  output: "table" | "wide" | "name" | "json" | "yaml";
  headers?: boolean;
}

/** Age of `iso` at `now`, as kubectl shows it: `45s`, `12m`, `5h`, `3d`. */
export function ageOf(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "-";
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 120 * 60) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function columns(color: boolean): Column<KubevirtVmEntry>[] {
  return [
    { header: "NAME", value: (v) => v.name },
    {
      header: "PHASE",
      value: (v) => paint(v.phase, v.phase === "Running" ? "green" : "dim", color),
    },
    { header: "VCPUS", value: (v) => String(v.vcpus) },
    {
      header: "MEMORY",
      value: (v) => v.memoryMiB % 1024 === 0 ? `${v.memoryMiB / 1024} GiB` : `${v.memoryMiB} MiB`,
    },
    { header: "IP", value: (v) => v.ip },
    { header: "AGE", value: (v) => ageOf(v.createdAt) },
    {
      header: "LABELS",
      value: (v) =>
        Object.entries(v.labels).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
          .map(([k, x]) => `${k}=${x}`).join(",") || "<none>",
      wide: true,
    },
  ];
}

function printEntries(
  io: Io,
  flags: KubevirtOutputFlags,
  entries: readonly KubevirtVmEntry[],
  empty?: string,
): void {
  // -o yaml: the writer was loaded by addListingOptions' hook before the action.
  printListing(io, { output: flags.output, headers: flags.headers !== false }, entries, {
    columns: columns(colorFor(io)),
    kind: "vm",
    name: (v) => v.name,
    ...(empty === undefined ? {} : { empty }),
  });
}

/** `foundry get NAME --target kubevirt`: the stored v1alpha1 document with status from the VMI. */
export async function kubevirtGet(
  io: Io,
  name: string,
  flags: KubevirtOutputFlags,
  cmd: Command,
): Promise<void> {
  const namespace = namespaceOf(flags);
  const entry = await getFromCluster(clusterFor(cmd, flags), namespace, name.toLowerCase());
  if (flags.output === "json") return io.out(formatJson(entry.vm));
  if (flags.output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    return io.out(formatYamlDocuments([entry.vm]));
  }
  printEntries(io, flags, [entry]);
}

/** `foundry list --target kubevirt [-l SELECTOR]`: foundry's VMs in the namespace. */
export async function kubevirtList(
  io: Io,
  flags: KubevirtOutputFlags & { selector?: string[]; all?: boolean; watch?: boolean },
  cmd: Command,
): Promise<void> {
  if (flags.all === true || flags.watch === true) {
    throw usage(`--${flags.all ? "all" : "watch"} is not available with --target kubevirt`);
  }
  const namespace = namespaceOf(flags);
  let selector: string | undefined;
  if (flags.selector?.length) {
    try {
      parseLabelSelector(flags.selector);
    } catch (e) {
      throw usage((e as Error).message);
    }
    selector = flags.selector.join(",");
  }
  const entries = await listFromCluster(clusterFor(cmd, flags), namespace, selector);
  if (flags.output === "json" || flags.output === "yaml") {
    const docs = entries.map((e) => e.vm);
    if (flags.output === "json") return io.out(formatJson(docs));
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    return io.out(docs.length ? formatYamlDocuments(docs) : "");
  }
  printEntries(io, flags, entries, `No VMs found in namespace ${namespace}`);
}

// ---------------------------------------------------------------------------------------------
// destroy

/** `foundry destroy NAME... --target kubevirt` (or `-l SELECTOR`). */
export async function kubevirtDestroy(
  io: Io,
  names: readonly string[],
  flags: ClusterFlags & { selector?: string[]; ignoreNotFound?: boolean; target?: string },
  cmd: Command,
): Promise<void> {
  if (flags.target !== "kubevirt") {
    // A name on the wrong target would destroy another VM than the one meant.
    throw usage("--kubeconfig, --context and --namespace need --target kubevirt");
  }
  const namespace = namespaceOf(flags);
  const selector = flags.selector ?? [];
  if (names.length > 0 && selector.length > 0) {
    throw usage("Give VM names or -l SELECTOR, not both");
  }
  if (names.length === 0 && selector.length === 0) {
    throw usage("Give at least one VM name, or -l SELECTOR");
  }
  if (selector.length) {
    try {
      parseLabelSelector(selector);
    } catch (e) {
      throw usage((e as Error).message);
    }
  }
  const api = clusterFor(cmd, flags);
  const targets = selector.length
    ? (await listFromCluster(api, namespace, selector.join(","))).map((e) => e.name)
    : [...new Set(names.map((n) => n.toLowerCase()))];
  if (selector.length && targets.length === 0) {
    io.err(`No VMs match the selector in namespace ${namespace}\n`);
  }
  let worst = 0;
  for (const name of targets) {
    try {
      io.out(`Destroying VM '${name}' in namespace ${namespace}...\n`);
      const r = await withFoundryAudit(cmd, {
        resourceType: "vm",
        name,
        uri: api.where(namespace),
        operation: "destroy",
        details: { target: "kubevirt" },
      }, async (op) => {
        const r = await destroyOnCluster(api, namespace, name);
        op.event({
          level: "info",
          reason: "Deleted",
          object: `VirtualMachine/${name}`,
          message: `deleted ${r.deleted.join(", ") || "nothing (already gone)"}`,
        });
        return r;
      }, signalOption());
      for (const d of r.deleted) io.out(`deleted ${d}\n`);
      io.out(`Successfully destroyed VM '${name}'\n`);
    } catch (e) {
      if (e instanceof VmNotFoundError && flags.ignoreNotFound === true) {
        io.out(`VM '${name}' does not exist in namespace ${namespace}\n`);
        continue;
      }
      if (targets.length === 1) throw e;
      io.err(`Error: ${sanitizeText((e as Error).message, { singleLine: true })}\n`);
      worst = Math.max(worst, exitCodeFor(e));
    }
  }
  if (worst !== 0) setExitCode(cmd, worst);
}

// ---------------------------------------------------------------------------------------------
// apply and diff

/** The options apply and diff receive (commander's values) that the KubeVirt target reads. */
interface KubevirtApplyFlags extends ClusterFlags {
  target?: string;
  filename: string[];
  dryRun?: boolean;
  recreate?: boolean;
  prune?: boolean;
  selector?: string[];
  wait?: string | boolean;
  output: string;
  imageUrl?: string;
  image?: string[];
  installMediaUrl?: string;
  storageClass?: string;
  createNetworks?: boolean;
  allowLossy?: boolean;
}

/**
 * `foundry apply -f FILE --target kubevirt` and `foundry diff -f FILE --target kubevirt` (`cmd` is
 * the command, `name` diff's VM argument): the plan per VM from the stored spec on the cluster,
 * printed as the libvirt target prints it; diff and `apply --dry-run` change nothing and exit 1
 * when something would change; apply carries the plans out in order, refusing every plan with a
 * recreate change (without --recreate) or a forbidden one before anything is changed.
 */
export async function kubevirtApply(io: Io, cmd: Command, name?: string): Promise<void> {
  const flags = cmd.opts() as KubevirtApplyFlags;
  const isDiff = cmd.name() === "diff";
  const verb = isDiff ? "diff" : "apply";
  if (flags.target !== "kubevirt") {
    throw usage(
      "--kubeconfig, --context, --namespace, --image-url, --image, --install-media-url, " +
        "--create-networks, --storage-class and --allow-lossy need --target kubevirt",
    );
  }
  if (name !== undefined) {
    throw usage("diff NAME (drift) is not available with --target kubevirt; use diff -f FILE");
  }
  if (flags.prune === true || flags.selector?.length) {
    throw usage(`--prune and -l are not available with ${verb} --target kubevirt`);
  }
  if (flags.wait !== undefined) throw usage("--wait is not available with --target kubevirt");
  if (!["text", "json", "yaml"].includes(flags.output)) {
    throw usage(`Invalid output format '${flags.output}': expected one of text, json, yaml`);
  }
  if (flags.filename.length === 0) throw usage("No files given: use -f FILE|DIR");
  if (flags.imageUrl !== undefined && flags.image?.length) {
    throw usage("Give --image-url or --image NAME=SOURCE, not both");
  }
  const dryRun = isDiff || flags.dryRun === true;
  const namespace = namespaceOf(flags);
  const { loadFoundryDocuments } = await import("../../lib/foundry/loader.ts");
  const lib = await import("../../lib/foundry/kubevirt_apply.ts");
  let docs;
  try {
    docs = await loadFoundryDocuments(flags.filename);
  } catch (e) {
    // diff's exit 1 means "differs": a configuration error is 2 there, as on libvirt.
    if (isDiff && exitCodeFor(e) === ExitCode.CONFIG) {
      throw Object.assign(new Error((e as Error).message, { cause: e }), {
        exitCode: ExitCode.VALIDATION,
      });
    }
    throw e;
  }
  const fileOf = (vmName: string) =>
    (docs.sources.get(vmName) ?? flags.filename[0]!).replace(/:\d+$/, "");
  const api = clusterFor(cmd, flags);
  const currents = new Map<string, ApiObject>();
  for (const vm of docs.vms) {
    const current = await getOrUndefined(api, "virtualmachines", namespace, vm.metadata.name);
    if (current) currents.set(vm.metadata.name, current);
  }
  const all = await manifestsOf(fileOf, docs.vms, flags, namespace, (vm) => {
    const current = currents.get(vm.metadata.name);
    return current ? lib.sourcesOf(current, vm) : {};
  });
  for (const [i, m] of all.entries()) {
    for (const note of m.notes) io.err(`note: VM ${docs.vms[i]!.metadata.name}: ${note}\n`);
  }
  await checkLossy(io, fileOf, all, dryRun || flags.allowLossy === true, "apply");

  const planned: { plan: VmPlan; m: KubevirtManifests; current?: ApiObject }[] = [];
  for (const [i, m] of all.entries()) {
    const vm = docs.vms[i]!;
    const current = currents.get(vm.metadata.name);
    const currentSecret = current && m.secret
      ? await getOrUndefined(api, "secrets", namespace, m.secret.metadata.name)
      : undefined;
    const plan = lib.planKubevirtVm(vm, m, current, {
      recreate: flags.recreate === true,
      ...(currentSecret ? { currentSecret } : {}),
    });
    const source = docs.sources.get(vm.metadata.name);
    if (source !== undefined) plan.source = source;
    planned.push({ plan, m, ...(current ? { current } : {}) });
  }
  const plans = planned.map((p) => p.plan);
  const { planText } = await import("./apply.ts");
  if (flags.output === "json") io.out(formatJson(plans));
  else if (flags.output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    io.out(formatYamlDocuments(plans));
  } else io.out(planText(plans, colorFor(io)));
  if (dryRun) {
    if (plans.some((p) => p.action !== "unchanged")) setExitCode(cmd, 1);
    return;
  }
  // Every refusal is known before anything changes: none of the VMs is touched then.
  const refused = plans.filter((p) => lib.kubevirtRefusedChanges(p).length > 0);
  if (refused.length > 0) {
    for (const p of refused) {
      const { applyRefusalText } = await import("../../lib/foundry/apply.ts");
      io.err(
        `Error: ${
          sanitizeText(
            applyRefusalText(p.name, lib.kubevirtRefusedChanges(p), "pass --recreate"),
            { singleLine: true },
          )
        }\n`,
      );
    }
    setExitCode(cmd, ExitCode.VM_OPERATION);
    return;
  }
  const text = flags.output === "text";
  const say = text ? progress(io) : () => {};
  const finished: string[] = [];
  for (const [i, p] of planned.entries()) {
    if (p.plan.action === "unchanged") continue;
    const vm = docs.vms[i]!;
    const secrets = [
      ...(vm.spec.cloudInit?.passwordHash ? [vm.spec.cloudInit.passwordHash] : []),
      ...(vm.spec.cloudInit?.sshAuthorizedKeys ?? []),
    ];
    try {
      const r = await withFoundryAudit(cmd, {
        resourceType: "vm",
        name: p.plan.name,
        uri: api.where(namespace),
        operation: "apply",
        details: {
          target: "kubevirt",
          action: p.plan.action,
          changes: p.plan.changes.map((c) => `${c.path} (${c.class})`),
        },
      }, async (op) => {
        const r = await lib.applyOnCluster(api, p.m, p.plan, p.current, {
          createNetworks: flags.createNetworks === true,
          rollbackApi: api.detached(),
          onStep: (detail) => say(detail),
        });
        // "created Kind ns/name" or "created Kind/name", "updated ...", "deleted ...".
        for (const d of r.done) {
          const [what, kind, ref] = d.replace(/^(\w+) (\w+)\//, "$1 $2 ").split(" ") as [
            string,
            string,
            string,
          ];
          const objName = ref.split("/").at(-1)!;
          if (what === "created") op.object({ kind, namespace, name: objName, outcome: "created" });
          else {
            op.event({
              level: "info",
              reason: what === "updated" ? "Updated" : "Deleted",
              object: `${kind}/${objName}`,
              message: d,
            });
          }
        }
        return r;
      }, { secrets, ...signalOption() });
      if (text && lib.needsRestart(p.plan)) {
        io.out(
          r.restartPending
            ? `  VM '${p.plan.name}' is running: this takes effect at the next restart (virtctl restart ${p.plan.name})\n`
            : `  VM '${p.plan.name}' is not running: this takes effect when it starts\n`,
        );
      }
      finished.push(p.plan.name);
    } catch (e) {
      printRollbackErrors(io, e, "could not undo what the failed apply did");
      const rest = planned.slice(i + 1).filter((q) => q.plan.action !== "unchanged")
        .map((q) => q.plan.name);
      const err = e instanceof MissingNetworkError ? withNetworkHint(e) : e;
      io.err(`Error: ${sanitizeText((err as Error).message, { singleLine: true })}\n`);
      io.err(
        `Applied: ${finished.join(", ") || "none"}; failed: ${p.plan.name}; not attempted: ${
          rest.join(", ") || "none"
        }\n`,
      );
      setExitCode(cmd, exitCodeFor(err, ExitCode.VM_OPERATION));
      return;
    }
  }
  if (text) {
    const counts = new Map<string, number>();
    for (const p of plans) counts.set(p.action, (counts.get(p.action) ?? 0) + 1);
    io.out(`${[...counts].map(([a, n]) => `${n} ${a}`).join(", ") || "nothing to apply"}\n`);
  }
}
