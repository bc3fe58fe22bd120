/**
 * `foundry create` with several VMs in one file, on the real libvirtd: every VM is checked before
 * any is created, a failure while creating keeps what was finished and says so exactly, and a rerun
 * converges (unchanged VMs are skipped, a changed one is an error naming it).
 */
import assert from "node:assert/strict";
import { stringify } from "npm:yaml@^2.9.1";
import { main } from "../../cli/foundry.ts";
import { CreateIncompleteError, createVms } from "../../lib/foundry/create_many.ts";
import { createVm, RuntimeCheckError } from "../../lib/foundry/vm.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import {
  type FoundryFixture,
  foundryFixture,
  leftovers,
  testVm,
  writeConfigFile,
} from "../foundry/_fixture.ts";
import { libvirtTest } from "../libvirt/_env.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

/** Runs `foundry create FILE --no-start` in-process against the fixture's pools. */
async function create(fx: FoundryFixture, vms: VirtualMachine[]) {
  const file = `${fx.dir}/vms-${crypto.randomUUID().slice(0, 8)}.yaml`;
  await Deno.writeTextFile(file, vms.map((v) => stringify(v)).join("---\n"));
  const config = await writeConfigFile(fx);
  const c = capture();
  const code = await main(["--config", config, "--no-audit", "create", file, "--no-start"], c.io);
  return { code, out: c.out(), err: c.err() };
}

async function assertGone(fx: FoundryFixture, ...names: string[]) {
  for (const n of names) assert.deepEqual(await leftovers(fx, n), [], `leftovers of ${n}`);
}

libvirtTest(
  "a file whose second VM fails its checks creates nothing, not even the first",
  async () => {
    const fx = await foundryFixture();
    try {
      const a = testVm(fx);
      const b = testVm(fx);
      b.spec.networkInterfaces[0]!.bridge = "ftnosuchbr0";
      const r = await create(fx, [a, b]);
      assert.equal(r.code, 2, r.err);
      assert.match(
        r.err,
        new RegExp(`VM ${b.metadata.name} spec\\.networkInterfaces\\[0\\]\\.bridge`),
      );
      assert.match(r.err, /Nothing was created/);
      await assertGone(fx, a.metadata.name, b.metadata.name);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "a rerun of a created file converges: unchanged VMs are skipped, a changed one is named",
  async () => {
    const fx = await foundryFixture();
    try {
      const a = testVm(fx);
      const b = testVm(fx);
      const first = await create(fx, [a, b]);
      assert.equal(first.code, 0, first.err);
      assert.match(first.out, /2 of 2 created/);
      const again = await create(fx, [a, b]);
      assert.equal(again.code, 0, again.err);
      assert.match(again.out, /0 of 2 created; 2 unchanged/);
      const c = testVm(fx);
      const more = await create(fx, [a, b, c]);
      assert.equal(more.code, 0, more.err);
      assert.match(more.out, new RegExp(`1 of 3 created: ${c.metadata.name}; 2 unchanged`));
      const changed = structuredClone(a);
      changed.spec.vcpus = 2;
      const d = testVm(fx);
      const refused = await create(fx, [changed, d]);
      assert.equal(refused.code, 2, refused.err);
      assert.match(
        refused.err,
        new RegExp(`VM ${a.metadata.name} metadata\\.name: .*different spec`),
      );
      await assertGone(fx, d.metadata.name);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "a VM failing while being created stops the run; the ones before it stay, and a rerun finishes",
  async () => {
    const fx = await foundryFixture();
    try {
      const [a, b, c] = [testVm(fx), testVm(fx), testVm(fx)];
      const err = await createVms(fx.lv, [a, b, c], {
        config: fx.config,
        noStart: true,
        beforeStep: (vm, step) => {
          if (vm === b && step === "define") throw new Error("injected failure");
        },
      }).then(() => undefined, (e) => e);
      assert.ok(err instanceof CreateIncompleteError, String(err));
      assert.equal(
        err.message,
        `1 of 3 created: ${a.metadata.name}; ${b.metadata.name} failed and was rolled back: injected failure; not attempted: ${c.metadata.name}`,
      );
      assert.ok((await fx.lv.listAllDomains()).some((d) => d.name === a.metadata.name));
      await assertGone(fx, b.metadata.name, c.metadata.name);
      const rerun = await createVms(fx.lv, [a, b, c], { config: fx.config, noStart: true });
      assert.deepEqual(rerun.unchanged.map((v) => v.metadata.name), [a.metadata.name]);
      assert.deepEqual(rerun.created.map((r) => r.vm.metadata.name), [
        b.metadata.name,
        c.metadata.name,
      ]);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "createVm alone holds a VM against the host's CPUs, memory and pool before making anything",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx);
      vm.spec.vcpus = 4096;
      vm.spec.memoryGiB = 16384;
      vm.spec.dataDisks![0]!.sizeGB = 2 ** 20;
      const err = await createVm(fx.lv, vm, { config: fx.config, noStart: true })
        .then(() => undefined, (e) => e);
      assert.ok(err instanceof RuntimeCheckError, String(err));
      const paths = err.problems.map((p) => p.path);
      assert.ok(paths.includes("spec.vcpus"), err.message);
      assert.ok(paths.includes("spec.memoryGiB"), err.message);
      await assertGone(fx, vm.metadata.name);
    } finally {
      await fx.cleanup();
    }
  },
);
