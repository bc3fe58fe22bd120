/**
 * Fault injection for destroy, start, stop and restart on the real libvirtd (domain type qemu, no OS
 * boots): a failure before each step leaves a consistent state, and the error names what is left.
 */
import assert from "node:assert/strict";
import { DomainState } from "../../lib/libvirt/mod.ts";
import {
  createVm,
  DestroyIncompleteError,
  destroyVm,
  restartVm,
  startVm,
  stopVm,
} from "../../lib/foundry/vm.ts";
import { exitCodeFor } from "../../cli/_program.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { type FoundryFixture, foundryFixture, leftovers, testVm } from "./_fixture.ts";

async function stateOf(fx: FoundryFixture, name: string): Promise<number> {
  return (await fx.lv.domainGetState(await fx.lv.domainLookupByName(name))).state;
}

const injected = (step: string) => () => {
  throw new Error(`injected failure before ${step}`);
};

libvirtTest("a failure before each step of destroy leaves a consistent state", async () => {
  const fx = await foundryFixture();
  try {
    const p = fx.config.vmsPool;

    // Before the shutdown: the running VM is untouched.
    const running = testVm(fx);
    const rn = running.metadata.name;
    await createVm(fx.lv, running, { config: fx.config });
    await assert.rejects(
      destroyVm(fx.lv, rn, {
        timeoutSeconds: 0,
        beforeStep: (s) => s === "shutdown" ? injected(s)() : undefined,
      }),
      (e: unknown) => {
        assert.ok(e instanceof DestroyIncompleteError);
        assert.equal(e.domainUndefined, false);
        assert.deepEqual(e.volumesDeleted, []);
        assert.match(e.message, /injected failure before shutdown/);
        assert.match(e.message, new RegExp(`VM ${rn} is unchanged`));
        return true;
      },
    );
    assert.equal(await stateOf(fx, rn), DomainState.RUNNING);
    assert.equal((await leftovers(fx, rn)).filter((x) => x.startsWith("volume")).length, 4);

    // Before the undefine: stopped, still defined, every volume there; a second destroy finishes.
    await assert.rejects(
      destroyVm(fx.lv, rn, {
        timeoutSeconds: 0,
        beforeStep: (s) => s === "undefine" ? injected(s)() : undefined,
      }),
      (e: unknown) => {
        assert.ok(e instanceof DestroyIncompleteError);
        assert.equal(exitCodeFor(e), 4);
        assert.match(e.message, /injected failure before undefine/);
        assert.match(
          e.message,
          new RegExp(`VM ${rn} is stopped but still defined; no volume deleted`),
        );
        return true;
      },
    );
    assert.equal(await stateOf(fx, rn), DomainState.SHUTOFF);
    assert.equal((await leftovers(fx, rn)).filter((x) => x.startsWith("volume")).length, 4);
    await destroyVm(fx.lv, rn, { timeoutSeconds: 0 });
    assert.deepEqual(await leftovers(fx, rn), []);

    // Before each volume's delete: the domain is gone, that volume is left and named, the rest go.
    for (let k = 0; k < 4; k++) {
      const vm = testVm(fx);
      const name = vm.metadata.name;
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });
      let seen = -1;
      let failed = "";
      await assert.rejects(
        destroyVm(fx.lv, name, {
          timeoutSeconds: 0,
          beforeStep: (s, detail) => {
            if (s !== "delete") return;
            if (++seen === k) {
              failed = detail ?? "";
              throw new Error(`injected failure before deleting ${detail}`);
            }
          },
        }),
        (e: unknown) => {
          assert.ok(e instanceof DestroyIncompleteError);
          assert.equal(exitCodeFor(e), 5);
          assert.equal(e.domainUndefined, true);
          assert.deepEqual(e.volumesLeft, [failed]);
          assert.equal(e.volumesDeleted.length, 3);
          assert.ok(!e.volumesDeleted.includes(failed));
          assert.match(
            e.message,
            new RegExp(`domain undefined; volumes left: ${failed.replace(".", "\\.")}`),
          );
          return true;
        },
      );
      assert.ok(failed.startsWith(`${p}/${name}_`), failed);
      const left = failed.slice(p.length + 1);
      assert.deepEqual(await leftovers(fx, name), [`volume ${left}`, `file ${left}`]);
      const pool = await fx.lv.storagePoolLookupByName(p);
      await fx.lv.storageVolDelete(await fx.lv.storageVolLookupByName(pool, left));
    }
  } finally {
    await fx.cleanup();
  }
});

libvirtTest(
  "a failure before each step of start, stop and restart says where the VM is",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx);
      const name = vm.metadata.name;
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });

      await assert.rejects(
        startVm(fx.lv, name, { beforeStep: injected("start") }),
        new RegExp(`VM ${name} not started \\(still shut off\\): injected failure before start`),
      );
      assert.equal(await stateOf(fx, name), DomainState.SHUTOFF);

      await assert.rejects(
        startVm(fx.lv, name, { beforeStep: (s) => s === "status" ? injected(s)() : undefined }),
        new RegExp(`VM ${name} is running, but its status was not recorded: injected failure`),
      );
      assert.equal(await stateOf(fx, name), DomainState.RUNNING);

      for (const step of ["shutdown", "forceOff"] as const) {
        await assert.rejects(
          stopVm(fx.lv, name, {
            timeoutSeconds: 0,
            beforeStep: (s) => s === step ? injected(s)() : undefined,
          }),
          new RegExp(`VM ${name} not stopped \\(still running\\): injected failure before ${step}`),
        );
        assert.equal(await stateOf(fx, name), DomainState.RUNNING);
      }
      await assert.rejects(
        stopVm(fx.lv, name, {
          timeoutSeconds: 0,
          force: true,
          beforeStep: (s) => s === "status" ? injected(s)() : undefined,
        }),
        new RegExp(`VM ${name} is shut off, but its status was not recorded: injected failure`),
      );
      assert.equal(await stateOf(fx, name), DomainState.SHUTOFF);

      await startVm(fx.lv, name);
      await assert.rejects(
        restartVm(fx.lv, name, {
          timeoutSeconds: 0,
          force: true,
          beforeStep: (s) => s === "start" ? injected(s)() : undefined,
        }),
        new RegExp(
          `VM ${name} was stopped but not started again: VM ${name} not started \\(still shut off\\)`,
        ),
      );
      assert.equal(await stateOf(fx, name), DomainState.SHUTOFF);

      await destroyVm(fx.lv, name, { timeoutSeconds: 0 });
      assert.deepEqual(await leftovers(fx, name), []);
    } finally {
      await fx.cleanup();
    }
  },
);
