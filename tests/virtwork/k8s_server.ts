/**
 * A Kubernetes API test server on 127.0.0.1: real HTTP, spoken to by the real
 * `@kubernetes/client-node`. It keeps Namespaces, Secrets, Services, VirtualMachines,
 * VirtualMachineInstances and Multus NetworkAttachmentDefinitions in memory and behaves as an API
 * server does where a client can tell:
 *
 * - create (POST), get, list, update (PUT), patch (PATCH) and delete, namespaced and across
 *   namespaces; label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!`) and field selectors
 *   (`metadata.name`, `metadata.namespace`); `limit`/`continue` pagination served from the snapshot
 *   of the first page (410 `Expired` once that snapshot left the history)
 * - `Status` bodies in the API server's shape for 400, 401, 403, 404, 409, 410, 415, 422 and
 *   injected errors; details name the resource (`secrets`, `virtualmachines.kubevirt.io`) for
 *   NotFound/AlreadyExists/Conflict and the kind for Invalid
 * - names checked on every kind, as the API server does: Namespaces a DNS-1123 label, Services a
 *   DNS-1035 label, Secrets a DNS-1123 subdomain; VirtualMachines and VMIs a DNS-1123 subdomain of
 *   at most 63 characters (KubeVirt uses the name as a label value and the hostname)
 * - unknown fields dropped with a `Warning: 299 - "unknown field \"spec.foo\""` header (the
 *   default `fieldValidation=Warn`), dropped silently with `Ignore`, 400 with `Strict`. Fields are
 *   known from the KubeVirt schema for VirtualMachines (with `validator`) and from a table of the
 *   top-level and `spec` fields for the core kinds
 * - PUT and PATCH (`merge-patch`, `json-patch`, and `strategic-merge-patch` for the core kinds
 *   with lists merged by `name`, or `port` for Service ports) with optimistic concurrency: a stale
 *   `metadata.resourceVersion` is 409 Conflict; custom resources need one on PUT (422 without);
 *   status is not changed through the main resource of a kind with a status subresource; an update
 *   that changes nothing keeps the resourceVersion
 * - one global resourceVersion, bumped on every change including status changes, with uid,
 *   creationTimestamp and (for VirtualMachines) generation
 * - watch (`?watch=1`): JSON lines of ADDED/MODIFIED/DELETED; without a resourceVersion (or "0")
 *   the current objects first as ADDED; from a resourceVersion the changes after it, or one ERROR
 *   event with a 410 `Expired` Status when it is older than the history kept (`historySize`);
 *   objects leaving or entering a selector are DELETED or ADDED; BOOKMARK events every
 *   `bookmarkIntervalMs` with `allowWatchBookmarks=true`; `timeoutSeconds` ends the stream
 * - deletion that takes `deletionDelayMs` (the object shows a deletionTimestamp meanwhile, and
 *   `finishDeletions` ends the wait at once); a
 *   deleted Namespace takes its objects with it, refuses creates while it terminates (403) and
 *   answers another delete with 409 Conflict
 * - a VM with `runStrategy: Always` gets a VMI that is `Scheduling`, then `Running` with a `Ready`
 *   condition after `readyAfterMs(vmName)` (`undefined`: never ready); `failVmi` drives a VMI to
 *   `Failed`, `setVmPrintableStatus` sets a VM's `status.printableStatus`, `restartVmi` replaces
 *   it with a new one (new uid) that goes through the phases again
 * - VirtualMachines validated against `v1.VirtualMachine` of the KubeVirt schema (422), and inline
 *   cloud-init user data limited to 2048 bytes as KubeVirt's webhook does
 * - injectable faults (`inject`) and latency, and a log of every request
 * - the VMI console subresource
 *   (`/apis/subresources.kubevirt.io/v1/namespaces/NS/virtualmachineinstances/NAME/console`): a
 *   websocket with the `plain.kubevirt.io` subprotocol (as virt-api: offered, it is chosen; not
 *   offered, the upgrade has none) whose binary frames carry the lines set with `setConsole`; 404
 *   for an unknown VMI, 400 for one not Running or a request that is not a websocket upgrade
 *
 * Not served: server-side apply, other subresources (`/status`, `/finalize`), dry runs, deletion
 * preconditions, `resourceVersionMatch`.
 *
 * @module
 */
import type { OpenApiValidator } from "./openapi_validator.ts";

/** A stored object. */
// deno-lint-ignore no-explicit-any
export type Obj = Record<string, any>;

/** One logged request. */
export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  at: number;
}

/** What a fault injector sees. */
export interface RequestInfo {
  method: string;
  resource: string;
  namespace?: string;
  name?: string;
}

/** An injected response: an HTTP status with a Status body, optionally a Retry-After header. */
export interface InjectedFault {
  status: number;
  retryAfterSeconds?: number;
  message?: string;
  /** `Status.reason`; derived from the status when omitted. */
  reason?: string;
}

/** A watch event as sent on the wire. */
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Obj;
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "AlreadyExists",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  503: "ServiceUnavailable",
};

/** Options of the test server. */
export interface K8sTestServerOptions {
  /** Bearer token clients must send; any token is accepted when omitted. */
  token?: string;
  /** Delay added to every response. */
  latencyMs?: number;
  /** How long a deleted object stays (terminating) before it is gone. */
  deletionDelayMs?: number;
  /** Milliseconds from VMI creation to Ready for a VM name; `undefined` never becomes ready. */
  readyAfterMs?: (vmName: string) => number | undefined;
  /** Validator for VirtualMachines on create and update; no validation when omitted. */
  validator?: OpenApiValidator;
  /** Serve HTTPS with this PEM certificate and key; `ca` goes into the kubeconfig. */
  tls?: { cert: string; key: string; ca: string };
  /** Called for each request before it is handled; a returned fault is answered instead. */
  inject?: (req: RequestInfo) => InjectedFault | undefined;
  /** Changes kept for watch resumption and list continuation (default 1000). */
  historySize?: number;
  /** Interval of BOOKMARK events to watches that allow them (default 60000, as the API server). */
  bookmarkIntervalMs?: number;
}

interface ResourceKind {
  kind: string;
  apiVersion: string;
  namespaced: boolean;
  /** Group-qualified resource as Status messages name it. */
  qualified: string;
  /** Whether the kind is a custom resource (KubeVirt). */
  custom: boolean;
  /** Whether status changes only through a status subresource. */
  statusSubresource: boolean;
}

const KINDS: Record<string, ResourceKind> = {
  namespaces: {
    kind: "Namespace",
    apiVersion: "v1",
    namespaced: false,
    qualified: "namespaces",
    custom: false,
    statusSubresource: true,
  },
  secrets: {
    kind: "Secret",
    apiVersion: "v1",
    namespaced: true,
    qualified: "secrets",
    custom: false,
    statusSubresource: false,
  },
  services: {
    kind: "Service",
    apiVersion: "v1",
    namespaced: true,
    qualified: "services",
    custom: false,
    statusSubresource: true,
  },
  virtualmachines: {
    kind: "VirtualMachine",
    apiVersion: "kubevirt.io/v1",
    namespaced: true,
    qualified: "virtualmachines.kubevirt.io",
    custom: true,
    statusSubresource: true,
  },
  virtualmachineinstances: {
    kind: "VirtualMachineInstance",
    apiVersion: "kubevirt.io/v1",
    namespaced: true,
    qualified: "virtualmachineinstances.kubevirt.io",
    custom: true,
    statusSubresource: true,
  },
  // Multus: foundry's KubeVirt target puts NICs on bridge networks.
  "network-attachment-definitions": {
    kind: "NetworkAttachmentDefinition",
    apiVersion: "k8s.cni.cncf.io/v1",
    namespaced: true,
    qualified: "network-attachment-definitions.k8s.cni.cncf.io",
    custom: true,
    statusSubresource: false,
  },
};

const OBJECT_META_FIELDS = new Set([
  "annotations",
  "creationTimestamp",
  "deletionGracePeriodSeconds",
  "deletionTimestamp",
  "finalizers",
  "generateName",
  "generation",
  "labels",
  "managedFields",
  "name",
  "namespace",
  "ownerReferences",
  "resourceVersion",
  "selfLink",
  "uid",
]);

/** Known top-level fields, and known `spec` fields, of the core kinds (Kubernetes 1.31). */
const CORE_FIELDS: Record<string, { top: string[]; spec?: string[] }> = {
  namespaces: { top: ["apiVersion", "kind", "metadata", "spec", "status"], spec: ["finalizers"] },
  secrets: { top: ["apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"] },
  services: {
    top: ["apiVersion", "kind", "metadata", "spec", "status"],
    spec: [
      "allocateLoadBalancerNodePorts",
      "clusterIP",
      "clusterIPs",
      "externalIPs",
      "externalName",
      "externalTrafficPolicy",
      "healthCheckNodePort",
      "internalTrafficPolicy",
      "ipFamilies",
      "ipFamilyPolicy",
      "loadBalancerClass",
      "loadBalancerIP",
      "loadBalancerSourceRanges",
      "ports",
      "publishNotReadyAddresses",
      "selector",
      "sessionAffinity",
      "sessionAffinityConfig",
      "trafficDistribution",
      "type",
    ],
  },
};

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/** Name rules by resource: pattern, its message, longest length. */
const NAME_RULES: Record<string, { re: RegExp; msg: string; max: number }> = {
  namespaces: { re: DNS1123_LABEL, msg: LABEL_MSG, max: 63 },
  services: { re: DNS1035_LABEL, msg: DNS1035_MSG, max: 63 },
  secrets: { re: DNS1123_SUBDOMAIN, msg: SUBDOMAIN_MSG, max: 253 },
  virtualmachines: { re: DNS1123_SUBDOMAIN, msg: SUBDOMAIN_MSG, max: 63 },
  virtualmachineinstances: { re: DNS1123_SUBDOMAIN, msg: SUBDOMAIN_MSG, max: 63 },
  "network-attachment-definitions": { re: DNS1123_SUBDOMAIN, msg: SUBDOMAIN_MSG, max: 253 },
};

interface HistoryEntry {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  resource: string;
  key: string;
  /** The object after the change (its last state for DELETED). */
  object: Obj;
  /** The object before the change (undefined for ADDED). */
  prev: Obj | undefined;
}

interface Watcher {
  resource: string;
  namespace: string | undefined;
  match: (o: Obj) => boolean;
  send: (e: WatchEvent) => void;
  close: () => void;
}

/** The in-memory API server. Start it with {@linkcode K8sTestServer.start}. */
export class K8sTestServer {
  /** Every request, in arrival order. */
  readonly requests: RequestRecord[] = [];
  /** Every `Warning` header sent, in order (e.g. `unknown field "spec.foo"`). */
  readonly warnings: string[] = [];
  /** Options; tests may change `latencyMs`, `inject` and `readyAfterMs` while it runs. */
  readonly options: K8sTestServerOptions;
  readonly #store = new Map<string, Obj>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Deletions waiting out `deletionDelayMs`, by their timer. */
  readonly #deletions = new Map<ReturnType<typeof setTimeout>, () => void>();
  readonly #vmiTimers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #history: HistoryEntry[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #consoles = new Map<string, ConsoleScript>();
  readonly #consoleSockets = new Set<WebSocket>();
  /** Bytes each VMI's console received from clients, by `namespace/name`. */
  readonly consoleInput = new Map<string, Uint8Array[]>();
  /**
   * Subprotocol the console endpoint answers: `undefined` (the default) as virt-api does, `null`
   * none at all (a proxy that does not pass it on). Deno answers only a subprotocol the client
   * offered.
   */
  consoleSubprotocol: string | null | undefined;
  /** Changes up to this resourceVersion have left the history. */
  #compactedRv = 0;
  #rv = 1000;
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #inFlight = 0;
  #maxInFlight = 0;

  private constructor(options: K8sTestServerOptions) {
    this.options = options;
  }

  /** Starts a server on 127.0.0.1 on a free port. */
  static start(options: K8sTestServerOptions = {}): K8sTestServer {
    const s = new K8sTestServer(options);
    const listen = { hostname: "127.0.0.1", port: 0, onListen: () => {} };
    const handler = (req: Request) => s.#handle(req);
    s.#server = options.tls
      ? Deno.serve({ ...listen, cert: options.tls.cert, key: options.tls.key }, handler)
      : Deno.serve(listen, handler);
    return s;
  }

  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  get url(): string {
    return `${this.options.tls ? "https" : "http"}://127.0.0.1:${this.#server!.addr.port}`;
  }

  /** The most requests that were being handled at the same time. */
  get maxInFlight(): number {
    return this.#maxInFlight;
  }

  /** The current resourceVersion (of the latest change). */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Console websockets currently open. */
  get openConsoles(): number {
    return this.#consoleSockets.size;
  }

  /**
   * Test hook: what the console of VMI `namespace/name` prints once a client connects: each of
   * `lines` (a newline added) in its own binary frame, `intervalMs` apart. The console then stays
   * open, or with `end` the server closes it after the last line.
   */
  setConsole(
    namespace: string,
    name: string,
    lines: string[],
    intervalMs = 0,
    opts: { end?: boolean } = {},
  ): void {
    this.#consoles.set(`${namespace}/${name}`, { lines, intervalMs, end: opts.end ?? false });
  }

  /** Watches currently open. */
  get openWatches(): number {
    return this.#watchers.size;
  }

  /** A kubeconfig (YAML-compatible JSON) pointing at this server. */
  kubeconfig(context = "test", namespace = "default"): string {
    return JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "test-cluster",
        // client-node refuses plain HTTP unless TLS verification is off; the server is loopback only.
        cluster: this.options.tls
          ? { server: this.url, "certificate-authority-data": btoa(this.options.tls.ca) }
          : { server: this.url, "insecure-skip-tls-verify": true },
      }],
      users: [{ name: "test-user", user: { token: this.options.token ?? "test-token" } }],
      contexts: [{
        name: context,
        context: { cluster: "test-cluster", user: "test-user", namespace },
      }],
      "current-context": context,
    });
  }

  /** Writes {@linkcode kubeconfig} to a temporary file and returns its path. */
  async writeKubeconfig(): Promise<string> {
    const file = await Deno.makeTempFile({ prefix: "virtwork-kubeconfig-" });
    await Deno.writeTextFile(file, this.kubeconfig());
    return file;
  }

  /** Stops the server, its timers and open watches. */
  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#deletions.clear();
    for (const t of this.#vmiTimers.values()) clearTimeout(t);
    this.#vmiTimers.clear();
    for (const w of [...this.#watchers]) w.close();
    for (const ws of this.#consoleSockets) ws.close();
    this.#consoleSockets.clear();
    await this.#server?.shutdown();
  }

  /** Objects of a resource (optionally in one namespace), as stored. */
  objects(resource: string, namespace?: string): Obj[] {
    const out: Obj[] = [];
    for (const [key, obj] of this.#store) {
      const [r, ns] = key.split("/");
      if (r === resource && (namespace === undefined || ns === namespace)) {
        out.push(structuredClone(obj));
      }
    }
    return out;
  }

  /** Puts an object into the store directly (for fixtures not created by the code under test). */
  seed(resource: string, obj: Obj): Obj {
    const stored = this.#stamp(resource, structuredClone(obj));
    const key = this.#key(resource, obj.metadata.namespace, obj.metadata.name);
    this.#commit("ADDED", resource, key, stored);
    if (resource === "virtualmachines") this.#maybeStartVmi(stored);
    return structuredClone(stored);
  }

  /** Requests whose method and path match. */
  requestsMatching(method: string, pathPattern: RegExp): RequestRecord[] {
    return this.requests.filter((r) => r.method === method && pathPattern.test(r.path));
  }

  /**
   * Test hook: the VMI goes to phase `Failed` (its Ready condition False with `reason`), as when
   * its virt-launcher pod dies. A pending transition to Running is cancelled.
   */
  failVmi(namespace: string, name: string, reason = "TestFailure"): void {
    const key = this.#key("virtualmachineinstances", namespace, name);
    const vmi = this.#store.get(key);
    if (!vmi) throw new Error(`no VMI ${namespace}/${name}`);
    this.#cancelVmiTimer(key);
    const next = structuredClone(vmi);
    next.status = {
      phase: "Failed",
      reason,
      conditions: [{ type: "Ready", status: "False", reason }],
    };
    this.#commit("MODIFIED", "virtualmachineinstances", key, next);
  }

  /**
   * Test hook: every deletion still waiting out `deletionDelayMs` completes now (the objects and
   * what goes with them are gone). Returns how many completed.
   */
  finishDeletions(): number {
    const pending = [...this.#deletions];
    this.#deletions.clear();
    for (const [t, gone] of pending) {
      clearTimeout(t);
      this.#timers.delete(t);
      gone();
    }
    return pending.length;
  }

  /**
   * Test hook: the VM's `status.printableStatus` becomes `printableStatus` (for example
   * `ErrorUnschedulable` or `ErrImagePull`), as virt-controller reports a VM it cannot start.
   */
  setVmPrintableStatus(namespace: string, name: string, printableStatus: string): void {
    const key = this.#key("virtualmachines", namespace, name);
    const vm = this.#store.get(key);
    if (!vm) throw new Error(`no VM ${namespace}/${name}`);
    const next = structuredClone(vm);
    next.status = { ...(next.status ?? {}), printableStatus };
    this.#commit("MODIFIED", "virtualmachines", key, next);
  }

  /**
   * Test hook: the VMI is replaced by a new one (new uid) that goes through Scheduling to Running
   * again after `readyAfterMs`, as virt-controller does for a VM with `runStrategy: Always`.
   */
  restartVmi(namespace: string, name: string): void {
    const vm = this.#store.get(this.#key("virtualmachines", namespace, name));
    if (!vm) throw new Error(`no VM ${namespace}/${name}`);
    const key = this.#key("virtualmachineinstances", namespace, name);
    const old = this.#store.get(key);
    if (old) {
      this.#cancelVmiTimer(key);
      this.#commit("DELETED", "virtualmachineinstances", key, old);
    }
    this.#startVmi(vm);
  }

  #key(resource: string, namespace: string | undefined, name: string): string {
    return `${resource}/${KINDS[resource]!.namespaced ? namespace : ""}/${name}`;
  }

  #stamp(resource: string, obj: Obj): Obj {
    const k = KINDS[resource]!;
    obj.apiVersion = k.apiVersion;
    obj.kind = k.kind;
    obj.metadata = {
      ...obj.metadata,
      uid: crypto.randomUUID(),
      creationTimestamp: new Date().toISOString(),
    };
    if (resource === "virtualmachines") obj.metadata.generation = 1;
    if (resource === "namespaces") {
      obj.spec = { finalizers: ["kubernetes"] };
      obj.status = { phase: "Active" };
    }
    return obj;
  }

  /** Records a change: bumps the resourceVersion, updates the store, history and watches. */
  #commit(type: HistoryEntry["type"], resource: string, key: string, obj: Obj): Obj {
    const prev = this.#store.get(key);
    const rv = ++this.#rv;
    const object = structuredClone(obj);
    object.metadata.resourceVersion = String(rv);
    if (type === "DELETED") this.#store.delete(key);
    else this.#store.set(key, object);
    const entry: HistoryEntry = { rv, type, resource, key, object, prev };
    this.#history.push(entry);
    const keep = this.options.historySize ?? 1000;
    while (this.#history.length > keep) this.#compactedRv = this.#history.shift()!.rv;
    for (const w of this.#watchers) this.#deliver(w, entry);
    return structuredClone(object);
  }

  /** Sends a change to a watch, translating selector entry and exit into ADDED and DELETED. */
  #deliver(w: Watcher, e: HistoryEntry): void {
    if (e.resource !== w.resource) return;
    const inNs = (o: Obj | undefined) =>
      o !== undefined && (w.namespace === undefined || o.metadata.namespace === w.namespace);
    const was = inNs(e.prev) && w.match(e.prev!);
    const is = e.type !== "DELETED" && inNs(e.object) && w.match(e.object);
    const object = structuredClone(e.object);
    if (e.type === "DELETED") {
      if (was || (inNs(e.object) && w.match(e.object))) w.send({ type: "DELETED", object });
    } else if (is) w.send({ type: was ? "MODIFIED" : "ADDED", object });
    else if (was) w.send({ type: "DELETED", object });
  }

  /** The objects of `resource` as they were at resourceVersion `rv` (undoing later changes). */
  #snapshot(resource: string, rv: number): Map<string, Obj> {
    const state = new Map<string, Obj>();
    for (const [key, obj] of this.#store) {
      if (key.startsWith(`${resource}/`)) state.set(key, obj);
    }
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const e = this.#history[i]!;
      if (e.rv <= rv) break;
      if (e.resource !== resource) continue;
      if (e.prev === undefined) state.delete(e.key);
      else state.set(e.key, e.prev);
    }
    return state;
  }

  #cancelVmiTimer(key: string): void {
    const t = this.#vmiTimers.get(key);
    if (t !== undefined) {
      clearTimeout(t);
      this.#vmiTimers.delete(key);
    }
  }

  #maybeStartVmi(vm: Obj): void {
    if (vm.spec?.runStrategy !== "Always" && vm.spec?.running !== true) return;
    this.#startVmi(vm);
  }

  #startVmi(vm: Obj): void {
    const name = vm.metadata.name as string;
    const ns = vm.metadata.namespace as string;
    const after = this.options.readyAfterMs ? this.options.readyAfterMs(name) : 0;
    const key = this.#key("virtualmachineinstances", ns, name);
    const vmi = this.#stamp("virtualmachineinstances", {
      metadata: {
        name,
        namespace: ns,
        labels: { ...(vm.spec?.template?.metadata?.labels ?? {}) },
        ownerReferences: [{
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachine",
          name,
          uid: vm.metadata.uid,
        }],
      },
      spec: structuredClone(vm.spec?.template?.spec ?? {}),
      status: {
        phase: "Scheduling",
        conditions: [{ type: "Ready", status: "False", reason: "PodNotReady" }],
      },
    });
    this.#commit("ADDED", "virtualmachineinstances", key, vmi);
    if (after === undefined) return;
    const ready = () => {
      this.#vmiTimers.delete(key);
      const current = this.#store.get(key);
      if (!current || current.metadata.uid !== vmi.metadata.uid) return;
      const next = structuredClone(current);
      next.status = {
        phase: "Running",
        conditions: [{
          type: "Ready",
          status: "True",
          lastTransitionTime: new Date().toISOString(),
        }],
      };
      this.#commit("MODIFIED", "virtualmachineinstances", key, next);
    };
    if (after <= 0) ready();
    else this.#vmiTimers.set(key, setTimeout(ready, after));
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    this.requests.push({
      method: req.method,
      path: url.pathname,
      query: url.search,
      at: Date.now(),
    });
    this.#inFlight++;
    this.#maxInFlight = Math.max(this.#maxInFlight, this.#inFlight);
    try {
      if (this.options.latencyMs) await sleep(this.options.latencyMs);
      return await this.#route(req, url);
    } finally {
      this.#inFlight--;
    }
  }

  async #route(req: Request, url: URL): Promise<Response> {
    if (this.options.token !== undefined) {
      if (req.headers.get("authorization") !== `Bearer ${this.options.token}`) {
        return status(401, "Unauthorized", "Unauthorized");
      }
    }
    const consolePath = CONSOLE_PATH.exec(url.pathname);
    if (consolePath) {
      return this.#console(
        req,
        decodeURIComponent(consolePath[1]!),
        decodeURIComponent(consolePath[2]!),
      );
    }
    const route = parsePath(url.pathname);
    if (!route) return status(404, "NotFound", `the server could not find the requested resource`);
    const info: RequestInfo = { method: req.method, resource: route.resource };
    if (route.namespace !== undefined) info.namespace = route.namespace;
    if (route.name !== undefined) info.name = route.name;
    const fault = this.options.inject?.(info);
    if (fault) {
      const headers: Record<string, string> = {};
      if (fault.retryAfterSeconds !== undefined) {
        headers["retry-after"] = String(fault.retryAfterSeconds);
      }
      const reason = fault.reason ?? REASONS[fault.status] ?? "InternalError";
      return status(fault.status, reason, fault.message ?? `injected ${fault.status}`, {}, headers);
    }
    const { resource, namespace, name } = route;
    const q = url.searchParams;
    switch (req.method) {
      case "GET":
        if (name !== undefined) return this.#get(resource, namespace, name);
        if (q.get("watch") === "1" || q.get("watch") === "true") {
          return this.#watch(resource, namespace, q);
        }
        return this.#list(resource, namespace, q);
      case "POST": {
        if (name !== undefined) return status(405, "MethodNotAllowed", "POST to a named object");
        const body = await readJson(req);
        if (body instanceof Response) return body;
        return this.#create(resource, namespace, body, q.get("fieldValidation"));
      }
      case "PUT": {
        if (name === undefined) return status(405, "MethodNotAllowed", "PUT to a collection");
        const body = await readJson(req);
        if (body instanceof Response) return body;
        return this.#update(resource, namespace, name, body, q.get("fieldValidation"));
      }
      case "PATCH":
        if (name === undefined) return status(405, "MethodNotAllowed", "PATCH to a collection");
        return this.#patch(req, resource, namespace, name, q.get("fieldValidation"));
      case "DELETE":
        if (name === undefined) return status(405, "MethodNotAllowed", "collection delete");
        return this.#delete(resource, namespace, name);
      default:
        return status(405, "MethodNotAllowed", `method ${req.method} is not supported`);
    }
  }

  /** The console subresource: checks as virt-api does, then streams the VMI's script. */
  #console(req: Request, namespace: string, name: string): Response {
    if (req.method !== "GET") return status(405, "MethodNotAllowed", `method ${req.method}`);
    const vmi = this.#store.get(this.#key("virtualmachineinstances", namespace, name));
    if (!vmi) return notFound("virtualmachineinstances", name);
    if (vmi.status?.phase !== "Running") return status(400, "BadRequest", "VMI is not running");
    if ((req.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
      return status(400, "BadRequest", "the console is served over a websocket upgrade only");
    }
    const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) =>
      p.trim()
    );
    const protocol = this.consoleSubprotocol === undefined
      ? (offered.includes("plain.kubevirt.io") ? "plain.kubevirt.io" : undefined)
      : this.consoleSubprotocol ?? undefined;
    const { socket, response } = Deno.upgradeWebSocket(req, protocol ? { protocol } : {});
    socket.binaryType = "arraybuffer";
    const key = `${namespace}/${name}`;
    const script = this.#consoles.get(key) ?? { lines: [], intervalMs: 0, end: false };
    const timers: ReturnType<typeof setTimeout>[] = [];
    socket.onopen = () => {
      this.#consoleSockets.add(socket);
      const enc = new TextEncoder();
      script.lines.forEach((line, i) => {
        const t = setTimeout(() => {
          if (socket.readyState === WebSocket.OPEN) socket.send(enc.encode(`${line}\n`));
          if (script.end && i === script.lines.length - 1) socket.close(1000);
        }, script.intervalMs * i);
        timers.push(t);
      });
      if (script.end && script.lines.length === 0) socket.close(1000);
    };
    socket.onmessage = (e) => {
      const data = e.data instanceof ArrayBuffer
        ? new Uint8Array(e.data)
        : new TextEncoder().encode(String(e.data));
      const got = this.consoleInput.get(key) ?? [];
      got.push(data);
      this.consoleInput.set(key, got);
    };
    socket.onclose = () => {
      for (const t of timers) clearTimeout(t);
      this.#consoleSockets.delete(socket);
    };
    socket.onerror = () => {};
    return response;
  }

  #get(resource: string, namespace: string | undefined, name: string): Response {
    const obj = this.#store.get(this.#key(resource, namespace, name));
    if (!obj) return notFound(resource, name);
    return Response.json(obj);
  }

  /** Label and field selectors of a list or watch as one predicate, or a 400 response. */
  #selectors(q: URLSearchParams): ((o: Obj) => boolean) | Response {
    let labels: (l: Record<string, string>) => boolean;
    let fields: (o: Obj) => boolean;
    try {
      labels = parseSelector(q.get("labelSelector") ?? "");
      fields = parseFieldSelector(q.get("fieldSelector") ?? "");
    } catch (e) {
      return status(400, "BadRequest", (e as Error).message);
    }
    return (o) => labels(o.metadata.labels ?? {}) && fields(o);
  }

  #list(resource: string, namespace: string | undefined, q: URLSearchParams): Response {
    const match = this.#selectors(q);
    if (match instanceof Response) return match;
    const limitRaw = q.get("limit");
    const limit = limitRaw === null ? 0 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 0) {
      return status(400, "BadRequest", `invalid limit ${JSON.stringify(limitRaw)}`);
    }
    let rv = this.#rv;
    let after = "";
    const cont = q.get("continue");
    if (cont) {
      let token: { rv?: unknown; start?: unknown };
      try {
        token = JSON.parse(atob(cont));
      } catch {
        return status(400, "BadRequest", "continue key is not valid: illegal base64 data");
      }
      if (typeof token.rv !== "number" || typeof token.start !== "string") {
        return status(400, "BadRequest", "continue key is not valid: incorrect encoded start key");
      }
      if (token.rv < this.#compactedRv) {
        return status(
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result. " +
            "You can start a new list without the continue parameter.",
        );
      }
      rv = token.rv;
      after = token.start;
    }
    const state = this.#snapshot(resource, rv);
    const items = [...state.entries()]
      .filter(([key, o]) =>
        key > after && (namespace === undefined || o.metadata.namespace === namespace) && match(o)
      )
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const page = limit > 0 ? items.slice(0, limit) : items;
    const metadata: Obj = { resourceVersion: String(rv) };
    if (page.length < items.length) {
      metadata.continue = btoa(JSON.stringify({ rv, start: page.at(-1)![0] }));
      metadata.remainingItemCount = items.length - page.length;
    }
    const k = KINDS[resource]!;
    return Response.json({
      apiVersion: k.apiVersion,
      kind: `${k.kind}List`,
      metadata,
      items: page.map(([, o]) => structuredClone(o)),
    });
  }

  #watch(resource: string, namespace: string | undefined, q: URLSearchParams): Response {
    const match = this.#selectors(q);
    if (match instanceof Response) return match;
    const rvParam = q.get("resourceVersion") ?? "";
    const from = rvParam === "" || rvParam === "0" ? undefined : Number(rvParam);
    if (from !== undefined && (!Number.isInteger(from) || from < 0)) {
      return status(400, "BadRequest", `invalid resource version: ${rvParam}`);
    }
    const bookmarks = q.get("allowWatchBookmarks") === "true";
    const timeoutSeconds = Number(q.get("timeoutSeconds") ?? "0");
    const enc = new TextEncoder();
    const k = KINDS[resource]!;
    let watcher: Watcher | undefined;
    const timers: ReturnType<typeof setTimeout>[] = [];
    const cleanup = () => {
      for (const t of timers) clearTimeout(t);
      if (watcher) this.#watchers.delete(watcher);
    };
    const stream = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        let open = true;
        const send = (e: WatchEvent) => {
          if (open) ctl.enqueue(enc.encode(`${JSON.stringify(e)}\n`));
        };
        const close = () => {
          if (!open) return;
          open = false;
          cleanup();
          try {
            ctl.close();
          } catch { /* already closed */ }
        };
        if (from !== undefined && from < this.#compactedRv) {
          send({
            type: "ERROR",
            object: statusBody(
              410,
              "Expired",
              `too old resource version: ${from} (${this.#compactedRv})`,
            ),
          });
          close();
          return;
        }
        watcher = { resource, namespace, match, send, close };
        if (from === undefined) {
          const current = [...this.#store.entries()]
            .filter(([key, o]) =>
              key.startsWith(`${resource}/`) &&
              (namespace === undefined || o.metadata.namespace === namespace) && match(o)
            )
            .sort(([a], [b]) => (a < b ? -1 : 1));
          for (const [, o] of current) send({ type: "ADDED", object: structuredClone(o) });
        } else {
          for (const e of this.#history) if (e.rv > from) this.#deliver(watcher, e);
        }
        this.#watchers.add(watcher);
        if (bookmarks) {
          const interval = this.options.bookmarkIntervalMs ?? 60_000;
          const tick = () => {
            send({
              type: "BOOKMARK",
              object: {
                kind: k.kind,
                apiVersion: k.apiVersion,
                metadata: { resourceVersion: String(this.#rv) },
              },
            });
            timers.push(setTimeout(tick, interval));
          };
          timers.push(setTimeout(tick, interval));
        }
        if (timeoutSeconds > 0) timers.push(setTimeout(close, timeoutSeconds * 1000));
      },
      cancel: () => cleanup(),
    });
    return new Response(stream, {
      headers: { "content-type": "application/json", "cache-control": "no-cache" },
    });
  }

  /**
   * Checks and prunes fields of a body as the API server does for `fieldValidation`: returns the
   * warnings to send, or a 400 Response under Strict.
   */
  #fields(resource: string, body: Obj, mode: string | null): string[] | Response {
    const k = KINDS[resource]!;
    const unknown: string[] = [];
    const meta = body.metadata;
    if (meta && typeof meta === "object") {
      for (const f of Object.keys(meta)) {
        if (!OBJECT_META_FIELDS.has(f)) unknown.push(`metadata.${f}`);
      }
    }
    const core = CORE_FIELDS[resource];
    if (core) {
      for (const f of Object.keys(body)) if (!core.top.includes(f)) unknown.push(f);
      if (core.spec && body.spec && typeof body.spec === "object") {
        for (const f of Object.keys(body.spec)) {
          if (!core.spec.includes(f)) unknown.push(`spec.${f}`);
        }
      }
    } else if (resource === "virtualmachines" && this.options.validator) {
      for (const p of this.options.validator.validate("v1.VirtualMachine", body)) {
        if (p.message === "is not a known field") unknown.push(p.path.slice(1));
      }
    }
    const uniq = [...new Set(unknown)];
    if (uniq.length === 0) return [];
    const m = (mode ?? "Warn").toLowerCase();
    if (m === "strict") {
      return status(
        400,
        "BadRequest",
        `${k.kind} in version "${
          k.apiVersion.split("/").at(-1)
        }" cannot be handled as a ${k.kind}: ` +
          `strict decoding error: ${uniq.map((f) => `unknown field "${f}"`).join(", ")}`,
      );
    }
    for (const f of uniq) prune(body, f);
    return m === "ignore" ? [] : uniq.map((f) => `unknown field "${f}"`);
  }

  /** Name rules of `resource`: the causes of an invalid name (empty when valid). */
  #nameCauses(resource: string, name: string): { field: string; message: string }[] {
    const rule = NAME_RULES[resource]!;
    const causes: { field: string; message: string }[] = [];
    if (!rule.re.test(name)) {
      causes.push({
        field: "metadata.name",
        message: `Invalid value: ${JSON.stringify(name)}: ${rule.msg}`,
      });
    }
    if (name.length > rule.max) {
      causes.push({
        field: "metadata.name",
        message: `Invalid value: ${
          JSON.stringify(name)
        }: must be no more than ${rule.max} characters`,
      });
    }
    return causes;
  }

  /** The admission checks of KubeVirt for a VirtualMachine: a Response when it is refused. */
  #admitVm(body: Obj, name: string): Response | undefined {
    // KubeVirt's admission webhook limits inline user data (cloudInitUserMaxLen).
    const volumes = (body.spec?.template?.spec?.volumes ?? []) as Obj[];
    for (const [i, v] of volumes.entries()) {
      const ud = v?.cloudInitNoCloud?.userData;
      if (typeof ud === "string" && new TextEncoder().encode(ud).length > 2048) {
        return invalid("virtualmachines", name, [{
          field: `spec.template.spec.volumes[${i}].cloudInitNoCloud`,
          message: "userdata exceeds 2048 byte limit. Should use UserDataSecretRef for larger data",
        }]);
      }
    }
    if (this.options.validator) {
      const problems = this.options.validator.validate("v1.VirtualMachine", body)
        .filter((p) => p.message !== "is not a known field");
      if (problems.length > 0) {
        return invalid(
          "virtualmachines",
          name,
          problems.map((p) => ({ field: p.path.slice(1), message: p.message })),
        );
      }
    }
    return undefined;
  }

  #create(
    resource: string,
    namespace: string | undefined,
    body: Obj,
    fieldValidation: string | null,
  ): Response {
    const k = KINDS[resource]!;
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      return status(400, "BadRequest", "the body of the request is not an object");
    }
    if (body.kind !== undefined && body.kind !== k.kind) {
      return status(400, "BadRequest", `expected kind ${k.kind}, got ${body.kind}`);
    }
    // The order of the API server: decoding (strict fields), namespace lifecycle admission, then
    // validation (names), then KubeVirt's webhook, then storage (AlreadyExists).
    const warnings = this.#fields(resource, body, fieldValidation);
    if (warnings instanceof Response) return warnings;
    const name = body.metadata?.name;
    if (k.namespaced) {
      if (body.metadata?.namespace !== undefined && body.metadata.namespace !== namespace) {
        return status(
          400,
          "BadRequest",
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      const ns = this.#store.get(this.#key("namespaces", undefined, namespace!));
      if (!ns) return notFound("namespaces", namespace!);
      if (ns.metadata.deletionTimestamp) {
        return status(
          403,
          "Forbidden",
          `${resource} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
          { name, kind: resource },
        );
      }
    }
    if (typeof name !== "string" || name === "") {
      return invalid(resource, "", [{
        field: "metadata.name",
        message: "Required value: name or generateName is required",
      }]);
    }
    const causes = this.#nameCauses(resource, name);
    if (causes.length > 0) return invalid(resource, name, causes);
    if (resource === "virtualmachines") {
      const refused = this.#admitVm(body, name);
      if (refused) return refused;
    }
    const key = this.#key(resource, namespace, name);
    const existing = this.#store.get(key);
    if (existing) {
      const going = existing.metadata.deletionTimestamp ? "object is being deleted: " : "";
      return status(409, "AlreadyExists", `${going}${k.qualified} "${name}" already exists`, {
        name,
        ...groupOf(resource),
        kind: resource,
      });
    }
    const obj = this.#stamp(resource, structuredClone(body));
    delete obj.metadata.resourceVersion;
    delete obj.metadata.deletionTimestamp;
    if (k.namespaced) obj.metadata.namespace = namespace;
    const stored = this.#commit("ADDED", resource, key, obj);
    if (resource === "virtualmachines") this.#maybeStartVmi(stored);
    return this.#json(stored, 201, warnings);
  }

  /** PUT: replaces an object, with the resourceVersion as a precondition. */
  #update(
    resource: string,
    namespace: string | undefined,
    name: string,
    body: Obj,
    fieldValidation: string | null,
  ): Response {
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      return status(400, "BadRequest", "the body of the request is not an object");
    }
    const k = KINDS[resource]!;
    if (body.metadata?.name !== name) {
      return status(
        400,
        "BadRequest",
        `the name of the object (${body.metadata?.name}) does not match the name on the URL (${name})`,
      );
    }
    const current = this.#store.get(this.#key(resource, namespace, name));
    if (!current) return notFound(resource, name);
    const rv = body.metadata.resourceVersion;
    if (rv === undefined || rv === "") {
      if (k.custom) {
        return invalid(resource, name, [{
          field: "metadata.resourceVersion",
          message: "Invalid value: 0x0: must be specified for an update",
        }]);
      }
    } else if (rv !== current.metadata.resourceVersion) return conflict(resource, name);
    return this.#replace(resource, namespace, name, current, body, fieldValidation);
  }

  async #patch(
    req: Request,
    resource: string,
    namespace: string | undefined,
    name: string,
    fieldValidation: string | null,
  ): Promise<Response> {
    const k = KINDS[resource]!;
    const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim();
    const accepted = k.custom ? ["application/json-patch+json", "application/merge-patch+json"] : [
      "application/json-patch+json",
      "application/merge-patch+json",
      "application/strategic-merge-patch+json",
    ];
    if (!accepted.includes(type)) {
      return status(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ${
          [...accepted, "application/apply-patch+yaml"].join(", ")
        }`,
      );
    }
    const patch = await readJson(req);
    if (patch instanceof Response) return patch;
    const current = this.#store.get(this.#key(resource, namespace, name));
    if (!current) return notFound(resource, name);
    let next: Obj;
    try {
      if (type === "application/json-patch+json") next = jsonPatch(current, patch);
      else if (type === "application/merge-patch+json") next = mergePatch(current, patch) as Obj;
      else next = strategicMerge(current, patch) as Obj;
    } catch (e) {
      if (e instanceof PatchFormatError) return status(400, "BadRequest", e.message);
      return status(
        422,
        "Invalid",
        `the server rejected our request due to an error in our request: ${(e as Error).message}`,
      );
    }
    if (next === null || typeof next !== "object" || Array.isArray(next)) {
      return status(400, "BadRequest", "the patched object is not an object");
    }
    if (next.metadata?.name !== name) {
      return invalid(resource, name, [{
        field: "metadata.name",
        message: `Invalid value: ${JSON.stringify(next.metadata?.name)}: field is immutable`,
      }]);
    }
    // A resourceVersion in the patch is a precondition, as on PUT.
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== current.metadata.resourceVersion) {
      return conflict(resource, name);
    }
    return this.#replace(resource, namespace, name, current, next, fieldValidation);
  }

  /** Stores `body` in place of `current` after the checks shared by PUT and PATCH. */
  #replace(
    resource: string,
    namespace: string | undefined,
    name: string,
    current: Obj,
    body: Obj,
    fieldValidation: string | null,
  ): Response {
    const k = KINDS[resource]!;
    const next = structuredClone(body);
    const warnings = this.#fields(resource, next, fieldValidation);
    if (warnings instanceof Response) return warnings;
    if (resource === "virtualmachines") {
      const refused = this.#admitVm(next, name);
      if (refused) return refused;
    }
    next.apiVersion = k.apiVersion;
    next.kind = k.kind;
    next.metadata = {
      ...next.metadata,
      name,
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
      resourceVersion: current.metadata.resourceVersion,
    };
    if (k.namespaced) next.metadata.namespace = namespace;
    if (current.metadata.deletionTimestamp) {
      next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
    } else delete next.metadata.deletionTimestamp;
    if (k.statusSubresource) {
      if (current.status === undefined) delete next.status;
      else next.status = structuredClone(current.status);
    }
    if (resource === "virtualmachines") {
      const specChanged = JSON.stringify(next.spec) !== JSON.stringify(current.spec);
      next.metadata.generation = (current.metadata.generation ?? 1) + (specChanged ? 1 : 0);
    }
    // An update that changes nothing is not a change: same resourceVersion, no watch event.
    if (JSON.stringify(canonical(next)) === JSON.stringify(canonical(current))) {
      return this.#json(current, 200, warnings);
    }
    const stored = this.#commit("MODIFIED", resource, this.#key(resource, namespace, name), next);
    return this.#json(stored, 200, warnings);
  }

  #json(obj: Obj, code: number, warnings: string[]): Response {
    const headers = new Headers({ "content-type": "application/json" });
    for (const w of warnings) {
      headers.append("warning", `299 - ${JSON.stringify(w)}`);
      this.warnings.push(w);
    }
    return new Response(JSON.stringify(obj), { status: code, headers });
  }

  #delete(resource: string, namespace: string | undefined, name: string): Response {
    const key = this.#key(resource, namespace, name);
    const obj = this.#store.get(key);
    if (!obj) return notFound(resource, name);
    if (resource === "namespaces" && obj.metadata.deletionTimestamp) {
      // The namespace registry refuses a delete while its finalizer runs (NewConflict).
      return status(
        409,
        "Conflict",
        `Operation cannot be fulfilled on namespaces "${name}": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.`,
        { name, kind: "namespaces" },
      );
    }
    if (obj.metadata.deletionTimestamp) return Response.json(obj);
    const gone = () => {
      const last = this.#store.get(key);
      if (!last) return;
      if (resource === "virtualmachines") {
        const vmiKey = this.#key("virtualmachineinstances", namespace, name);
        const vmi = this.#store.get(vmiKey);
        this.#cancelVmiTimer(vmiKey);
        if (vmi) this.#commit("DELETED", "virtualmachineinstances", vmiKey, vmi);
      }
      if (resource === "namespaces") {
        for (const [k, o] of [...this.#store.entries()]) {
          const [r, ns] = k.split("/");
          if (KINDS[r!]!.namespaced && ns === name) {
            if (r === "virtualmachineinstances") this.#cancelVmiTimer(k);
            this.#commit("DELETED", r!, k, o);
          }
        }
      }
      this.#commit("DELETED", resource, key, last);
    };
    const delay = this.options.deletionDelayMs ?? 0;
    if (delay <= 0) {
      gone();
      return Response.json(obj);
    }
    const terminating = structuredClone(obj);
    terminating.metadata.deletionTimestamp = new Date().toISOString();
    terminating.metadata.deletionGracePeriodSeconds = 0;
    if (resource === "namespaces") terminating.status = { phase: "Terminating" };
    const stored = this.#commit("MODIFIED", resource, key, terminating);
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#deletions.delete(t);
      gone();
    }, delay);
    this.#timers.add(t);
    this.#deletions.set(t, gone);
    return Response.json(stored);
  }
}

/** What a VMI's console prints (see `K8sTestServer.setConsole`). */
interface ConsoleScript {
  lines: string[];
  intervalMs: number;
  end: boolean;
}

const CONSOLE_PATH =
  /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([^/]+)\/virtualmachineinstances\/([^/]+)\/console$/;

/** Parses `/api/v1/...` and `/apis/GROUP/VERSION/...` paths of the kinds served. */
function parsePath(
  path: string,
): { resource: string; namespace?: string; name?: string } | undefined {
  const parts = path.split("/").filter((p) => p !== "").map((p) => decodeURIComponent(p));
  let rest: string[];
  if (parts[0] === "api" && parts[1] === "v1") rest = parts.slice(2);
  else if (parts[0] === "apis" && parts.length >= 3) rest = parts.slice(3);
  else return undefined;
  const core = parts[0] === "api";
  const groupVersion = core ? "v1" : `${parts[1]}/${parts[2]}`;
  const servedHere = (resource: string) => KINDS[resource]?.apiVersion === groupVersion;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const resource = rest[2]!;
    if (!servedHere(resource) || resource === "namespaces") return undefined;
    if (rest.length > 4) return undefined;
    return rest[3] === undefined
      ? { resource, namespace: rest[1]! }
      : { resource, namespace: rest[1]!, name: rest[3] };
  }
  if (rest[0] === "namespaces" && core && rest.length <= 2) {
    return rest[1] === undefined
      ? { resource: "namespaces" }
      : { resource: "namespaces", name: rest[1] };
  }
  // A namespaced resource across all namespaces: /api/v1/secrets, /apis/kubevirt.io/v1/virtualmachines
  if (rest.length === 1 && servedHere(rest[0]!) && KINDS[rest[0]!]!.namespaced) {
    return { resource: rest[0]! };
  }
  return undefined;
}

/** Parses a label selector into a predicate; throws on syntax errors. */
export function parseSelector(selector: string): (labels: Record<string, string>) => boolean {
  const tests: ((l: Record<string, string>) => boolean)[] = [];
  // Split on commas outside parentheses.
  const terms: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      terms.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur.trim() !== "") terms.push(cur);
  for (const raw of terms) {
    const t = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, key, op, list] = m;
      const values = list!.split(",").map((v) => v.trim());
      tests.push(
        op === "in"
          ? (l) => key! in l && values.includes(l[key!]!)
          : (l) => !(key! in l) || !values.includes(l[key!]!),
      );
    } else if ((m = t.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/))) {
      const [, key, op, value] = m;
      tests.push(op === "!=" ? (l) => l[key!] !== value : (l) => l[key!] === value);
    } else if ((m = t.match(/^!([\w./-]+)$/))) {
      const key = m[1]!;
      tests.push((l) => !(key in l));
    } else if ((m = t.match(/^([\w./-]+)$/))) {
      const key = m[1]!;
      tests.push((l) => key in l);
    } else {
      throw new Error(`unable to parse requirement: "${t}"`);
    }
  }
  return (labels) => tests.every((f) => f(labels));
}

/**
 * Parses a field selector of `metadata.name` and `metadata.namespace` terms (`=`, `==`, `!=`,
 * comma-joined); throws for other fields, as the API server does.
 */
export function parseFieldSelector(selector: string): (o: Obj) => boolean {
  const tests: ((o: Obj) => boolean)[] = [];
  for (const raw of selector.split(",")) {
    const t = raw.trim();
    if (t === "") continue;
    const m = t.match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new Error(`invalid selector: '${t}'; can't understand '${t}'`);
    const [, field, op, value] = m;
    if (field !== "metadata.name" && field !== "metadata.namespace") {
      throw new Error(`field label not supported: ${field}`);
    }
    const get = (o: Obj) => field === "metadata.name" ? o.metadata.name : o.metadata.namespace;
    tests.push(op === "!=" ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  return (o) => tests.every((f) => f(o));
}

class PatchFormatError extends Error {}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
    return structuredClone(patch);
  }
  const out: Obj = target !== null && typeof target === "object" && !Array.isArray(target)
    ? structuredClone(target)
    : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * A strategic merge patch for the core kinds this server keeps: a merge patch whose lists of
 * objects merge by key (`port` for Service ports, `uid` for ownerReferences, `name` otherwise)
 * and whose `$patch: delete` items remove the element with that key.
 */
function strategicMerge(target: unknown, patch: unknown, path = ""): unknown {
  if (patch === null || typeof patch !== "object") return structuredClone(patch);
  if (Array.isArray(patch)) {
    const key = path.endsWith(".ports")
      ? "port"
      : path.endsWith("ownerReferences")
      ? "uid"
      : "name";
    const isKeyed = patch.every((p) => p && typeof p === "object" && key in p);
    if (!Array.isArray(target) || !isKeyed) {
      return structuredClone(patch.filter((p) => p?.$patch !== "delete"));
    }
    const out = structuredClone(target) as Obj[];
    for (const p of patch as Obj[]) {
      const i = out.findIndex((t) => t?.[key] === p[key]);
      if (p.$patch === "delete") {
        if (i >= 0) out.splice(i, 1);
      } else if (i >= 0) out[i] = strategicMerge(out[i], p, `${path}[]`) as Obj;
      else out.push(structuredClone(p));
    }
    return out;
  }
  const out: Obj = target !== null && typeof target === "object" && !Array.isArray(target)
    ? structuredClone(target)
    : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = strategicMerge(out[k], v, `${path}.${k}`);
  }
  return out;
}

/** RFC 6902 JSON patch (add, remove, replace, move, copy, test). */
export function jsonPatch(target: Obj, ops: unknown): Obj {
  if (!Array.isArray(ops)) throw new PatchFormatError("json patch must be a list of operations");
  let doc: unknown = structuredClone(target);
  const parse = (p: unknown): string[] => {
    if (typeof p !== "string" || (p !== "" && !p.startsWith("/"))) {
      throw new PatchFormatError(`invalid JSON pointer ${JSON.stringify(p)}`);
    }
    return p === ""
      ? []
      : p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  };
  const parent = (tokens: string[]): [Obj | unknown[], string] => {
    let node: unknown = doc;
    for (const t of tokens.slice(0, -1)) {
      if (node === null || typeof node !== "object") throw new Error(`missing path at ${t}`);
      node = Array.isArray(node) ? node[Number(t)] : (node as Obj)[t];
      if (node === undefined) throw new Error(`doc is missing path: ${tokens.join("/")}`);
    }
    if (node === null || typeof node !== "object") throw new Error("missing parent");
    return [node as Obj, tokens.at(-1)!];
  };
  const get = (tokens: string[]): unknown => {
    if (tokens.length === 0) return doc;
    const [p, last] = parent(tokens);
    const v = Array.isArray(p) ? p[Number(last)] : (p as Obj)[last];
    if (v === undefined) throw new Error(`doc is missing path: /${tokens.join("/")}`);
    return v;
  };
  const remove = (tokens: string[]): unknown => {
    const v = get(tokens);
    const [p, last] = parent(tokens);
    if (Array.isArray(p)) p.splice(Number(last), 1);
    else delete (p as Obj)[last];
    return v;
  };
  const add = (tokens: string[], value: unknown) => {
    if (tokens.length === 0) {
      doc = value;
      return;
    }
    const [p, last] = parent(tokens);
    if (Array.isArray(p)) {
      const i = last === "-" ? p.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > p.length) {
        throw new Error(`index out of range: ${last}`);
      }
      p.splice(i, 0, value);
    } else (p as Obj)[last] = value;
  };
  for (const op of ops) {
    if (op === null || typeof op !== "object") throw new PatchFormatError("invalid operation");
    const path = parse(op.path);
    switch (op.op) {
      case "add":
        add(path, structuredClone(op.value));
        break;
      case "remove":
        remove(path);
        break;
      case "replace":
        get(path);
        if (path.length === 0) doc = structuredClone(op.value);
        else {
          const [p, last] = parent(path);
          if (Array.isArray(p)) p[Number(last)] = structuredClone(op.value);
          else (p as Obj)[last] = structuredClone(op.value);
        }
        break;
      case "move":
        add(path, remove(parse(op.from)));
        break;
      case "copy":
        add(path, structuredClone(get(parse(op.from))));
        break;
      case "test":
        if (JSON.stringify(get(path)) !== JSON.stringify(op.value)) {
          throw new Error(`testing value /${path.join("/")} failed`);
        }
        break;
      default:
        throw new PatchFormatError(`unexpected kind of operation: ${JSON.stringify(op.op)}`);
    }
  }
  return doc as Obj;
}

/** Removes a dotted field path (with `[i]` indexes) from an object. */
function prune(obj: Obj, path: string): void {
  const tokens = path.match(/[^.[\]]+/g) ?? [];
  let node: unknown = obj;
  for (const t of tokens.slice(0, -1)) {
    if (node === null || typeof node !== "object") return;
    node = (node as Obj)[t];
  }
  if (node !== null && typeof node === "object") delete (node as Obj)[tokens.at(-1)!];
}

/** An object with its keys sorted, for comparing content. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(
    Object.keys(v as Obj).sort().map((k) => [k, canonical((v as Obj)[k])]),
  );
}

async function readJson(req: Request): Promise<Obj | Response> {
  const text = await req.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    return status(
      400,
      "BadRequest",
      `the body of the request is not JSON: ${(e as Error).message}`,
    );
  }
}

function groupOf(resource: string): { group?: string } {
  return KINDS[resource]!.custom ? { group: KINDS[resource]!.apiVersion.split("/")[0]! } : {};
}

function statusBody(code: number, reason: string, message: string, details: Obj = {}): Obj {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    details,
    code,
  };
}

function status(
  code: number,
  reason: string,
  message: string,
  details: Obj = {},
  headers: Record<string, string> = {},
): Response {
  return Response.json(statusBody(code, reason, message, details), { status: code, headers });
}

function notFound(resource: string, name: string): Response {
  return status(404, "NotFound", `${KINDS[resource]!.qualified} "${name}" not found`, {
    name,
    ...groupOf(resource),
    kind: resource,
  });
}

function conflict(resource: string, name: string): Response {
  return status(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${
      KINDS[resource]!.qualified
    } "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, ...groupOf(resource), kind: resource },
  );
}

/** A 422 Invalid Status as the API server builds it (`field.ErrorList.ToAggregate()`). */
function invalid(
  resource: string,
  name: string,
  causes: { field: string; message: string }[],
): Response {
  const kind = KINDS[resource]!.kind;
  const each = causes.map((c) => `${c.field}: ${c.message}`);
  const joined = each.length === 1 ? each[0] : `[${each.join(", ")}]`;
  return status(422, "Invalid", `${kind} "${name}" is invalid: ${joined}`, {
    name,
    ...groupOf(resource),
    kind,
    causes: causes.map((c) => ({
      reason: "FieldValueInvalid",
      message: c.message,
      field: c.field,
    })),
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
