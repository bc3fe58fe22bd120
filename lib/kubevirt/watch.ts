/**
 * Following a kind of object with one list and then watches, as client-go's reflector does: list
 * once (the objects and the list's resourceVersion), then watch from that resourceVersion; when a
 * watch ends (the server's timeout, a dropped connection) watch again from the last
 * resourceVersion seen (bookmarks included), and only when the server says that version is gone
 * (410 Gone, as an HTTP status or an `ERROR` event) list again. Every line read is bounded.
 *
 * {@linkcode followKind} is written against {@linkcode WatchApi} so it can be driven by anything
 * that lists and watches; {@linkcode HttpWatchApi} is the real one, on the kubeconfig's
 * credentials and TLS.
 *
 * @example
 * ```ts
 * import { followKind, HttpWatchApi } from "./watch.ts";
 * import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
 * const kc = new KubeConfig();
 * kc.loadFromDefault();
 * const ac = new AbortController();
 * await followKind(new HttpWatchApi(kc), "virtualmachineinstances", "virtwork", "app=x", {
 *   signal: ac.signal,
 *   onEvent: (type, obj) => console.log(type, obj.metadata.name),
 * });
 * ```
 * @module
 */
import { HttpMethod, type KubeConfig, RequestContext } from "npm:@kubernetes/client-node@^2.0.1";
import { fetch as undiciFetch } from "npm:undici@^8.13.1";
import { KUBEVIRT_API } from "./constants.ts";
import type { ApiObject, Resource } from "./client.ts";

/** A change of an object, or a bookmark, as a watch delivers it. */
export interface WatchEvent {
  /** What happened. */
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  /** The object (for ERROR, a Status). */
  object: ApiObject & { code?: number; reason?: string; message?: string };
}

/** A list with the resourceVersion to watch from. */
export interface VersionedList {
  /** The objects. */
  items: ApiObject[];
  /** The list's `metadata.resourceVersion`. */
  resourceVersion: string;
}

/** The server no longer has the resourceVersion asked for (HTTP 410, or an ERROR event). */
export class ResourceVersionGoneError extends Error {
  /** Says which version is gone. */
  constructor(message: string) {
    super(message);
    this.name = "ResourceVersionGoneError";
  }
}

/** What {@linkcode followKind} needs: a list and a watch of one kind. */
export interface WatchApi {
  /** Lists `resource` in `namespace` (matching `labelSelector`) with the list's resourceVersion. */
  listVersioned(
    resource: Resource,
    namespace: string,
    labelSelector?: string,
  ): Promise<VersionedList>;
  /**
   * Watches `resource` from `resourceVersion`; the iteration ends when the server ends the watch.
   * @throws {ResourceVersionGoneError} when the version is no longer served (HTTP 410)
   */
  watch(
    resource: Resource,
    namespace: string,
    labelSelector: string | undefined,
    resourceVersion: string,
    signal: AbortSignal,
  ): AsyncIterable<WatchEvent>;
}

/** Counters of {@linkcode followKind}, for progress and tests. */
export interface FollowStats {
  /** Lists made (the first and every relist). */
  lists: number;
  /** Watches opened. */
  watches: number;
  /** Watches resumed from a resourceVersion after one ended. */
  resumes: number;
  /** Lists made because a resourceVersion was gone. */
  relists: number;
}

/** Options of {@linkcode followKind}. */
export interface FollowOptions {
  /** Ends the following (the promise then resolves). */
  signal: AbortSignal;
  /**
   * Each object as it changes: `ADDED`, `MODIFIED`, `DELETED`; after a (re)list every listed
   * object comes as `ADDED` and objects gone meanwhile as `DELETED`.
   */
  onEvent: (type: "ADDED" | "MODIFIED" | "DELETED", obj: ApiObject) => void;
  /** Counters, updated as it goes. */
  stats?: FollowStats;
  /** Told of a watch that failed and is retried. */
  onRetry?: (error: Error, attempt: number) => void;
  /** First retry delay after a failed watch or list, ms (default 200; doubles up to 5 s). */
  retryDelayMs?: number;
  /** Gives up after this many failures in a row (default 10). */
  maxFailures?: number;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res) => {
    if (signal.aborted) return res();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      res();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function keyOf(o: ApiObject): string {
  return `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
}

/**
 * Follows `resource` until `signal` aborts: one list, then watches resumed from the last
 * resourceVersion, a relist only on 410 Gone.
 * @throws the last error after `maxFailures` failures in a row
 */
export async function followKind(
  api: WatchApi,
  resource: Resource,
  namespace: string,
  labelSelector: string | undefined,
  o: FollowOptions,
): Promise<void> {
  const stats = o.stats ?? { lists: 0, watches: 0, resumes: 0, relists: 0 };
  const known = new Map<string, ApiObject>();
  let rv: string | undefined;
  let failures = 0;
  let watchedBefore = false;
  const failed = async (e: unknown) => {
    failures++;
    const err = e instanceof Error ? e : new Error(String(e));
    if (failures >= (o.maxFailures ?? 10)) throw err;
    o.onRetry?.(err, failures);
    await sleep(Math.min(5000, (o.retryDelayMs ?? 200) * 2 ** (failures - 1)), o.signal);
  };
  while (!o.signal.aborted) {
    if (rv === undefined) {
      let list: VersionedList;
      try {
        stats.lists++;
        list = await api.listVersioned(resource, namespace, labelSelector);
      } catch (e) {
        if (o.signal.aborted) return;
        await failed(e);
        continue;
      }
      const seen = new Set<string>();
      for (const obj of list.items) {
        seen.add(keyOf(obj));
        known.set(keyOf(obj), obj);
        o.onEvent("ADDED", obj);
      }
      for (const [k, obj] of known) {
        if (!seen.has(k)) {
          known.delete(k);
          o.onEvent("DELETED", obj);
        }
      }
      rv = list.resourceVersion;
      watchedBefore = false;
      if (o.signal.aborted) return;
    }
    try {
      stats.watches++;
      if (watchedBefore) stats.resumes++;
      watchedBefore = true;
      for await (const ev of api.watch(resource, namespace, labelSelector, rv, o.signal)) {
        if (ev.type === "ERROR") {
          if (ev.object.code === 410) {
            throw new ResourceVersionGoneError(ev.object.message ?? "resourceVersion gone");
          }
          throw new Error(`watch ${resource}: ${ev.object.message ?? "error event"}`);
        }
        const v = ev.object.metadata?.resourceVersion;
        if (typeof v === "string" && v !== "") rv = v;
        if (ev.type === "BOOKMARK") continue;
        if (ev.type === "DELETED") known.delete(keyOf(ev.object));
        else known.set(keyOf(ev.object), ev.object);
        o.onEvent(ev.type, ev.object);
        failures = 0;
      }
    } catch (e) {
      if (o.signal.aborted) return;
      if (e instanceof ResourceVersionGoneError) {
        stats.relists++;
        rv = undefined;
        continue;
      }
      await failed(e);
    }
  }
}

/** Longest watch line or list body read, in bytes. */
export const MAX_WATCH_LINE = 4 * 1024 * 1024;
/** Longest list response read, in bytes. */
export const MAX_LIST_BODY = 64 * 1024 * 1024;

const CORE: ReadonlySet<string> = new Set(["namespaces", "secrets", "services"]);

/** How long one watch lasts on the server before it is resumed, seconds (client-go: 5-10 min). */
export const WATCH_TIMEOUT_SECONDS = 300;

/**
 * {@linkcode WatchApi} over HTTP with the credentials, TLS and server of `kubeConfig`'s current
 * context. `beforeRequest` is awaited before each list or watch request (a rate limiter).
 */
export class HttpWatchApi implements WatchApi {
  readonly #kc: KubeConfig;
  readonly #before: () => Promise<void>;

  /** Requests go to `kubeConfig`'s current cluster. */
  constructor(kubeConfig: KubeConfig, beforeRequest: () => Promise<void> = async () => {}) {
    this.#kc = kubeConfig;
    this.#before = beforeRequest;
  }

  #url(resource: Resource, namespace: string, q: Record<string, string | undefined>): URL {
    const server = this.#kc.getCurrentCluster()?.server;
    if (!server) throw new Error("the kubeconfig has no current cluster");
    const base = CORE.has(resource)
      ? "/api/v1"
      : `/apis/${KUBEVIRT_API.GROUP}/${KUBEVIRT_API.VERSION}`;
    const u = new URL(
      `${server.replace(/\/$/, "")}${base}/namespaces/${encodeURIComponent(namespace)}/${resource}`,
    );
    for (const [k, v] of Object.entries(q)) if (v !== undefined) u.searchParams.set(k, v);
    return u;
  }

  async #get(url: URL, signal?: AbortSignal) {
    await this.#before();
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await this.#kc.applySecurityAuthentication(ctx);
    const dispatcher = ctx.getDispatcher();
    const res = await undiciFetch(url, {
      method: "GET",
      headers: { ...ctx.getHeaders(), accept: "application/json" },
      ...(dispatcher ? { dispatcher } : {}),
      ...(signal ? { signal } : {}),
    });
    return { status: res.status, body: res.body as ReadableStream<Uint8Array> | null };
  }

  /** {@inheritDoc WatchApi.listVersioned} */
  async listVersioned(
    resource: Resource,
    namespace: string,
    labelSelector?: string,
  ): Promise<VersionedList> {
    const res = await this.#get(this.#url(resource, namespace, { labelSelector }));
    const text = await boundedText(res.body, MAX_LIST_BODY);
    if (res.status !== 200) {
      throw new Error(
        `list ${resource} in ${namespace}: HTTP ${res.status} ${statusMessage(text)}`,
      );
    }
    const doc = JSON.parse(text) as {
      items?: ApiObject[];
      metadata?: { resourceVersion?: string };
    };
    return { items: doc.items ?? [], resourceVersion: doc.metadata?.resourceVersion ?? "0" };
  }

  /** {@inheritDoc WatchApi.watch} */
  async *watch(
    resource: Resource,
    namespace: string,
    labelSelector: string | undefined,
    resourceVersion: string,
    signal: AbortSignal,
  ): AsyncIterable<WatchEvent> {
    const ac = new AbortController();
    const stop = () => ac.abort(signal.reason);
    // A signal that fired before the call has no event left to fire.
    if (signal.aborted) return;
    signal.addEventListener("abort", stop, { once: true });
    try {
      const res = await this.#get(
        this.#url(resource, namespace, {
          labelSelector,
          watch: "1",
          resourceVersion,
          allowWatchBookmarks: "true",
          timeoutSeconds: String(WATCH_TIMEOUT_SECONDS),
        }),
        ac.signal,
      );
      if (res.status === 410) {
        await res.body?.cancel();
        throw new ResourceVersionGoneError(`resourceVersion ${resourceVersion} is gone`);
      }
      if (res.status !== 200 || !res.body) {
        const text = await boundedText(res.body, 64 * 1024).catch(() => "");
        throw new Error(
          `watch ${resource} in ${namespace}: HTTP ${res.status} ${statusMessage(text)}`,
        );
      }
      for await (const line of lines(res.body, MAX_WATCH_LINE, ac.signal)) {
        if (line.trim() === "") continue;
        let ev: WatchEvent;
        try {
          ev = JSON.parse(line) as WatchEvent;
        } catch {
          throw new Error(`watch ${resource}: a line that is not JSON`);
        }
        if (typeof ev?.type !== "string" || typeof ev.object !== "object" || ev.object === null) {
          throw new Error(`watch ${resource}: an event without type or object`);
        }
        yield ev;
      }
    } finally {
      signal.removeEventListener("abort", stop);
      ac.abort();
    }
  }
}

function statusMessage(text: string): string {
  try {
    const s = JSON.parse(text) as { message?: string };
    if (typeof s.message === "string") return s.message.slice(0, 300);
  } catch { /* not a Status */ }
  return text.slice(0, 300);
}

async function boundedText(
  body: ReadableStream<Uint8Array> | null | undefined,
  max: number,
): Promise<string> {
  if (!body) return "";
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.byteLength;
    if (n > max) {
      await body.cancel().catch(() => {});
      throw new Error(`response longer than ${max} bytes`);
    }
    chunks.push(c);
  }
  const all = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * The newline-separated lines of `body`; a line longer than `max` characters is an error. An
 * abort of `signal` cancels the stream (undici's body does not end on its fetch's abort here).
 */
export async function* lines(
  body: ReadableStream<Uint8Array>,
  max: number,
  signal?: AbortSignal,
): AsyncIterable<string> {
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  const decoder = new TextDecoder();
  let buf = "";
  try {
    if (signal?.aborted) return;
    for (;;) {
      const { value, done } = await reader.read();
      if (done || signal?.aborted) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        yield buf.slice(0, nl);
        buf = buf.slice(nl + 1);
      }
      if (buf.length > max) throw new Error(`watch line longer than ${max} characters`);
    }
    if (signal?.aborted) return;
    buf += decoder.decode();
    if (buf !== "") yield buf;
  } finally {
    signal?.removeEventListener("abort", cancel);
    cancel();
    reader.releaseLock();
  }
}
