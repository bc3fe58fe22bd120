/**
 * Day-2 step "describe": `foundry describe` shows the agent and cloud-init conditions with their
 * times, the agent's address and the disks with their sizes. {@linkcode restartWatched}: `foundry
 * events` (the library's iterator, the CLI as a subprocess with -o json) and `foundry list -w` show
 * a stop and start done by another client (virsh); the snapshot step uses it for its own restart,
 * so that the guest reboots once for snapshot revert, events and clone together (a TCG boot on a
 * loaded 2-core host costs many minutes). The guest is left running with its agent answering.
 */
import assert from "node:assert/strict";
import { type VmEvent, watchEvents } from "../../../lib/foundry/events.ts";
import type { VmDescription } from "../../../lib/foundry/describe.ts";
import { BYTES_PER_GB } from "../../../lib/foundry/storage_xml.ts";
import { waitForVm } from "../../../lib/foundry/wait.ts";
import { DomainState } from "../../../lib/libvirt/mod.ts";
import type { Day2Guest } from "./_guest.ts";

const FOUNDRY = new URL("../../../cli/foundry.ts", import.meta.url).pathname;
const DAY = 24 * 3600 * 1000;

/** A foundry CLI subprocess whose stdout lines and stderr are collected as they come. */
function spawnFoundry(guest: Day2Guest, args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FOUNDRY, "--config", guest.configFile, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  let err = "";
  const pump = async (s: ReadableStream<Uint8Array>, on: (t: string) => void) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) on(t);
  };
  let partial = "";
  const reading = Promise.all([
    pump(child.stdout, (t) => {
      const parts = (partial + t).split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
    }),
    pump(child.stderr, (t) => void (err += t)),
  ]);
  return {
    lines,
    get err() {
      return err;
    },
    /** Waits until `ok()` holds, checking every 200 ms, at most `ms`. */
    async until(ok: () => boolean, ms: number, what: string): Promise<void> {
      const end = performance.now() + ms;
      while (!ok()) {
        if (performance.now() > end) {
          throw new Error(`${args.join(" ")}: no ${what} within ${ms} ms; stderr: ${err}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    /** Ctrl-C: returns the exit code. */
    async interrupt(): Promise<number> {
      try {
        child.kill("SIGINT");
      } catch { /* already gone */ }
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

async function virsh(...args: string[]): Promise<void> {
  const out = await new Deno.Command("virsh", {
    args: ["-c", "qemu:///system", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`virsh ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** A time within the last day (or a few minutes ahead: guest clocks drift), else fails. */
function assertRecent(iso: string | null, what: string): number {
  assert.ok(iso, `${what} has a time`);
  const t = Date.parse(iso);
  assert.ok(Number.isFinite(t), `${what}: ${iso} is a time`);
  assert.ok(t > Date.now() - DAY && t < Date.now() + 5 * 60_000, `${what}: ${iso} is recent`);
  return t;
}

/** Runs the describe and events steps on the shared guest. */
export async function run(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  await t.step(
    "describe shows conditions with times, the agent's address and the disks",
    async () => {
      const r = await guest.foundry(["describe", guest.name, "-o", "json"]);
      assert.equal(r.code, 0, r.err);
      const d = JSON.parse(r.out) as VmDescription;
      assert.equal(d.name, guest.name);
      assert.equal(d.managed, true);
      assert.equal(d.live.state, "running");
      const cond = (type: string) => d.conditions.find((c) => c.type === type);
      assert.equal(cond("Ready")?.status, "True");
      assert.equal(cond("AgentConnected")?.status, "True", JSON.stringify(d.conditions));
      assert.equal(cond("CloudInitDone")?.status, "True", JSON.stringify(d.conditions));
      assert.equal(cond("CloudInitDone")?.reason, "CloudInitFinished");
      const agentAt = assertRecent(cond("AgentConnected")!.lastTransitionTime, "AgentConnected");
      const cloudAt = assertRecent(cond("CloudInitDone")!.lastTransitionTime, "CloudInitDone");
      // The agent starts early in boot; cloud-init's last stage ends late.
      assert.ok(agentAt <= cloudAt + 60_000, `agent ${agentAt} before cloud-init ${cloudAt}`);
      const agent = d.addresses.find((a) => a.source === "agent" && a.ip === guest.ip);
      assert.ok(agent, `agent address ${guest.ip} in ${JSON.stringify(d.addresses)}`);
      assert.equal(agent.prefix, 24);
      assert.ok(agent.interface && agent.interface !== "lo");
      assert.ok(d.addresses.some((a) => a.source === "spec" && a.ip === guest.ip));
      const vda = d.disks.find((x) => x.target === "vda");
      const vdb = d.disks.find((x) => x.target === "vdb");
      assert.ok(vda && vdb, JSON.stringify(d.disks));
      assert.equal(vdb.capacity, 1 * BYTES_PER_GB);
      assert.ok(vda.capacity! >= 4 * BYTES_PER_GB, `vda ${vda.capacity}`);
      // Allocation is the file's blocks on the host, as stat sees them.
      const pool = await guest.lv.storagePoolLookupByName(guest.config.vmsPool);
      await guest.lv.storagePoolRefresh(pool);
      const vdbPath = (await guest.lv.domainGetXmlDesc(guest.domain)).match(
        /<source (?:file|dev)='([^']+)'[^>]*\/>\s*(?:<backingStore[^>]*\/>\s*)?<target dev='vdb'/,
      )?.[1];
      if (vdbPath) {
        const st = await Deno.stat(vdbPath);
        assert.ok(st.blocks !== null);
        // Allocation changes as the guest writes; within 16 MiB of what stat sees now.
        assert.ok(Math.abs(vdb.allocation! - st.blocks! * 512) < 16 * 2 ** 20, `${vdb.allocation}`);
      }

      const text = await guest.foundry(["describe", guest.name]);
      assert.equal(text.code, 0, text.err);
      assert.match(text.out, /^Name:\s+d2-/m);
      assert.match(
        text.out,
        /AgentConnected\s+True\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+AgentAnswering/,
      );
      assert.match(
        text.out,
        /CloudInitDone\s+True\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+CloudInitFinished/,
      );
      assert.match(text.out, new RegExp(`agent\\s+${guest.ip.replaceAll(".", "\\.")}/24`));
      assert.match(text.out, /^\s+vdb\s+disk\s+\S+\s+1\.0 GiB/m);
      assert.match(text.out, /^Events:/m);

      const missing = await guest.foundry(["describe", `${guest.name}-nope`]);
      assert.equal(missing.code, 4, missing.err);
      assert.match(missing.err, /does not exist/);
    },
  );
}

/**
 * Stops the guest with `virsh shutdown` (another client), runs `whileStopped` while it is shut off,
 * starts it with `virsh start`, and checks that `foundry events` (library and CLI) and `list -w`
 * saw both, and that describe dates Ready and AgentConnected from the new boot. Leaves the guest
 * running with its agent answering.
 */
export async function restartWatched(
  guest: Day2Guest,
  t: Deno.TestContext,
  whileStopped: (step: Deno.TestContext) => Promise<void>,
): Promise<void> {
  await t.step("events and list -w show a stop and start done by another client", async (s) => {
    const seen: VmEvent[] = [];
    const stop = new AbortController();
    let ready!: () => void;
    const subscribed = new Promise<void>((r) => ready = r);
    const library = (async () => {
      for await (
        const e of watchEvents(guest.lv, {
          domain: guest.name,
          signal: stop.signal,
          onReady: () => ready(),
        })
      ) seen.push(e);
    })();
    const cli = spawnFoundry(guest, ["events", guest.name, "-o", "json"]);
    const watch = spawnFoundry(guest, ["list", "-w", "-o", "json", "-l", "suite=day2"]);
    let restarted = false;
    let startedAt = 0;
    try {
      await subscribed;
      await cli.until(() => cli.err.includes("Watching events"), 120_000, "ready notice");
      // list -w's first output is the whole listing (a JSON document over several lines).
      await watch.until(() => watch.lines.some((l) => l.includes(guest.name)), 120_000, "listing");
      const firstLines = watch.lines.length;
      await new Promise((r) => setTimeout(r, 1000)); // list -w has subscribed before listing

      const saw = async (pred: (e: VmEvent) => boolean, ms: number, what: string) => {
        const end = performance.now() + ms;
        while (!seen.some(pred)) {
          if (performance.now() > end) {
            throw new Error(`no ${what} within ${ms} ms; saw ${JSON.stringify(seen)}`);
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      };
      await virsh("shutdown", guest.name, "--mode", "agent");
      await saw((e) => e.event === "Stopped", 600_000, "Stopped event");
      await whileStopped(s);
      startedAt = Date.now();
      await virsh("start", guest.name);
      restarted = true;
      await saw((e) => e.event === "Started", 120_000, "Started event");
      await saw((e) => e.event === "AgentConnected", 1_500_000, "AgentConnected event");

      const lib = seen.map((e) => `${e.type}:${e.event}:${e.detail}`);
      assert.ok(lib.includes("lifecycle:Stopped:Shutdown"), lib.join(", "));
      assert.ok(lib.includes("lifecycle:Started:Booted"), lib.join(", "));
      assert.ok(
        lib.includes("agent:AgentDisconnected:channel event") ||
          lib.includes("agent:AgentDisconnected:unknown reason"),
        lib.join(", "),
      );
      assert.ok(seen.every((e) => e.vm === guest.name));
      const stopped = seen.findIndex((e) => e.event === "Stopped");
      const started = seen.findIndex((e) => e.event === "Started");
      assert.ok(stopped < started, "Stopped comes before Started");

      // The CLI saw the same, as JSON lines, and Ctrl-C ends it with 130.
      await cli.until(
        () => cli.lines.some((l) => l.includes('"AgentConnected"')),
        60_000,
        "AgentConnected line",
      );
      assert.equal(await cli.interrupt(), 130, cli.err);
      const cliEvents = cli.lines.filter((l) => l.trim()).map((l) => JSON.parse(l) as VmEvent);
      const names = cliEvents.map((e) => `${e.event}:${e.detail}`);
      assert.ok(names.includes("Stopped:Shutdown"), names.join(", "));
      assert.ok(names.includes("Started:Booted"), names.join(", "));
      for (const e of cliEvents) {
        assert.equal(e.vm, guest.name);
        assertRecent(e.time, `${e.event} time`);
      }

      // list -w printed the VM's row again, shut off, then running.
      await watch.until(
        () => watch.lines.slice(firstLines).some((l) => l.includes('"state":"running"')),
        60_000,
        "running row",
      );
      assert.equal(await watch.interrupt(), 130, watch.err);
      const rows = watch.lines.slice(firstLines).filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { name: string; state: string })
        .filter((v) => v.name === guest.name).map((v) => v.state);
      assert.ok(rows.includes("shut off"), rows.join(", "));
      assert.ok(rows.lastIndexOf("running") > rows.indexOf("shut off"), rows.join(", "));
    } finally {
      stop.abort();
      await library;
      await cli.interrupt();
      await watch.interrupt();
      // Whatever failed, the next steps get a running guest.
      if ((await guest.lv.domainGetState(guest.domain)).state === DomainState.SHUTOFF) {
        await guest.lv.domainCreate(guest.domain).catch(() => {});
        restarted = true;
      }
      if (restarted) {
        await waitForVm(guest.lv, guest.name, { timeoutMs: 1_200_000 });
      }
    }
    assert.equal(await guest.sh("echo up"), "up");

    // describe now dates AgentConnected from this boot (the agent's own start, read in the
    // guest). Ready keeps foundry's record unless the guest booted more than 5 minutes after it
    // (README, describe): this restart may come sooner, so Ready is only checked to be either.
    const after = await guest.foundry(["describe", guest.name, "-o", "json"]);
    assert.equal(after.code, 0, after.err);
    const conds = (JSON.parse(after.out) as VmDescription).conditions;
    const agentNow = conds.find((x) => x.type === "AgentConnected")!;
    assert.equal(agentNow.status, "True");
    const agentAt = assertRecent(agentNow.lastTransitionTime, "AgentConnected");
    assert.ok(agentAt >= startedAt - 60_000, `AgentConnected ${agentNow.lastTransitionTime}`);
    const readyNow = conds.find((x) => x.type === "Ready")!;
    assert.equal(readyNow.status, "True");
    assertRecent(readyNow.lastTransitionTime, "Ready");
  });
}
