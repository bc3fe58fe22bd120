/**
 * A Kubernetes API test server on 127.0.0.1: real HTTP, spoken to by the real
 * `@kubernetes/client-node`. It keeps Namespaces, Secrets, Services, VirtualMachines and
 * VirtualMachineInstances in memory and behaves as an API server does where virtwork can tell:
 *
 * - namespaced create/get/list/delete, label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!`)
 * - `Status` bodies for 401, 403, 404, 409, 422 (with causes) and injected errors
 * - a global resourceVersion, uid and creationTimestamp on every object
 * - deletion that takes `deletionDelayMs` (the object shows a deletionTimestamp meanwhile); a deleted
 *   Namespace takes its objects with it, and refuses creates while it terminates
 * - a VM with `runStrategy: Always` gets a VMI that is `Scheduling`, then `Running` with a `Ready`
 *   condition after `readyAfterMs(vmName)` (`undefined`: never ready)
 * - VirtualMachines validated against `v1.VirtualMachine` of the KubeVirt schema on create (422),
 *   and inline cloud-init user data limited to 2048 bytes as KubeVirt's webhook does
 * - injectable faults (`inject`) and latency, and a log of every request
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

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "AlreadyExists",
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
  /** Validator for VirtualMachines on create; no validation when omitted. */
  validator?: OpenApiValidator;
  /** Serve HTTPS with this PEM certificate and key; `ca` goes into the kubeconfig. */
  tls?: { cert: string; key: string; ca: string };
  /** Called for each request before it is handled; a returned fault is answered instead. */
  inject?: (req: RequestInfo) => InjectedFault | undefined;
}

interface ResourceKind {
  kind: string;
  apiVersion: string;
  namespaced: boolean;
}

const KINDS: Record<string, ResourceKind> = {
  namespaces: { kind: "Namespace", apiVersion: "v1", namespaced: false },
  secrets: { kind: "Secret", apiVersion: "v1", namespaced: true },
  services: { kind: "Service", apiVersion: "v1", namespaced: true },
  virtualmachines: { kind: "VirtualMachine", apiVersion: "kubevirt.io/v1", namespaced: true },
  virtualmachineinstances: {
    kind: "VirtualMachineInstance",
    apiVersion: "kubevirt.io/v1",
    namespaced: true,
  },
};

/** The in-memory API server. Start it with {@linkcode K8sTestServer.start}. */
export class K8sTestServer {
  /** Every request, in arrival order. */
  readonly requests: RequestRecord[] = [];
  /** Options; tests may change `latencyMs`, `inject` and `readyAfterMs` while it runs. */
  readonly options: K8sTestServerOptions;
  readonly #store = new Map<string, Obj>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
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

  /** Stops the server and its timers. */
  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await this.#server?.shutdown();
  }

  /** Objects of a resource (optionally in one namespace), as stored. */
  objects(resource: string, namespace?: string): Obj[] {
    const out: Obj[] = [];
    for (const [key, obj] of this.#store) {
      const [r, ns] = key.split("/");
      if (r === resource && (namespace === undefined || ns === namespace)) {
        out.push(this.#view(resource, obj));
      }
    }
    return out;
  }

  /** Puts an object into the store directly (for fixtures not created by the code under test). */
  seed(resource: string, obj: Obj): Obj {
    const stored = this.#stamp(resource, structuredClone(obj));
    this.#store.set(this.#key(resource, obj.metadata.namespace, obj.metadata.name), stored);
    if (resource === "virtualmachines") this.#maybeStartVmi(stored);
    return stored;
  }

  /** Requests whose method and path match. */
  requestsMatching(method: string, pathPattern: RegExp): RequestRecord[] {
    return this.requests.filter((r) => r.method === method && pathPattern.test(r.path));
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
      resourceVersion: String(++this.#rv),
      creationTimestamp: new Date().toISOString(),
    };
    if (resource === "namespaces") obj.status = { phase: "Active" };
    return obj;
  }

  /** Computes time-dependent status (VMI readiness) at read time. */
  #view(resource: string, obj: Obj): Obj {
    const out = structuredClone(obj);
    if (resource === "virtualmachineinstances") {
      const readyAt = obj.metadata.annotations?.["test/ready-at"];
      const ready = readyAt !== undefined && Date.now() >= Number(readyAt);
      out.status = ready
        ? {
          phase: "Running",
          conditions: [{
            type: "Ready",
            status: "True",
            lastTransitionTime: new Date(Number(readyAt)).toISOString(),
          }],
        }
        : {
          phase: "Scheduling",
          conditions: [{ type: "Ready", status: "False", reason: "PodNotReady" }],
        };
    }
    return out;
  }

  #maybeStartVmi(vm: Obj): void {
    if (vm.spec?.runStrategy !== "Always" && vm.spec?.running !== true) return;
    const name = vm.metadata.name as string;
    const after = this.options.readyAfterMs ? this.options.readyAfterMs(name) : 0;
    const vmi = this.#stamp("virtualmachineinstances", {
      metadata: {
        name,
        namespace: vm.metadata.namespace,
        labels: { ...(vm.spec?.template?.metadata?.labels ?? {}) },
        annotations: after === undefined ? {} : { "test/ready-at": String(Date.now() + after) },
        ownerReferences: [{
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachine",
          name,
          uid: vm.metadata.uid,
        }],
      },
      spec: structuredClone(vm.spec?.template?.spec ?? {}),
    });
    this.#store.set(this.#key("virtualmachineinstances", vm.metadata.namespace, name), vmi);
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
    switch (req.method) {
      case "GET":
        return name === undefined
          ? this.#list(resource, namespace, url.searchParams.get("labelSelector"))
          : this.#get(resource, namespace, name);
      case "POST":
        if (name !== undefined) return status(405, "MethodNotAllowed", "POST to a named object");
        return this.#create(resource, namespace, await req.json());
      case "DELETE":
        if (name === undefined) return status(405, "MethodNotAllowed", "collection delete");
        return this.#delete(resource, namespace, name);
      default:
        return status(405, "MethodNotAllowed", `method ${req.method} is not supported`);
    }
  }

  #get(resource: string, namespace: string | undefined, name: string): Response {
    const obj = this.#store.get(this.#key(resource, namespace, name));
    if (!obj) return notFound(resource, name);
    return Response.json(this.#view(resource, obj));
  }

  #list(resource: string, namespace: string | undefined, selector: string | null): Response {
    let match: (labels: Record<string, string>) => boolean;
    try {
      match = parseSelector(selector ?? "");
    } catch (e) {
      return status(400, "BadRequest", (e as Error).message);
    }
    const items = this.objects(resource, namespace).filter((o) => match(o.metadata.labels ?? {}));
    items.sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)));
    const k = KINDS[resource]!;
    return Response.json({
      apiVersion: k.apiVersion,
      kind: `${k.kind}List`,
      metadata: { resourceVersion: String(this.#rv) },
      items,
    });
  }

  #create(resource: string, namespace: string | undefined, body: Obj): Response {
    const k = KINDS[resource]!;
    const name = body?.metadata?.name;
    if (typeof name !== "string" || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) {
      return invalid(k.kind, String(name), [{
        field: "metadata.name",
        message: "a lowercase RFC 1123 name is required",
      }]);
    }
    if (k.namespaced) {
      const ns = this.#store.get(this.#key("namespaces", undefined, namespace!));
      if (!ns) return notFound("namespaces", namespace!);
      if (ns.metadata.deletionTimestamp) {
        return status(
          403,
          "Forbidden",
          `${resource} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        );
      }
      if (body.metadata.namespace !== undefined && body.metadata.namespace !== namespace) {
        return status(400, "BadRequest", "the namespace of the object does not match the URL");
      }
    }
    if (body.kind !== undefined && body.kind !== k.kind) {
      return status(400, "BadRequest", `expected kind ${k.kind}, got ${body.kind}`);
    }
    if (resource === "virtualmachines") {
      // KubeVirt's admission webhook limits inline user data (cloudInitUserMaxLen).
      const volumes = (body.spec?.template?.spec?.volumes ?? []) as Obj[];
      for (const [i, v] of volumes.entries()) {
        const ud = v.cloudInitNoCloud?.userData;
        if (typeof ud === "string" && new TextEncoder().encode(ud).length > 2048) {
          return invalid(k.kind, name, [{
            field: `spec.template.spec.volumes[${i}].cloudInitNoCloud`,
            message:
              "userdata exceeds 2048 byte limit. Should use UserDataSecretRef for larger data",
          }]);
        }
      }
    }
    if (resource === "virtualmachines" && this.options.validator) {
      const problems = this.options.validator.validate("v1.VirtualMachine", body);
      if (problems.length > 0) {
        return invalid(
          k.kind,
          name,
          problems.map((p) => ({ field: p.path.slice(1), message: p.message })),
        );
      }
    }
    const key = this.#key(resource, namespace, name);
    if (this.#store.has(key)) {
      return status(409, "AlreadyExists", `${resource} "${name}" already exists`, {
        name,
        kind: resource,
      });
    }
    const obj = this.#stamp(resource, structuredClone(body));
    if (k.namespaced) obj.metadata.namespace = namespace;
    this.#store.set(key, obj);
    if (resource === "virtualmachines") this.#maybeStartVmi(obj);
    return Response.json(this.#view(resource, obj), { status: 201 });
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
    if (!obj.metadata.deletionTimestamp) {
      obj.metadata.deletionTimestamp = new Date().toISOString();
      obj.metadata.resourceVersion = String(++this.#rv);
      if (resource === "namespaces") obj.status = { phase: "Terminating" };
      const gone = () => {
        this.#store.delete(key);
        if (resource === "virtualmachines") {
          this.#store.delete(this.#key("virtualmachineinstances", namespace, name));
        }
        if (resource === "namespaces") {
          for (const k of [...this.#store.keys()]) {
            const [r, ns] = k.split("/");
            if (KINDS[r!]!.namespaced && ns === name) this.#store.delete(k);
          }
        }
      };
      const delay = this.options.deletionDelayMs ?? 0;
      if (delay <= 0) gone();
      else {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          gone();
        }, delay);
        this.#timers.add(t);
      }
    }
    return Response.json(this.#view(resource, obj));
  }
}

/** Parses `/api/v1/...` and `/apis/kubevirt.io/v1/...` paths. */
function parsePath(
  path: string,
): { resource: string; namespace?: string; name?: string } | undefined {
  const parts = path.split("/").filter((p) => p !== "");
  let rest: string[];
  if (parts[0] === "api" && parts[1] === "v1") rest = parts.slice(2);
  else if (parts[0] === "apis" && parts[1] === "kubevirt.io" && parts[2] === "v1") {
    rest = parts.slice(3);
  } else return undefined;
  const core = parts[0] === "api";
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const resource = rest[2]!;
    if (!KINDS[resource] || resource === "namespaces") return undefined;
    if (core !== (KINDS[resource]!.apiVersion === "v1")) return undefined;
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

function status(
  code: number,
  reason: string,
  message: string,
  details: Obj = {},
  headers: Record<string, string> = {},
): Response {
  return Response.json(
    {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      details,
      code,
    },
    { status: code, headers },
  );
}

function notFound(resource: string, name: string): Response {
  return status(404, "NotFound", `${resource} "${name}" not found`, { name, kind: resource });
}

function invalid(
  kind: string,
  name: string,
  causes: { field: string; message: string }[],
): Response {
  return status(
    422,
    "Invalid",
    `${kind} "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(", ")}`,
    { name, kind, causes: causes.map((c) => ({ reason: "FieldValueInvalid", ...c })) },
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
