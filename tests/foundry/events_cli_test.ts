/**
 * `foundry events`, `foundry list -w` and `foundry describe` against the real daemon, on a tiny
 * domain of our own (no disk, no guest, so no boot to wait for): the events a define, start,
 * destroy and undefine cause, seen by a foundry subprocess that another connection's changes
 * reach; Ctrl-C ends it with 130.
 */
import assert from "node:assert/strict";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import type { VmEvent } from "../../lib/foundry/events.ts";
import type { VmDescription } from "../../lib/foundry/describe.ts";
import { libvirtTest, tinyDomainXml, uniqueName } from "../libvirt/_env.ts";
import { main } from "../../cli/foundry.ts";

const FOUNDRY = new URL("../../cli/foundry.ts", import.meta.url).pathname;

function spawn(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FOUNDRY, "--no-audit", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let out = "";
  let err = "";
  const reading = Promise.all([
    (async () => {
      for await (const t of child.stdout.pipeThrough(new TextDecoderStream())) out += t;
    })(),
    (async () => {
      for await (const t of child.stderr.pipeThrough(new TextDecoderStream())) err += t;
    })(),
  ]);
  return {
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    async until(ok: () => boolean, what: string, ms = 60_000) {
      const end = performance.now() + ms;
      while (!ok()) {
        if (performance.now() > end) throw new Error(`no ${what}; out: ${out}; err: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async interrupt(): Promise<number> {
      try {
        child.kill("SIGINT");
      } catch { /* gone */ }
      const { code } = await child.status;
      await reading;
      return code;
    },
  };
}

libvirtTest(
  "events and list -w see another client's define, start, destroy, undefine; Ctrl-C is 130",
  async () => {
    const lv = await Libvirt.connect();
    const name = uniqueName("h5-evt");
    const events = spawn(["events", "-o", "json"]);
    const text = spawn(["events"]);
    const watch = spawn(["list", "-w", "-a", "-o", "json"]);
    try {
      await events.until(() => events.err.includes("Watching events"), "ready notice");
      await text.until(() => text.out.startsWith("TIME"), "header");
      await watch.until(() => watch.out.trimEnd().endsWith("]"), "first listing");
      // list -w subscribes before it lists, so from here every change is seen.
      const d = await lv.domainDefineXml(tinyDomainXml(name));
      await lv.domainCreate(d);
      await watch.until(
        () => watch.out.includes(`{"name":"${name}"`) && watch.out.includes('"state":"running"'),
        "running row",
      );
      await lv.domainDestroy(d);
      await lv.domainUndefine(d);
      const mine = () =>
        events.out.split("\n").filter((l) => l.includes(name)).map((l) => JSON.parse(l) as VmEvent);
      await events.until(() => mine().some((e) => e.event === "Undefined"), "Undefined event");
      // In this order; the daemon adds others between them (Resumed:Unpaused, Shutdown:Host).
      const got = mine().map((e) => `${e.type}:${e.event}:${e.detail}`);
      const want = [
        "lifecycle:Defined:Added",
        "lifecycle:Started:Booted",
        "lifecycle:Stopped:Destroyed",
        "lifecycle:Undefined:Removed",
      ];
      const at = want.map((w) => got.indexOf(w));
      assert.ok(at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1]!)), got.join(", "));
      assert.ok(mine().every((e) => Math.abs(Date.parse(e.time) - Date.now()) < 120_000));
      await text.until(() => text.out.includes("Undefined"), "Undefined line");
      assert.match(text.out, new RegExp(`^\\S+Z\\s+${name}\\s+Stopped\\s+Destroyed$`, "m"));
      await watch.until(() => watch.out.includes('"state":"deleted"'), "deleted row");
      assert.equal(await events.interrupt(), 130, events.err);
      assert.equal(await text.interrupt(), 130, text.err);
      assert.equal(await watch.interrupt(), 130, watch.err);
    } finally {
      await events.interrupt();
      await text.interrupt();
      await watch.interrupt();
      try {
        const d = await lv.domainLookupByName(name);
        await lv.domainDestroy(d).catch(() => {});
        await lv.domainUndefine(d).catch(() => {});
      } catch { /* gone */ }
      await lv.close();
    }
  },
);

libvirtTest(
  "describe works on a domain foundry did not create, lists its audited operations; unknown names exit 4",
  async () => {
    const lv = await Libvirt.connect();
    const name = uniqueName("h5-desc");
    const d = await lv.domainDefineXml(tinyDomainXml(name));
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) };
    const db = await Deno.makeTempFile({ suffix: ".db" });
    await Deno.remove(db);
    try {
      // Two audited operations, then describe lists them from the same database, newest first.
      assert.equal(await main(["--audit-db", db, "start", name], io), 0, err.join(""));
      assert.equal(await main(["--audit-db", db, "stop", name], io), 0, err.join(""));
      out.length = 0;
      assert.equal(
        await main(["--audit-db", db, "describe", name, "-o", "json"], io),
        0,
        err.join(""),
      );
      const desc = JSON.parse(out.join("")) as VmDescription;
      assert.equal(desc.managed, false);
      assert.equal(desc.spec, null);
      assert.equal(desc.live.state, "shut off");
      assert.deepEqual(
        desc.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`),
        [
          "Ready=False/VMStopped",
          "AgentConnected=False/VMNotRunning",
          "CloudInitDone=Unknown/VMNotRunning",
        ],
      );
      assert.deepEqual(desc.disks, []);
      assert.deepEqual(desc.events.map((e) => `${e.operation}:${e.status}`), [
        "stop:succeeded",
        "start:succeeded",
      ]);
      out.length = 0;
      assert.equal(await main(["--no-audit", "describe", `${name}-x`], io), 4);
      assert.match(err.join(""), /does not exist/);
      err.length = 0;
      assert.equal(await main(["--no-audit", "events", `${name}-x`], io), 4);
      assert.match(err.join(""), /does not exist/);
    } finally {
      await lv.domainDestroy(d).catch(() => {});
      await lv.domainUndefine(d).catch(() => {});
      await lv.close();
      for (const f of [db, `${db}-wal`, `${db}-shm`]) await Deno.remove(f).catch(() => {});
    }
  },
);
