/**
 * clone, run inside the snapshot step's restart (see `snapshot_steps.ts`): a running source is
 * refused; the shared guest, stopped by another client, is cloned with a spare address through the
 * CLI and the clone starts while the source is restarted; the clone finishes cloud-init with its
 * own hostname and address, as seen through its agent only; then the clone is destroyed and
 * nothing of it is left.
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

/** The clone's name. */
export function cloneName(guest: Day2Guest): string {
  return `${guest.name}-c`;
}

const cloneIp = (guest: Day2Guest) => `192.0.2.${guest.spareHosts[0]}`;

/** A running source is refused, with the command that stops it. */
export async function cloneRefused(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  await t.step("clone: a running source is refused", async () => {
    const r = await guest.foundry([
      "clone",
      guest.name,
      cloneName(guest),
      "--ip",
      `${cloneIp(guest)}/24`,
    ]);
    assert.equal(r.code, 4, r.out + r.err);
    assert.match(r.err, /foundry stop/);
  });
}

/** Clones the stopped source; the clone is started by clone itself. */
export async function cloneStopped(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  await t.step("clone the stopped source", async () => {
    const clone = cloneName(guest);
    const r = await guest.foundry(["clone", guest.name, clone, "--ip", `${cloneIp(guest)}/24`]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /and started/);
    const list = await guest.foundry(["list", "-o", "name"]);
    assert.match(list.out, new RegExp(`vm/${clone}\\b`));
  });
}

/** The clone has its own hostname and address, and the source runs too. */
export async function checkClone(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  await t.step("clone: both run; the clone has its own hostname and address", async () => {
    const clone = cloneName(guest);
    const ip = cloneIp(guest);
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
    await until(guest, guest.name, "hostname", (o) => o === guest.name, wait);
  });
}

/** Destroys the clone; the pool then holds exactly `volumesBefore`. */
export async function destroyClone(
  guest: Day2Guest,
  t: Deno.TestContext,
  volumesBefore: string[],
): Promise<void> {
  await t.step("destroy the clone: nothing of it is left", async () => {
    const clone = cloneName(guest);
    const r = await guest.foundry(["destroy", clone, "--timeout", "5"]);
    assert.ok(r.code === 0 || /does not exist/.test(r.err), r.err);
    const names = (await guest.lv.listAllDomains()).map((d) => d.name);
    assert.ok(!names.includes(clone));
    assert.deepEqual(await poolVolumes(guest), volumesBefore);
  });
}
