/**
 * lib/kubevirt/watch.ts against the Kubernetes API test server over real HTTP: one list then a
 * watch; a watch that ends is resumed from the last resourceVersion without listing again; a
 * resourceVersion that left the server's history (410) makes it list again; lines are bounded.
 */
import assert from "node:assert/strict";
import type { ApiObject, Resource } from "../../lib/kubevirt/client.ts";
import {
  followKind,
  type FollowStats,
  type HttpWatchApi,
  lines,
  type VersionedList,
  type WatchApi,
  type WatchEvent,
} from "../../lib/kubevirt/watch.ts";
import type { K8sTestServer, K8sTestServerOptions } from "./k8s_server.ts";
import { freshStats, vmManifest, withWatchServer } from "./_watch_fixture.ts";

const NS = "vw-watch";
const SELECTOR = "app.kubernetes.io/managed-by=virtwork";

const vm = (name: string) => vmManifest(name, NS, "w1");
const withServer = (
  opts: K8sTestServerOptions,
  fn: (s: K8sTestServer, api: HttpWatchApi) => Promise<void>,
) => withWatchServer(NS, opts, fn);

/** Follows VMIs until every name in `names` is Running and Ready, then stops. */
async function followUntilReady(
  api: WatchApi,
  names: string[],
  stats: FollowStats,
): Promise<Map<string, string[]>> {
  const ac = new AbortController();
  // A guard, not a timing assertion: a bug that loses an event fails here instead of hanging.
  const guard = setTimeout(() => ac.abort(), 30_000);
  const phases = new Map<string, string[]>(names.map((n) => [n, []]));
  const ready = new Set<string>();
  const done = followKind(api, "virtualmachineinstances", NS, SELECTOR, {
    signal: ac.signal,
    stats,
    retryDelayMs: 5,
    onEvent: (type, o) => {
      const seen = phases.get(o.metadata.name);
      if (!seen || type === "DELETED") return;
      const s = o.status as { phase?: string; conditions?: { type: string; status: string }[] };
      if (s?.phase && seen[seen.length - 1] !== s.phase) seen.push(s.phase);
      if (s?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) {
        ready.add(o.metadata.name);
      }
      if (ready.size === names.length) ac.abort();
    },
  });
  await done.finally(() => clearTimeout(guard));
  assert.equal(ready.size, names.length, `ready: ${[...ready]}`);
  return phases;
}

const fresh = freshStats;

Deno.test("followKind lists once and follows VMIs to Ready through one watch", async () => {
  await withServer({ readyAfterMs: (n) => (n.endsWith("1") ? 30 : 80) }, async (server, api) => {
    server.seed("virtualmachines", vm("a-1"));
    const stats = fresh();
    const following = followUntilReady(api, ["a-1", "a-2", "a-3"], stats);
    // Created after the list: they arrive through the watch.
    await new Promise((r) => setTimeout(r, 20));
    server.seed("virtualmachines", vm("a-2"));
    server.seed("virtualmachines", vm("a-3"));
    const phases = await following;
    // a-1 is listed in whichever phase it has by then; the others are followed from their start.
    assert.equal(phases.get("a-1")!.at(-1), "Running");
    for (const n of ["a-2", "a-3"]) assert.deepEqual(phases.get(n), ["Scheduling", "Running"], n);
    assert.deepEqual(stats, { lists: 1, watches: 1, resumes: 0, relists: 0 });
    const gets = server.requestsMatching("GET", /virtualmachineinstances$/);
    assert.equal(gets.filter((r) => !r.query.includes("watch=1")).length, 1, "one list");
    const watch = gets.find((r) => r.query.includes("watch=1"))!;
    assert.match(watch.query, /resourceVersion=\d+/);
    assert.match(watch.query, /allowWatchBookmarks=true/);
    assert.match(watch.query, /labelSelector=app.kubernetes.io%2Fmanaged-by%3Dvirtwork/);
  });
});

/** A WatchApi whose first watch ends after one event, as a dropped connection does. */
function droppingFirstWatch(inner: WatchApi, beforeResume: () => Promise<void> = async () => {}) {
  let watches = 0;
  const api: WatchApi = {
    listVersioned: (r: Resource, ns: string, sel?: string): Promise<VersionedList> =>
      inner.listVersioned(r, ns, sel),
    async *watch(r, ns, sel, rv, signal): AsyncIterable<WatchEvent> {
      const n = ++watches;
      if (n === 2) await beforeResume();
      for await (const e of inner.watch(r, ns, sel, rv, signal)) {
        yield e;
        if (n === 1) return;
      }
    },
  };
  return api;
}

Deno.test("a watch that ends is resumed from the last resourceVersion, without a list", async () => {
  await withServer({ readyAfterMs: () => 60 }, async (server, api) => {
    const stats = fresh();
    const following = followUntilReady(droppingFirstWatch(api), ["b-1", "b-2"], stats);
    await new Promise((r) => setTimeout(r, 20));
    server.seed("virtualmachines", vm("b-1"));
    server.seed("virtualmachines", vm("b-2"));
    const phases = await following;
    assert.deepEqual(phases.get("b-2"), ["Scheduling", "Running"]);
    assert.deepEqual(stats, { lists: 1, watches: 2, resumes: 1, relists: 0 });
    const watches = server.requestsMatching("GET", /virtualmachineinstances$/)
      .filter((r) => r.query.includes("watch=1"));
    const rvs = watches.map((r) => Number(new URLSearchParams(r.query).get("resourceVersion")));
    assert.ok(rvs[1]! > rvs[0]!, `resumed from a later version: ${rvs}`);
  });
});

Deno.test("a resourceVersion gone from the server's history (410) makes it list again", async () => {
  await withServer({ readyAfterMs: () => 40, historySize: 4 }, async (server, api) => {
    const stats = fresh();
    // While the watch is down, more changes than the server keeps happen.
    const churn = async () => {
      for (let i = 0; i < 6; i++) {
        server.seed("secrets", {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: `s-${i}`, namespace: NS },
        });
      }
      server.seed("virtualmachines", vm("c-2"));
      await new Promise((r) => setTimeout(r, 100));
    };
    const following = followUntilReady(droppingFirstWatch(api, churn), ["c-1", "c-2"], stats);
    await new Promise((r) => setTimeout(r, 20));
    server.seed("virtualmachines", vm("c-1"));
    const phases = await following;
    assert.deepEqual(phases.get("c-1"), ["Scheduling", "Running"]);
    assert.deepEqual(phases.get("c-2"), ["Running"], "c-2 first seen Ready in the relist");
    // Both are Ready in the relist, so no third watch is needed.
    assert.deepEqual(stats, { lists: 2, watches: 2, resumes: 1, relists: 1 });
  });
});

Deno.test("lines() splits a stream and refuses a line over its bound", async () => {
  const body = (parts: string[]) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of parts) c.enqueue(new TextEncoder().encode(p));
        c.close();
      },
    });
  const got: string[] = [];
  for await (const l of lines(body(['{"a"', ':1}\n{"b":2}\n', "tail"]), 100)) got.push(l);
  assert.deepEqual(got, ['{"a":1}', '{"b":2}', "tail"]);
  await assert.rejects(async () => {
    for await (const _ of lines(body(["x".repeat(50), "y".repeat(60)]), 100)) { /* drain */ }
  }, /longer than 100 characters/);
});

Deno.test("followKind gives up after repeated failures with the last error", async () => {
  let calls = 0;
  const api: WatchApi = {
    listVersioned: () => {
      calls++;
      return Promise.reject(new Error("connection refused"));
    },
    // deno-lint-ignore require-yield
    async *watch(): AsyncIterable<WatchEvent> {
      throw new Error("unused");
    },
  };
  const retries: number[] = [];
  await assert.rejects(
    followKind(api, "virtualmachineinstances", NS, undefined, {
      signal: new AbortController().signal,
      onEvent: (_t: string, _o: ApiObject) => {},
      retryDelayMs: 1,
      maxFailures: 3,
      onRetry: (_e, n) => retries.push(n),
    }),
    /connection refused/,
  );
  assert.equal(calls, 3);
  assert.deepEqual(retries, [1, 2]);
});
