import assert from "node:assert/strict";
import type { Libvirt } from "../libvirt/client.ts";
import { ConnectionError } from "../libvirt/errors.ts";
import {
  DEFAULT_PARALLEL,
  fanOut,
  HostPool,
  HostSelectionError,
  outcomeSummary,
  parseParallel,
  selectHosts,
  wantsFleet,
} from "./fleet.ts";
import type { HostEntry } from "./fleet_types.ts";

const HOSTS: HostEntry[] = [
  { name: "a", uri: "qemu+unix:///system?socket=/a", labels: { zone: "east", gpu: "yes" } },
  { name: "b", uri: "qemu+unix:///system?socket=/b", labels: { zone: "east" } },
  { name: "c", uri: "qemu+unix:///system?socket=/c", labels: { zone: "west" } },
];

/** A stand-in connection: fanOut and the pool only pass it on and close it. */
function fakeLibvirt(name: string, closed: string[]): Libvirt {
  return { name, close: () => Promise.resolve(void closed.push(name)) } as unknown as Libvirt;
}

Deno.test("selectHosts() takes all, names in config order, and label selectors", () => {
  assert.deepEqual(selectHosts(HOSTS, { host: "all" }).map((h) => h.name), ["a", "b", "c"]);
  assert.deepEqual(selectHosts(HOSTS, { host: "c, a" }).map((h) => h.name), ["a", "c"]);
  assert.deepEqual(selectHosts(HOSTS, { hostSelector: "zone=east" }).map((h) => h.name), [
    "a",
    "b",
  ]);
  assert.deepEqual(
    selectHosts(HOSTS, { host: "b,c", hostSelector: "zone in (east,west),!gpu" }).map((h) =>
      h.name
    ),
    ["b", "c"],
  );
});

Deno.test("selectHosts() refuses unknown names, empty matches and a missing hosts: list", () => {
  assert.throws(
    () => selectHosts(HOSTS, { host: "a,x,y" }),
    { problem: "unknownHosts", message: "Unknown hosts 'x', 'y': configured hosts are a, b, c" },
  );
  assert.throws(() => selectHosts(HOSTS, { host: " , " }), { problem: "noNames" });
  assert.throws(() => selectHosts(HOSTS, { host: " , " }), HostSelectionError);
  assert.throws(
    () => selectHosts(HOSTS, { hostSelector: "zone=north" }),
    { problem: "noMatch", hostSelector: "zone=north", message: /No configured host matches/ },
  );
  assert.throws(() => selectHosts(undefined, { host: "all" }), {
    problem: "noHostsList",
    message: /needs a hosts: list/,
  });
  assert.throws(() => selectHosts(HOSTS, { hostSelector: "zone=(" }), {
    name: "LabelSelectorError",
  });
});

Deno.test("wantsFleet() and parseParallel()", () => {
  assert.equal(wantsFleet({}), false);
  assert.equal(wantsFleet({ host: "a" }), true);
  assert.equal(wantsFleet({ hostSelector: "x" }), true);
  assert.equal(parseParallel(undefined), DEFAULT_PARALLEL);
  assert.equal(parseParallel("1"), 1);
  assert.equal(parseParallel("64"), 64);
  for (const bad of ["0", "65", "-1", "1.5", "x", ""]) {
    assert.throws(() => parseParallel(bad), RangeError, bad);
  }
});

Deno.test("fanOut() keeps to the parallel bound, isolates failures and keeps host order", async () => {
  const closed: string[] = [];
  let connects = 0;
  const pool = new HostPool({
    connect: (uri) => {
      connects++;
      if (uri.endsWith("/b")) return Promise.reject(new ConnectionError("refused", uri));
      return Promise.resolve(fakeLibvirt(uri, closed));
    },
  });
  let running = 0;
  let most = 0;
  const many: HostEntry[] = Array.from({ length: 9 }, (_, i) => ({
    name: `h${i}`,
    uri: i === 4 ? "qemu+unix:///system?socket=/b" : `qemu+unix:///system?socket=/h${i}`,
  }));
  const outcomes = await fanOut(many, 3, pool, async (host) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    if (host.name === "h7") throw new Error("boom");
    return host.name.toUpperCase();
  });
  assert.equal(most, 3);
  assert.deepEqual(outcomes.map((o) => o.host), many.map((h) => h.name));
  assert.deepEqual(outcomes.map((o) => o.ok), [
    true,
    true,
    true,
    true,
    false,
    true,
    true,
    false,
    true,
  ]);
  const first = outcomes[0]!;
  assert.ok(first.ok && first.value === "H0");
  const b = outcomes[4]!;
  assert.ok(!b.ok && b.error instanceof ConnectionError);
  assert.deepEqual(outcomeSummary(outcomes), {
    ok: ["h0", "h1", "h2", "h3", "h5", "h6", "h8"],
    failed: ["h4", "h7"],
    partial: true,
  });
  // A second operation of the same command reuses each host's connection.
  await fanOut(many, 3, pool, () => Promise.resolve(0));
  assert.equal(connects, 9);
  await pool.closeAll();
  assert.equal(closed.length, 8);
});

Deno.test("HostPool: a host that does not answer fails with its URI after the connect timeout", async () => {
  const pool = new HostPool({
    connectTimeoutMs: 30,
    connect: (_uri, { signal }) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true })
      ),
  });
  const [o] = await fanOut([HOSTS[2]!], 4, pool, () => Promise.resolve(1));
  assert.ok(o && !o.ok);
  assert.ok(o.error instanceof ConnectionError);
  assert.match(
    o.error.message,
    /no answer from qemu\+unix:\/\/\/system\?socket=\/c within 0\.03 s/,
  );
  await pool.closeAll();
});

Deno.test("HostPool: an interrupt is not reported as a timeout", async () => {
  const ctrl = new AbortController();
  const pool = new HostPool({
    signal: ctrl.signal,
    connect: (_uri, { signal }) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(new Error("interrupted")), { once: true })
      ),
  });
  const pending = pool.get(HOSTS[0]!);
  ctrl.abort();
  await assert.rejects(pending, /^Error: interrupted$/);
});

Deno.test("outcomeSummary(): all ok and all failed are not partial", () => {
  assert.equal(outcomeSummary([{ host: "a", ok: true, value: 1 }]).partial, false);
  assert.equal(outcomeSummary([{ host: "a", ok: false, error: new Error("x") }]).partial, false);
});
