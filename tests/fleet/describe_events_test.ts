/**
 * `foundry describe` and `foundry events` across a fleet (issue 16) against three real libvirt
 * daemons started for this file (tests/fleet/_daemons.ts), the last one reached over qemu+ssh:
 * describe finds each VM on its host (a Host: line, a name on two hosts shown for both, a name on
 * no host, a paused or dead host on its own line with exit 7); events merges the lifecycle events
 * of several hosts with a HOST column and goes on when a host dies mid-watch. The VMs are defined,
 * not started; the events come from defining and undefining OS-less domains.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "npm:yaml@^2.9.1";
import { eventLine, FLEET_EVENTS_HEADER } from "../../cli/foundry/events.ts";
import { buildDomainXml } from "../../lib/foundry/domain_xml.ts";
import type { VmDescription } from "../../lib/foundry/describe.ts";
import type { VmEvent } from "../../lib/foundry/events.ts";
import { gatherDescriptions, type HostVmDescription } from "../../lib/foundry/fleet_describe.ts";
import { parseVirtualMachines } from "../../lib/foundry/loader.ts";
import { HostPool } from "../../lib/foundry/fleet.ts";
import { watchFleetEvents } from "../../lib/foundry/fleet_events.ts";
import { ConnectionError, type DomainRef, Libvirt } from "../../lib/libvirt/mod.ts";
import { XdrReader, XdrWriter } from "../../lib/xdr/mod.ts";
import { testNeeding } from "../_require.ts";
import { tinyDomainXml } from "../libvirt/_env.ts";
import { fleetSkipReason, startTestFleet, type TestHost, virsh } from "./_daemons.ts";
import { foundry, foundryWith, vmYaml, writeFleetConfig } from "./_h7_fleet.ts";

const FOUNDRY = new URL("../../cli/foundry.ts", import.meta.url).pathname;

Deno.test("gatherDescriptions() sorts names into found (name, then host order), missing, on several hosts", () => {
  const d = (name: string) => ({ name }) as VmDescription;
  const at = (host: string, ...names: string[]): HostVmDescription[] =>
    names.map((n) => ({ host, uri: `qemu+ssh://${host}/system`, description: d(n) }));
  const r = gatherDescriptions(["Web", "db", "gone", "web"], [
    { host: "a", ok: true, value: at("a", "db", "web") },
    { host: "b", ok: false, error: new Error("no answer") },
    { host: "c", ok: true, value: at("c", "web") },
  ]);
  assert.deepEqual(r.found.map((f) => `${f.host}/${f.description.name}`), [
    "a/web",
    "c/web",
    "a/db",
  ]);
  assert.deepEqual(r.missing, ["gone"]);
  assert.deepEqual(r.onSeveralHosts, [{ name: "web", hosts: ["a", "c"] }]);
  assert.deepEqual(r.failed.map((f) => `${f.host}: ${f.error.message}`), ["b: no answer"]);
});

Deno.test("eventLine() with a host puts HOST first, under FLEET_EVENTS_HEADER's column", () => {
  const e: VmEvent = {
    time: "2026-01-02T03:04:05.678Z",
    vm: "web",
    type: "lifecycle",
    event: "Defined",
    detail: "Added",
    data: {},
  };
  const line = eventLine(e, "east\x1b[31m-1");
  assert.match(line, /^east-1\s+2026-01-02T03:04:05\.678Z\s+web\s+Defined\s+Added\n$/);
  assert.match(FLEET_EVENTS_HEADER, /^HOST\s+TIME\s+VM\s+EVENT\s+DETAIL\n$/);
  assert.equal(line.indexOf("2026"), FLEET_EVENTS_HEADER.indexOf("TIME"));
  assert.equal(eventLine(e), line.slice(line.indexOf("2026")));
});

/** A connection stand-in for a watch: lifecycle events on demand, a close that ends the watch. */
function fakeHost(name: string) {
  const lifecycle: ((e: { domain: DomainRef; event: number; detail: number }) => void)[] = [];
  const closing: ((e: Error) => void)[] = [];
  let subscriptions = 0;
  const sub = () => {
    subscriptions++;
    return { close: () => Promise.resolve(void subscriptions--) };
  };
  const lv = {
    rpc: {
      onMessage: () => () => {},
      onClose: (fn: (e: Error) => void) => {
        closing.push(fn);
        return () => {};
      },
    },
    // subscribeDomainEvent's REGISTER_ANY answer: a callback ID; its DEREGISTER: nothing.
    callRemote: <T>(_p: number, _e: unknown, dec: (r: XdrReader) => T) =>
      Promise.resolve(dec(new XdrReader(new XdrWriter().writeInt(1).bytes()))),
    onDomainLifecycle: (_d: unknown, l: (typeof lifecycle)[number]) => {
      lifecycle.push(l);
      return Promise.resolve(sub());
    },
    onAgentLifecycle: () => Promise.resolve(sub()),
    close: () => Promise.resolve(),
  };
  return {
    lv: lv as unknown as Libvirt,
    get subscriptions() {
      return subscriptions;
    },
    /** A Defined event of domain `vm`, as the daemon sends it. */
    define: (vm: string) =>
      lifecycle[0]!({
        domain: { name: vm, uuid: new Uint8Array(16), id: -1 },
        event: 0,
        detail: 0,
      }),
    /** The connection ends. */
    drop: () => closing.forEach((fn) => fn(new ConnectionError(`${name} went away`, name))),
  };
}

Deno.test("watchFleetEvents() holds events until every host is settled, reports lost hosts, goes on", async () => {
  const a = fakeHost("a");
  const b = fakeHost("b");
  let connectB!: () => void;
  const pool = new HostPool({
    connect: (uri) => {
      if (uri === "fake:a") return Promise.resolve(a.lv);
      if (uri === "fake:b") return new Promise((r) => connectB = () => r(b.lv));
      return Promise.reject(new ConnectionError("connection refused", uri));
    },
  });
  const hosts = ["a", "b", "c"].map((n) => ({ name: n, uri: `fake:${n}` }));
  const stream = watchFleetEvents(pool, hosts);
  const seen: string[] = [];
  const next = async () => {
    const x = (await stream.next()).value!;
    const line = x.type === "event"
      ? `${x.host} ${x.event.vm} ${x.event.event}`
      : x.type === "watching"
      ? `watching ${x.hosts.join(",")}`
      : `failed ${x.host}: ${x.error.message}`;
    seen.push(line);
    return line;
  };
  assert.equal(await next(), "failed c: connection refused");
  const third = next();
  // a is watched and has an event while b still connects: it waits for the notice.
  while (a.subscriptions < 2) await new Promise((r) => setTimeout(r, 1));
  a.define("web");
  connectB();
  await third;
  assert.equal(await next(), "a web Defined");
  b.define("db");
  a.drop();
  assert.equal(await next(), "b db Defined");
  assert.equal(await next(), "failed a: a went away");
  b.define("db2");
  assert.equal(await next(), "b db2 Defined");
  assert.deepEqual(seen.slice(1, 2), ["watching a,b"]);
  // Leaving early ends every host's watch and deregisters it.
  await stream.return();
  assert.equal(b.subscriptions, 0);
  assert.equal(a.subscriptions, 0);
  await pool.closeAll();
});

/** Defines foundry VM `name` (not started) on `h`. */
async function defineVm(h: TestHost, name: string, ip: string): Promise<void> {
  const [vm] = parseVirtualMachines(vmYaml(name, ip), `${name}.yaml`);
  await withClient(h, (lv) => lv.domainDefineXml(buildDomainXml(vm!, { domainType: "qemu" })));
}

async function withClient<T>(h: TestHost, fn: (lv: Libvirt) => Promise<T>): Promise<T> {
  const lv = await Libvirt.connect(h.unixUri);
  try {
    return await fn(lv);
  } finally {
    await lv.close();
  }
}

/** Defines and undefines the OS-less domain `name` on `h`: a Defined and an Undefined event. */
async function defineAndUndefine(h: TestHost, name: string): Promise<void> {
  await withClient(h, async (lv) => {
    await lv.domainUndefine(await lv.domainDefineXml(tinyDomainXml(name)));
  });
}

/** `foundry ARGS` as a subprocess whose output is collected as it comes; ended by Ctrl-C. */
function spawnFoundry(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FOUNDRY, "--no-audit", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", FOUNDRY_HOST_TIMEOUT: "5" },
  }).spawn();
  const got = { out: "", err: "" };
  const pump = async (s: ReadableStream<Uint8Array>, key: "out" | "err") => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) got[key] += t;
  };
  const reading = Promise.all([pump(child.stdout, "out"), pump(child.stderr, "err")]);
  return {
    got,
    async until(ok: () => boolean, what: string, ms = 60_000): Promise<void> {
      for (const end = performance.now() + ms; !ok();) {
        if (performance.now() > end) {
          throw new Error(`no ${what}; out: ${got.out}; err: ${got.err}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async interrupt(): Promise<number> {
      try {
        child.kill("SIGINT");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 20_000);
      const { code } = await child.status;
      clearTimeout(timer);
      await reading;
      return code;
    },
  };
}

testNeeding(fleetSkipReason(), {
  name: "fleet: describe and events across three daemons; a paused or dead host fails alone",
  async fn(t) {
    const fleet = await startTestFleet({ prefix: "s6h1" });
    const dir = await Deno.makeTempDir({ prefix: "s6h1-config-" });
    const watches: ReturnType<typeof spawnFoundry>[] = [];
    try {
      const [a, b, c] = fleet.hosts as [TestHost, TestHost, TestHost];
      const config = await writeFleetConfig(
        dir,
        fleet.hosts.map((h) => `{name: ${h.name}, uri: "${h.uri}"}`),
      );
      await defineVm(a, "s6h1-web", "192.0.2.11");
      await defineVm(b, "s6h1-db", "192.0.2.12");
      await defineVm(a, "s6h1-dup", "192.0.2.13");
      await defineVm(c, "s6h1-dup", "192.0.2.13");
      if (fleet.sshSkipped) console.log(`ssh host skipped: ${fleet.sshSkipped}`);

      await t.step("describe finds each VM on its host and prints a Host: line", async () => {
        const r = await foundry(
          "--config",
          config,
          "describe",
          "s6h1-web",
          "s6h1-db",
          "--host",
          "all",
        );
        assert.equal(r.code, 0, r.err);
        assert.equal(r.err, "");
        const blocks = r.out.split(/\n(?=Name:)/);
        assert.equal(blocks.length, 2, r.out);
        assert.match(blocks[0]!, new RegExp(`^Name:\\s+s6h1-web\\nHost:\\s+${a.name}\\nUUID:`));
        assert.match(blocks[1]!, new RegExp(`^Name:\\s+s6h1-db\\nHost:\\s+${b.name}\\nUUID:`));
        for (const block of blocks) {
          assert.match(block, /Managed:\s+yes \(foundry\)/);
          assert.match(block, /State:\s+shut off \(Stopped\)/);
        }
        const j = await foundry(
          "--config",
          config,
          "--host",
          "all",
          "describe",
          "s6h1-db",
          "-o",
          "json",
        );
        assert.equal(j.code, 0, j.err);
        const docs = JSON.parse(j.out) as (VmDescription & { host: string })[];
        assert.deepEqual(docs.map((x) => [x.host, x.name, x.managed]), [[b.name, "s6h1-db", true]]);
        const y = await foundry(
          "--config",
          config,
          "--host",
          `${a.name},${b.name}`,
          "describe",
          "s6h1-db",
          "s6h1-web",
          "-o",
          "yaml",
        );
        assert.equal(y.code, 0, y.err);
        const items = parseYaml(y.out) as { host: string; name: string }[];
        assert.deepEqual(items.map((x) => `${x.host}/${x.name}`), [
          `${b.name}/s6h1-db`,
          `${a.name}/s6h1-web`,
        ]);
      });

      await t.step("a name on two hosts is shown for both, and said so", async () => {
        const r = await foundry("--config", config, "describe", "s6h1-dup", "--host", "all");
        assert.equal(r.code, 0, r.err);
        assert.match(
          r.err,
          new RegExp(`^Warning: VM 's6h1-dup' exists on hosts ${a.name}, ${c.name}: each is shown`),
        );
        const hosts = [...r.out.matchAll(/^Host:\s+(\S+)$/gm)].map((m) => m[1]);
        assert.deepEqual(hosts, [a.name, c.name]);
        const uuids = [...r.out.matchAll(/^UUID:\s+(\S+)$/gm)].map((m) => m[1]);
        assert.equal(new Set(uuids).size, 2, "two domains, not one shown twice");
      });

      await t.step("a name on no host is not found (exit 4); the others still print", async () => {
        const none = await foundry("--config", config, "describe", "s6h1-nowhere", "--host", "all");
        assert.equal(none.code, 4, none.err);
        assert.equal(none.out, "");
        assert.match(
          none.err,
          new RegExp(
            `^Error: VM 's6h1-nowhere' not found on hosts ${a.name}, ${b.name}, ${c.name}\\n`,
          ),
        );
        const some = await foundry(
          "--config",
          config,
          "describe",
          "s6h1-nowhere",
          "s6h1-web",
          "--host",
          "all",
        );
        assert.equal(some.code, 4, some.err);
        assert.match(some.out, new RegExp(`^Name:\\s+s6h1-web\\nHost:\\s+${a.name}\\n`));
        assert.match(some.err, /VM 's6h1-nowhere' not found/);
      });

      await t.step("a paused host gets its own error line, the others print; exit 7", async () => {
        b.pause();
        try {
          const r = await foundryWith({ FOUNDRY_HOST_TIMEOUT: "3" }, [
            "--config",
            config,
            "describe",
            "s6h1-web",
            "s6h1-dup",
            "--host",
            "all",
          ]);
          assert.equal(r.code, 7, r.out + r.err);
          assert.match(r.err, new RegExp(`^Error: host ${b.name}: .*no answer .* within 3 s`, "m"));
          assert.match(r.err, new RegExp(`1 of 3 hosts failed: ${b.name}`));
          assert.deepEqual(
            [...r.out.matchAll(/^Name:\s+(\S+)\nHost:\s+(\S+)$/gm)].map((m) => `${m[2]}/${m[1]}`),
            [`${a.name}/s6h1-web`, `${a.name}/s6h1-dup`, `${c.name}/s6h1-dup`],
          );
          // A name only the paused host has: not found on the others, which is not the whole truth.
          const db = await foundryWith({ FOUNDRY_HOST_TIMEOUT: "3" }, [
            "--config",
            config,
            "describe",
            "s6h1-db",
            "--host",
            "all",
          ]);
          assert.equal(db.code, 7, db.err);
          assert.match(db.err, /not found on hosts .* \(some hosts did not answer\)/);
        } finally {
          b.resume();
        }
      });

      await t.step("events merges two hosts' lifecycle events with a HOST column", async () => {
        const text = spawnFoundry(["--config", config, "events", "--host", "all"]);
        watches.push(text);
        const json = spawnFoundry([
          "--config",
          config,
          "--host",
          `${a.name},${c.name}`,
          "events",
          "-o",
          "json",
        ]);
        watches.push(json);
        await text.until(() => text.got.err.includes("Watching events"), "ready notice");
        await json.until(() => json.got.err.includes("Watching events"), "ready notice");
        assert.match(
          text.got.err,
          new RegExp(`Watching events of every VM on hosts ${a.name}, ${b.name}, ${c.name}`),
        );
        assert.equal(text.got.out.split("\n")[0] + "\n", FLEET_EVENTS_HEADER);
        await defineAndUndefine(a, "s6h1-evt-a");
        await defineAndUndefine(c, "s6h1-evt-c");
        const row = (h: TestHost, vm: string, ev: string) =>
          new RegExp(`^${h.name}\\s+\\S+Z\\s+${vm}\\s+${ev}\\s`, "m");
        await text.until(
          () =>
            row(a, "s6h1-evt-a", "Undefined").test(text.got.out) &&
            row(c, "s6h1-evt-c", "Undefined").test(text.got.out),
          "events of both hosts",
        );
        assert.match(text.got.out, row(a, "s6h1-evt-a", "Defined"));
        assert.match(text.got.out, row(c, "s6h1-evt-c", "Defined"));
        assert.ok(!text.got.out.includes(`${b.name} `), "host b had no event");
        const mine = () =>
          json.got.out.split("\n").filter((l) => l.includes("s6h1-evt"))
            .map((l) => JSON.parse(l) as VmEvent & { host: string });
        await json.until(() => mine().length >= 4, "four JSON events");
        assert.deepEqual(
          mine().map((e) => `${e.host} ${e.vm} ${e.event}`).sort(),
          [
            `${a.name} s6h1-evt-a Defined`,
            `${a.name} s6h1-evt-a Undefined`,
            `${c.name} s6h1-evt-c Defined`,
            `${c.name} s6h1-evt-c Undefined`,
          ],
        );
        assert.equal(await json.interrupt(), 130);
        assert.ok(!json.got.err.includes("Error"), json.got.err);
      });

      await t.step("events NAME on no host is not found (exit 4)", async () => {
        const r = await foundry("--config", config, "events", "s6h1-nowhere", "--host", "all");
        assert.equal(r.code, 4, r.err);
        assert.match(r.err, /VM 's6h1-nowhere' not found on hosts s6h1a, s6h1b, s6h1c/);
      });

      await t.step("a host killed mid-watch is reported; events of the others go on", async () => {
        const text = watches[0]!;
        await b.kill();
        await text.until(
          () => new RegExp(`^Error: host ${b.name}: `, "m").test(text.got.err),
          "error line of the dead host",
        );
        await defineAndUndefine(c, "s6h1-evt-after");
        await text.until(
          () =>
            new RegExp(`^${c.name}\\s+\\S+Z\\s+s6h1-evt-after\\s+Undefined`, "m")
              .test(text.got.out),
          "event of a live host after the death",
        );
        const code = await text.interrupt();
        // The interrupt is the watch's normal end (130); the summary names the lost host.
        assert.equal(code, 130, text.got.err);
        assert.match(text.got.err, new RegExp(`1 of 3 hosts failed: ${b.name}`));
        const dead = await foundry("--config", config, "describe", "s6h1-web", "--host", "all");
        assert.equal(dead.code, 7, dead.err);
        assert.match(dead.err, new RegExp(`^Error: host ${b.name}: `, "m"));
        assert.match(dead.out, new RegExp(`^Host:\\s+${a.name}$`, "m"));
        const gone = await foundry("--config", config, "events", "s6h1-nowhere", "--host", "all");
        assert.equal(gone.code, 7, gone.err);
        assert.match(gone.err, new RegExp(`^Error: host ${b.name}: `, "m"));
        assert.match(gone.err, new RegExp(`not found on hosts ${a.name}, ${c.name}`));
      });
      // The domains were removed again; the daemons go with them.
      for (const h of [a, c]) {
        assert.ok(!(await virsh(h.unixUri, "list", "--all", "--name")).includes("s6h1-evt"));
      }
    } finally {
      await Promise.all(watches.map((w) => w.interrupt()));
      await fleet.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
