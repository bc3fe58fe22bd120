/**
 * Talking to the cluster: finding its configuration (in-cluster, `--kubeconfig`, `KUBECONFIG`,
 * `~/.kube/config`, with `--context`) and a small client for the objects virtwork manages, with a
 * client-side rate limit and retries of transient failures.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * const { client, source } = connect({ context: "lab" });
 * const vms = await client.list("virtualmachines", "virtwork", "app.kubernetes.io/managed-by=virtwork");
 * ```
 * @module
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
} from "npm:@kubernetes/client-node@^2.0.1";
import { Agent as UndiciAgent } from "npm:undici@^8.13.1";
import { KUBEVIRT_API } from "./constants.ts";
import { ConnectionError, KubeApiError } from "./errors.ts";
import type { KubeObject } from "./manifests.ts";
import { RateLimiter, sleep } from "./rate_limit.ts";

/** Where the service account files live inside a pod. */
export const SERVICE_ACCOUNT_ROOT = "/var/run/secrets/kubernetes.io/serviceaccount";

/** How to find the cluster. */
export interface ConnectOptions {
  /** Path from `--kubeconfig`; when given it is the only file tried. */
  kubeconfig?: string;
  /** Context to use instead of the file's current context. */
  context?: string;
  /** Environment to read `KUBERNETES_SERVICE_HOST`, `KUBECONFIG` and `HOME` from. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Prefix of the service account directory, for tests. */
  serviceAccountPrefix?: string;
}

/** A loaded configuration and a description of where it came from. */
export interface LoadedConfig {
  /** The loaded configuration. */
  kubeConfig: KubeConfig;
  /** Where it came from, e.g. `KUBECONFIG /home/me/kc`. */
  source: string;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the cluster configuration. An explicit `--kubeconfig` is used alone (asking for a file and
 * silently getting the pod's service account would be a surprise); otherwise in-cluster comes first,
 * then each `KUBECONFIG` entry, then `~/.kube/config`.
 *
 * @throws {ConnectionError} naming everything that was tried
 */
export function loadKubeConfig(o: ConnectOptions = {}): LoadedConfig {
  const env = o.env ?? Deno.env.toObject();
  const tried: string[] = [];
  const fromFile = (path: string, label: string): LoadedConfig | undefined => {
    tried.push(`${label} ${path}`);
    if (!exists(path)) return undefined;
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(path);
    } catch (e) {
      throw new ConnectionError(`cannot read kubeconfig ${path}: ${(e as Error).message}`, tried, {
        cause: e,
      });
    }
    return { kubeConfig: kc, source: `${label} ${path}` };
  };
  let loaded: LoadedConfig | undefined;
  if (o.kubeconfig) {
    loaded = fromFile(o.kubeconfig, "kubeconfig setting");
  } else {
    const prefix = o.serviceAccountPrefix ?? "";
    tried.push("in-cluster service account");
    if (
      env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT &&
      exists(`${prefix}${SERVICE_ACCOUNT_ROOT}/token`)
    ) {
      loaded = {
        kubeConfig: inClusterConfig(
          env.KUBERNETES_SERVICE_HOST,
          env.KUBERNETES_SERVICE_PORT,
          `${prefix}${SERVICE_ACCOUNT_ROOT}`,
        ),
        source: "in-cluster service account",
      };
    }
    for (const path of (env.KUBECONFIG ?? "").split(":").filter((p) => p !== "")) {
      if (loaded) break;
      loaded = fromFile(path, "KUBECONFIG");
    }
    if (!loaded && env.HOME) loaded = fromFile(`${env.HOME}/.kube/config`, "default");
  }
  if (!loaded) throw new ConnectionError("no cluster configuration found", tried);
  if (o.context) {
    if (!loaded.kubeConfig.getContextObject(o.context)) {
      const known = loaded.kubeConfig.getContexts().map((c) => c.name).join(", ") || "none";
      throw new ConnectionError(
        `context "${o.context}" not found in ${loaded.source} (contexts: ${known})`,
        tried,
      );
    }
    loaded.kubeConfig.setCurrentContext(o.context);
  }
  if (!loaded.kubeConfig.getCurrentCluster()) {
    throw new ConnectionError(`${loaded.source} has no cluster for its current context`, tried);
  }
  return loaded;
}

/**
 * The in-cluster configuration, built from the given environment rather than `process.env` (which
 * client-node's `loadFromCluster` reads) so the caller decides what environment applies.
 */
function inClusterConfig(host: string, port: string, saDir: string): KubeConfig {
  const kc = new KubeConfig();
  const h = host.includes(":") ? `[${host}]` : host;
  kc.loadFromOptions({
    clusters: [{
      name: "in-cluster",
      server: `https://${h}:${port}`,
      caFile: `${saDir}/ca.crt`,
      skipTLSVerify: false,
    }],
    users: [{
      name: "in-cluster",
      authProvider: { name: "tokenFile", config: { tokenFile: `${saDir}/token` } },
    }],
    contexts: [{ name: "in-cluster", cluster: "in-cluster", user: "in-cluster" }],
    currentContext: "in-cluster",
  });
  return kc;
}

/** The resources virtwork manages. */
export type Resource =
  | "namespaces"
  | "secrets"
  | "services"
  | "virtualmachines"
  | "virtualmachineinstances";

const KIND_OF: Record<Resource, string> = {
  namespaces: "Namespace",
  secrets: "Secret",
  services: "Service",
  virtualmachines: "VirtualMachine",
  virtualmachineinstances: "VirtualMachineInstance",
};

/** An object as returned by the API (metadata always present). */
export interface ApiObject {
  /** Object metadata as the API returns it. */
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
    deletionTimestamp?: unknown;
  };
  /** Kind-specific fields (spec, status, data, ...). */
  // deno-lint-ignore no-explicit-any
  [key: string]: any;
}

/** The operations orchestration and cleanup need; tests may substitute their own. */
export interface ClusterApi {
  /**
   * Creates an object; `namespace` is ignored for Namespaces. `o.onSend` is told the
   * `performance.now()` at which each attempt's request leaves (after the rate limiter's wait).
   */
  create(
    resource: Resource,
    namespace: string,
    obj: KubeObject,
    o?: { onSend?: (at: number) => void },
  ): Promise<ApiObject>;
  /** Reads one object. */
  get(resource: Resource, namespace: string, name: string): Promise<ApiObject>;
  /** Lists objects matching a label selector. */
  list(resource: Resource, namespace: string, labelSelector?: string): Promise<ApiObject[]>;
  /** Deletes one object. */
  delete(resource: Resource, namespace: string, name: string): Promise<void>;
  /**
   * Resolves true once every request sent so far has ended, including those an interrupt made the
   * caller give up on (the server may still act on them); false when `signal` aborts first.
   */
  settle?(signal?: AbortSignal): Promise<boolean>;
  /**
   * The same API for the same cluster without the interrupt signal (bound to `signal` instead), to
   * undo what an interrupted operation left in flight.
   */
  detached?(signal?: AbortSignal): ClusterApi;
}

/** Retry and rate-limit settings of {@linkcode KubeClient}. */
export interface ClientOptions {
  /** Requests per second on average (default 20, as kube-burner). */
  qps?: number;
  /** Requests at once (default 20). */
  burst?: number;
  /**
   * The limiter every request waits for, instead of one made from `qps` and `burst`: to share
   * one between clients, or in tests one with its own clock.
   */
  rateLimiter?: RateLimiter;
  /** Attempts per operation, the first included (default 6). */
  maxAttempts?: number;
  /** First backoff in ms, doubled per attempt up to `maxBackoffMs` (default 250). */
  baseBackoffMs?: number;
  /** Largest backoff in ms (default 8000). */
  maxBackoffMs?: number;
  /**
   * Aborts waits for the limiter and backoff, and requests in flight: they reject at once with the
   * signal's reason (the request itself is left to end on its own).
   */
  signal?: AbortSignal;
  /** Called before each retry, for verbose output. */
  onRetry?: (operation: string, attempt: number, delayMs: number, reason: string) => void;
  /**
   * Called for each `Warning` the API server sent with a create, e.g. `unknown field
   * "spec.foo"` when the cluster does not know a field of a manifest and dropped it.
   */
  onWarning?: (operation: string, warning: string) => void;
}

/**
 * The texts of `Warning` header values (`299 - "text"`, several joined by commas), unescaped.
 */
export function parseWarnings(header: string | undefined): string[] {
  if (!header) return [];
  const out: string[] = [];
  for (const m of header.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)) {
    out.push(m[1]!.replace(/\\(.)/g, "$1"));
  }
  return out;
}

/** Configurations {@linkcode http1Only} already changed. */
const http1Configs = new WeakSet<KubeConfig>();

/** Agents kept per configuration: one per distinct TLS setting, the oldest closed beyond this. */
const MAX_AGENTS_PER_CONFIG = 4;

/** A key for TLS connect options: the same credentials give the same key. */
function connectKey(connect: Record<string, unknown> | undefined): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(connect ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    const text = v instanceof Uint8Array
      ? `b:${btoa(String.fromCharCode(...v))}`
      : Array.isArray(v)
      ? `a:${v.map((x) => x instanceof Uint8Array ? btoa(String.fromCharCode(...x)) : String(x))}`
      : `${typeof v}:${String(v)}`;
    parts.push(`${k}=${text}`);
  }
  return parts.join("\n");
}

/**
 * Makes client-node's TLS connections speak HTTP/1.1 only, and reuse them. Its undici offers
 * HTTP/2 by ALPN, and Deno 2.9's node:http2 (nghttp2) aborted the whole process on a GOAWAY
 * (`find_stream_on_goaway_func` assertion) in our HTTPS test about one run in three. And it makes
 * a new agent (a new connection pool) for every request, so each request opened its own
 * connection (a TLS handshake on a real cluster): a run of 1000 VMs opened 2000. The agent is
 * kept for as long as the TLS settings (CA, client certificate, ...) stay the same.
 */
function http1Only(kc: KubeConfig): void {
  if (http1Configs.has(kc)) return;
  http1Configs.add(kc);
  type Options = { type: string; connect?: Record<string, unknown> };
  const k = kc as unknown as {
    createDispatcher: (cluster: unknown, agentOptions: unknown) => unknown;
    createDispatcherOptions: (cluster: unknown, agentOptions: unknown) => Options;
  };
  const original = k.createDispatcher.bind(kc);
  const agents = new Map<string, UndiciAgent>();
  k.createDispatcher = (cluster, agentOptions) => {
    const opts = k.createDispatcherOptions(cluster, agentOptions);
    if (opts.type !== "agent") return original(cluster, agentOptions);
    const key = connectKey(opts.connect);
    let agent = agents.get(key);
    if (!agent) {
      agent = new UndiciAgent({
        ...(opts.connect ? { connect: opts.connect } : {}),
        allowH2: false,
      });
      agents.set(key, agent);
      // Rotated credentials: the connections of the oldest settings end once idle.
      while (agents.size > MAX_AGENTS_PER_CONFIG) {
        const [oldKey, old] = agents.entries().next().value!;
        agents.delete(oldKey);
        old.close().catch(() => {});
      }
    }
    return agent;
  };
}

/**
 * A {@linkcode ClusterApi} over `@kubernetes/client-node`: every request waits for the rate limiter;
 * 429 (honouring Retry-After), 5xx and connection failures are retried with exponential backoff and
 * jitter; any other error status fails at once as a {@linkcode KubeApiError}.
 */
export class KubeClient implements ClusterApi {
  readonly #core: CoreV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #limiter: RateLimiter;
  readonly #opts:
    & Required<Omit<ClientOptions, "signal" | "onRetry" | "onWarning" | "rateLimiter">>
    & ClientOptions;
  readonly #server: string;
  readonly #kubeConfig: KubeConfig;
  /** Requests sent and not yet ended, given up on or not. */
  readonly #sent = new Set<Promise<unknown>>();

  /** Creates a client for the current context of `kubeConfig`. */
  constructor(kubeConfig: KubeConfig, options: ClientOptions = {}) {
    this.#kubeConfig = kubeConfig;
    http1Only(kubeConfig);
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#server = kubeConfig.getCurrentCluster()?.server ?? "(unknown server)";
    this.#opts = {
      qps: 20,
      burst: 20,
      maxAttempts: 6,
      baseBackoffMs: 250,
      maxBackoffMs: 8000,
      ...options,
    };
    this.#limiter = options.rateLimiter ?? new RateLimiter(this.#opts.qps, this.#opts.burst);
  }

  /** URL of the API server. */
  get server(): string {
    return this.#server;
  }

  /** The configuration requests use (credentials, TLS): for the console's websocket. */
  get kubeConfig(): KubeConfig {
    return this.#kubeConfig;
  }

  /** {@inheritDoc ClusterApi.settle} */
  async settle(signal?: AbortSignal): Promise<boolean> {
    while (this.#sent.size > 0) {
      if (signal?.aborted) return false;
      try {
        await orAbort(Promise.allSettled([...this.#sent]), signal);
      } catch {
        return false;
      }
    }
    return true;
  }

  /** {@inheritDoc ClusterApi.detached} */
  detached(signal?: AbortSignal): KubeClient {
    const { signal: _interrupt, ...rest } = this.#opts;
    return new KubeClient(this.#kubeConfig, { ...rest, ...(signal ? { signal } : {}) });
  }

  /**
   * Waits for a permit of this client's rate limit, for a request made beside it (a watch), so
   * every request to the cluster shares one budget as client-go's do.
   */
  throttle(): Promise<void> {
    return this.#limiter.acquire(this.#opts.signal);
  }

  /** {@inheritDoc ClusterApi.create}; warnings the server sends go to `onWarning`. */
  async create(
    resource: Resource,
    namespace: string,
    obj: KubeObject,
    o: { onSend?: (at: number) => void } = {},
  ): Promise<ApiObject> {
    const op = `create ${KIND_OF[resource]} ${qualified(resource, namespace, obj.metadata.name)}`;
    const res = await this.#call(op, () => {
      o.onSend?.(performance.now());
      switch (resource) {
        case "namespaces":
          return this.#core.createNamespaceWithHttpInfo({ body: obj });
        case "secrets":
          return this.#core.createNamespacedSecretWithHttpInfo({ namespace, body: obj });
        case "services":
          return this.#core.createNamespacedServiceWithHttpInfo({ namespace, body: obj });
        default:
          return this.#custom.createNamespacedCustomObjectWithHttpInfo({
            group: KUBEVIRT_API.GROUP,
            version: KUBEVIRT_API.VERSION,
            namespace,
            plural: resource,
            body: obj,
          });
      }
    });
    const headers = (res.headers ?? {}) as Record<string, string>;
    for (const w of parseWarnings(headers["warning"] ?? headers["Warning"])) {
      this.#opts.onWarning?.(op, w);
    }
    return res.data as ApiObject;
  }

  /** {@inheritDoc ClusterApi.get} */
  get(resource: Resource, namespace: string, name: string): Promise<ApiObject> {
    const op = `get ${KIND_OF[resource]} ${qualified(resource, namespace, name)}`;
    return this.#call(op, () => {
      switch (resource) {
        case "namespaces":
          return this.#core.readNamespace({ name });
        case "secrets":
          return this.#core.readNamespacedSecret({ name, namespace });
        case "services":
          return this.#core.readNamespacedService({ name, namespace });
        default:
          return this.#custom.getNamespacedCustomObject({
            group: KUBEVIRT_API.GROUP,
            version: KUBEVIRT_API.VERSION,
            namespace,
            plural: resource,
            name,
          });
      }
    });
  }

  /** {@inheritDoc ClusterApi.list} */
  async list(resource: Resource, namespace: string, labelSelector?: string): Promise<ApiObject[]> {
    const op = `list ${KIND_OF[resource]} in ${resource === "namespaces" ? "cluster" : namespace}`;
    const sel = labelSelector ? { labelSelector } : {};
    const res = await this.#call(op, () => {
      switch (resource) {
        case "namespaces":
          return this.#core.listNamespace(sel);
        case "secrets":
          return this.#core.listNamespacedSecret({ namespace, ...sel });
        case "services":
          return this.#core.listNamespacedService({ namespace, ...sel });
        default:
          return this.#custom.listNamespacedCustomObject({
            group: KUBEVIRT_API.GROUP,
            version: KUBEVIRT_API.VERSION,
            namespace,
            plural: resource,
            ...sel,
          });
      }
    });
    return (res.items ?? []) as ApiObject[];
  }

  /** {@inheritDoc ClusterApi.delete} */
  async delete(resource: Resource, namespace: string, name: string): Promise<void> {
    const op = `delete ${KIND_OF[resource]} ${qualified(resource, namespace, name)}`;
    await this.#call(op, () => {
      switch (resource) {
        case "namespaces":
          return this.#core.deleteNamespace({ name });
        case "secrets":
          return this.#core.deleteNamespacedSecret({ name, namespace });
        case "services":
          return this.#core.deleteNamespacedService({ name, namespace });
        default:
          return this.#custom.deleteNamespacedCustomObject({
            group: KUBEVIRT_API.GROUP,
            version: KUBEVIRT_API.VERSION,
            namespace,
            plural: resource,
            name,
          });
      }
    });
  }

  // deno-lint-ignore no-explicit-any
  async #call(operation: string, fn: () => Promise<any>): Promise<any> {
    const { maxAttempts, baseBackoffMs, maxBackoffMs, signal } = this.#opts;
    for (let attempt = 1;; attempt++) {
      await this.#limiter.acquire(signal);
      let err: KubeApiError | ConnectionError;
      try {
        const sent = fn();
        this.#sent.add(sent);
        sent.then(() => this.#sent.delete(sent), () => this.#sent.delete(sent));
        return await orAbort(sent, signal);
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        err = toError(operation, e, this.#server);
      }
      const transient = err instanceof ConnectionError || err.transient;
      if (!transient || attempt >= maxAttempts) throw err;
      let delay = Math.min(maxBackoffMs, baseBackoffMs * 2 ** (attempt - 1));
      delay = delay / 2 + Math.random() * (delay / 2);
      if (err instanceof KubeApiError && err.retryAfterSeconds !== undefined) {
        delay = Math.max(delay, err.retryAfterSeconds * 1000);
      }
      this.#opts.onRetry?.(operation, attempt, delay, err.message);
      await sleep(delay, signal);
    }
  }
}

/** `p`, or a rejection with the signal's reason as soon as it aborts (a silent server never answers). */
function orAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Status reasons of the codes client-node reports without a body. */
const REASON_BY_STATUS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
};

function qualified(resource: Resource, namespace: string, name: string): string {
  return resource === "namespaces" ? name : `${namespace}/${name}`;
}

/** Turns what client-node threw into a KubeApiError (with the Status message) or ConnectionError. */
function toError(operation: string, e: unknown, server: string): KubeApiError | ConnectionError {
  if (e instanceof ApiException) {
    let body: unknown = e.body;
    if (typeof body === "string") {
      try {
        body = JSON.parse(body);
      } catch {
        // not JSON: keep no detail, the raw body could be anything
        body = undefined;
      }
    }
    const st = (body && typeof body === "object" ? body : {}) as {
      reason?: string;
      message?: string;
    };
    // client-node does not read the body of some statuses (401, 403): fall back to the code's name.
    const fallback = REASON_BY_STATUS[e.code] ?? "";
    const headers = e.headers ?? {};
    const ra = Number(headers["retry-after"] ?? headers["Retry-After"]);
    return new KubeApiError(
      operation,
      e.code,
      st.reason ?? fallback,
      st.message ?? (fallback ? `the server answered ${fallback}` : "no Status message"),
      Number.isFinite(ra) ? ra : undefined,
    );
  }
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  const detail = cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
  return new ConnectionError(`${operation}: cannot reach ${server}: ${detail}`, [], { cause: e });
}

/** Loads the configuration and creates a client for it. */
export function connect(
  o: ConnectOptions & ClientOptions = {},
): { client: KubeClient; source: string } {
  const { kubeConfig, source } = loadKubeConfig(o);
  return { client: new KubeClient(kubeConfig, o), source };
}
