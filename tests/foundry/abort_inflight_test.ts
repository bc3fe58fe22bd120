/**
 * An interrupt while a mutating call is in flight: the daemon has done the call (a proxy holds
 * back its reply), the client aborts, and the rollback must still remove what that call made.
 * In-process create and image import with an AbortController, and the CLI with SIGINT. Every
 * moment to interrupt is an event (the proxy holds the reply), never a sleep.
 */
import assert from "node:assert/strict";
import { stringify } from "npm:yaml@^2.9.1";
import { InterruptedError, Libvirt, Procedure } from "../../lib/libvirt/mod.ts";
import { createVm } from "../../lib/foundry/vm.ts";
import { importImage } from "../../lib/foundry/images.ts";
import { exitCodeFor } from "../../cli/_program.ts";
import { startHoldingProxy } from "../libvirt/proxy.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { type FoundryFixture, foundryFixture, testVm, writeConfigFile } from "./_fixture.ts";

const FOUNDRY = new URL("../../cli/foundry.ts", import.meta.url).pathname;
const REPO = new URL("../..", import.meta.url).pathname;
/** Bounds a broken test only: the process must end long before this. */
const END_DEADLINE_MS = 60_000;

/** `p`, or a failure naming `what` when it has not settled by a generous deadline. */
async function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 120_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function vmVolumes(fx: FoundryFixture, name: string): Promise<string[]> {
  const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
  await fx.lv.storagePoolRefresh(pool);
  return (await fx.lv.storagePoolListAllVolumes(pool)).map((v) => v.name)
    .filter((v) => v.startsWith(name));
}

async function domainLeft(fx: FoundryFixture, name: string): Promise<boolean> {
  return (await fx.lv.listAllDomains()).some((d) => d.name === name);
}

/**
 * Runs createVm through a proxy holding `proc`'s replies, but for the first `skip` calls of it;
 * aborts once `held` are held.
 */
async function abortCreateWhileHeld(proc: number, held: number, skip = 0) {
  const fx = await foundryFixture();
  let seen = 0;
  const proxy = await startHoldingProxy((p) => p === proc && ++seen > skip);
  const ctl = new AbortController();
  const lv = await Libvirt.connect(proxy.uri, { signal: ctl.signal });
  try {
    const vm = testVm(fx);
    const name = vm.metadata.name;
    const run = createVm(lv, vm, { config: fx.config, signal: ctl.signal, noStart: true });
    run.catch(() => {});
    await within(Promise.race([proxy.untilHeld(held), run]), `${held} held replies`);
    if (proc === Procedure.DOMAIN_DEFINE_XML_FLAGS) {
      assert.equal(await domainLeft(fx, name), true, "the daemon did not define the domain");
    } else {
      assert.equal((await vmVolumes(fx, name)).length, held + skip, "the daemon made no volumes");
    }
    ctl.abort(new InterruptedError("Interrupted by the test"));
    await proxy.release();
    const err = await within(run.then(() => null, (e) => e), "create to end");
    assert.ok(err instanceof Error, "create succeeded after the abort");
    assert.deepEqual(await vmVolumes(fx, name), [], "volumes left after the rollback");
    assert.equal(await domainLeft(fx, name), false, "domain left after the rollback");
    assert.equal(exitCodeFor(err), 130, String(err));
  } finally {
    await lv.close();
    await proxy.close();
    await fx.cleanup();
  }
}

libvirtTest(
  "an abort while the disk creates are in flight removes the volumes the daemon made",
  async () => {
    // The cidata volume claims the name first, alone; then boot overlay and both data disks are
    // created at once: all three are done, none answered.
    await abortCreateWhileHeld(Procedure.STORAGE_VOL_CREATE_XML, 3, 1);
  },
);

libvirtTest(
  "an abort while define is in flight undefines the domain the daemon defined",
  async () => {
    await abortCreateWhileHeld(Procedure.DOMAIN_DEFINE_XML_FLAGS, 1);
  },
);

/**
 * Runs createVm with a short settle time; `proc`'s replies (but for the first `skip` calls of it)
 * are held until after it ends.
 */
async function abortCreateNeverAnswered(proc: number, held: number, skip = 0) {
  const fx = await foundryFixture();
  let seen = 0;
  const proxy = await startHoldingProxy((p) => p === proc && ++seen > skip);
  const ctl = new AbortController();
  const lv = await Libvirt.connect(proxy.uri, { signal: ctl.signal, settleMs: 200 });
  try {
    const vm = testVm(fx);
    const run = createVm(lv, vm, { config: fx.config, signal: ctl.signal, noStart: true });
    run.catch(() => {});
    await within(Promise.race([proxy.untilHeld(held), run]), `${held} held replies`);
    ctl.abort(new InterruptedError("Interrupted by the test"));
    const err = await within(run.then(() => null, (e) => e), "create to end");
    assert.ok(err instanceof Error, "create succeeded after the abort");
    assert.equal(exitCodeFor(err), 130, String(err));
    return { fx, name: vm.metadata.name, err };
  } finally {
    await proxy.release();
    await lv.close();
    await proxy.close();
  }
}

libvirtTest(
  "an abort whose disk creates never answer names the volumes that may be left",
  async () => {
    // The cidata volume (the name's claim) answered and is removed; the three disks are not.
    const { fx, name, err } = await abortCreateNeverAnswered(
      Procedure.STORAGE_VOL_CREATE_XML,
      3,
      1,
    );
    try {
      const left = await vmVolumes(fx, name);
      // A volume's name does not say who made it: the create reports them instead of deleting them.
      assert.equal(left.length, 3, `volumes: ${left}`);
      for (const v of left) {
        assert.match(err.message, new RegExp(`may be left: .*${fx.config.vmsPool}/${v}`));
      }
      assert.equal(await domainLeft(fx, name), false);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "an abort whose define never answers still undefines the domain by its UUID",
  async () => {
    const { fx, name, err } = await abortCreateNeverAnswered(Procedure.DOMAIN_DEFINE_XML_FLAGS, 1);
    try {
      assert.doesNotMatch(err.message, /may be left/);
      assert.equal(await domainLeft(fx, name), false, "domain left after the rollback");
      assert.deepEqual(await vmVolumes(fx, name), [], "volumes left after the rollback");
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest("an import aborted while its volume create is in flight leaves no volume", async () => {
  const fx = await foundryFixture();
  const proxy = await startHoldingProxy((p) => p === Procedure.STORAGE_VOL_CREATE_XML);
  const ctl = new AbortController();
  const lv = await Libvirt.connect(proxy.uri, { signal: ctl.signal });
  try {
    const file = `${fx.dir}/disk.raw`;
    const disk = new Uint8Array(1024 * 1024);
    disk.set([0x55, 0xaa], 510); // a boot signature: a raw image import accepts
    await Deno.writeFile(file, disk);
    const run = importImage(lv, fx.config.imagesPool, file, "aborted.raw", { signal: ctl.signal });
    run.catch(() => {});
    await within(Promise.race([proxy.untilHeld(1), run]), "the held volume create reply");
    ctl.abort(new InterruptedError("Interrupted by the test"));
    await proxy.release();
    const err = await within(run.then(() => null, (e) => e), "import to end");
    assert.ok(err instanceof Error, "import succeeded after the abort");
    const pool = await fx.lv.storagePoolLookupByName(fx.config.imagesPool);
    await fx.lv.storagePoolRefresh(pool);
    const names = (await fx.lv.storagePoolListAllVolumes(pool)).map((v) => v.name);
    assert.equal(names.includes("aborted.raw"), false, `left: ${names}`);
  } finally {
    await lv.close();
    await proxy.close();
    await fx.cleanup();
  }
});

libvirtTest(
  "SIGINT while define is in flight: exit 130 and nothing of the VM is left",
  async () => {
    const fx = await foundryFixture();
    const proxy = await startHoldingProxy((p) => p === Procedure.DOMAIN_DEFINE_XML_FLAGS);
    try {
      const cfg = await writeConfigFile(fx);
      const vm = testVm(fx);
      const name = vm.metadata.name;
      const file = `${fx.dir}/vm.yaml`;
      await Deno.writeTextFile(
        file,
        stringify({
          apiVersion: vm.apiVersion,
          kind: vm.kind,
          metadata: vm.metadata,
          spec: vm.spec,
        }),
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-net",
          "--allow-env",
          FOUNDRY,
          "--no-audit",
          "--connect",
          proxy.uri,
          "--config",
          cfg,
          "create",
          "--no-start",
          file,
        ],
        cwd: REPO,
        env: { NO_COLOR: "1", XDG_DATA_HOME: fx.dir },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const dec = new TextDecoder();
      let stderr = "";
      let noticed!: () => void;
      const interruptNoticed = new Promise<void>((r) => (noticed = r));
      const errDone = child.stderr.pipeTo(
        new WritableStream({
          write(chunk) {
            stderr += dec.decode(chunk, { stream: true });
            if (/Interrupted by SIGINT/.test(stderr)) noticed();
          },
        }),
      );
      const outDone = new Response(child.stdout).text();
      await within(Promise.race([proxy.untilHeld(1), child.status]), "the held define reply");
      assert.equal(await domainLeft(fx, name), true, "the daemon did not define the domain");
      child.kill("SIGINT");
      // The reply comes only once foundry has taken the interrupt: the call was in flight then.
      await within(interruptNoticed, "foundry's interrupt notice");
      await proxy.release();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((
        r,
      ) => (timer = setTimeout(() => r("late"), END_DEADLINE_MS)));
      const status = await Promise.race([child.status, late]);
      clearTimeout(timer);
      if (status === "late") child.kill("SIGKILL");
      const r = await child.status;
      await Promise.allSettled([errDone, outDone]);
      assert.notEqual(status, "late", `foundry did not end after SIGINT:\n${stderr}`);
      assert.equal(r.signal, null, `killed by ${r.signal} instead of exiting:\n${stderr}`);
      assert.equal(r.code, 130, stderr);
      assert.equal(await domainLeft(fx, name), false, "domain left after SIGINT");
      assert.deepEqual(await vmVolumes(fx, name), [], "volumes left after SIGINT");
    } finally {
      await proxy.release();
      await proxy.close();
      await fx.cleanup();
    }
  },
);
