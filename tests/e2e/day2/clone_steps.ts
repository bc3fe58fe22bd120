/**
 * clone, the last step: the shared guest is stopped and cloned with a spare address through the
 * CLI; both start; the clone finishes cloud-init with its own hostname and address, as seen
 * through its agent only; then the clone is destroyed and nothing of it is left.
 */
import assert from "node:assert/strict";
import { guestExec } from "../../../lib/foundry/agent.ts";
import type { Day2Guest } from "./_guest.ts";

/** Runs `cmd` in domain `name` through the agent until `ok` accepts its output, up to `ms`. */
async function until(
  guest: Day2Guest,
  name: string,
  cmd: string,
  ok: (out: string) => boolean,
  ms: number,
): Promise<string> {
  const end = Date.now() + ms;
  let last = "";
  for (;;) {
    try {
      const dom = await guest.lv.domainLookupByName(name);
      const r = await guestExec(guest.lv, dom, "/bin/sh", ["-c", cmd]);
      last = `${r.exitCode}: ${r.stdout.trim()} ${r.stderr.trim()}`.slice(0, 500);
      if (r.exitCode === 0 && ok(r.stdout.trim())) return r.stdout.trim();
    } catch (e) {
      last = (e as Error).message.slice(0, 500);
    }
    if (Date.now() > end) {
      throw new Error(`${name}: '${cmd}' not as expected after ${ms} ms: ${last}`);
    }
    await new Promise((res) => setTimeout(res, 5000));
  }
}

async function poolVolumes(guest: Day2Guest): Promise<string[]> {
  const p = await guest.lv.storagePoolLookupByName(guest.config.vmsPool);
  await guest.lv.storagePoolRefresh(p);
  return (await guest.lv.storagePoolListAllVolumes(p)).map((v) => v.name).sort();
}

/** The clone step. */
export async function run(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  const clone = `${guest.name}-c`;
  const ip = `192.0.2.${guest.spareHosts[0]}`;
  const before = await poolVolumes(guest);
  try {
    await t.step("a running source is refused", async () => {
      const r = await guest.foundry(["clone", guest.name, clone, "--ip", `${ip}/24`]);
      assert.equal(r.code, 4, r.out + r.err);
      assert.match(r.err, /foundry stop/);
    });

    await t.step("stop the source and clone it", async () => {
      const stop = await guest.foundry(["stop", guest.name, "--timeout", "120"]);
      assert.equal(stop.code, 0, stop.err);
      const r = await guest.foundry(["clone", guest.name, clone, "--ip", `${ip}/24`]);
      assert.equal(r.code, 0, r.out + r.err);
      const list = await guest.foundry(["list", "-o", "name"]);
      assert.match(list.out, new RegExp(`vm/${clone}\\b`));
    });

    await t.step("both run; the clone has its own hostname and address", async () => {
      const start = await guest.foundry(["start", guest.name]);
      assert.equal(start.code, 0, start.err);
      const wait = 1_200_000;
      await until(
        guest,
        clone,
        "test -f /var/lib/cloud/instance/boot-finished && hostname",
        (o) => o === clone,
        wait,
      );
      const addrs = await until(
        guest,
        clone,
        "ip -4 -o addr show",
        (o) => o.includes(`${ip}/24`),
        wait,
      );
      assert.ok(
        !addrs.includes(`${guest.ip}/`),
        `the clone does not hold the source's address: ${addrs}`,
      );
      const status = await until(
        guest,
        clone,
        "cloud-init status || true",
        (o) => /done|error/.test(o),
        wait,
      );
      assert.match(status, /done/);
      // The source is back too.
      await until(guest, guest.name, "hostname", (o) => o === guest.name, wait);
    });
  } finally {
    await t.step("destroy the clone: nothing of it is left", async () => {
      const r = await guest.foundry(["destroy", clone, "--timeout", "5"]);
      assert.ok(r.code === 0 || /does not exist/.test(r.err), r.err);
      const names = (await guest.lv.listAllDomains()).map((d) => d.name);
      assert.ok(!names.includes(clone));
      assert.deepEqual(await poolVolumes(guest), before);
    });
  }
}
