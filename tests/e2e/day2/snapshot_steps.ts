/**
 * Snapshots on the shared guest through the CLI: a quiesced snapshot, a file changed in the guest,
 * revert, the file is as before; delete; no overlay left in the pool. The revert needs the guest
 * stopped and started again, and so do clone (a stopped source) and events (a stop and start by
 * another client): all three share one restart here ({@linkcode restartWatched}), and the clone
 * boots while the source does. The guest ends running with its agent answering.
 */
import assert from "node:assert/strict";
import { DomainState } from "../../../lib/libvirt/mod.ts";
import { guestExec } from "../../../lib/foundry/agent.ts";
import { type Day2Guest, ONLY } from "./_guest.ts";
import { restartWatched } from "./describe_steps.ts";
import { checkClone, cloneName, cloneRefused, cloneStopped, destroyClone } from "./clone_steps.ts";

async function poolVolumes(guest: Day2Guest): Promise<string[]> {
  const p = await guest.lv.storagePoolLookupByName(guest.config.vmsPool);
  await guest.lv.storagePoolRefresh(p);
  return (await guest.lv.storagePoolListAllVolumes(p)).map((v) => v.name).sort();
}

/** Waits until the agent runs a command again (after the revert's restart), up to `ms`. */
async function agentBack(guest: Day2Guest, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const dom = await guest.lv.domainLookupByName(guest.name);
    const r = await guestExec(guest.lv, dom, "/bin/true", []).catch(() => undefined);
    if (r?.exitCode === 0) return;
    if (Date.now() > until) throw new Error(`agent of ${guest.name} not back after ${ms} ms`);
    await new Promise((res) => setTimeout(res, 3000));
  }
}

/** The snapshot step. */
export async function run(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  const snap = "e2e-before";
  const file = "/root/snapshot-e2e.txt";
  const before = await poolVolumes(guest);
  // Whatever the outcome, leave no snapshot behind for the next steps.
  try {
    await t.step("create a quiesced snapshot", async () => {
      await guest.sh(`echo original > ${file} && sync`);
      const r = await guest.foundry(["snapshot", "create", guest.name, snap]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /filesystems frozen/);
      const vols = await poolVolumes(guest);
      assert.ok(vols.includes(`${guest.name}_boot.${snap}`), vols.join(" "));
      const list = await guest.foundry(["snapshot", "list", guest.name, "-o", "json"]);
      assert.equal(list.code, 0, list.err);
      const items = JSON.parse(list.out) as { name: string; current: boolean }[];
      assert.deepEqual(items.map((s) => [s.name, s.current]), [[snap, true]]);
    });

    await t.step("change the file", async () => {
      await guest.sh(`echo changed > ${file} && sync`);
      assert.equal(await guest.sh(`cat ${file}`), "changed");
    });

    await cloneRefused(guest, t);
    // Stopped by another client; cloned and reverted while stopped; started by another client.
    await restartWatched(guest, t, async (s) => {
      await cloneStopped(guest, s);
      await s.step("revert while stopped", async () => {
        const r = await guest.foundry(["snapshot", "revert", guest.name, snap, "--no-start"]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /reverted to snapshot/);
      });
    });

    await t.step("after the revert the file is back", async () => {
      await agentBack(guest, 900_000);
      assert.equal(await guest.sh(`cat ${file}`), "original");
    });

    if (!ONLY || ONLY.has("resize")) {
      await t.step(
        "after the restart, the guest has the vCPUs resize left for the boot",
        async () => {
          assert.equal(Number(await guest.sh("nproc")), 2);
        },
      );
    }

    await t.step("delete leaves no overlay", async () => {
      const r = await guest.foundry(["snapshot", "delete", guest.name, snap]);
      assert.equal(r.code, 0, r.err);
      // The clone's own volumes are in the same pool until it is destroyed.
      const clones = `${cloneName(guest)}_`;
      assert.deepEqual((await poolVolumes(guest)).filter((v) => !v.startsWith(clones)), before);
      const list = await guest.foundry(["snapshot", "list", guest.name, "-o", "json"]);
      assert.deepEqual(JSON.parse(list.out), []);
      const missing = await guest.foundry(["snapshot", "delete", guest.name, snap]);
      assert.equal(missing.code, 4);
    });
    await checkClone(guest, t);
  } finally {
    await guest.foundry(["snapshot", "delete", guest.name, snap]).catch(() => {});
    await destroyClone(guest, t, before);
  }

  await t.step("the guest runs with its agent up", async () => {
    const dom = await guest.lv.domainLookupByName(guest.name);
    assert.equal((await guest.lv.domainGetState(dom)).state, DomainState.RUNNING);
    await agentBack(guest, 600_000);
    await guest.sh(`rm -f ${file}`);
  });
}
