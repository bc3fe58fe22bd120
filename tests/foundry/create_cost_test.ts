/**
 * What `create` asks the daemon, counted on the real libvirtd: each fact of the host once per
 * file, no whole domain XML read to find foundry's VMs, independent calls sent together. Counts
 * only; no timing.
 */
import assert from "node:assert/strict";
import { createVms } from "../../lib/foundry/create_many.ts";
import { createVm, destroyVm } from "../../lib/foundry/vm.ts";
import { Procedure } from "../../lib/libvirt/constants.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { foundryFixture, testVm } from "../foundry/_fixture.ts";

const NAMES = new Map(Object.entries(Procedure).map(([k, v]) => [v as number, k]));

/** Records every REMOTE call `fn` makes, with the write batch it left in. */
async function recordCalls(
  lv: Libvirt,
  fn: () => Promise<unknown>,
): Promise<{ calls: { proc: string; batch: number }[]; roundTrips: number; sent: number }> {
  const rpc = lv.rpc;
  const calls: { proc: string; batch: number }[] = [];
  const original = rpc.call;
  const batches0 = rpc.writeBatches;
  const sent0 = rpc.callsSent;
  rpc.call = function (prog, proc, args, opts) {
    // Frames queued in one tick leave in the next write: the batch number it will get.
    calls.push({ proc: NAMES.get(proc) ?? String(proc), batch: rpc.writeBatches + 1 });
    return original.call(rpc, prog, proc, args, opts);
  };
  try {
    await fn();
  } finally {
    rpc.call = original;
  }
  return { calls, roundTrips: rpc.writeBatches - batches0, sent: rpc.callsSent - sent0 };
}

const count = (calls: { proc: string }[], proc: string) =>
  calls.filter((c) => c.proc === proc).length;

libvirtTest(
  "create of a two-VM file reads each host fact once and sends independent calls together",
  async () => {
    const fx = await foundryFixture();
    const made: string[] = [];
    try {
      const a = testVm(fx);
      const b = testVm(fx);
      made.push(a.metadata.name, b.metadata.name);
      const { calls } = await recordCalls(
        fx.lv,
        () => createVms(fx.lv, [a, b], { config: fx.config, noStart: true }),
      );
      // Read once for the file, not once per VM and again inside createVm.
      for (
        const proc of [
          "CONNECT_GET_CAPABILITIES",
          "CONNECT_LIST_ALL_DOMAINS",
          "CONNECT_LIST_ALL_INTERFACES",
          "CONNECT_LIST_ALL_NETWORKS",
          "CONNECT_GET_DOMAIN_CAPABILITIES",
        ]
      ) assert.equal(count(calls, proc), 1, `${proc} calls`);
      // Foundry's VMs are found by their metadata element, not by formatting every domain's XML.
      assert.equal(count(calls, "DOMAIN_GET_XML_DESC"), 0);
      // Each VM's boot overlay and data disks are created in one write (one round trip).
      const creates = calls.filter((c) => c.proc === "STORAGE_VOL_CREATE_XML");
      assert.equal(creates.length, 2 * 4, "boot, two data disks and the ISO of each VM");
      const diskBatches = new Set(creates.map((c) => c.batch));
      assert.equal(diskBatches.size, 2 * 2, "disks together, then the ISO, per VM");
    } finally {
      for (const n of made) await destroyVm(fx.lv, n, { timeoutSeconds: 1 }).catch(() => {});
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "createVm alone: a bounded number of calls and round trips, counted by the client",
  async () => {
    const fx = await foundryFixture();
    let name = "";
    try {
      const vm = testVm(fx);
      name = vm.metadata.name;
      const r = await recordCalls(
        fx.lv,
        () => createVm(fx.lv, vm, { config: fx.config, noStart: true }),
      );
      assert.equal(count(r.calls, "CONNECT_GET_CAPABILITIES"), 1);
      // The client's own counter agrees with the calls seen (the ISO upload's stream is one call).
      assert.equal(r.sent, r.calls.length + 1);
      // One call per domain, interface and network of the host (others' tests add them): apart.
      const perObject = [
        "DOMAIN_GET_METADATA",
        "DOMAIN_GET_XML_DESC",
        "INTERFACE_GET_XML_DESC",
        "NETWORK_GET_XML_DESC",
      ].reduce((n, proc) => n + count(r.calls, proc), 0);
      // createVm alone read the host once before too, so its calls barely changed (about 27
      // besides the per-object ones, now 26); but they went out one after another, in 30
      // writes, where they now take about 17 (varying a little with how replies arrive).
      assert.ok(r.sent - perObject <= 30, `${r.sent - perObject} calls besides per-object ones`);
      assert.ok(r.roundTrips <= 24, `${r.roundTrips} round trips`);
    } finally {
      if (name) await destroyVm(fx.lv, name, { timeoutSeconds: 1 }).catch(() => {});
      await fx.cleanup();
    }
  },
);
