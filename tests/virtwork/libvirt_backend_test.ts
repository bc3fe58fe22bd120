/**
 * The libvirt backend against the real libvirtd, without booting guests to readiness: addresses
 * that avoid a VM already on the daemon, create and cleanup by run id (nothing left, nothing else
 * touched), the stored spec read back through `foundry get`, and an interrupt during create that
 * rolls back everything the call made. Objects are named `vwlv-...` and live in the test's own
 * pools and bridges (tests/foundry/_fixture.ts).
 */
import assert from "node:assert/strict";
import { openLibvirtBackend, RUN_ID_LABEL } from "../../lib/virtwork/libvirt/mod.ts";
import type { BackendEvent } from "../../lib/virtwork/backend.ts";
import { parseVirtualMachine } from "../../lib/foundry/loader.ts";
import { createVm } from "../../lib/foundry/vm.ts";
import { getVm, listVms } from "../../lib/foundry/inventory.ts";
import { foundryFixture } from "../foundry/_fixture.ts";
import { libvirtSkipReason, uniqueName } from "../libvirt/_env.ts";
import { firstMissing, requireRoot, testNeeding } from "../_require.ts";
import { nvramLeft, plainVm, planOf, sweepDomains, volumesIn } from "./libvirt_fixture.ts";

const missing = firstMissing(libvirtSkipReason, requireRoot("bridges and storage pools"));

/** A foundry VM that is not virtwork's, defined but not started. */
async function otherVm(
  fx: Awaited<ReturnType<typeof foundryFixture>>,
  name: string,
  ip: string,
) {
  const vm = parseVirtualMachine(
    `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels: { suite: vwlv, app.kubernetes.io/component: cpu }
spec:
  vcpus: 1
  memoryGiB: 0.125
  bootDisk: { sizeGB: 1, image: ${fx.image} }
  networkInterfaces:
    - { ip: ${ip}/24, gateway: 198.18.0.1, bridge: ${fx.bridges[1]} }
  autostart: false
  domainType: qemu
`,
    "other.yaml",
  );
  return await createVm(fx.lv, vm, { config: fx.config, noStart: true });
}

async function withBackend(
  fn: (
    fx: Awaited<ReturnType<typeof foundryFixture>>,
    b: Awaited<ReturnType<typeof openLibvirtBackend>>,
    subnet: string,
  ) => Promise<void>,
): Promise<void> {
  const fx = await foundryFixture();
  // A subnet of its own per test: tests of other files use 192.0.2.0/24 and 198.51.100.0/24.
  const subnet = `198.18.${1 + Math.floor(Math.random() * 250)}.0/24`;
  const backend = await openLibvirtBackend({
    uri: "qemu:///system",
    image: fx.image,
    imagePool: fx.config.imagesPool,
    bridge: fx.bridges[0],
    subnet,
    domainType: "qemu",
    config: fx.config,
    bootDiskGB: 1,
  });
  try {
    await fn(fx, backend, subnet);
  } finally {
    await backend.close();
    await sweepDomains(fx.lv, fx.config.vmsPool);
    await fx.cleanup();
  }
}

testNeeding(missing, {
  name: "libvirt backend: addresses avoid a VM on the daemon and each other",
  async fn() {
    await withBackend(async (fx, backend, subnet) => {
      const base = subnet.slice(0, subnet.lastIndexOf(".0/"));
      const other = uniqueName("vwlv-other");
      // The first free host of the subnet (.1 is the gateway) belongs to another VM already.
      await otherVm(fx, other, `${base}.2`);
      const tag = uniqueName("vwlv").slice(5);
      const server = plainVm(`vwlv-net-server-${tag}`, "network", "server");
      const client = plainVm(`vwlv-net-client-${tag}`, "network", "client");
      const plan = {
        ...planOf(`run-${tag}`, [server, client]),
        peers: [{ from: client.name, to: server.name, ports: [5201] }],
      };
      const peers = await backend.peerAddresses(plan);
      assert.deepEqual([...peers], [[server.name, `${base}.3`]]);
      const specs = backend.render(plan);
      assert.deepEqual(specs.map((s) => s.spec.networkInterfaces[0]?.ip), [
        `${base}.3/24`,
        `${base}.4/24`,
      ]);
      assert.equal(specs[0]?.spec.networkInterfaces[0]?.gateway, `${base}.1`);
      assert.equal(specs[0]?.spec.networkInterfaces[0]?.bridge, fx.bridges[0]);
      // A second run's allocation on the same backend avoids the first one's addresses too.
      const later = planOf(`run2-${tag}`, [plainVm(`vwlv-cpu-${tag}`)]);
      await backend.peerAddresses(later);
      assert.equal(backend.render(later)[0]?.spec.networkInterfaces[0]?.ip, `${base}.5/24`);
    });
  },
});

testNeeding(missing, {
  name: "libvirt backend: create then cleanup by run id leaves nothing and touches nothing else",
  async fn() {
    await withBackend(async (fx, backend, subnet) => {
      const tag = uniqueName("vwlv").slice(5);
      const runA = `runa-${tag}`;
      const runB = `runb-${tag}`;
      const disk = {
        ...plainVm(`vwlv-disk-1-${tag}`, "disk"),
        dataDisks: [{
          name: "data",
          serial: "virtwork-disk",
          sizeBytes: 2 ** 30,
          mountPath: "/mnt/data",
        }],
        userData: {
          writeFiles: [{ path: "/etc/virtwork/x", content: "a\nb\n", permissions: "0644" }],
          runcmd: [["systemctl", "daemon-reload"]],
        },
      };
      const planA = planOf(runA, [plainVm(`vwlv-cpu-1-${tag}`), disk]);
      const planB = planOf(runB, [plainVm(`vwlv-cpu-1-${tag}-b`)]);
      // Not virtwork's, with a name like the run's VMs: cleanup must leave it.
      const lookalike = `vwlv-cpu-1-${tag}-x`;
      const base = subnet.slice(0, subnet.lastIndexOf(".0/"));
      await otherVm(fx, lookalike, `${base}.2`);

      const events: BackendEvent[] = [];
      await backend.peerAddresses(planA);
      const made = await backend.create(planA, { onEvent: (e) => events.push(e) });
      assert.deepEqual(
        made.map((o) => [o.name, o.outcome]),
        planA.vms.map((v) => [v.name, "created"]),
      );
      assert.deepEqual(
        events.map((e) => e.type === "created" ? [e.vm, e.outcome] : e.type),
        planA.vms.map((v) => [v.name, "created"]),
      );
      // A plan without peers (the core then never asks for addresses) still gets one that no
      // VM on the daemon has: not the look-alike's first free host, not run A's.
      await backend.create(planB);
      const b = await getVm(fx.lv, planB.vms[0]!.name);
      assert.equal(b.vm.spec.networkInterfaces[0]?.ip, `${base}.5/24`);

      // foundry list sees them with the run id; foundry get gives back the rendered spec.
      const listed = (await listVms(fx.lv, { labels: { [RUN_ID_LABEL]: runA } })).vms;
      assert.deepEqual(listed.map((v) => v.name).sort(), planA.vms.map((v) => v.name).sort());
      const rendered = backend.render(planA).find((s) => s.metadata.name === disk.name)!;
      const got = await getVm(fx.lv, disk.name);
      assert.deepEqual(got.vm.spec, rendered.spec);
      assert.deepEqual(got.vm.metadata.labels, rendered.metadata.labels);
      const xml = await fx.lv.domainGetXmlDesc(got.domain);
      assert.match(xml, /<serial>virtwork-disk<\/serial>/);
      assert.match(xml, /<console type=.pty./);

      // Creating the same plan again: every VM is the run's already, nothing new is made.
      const again = await backend.create(planA);
      assert.deepEqual(again.map((o) => o.outcome), ["exists", "exists"]);

      const cleaned = await backend.cleanup(runA);
      assert.deepEqual(cleaned.errors, []);
      assert.deepEqual(cleaned.runIds, [runA]);
      assert.equal(cleaned.deleted.domain, 2);
      // boot + cloud-init for each, and the disk VM's data disk.
      assert.equal(cleaned.deleted.volume, 5);
      const domains = (await fx.lv.listAllDomains()).map((d) => d.name);
      for (const v of planA.vms) assert.ok(!domains.includes(v.name), `${v.name} left`);
      assert.ok(domains.includes(planB.vms[0]!.name), "the other run's VM was removed");
      assert.ok(domains.includes(lookalike), "a VM that is not virtwork's was removed");
      const vols = await volumesIn(fx.lv, fx.config.vmsPool);
      for (const v of planA.vms) {
        assert.deepEqual(vols.filter((n) => n.startsWith(`${v.name}_`)), [], `${v.name} volumes`);
      }
      assert.ok(vols.includes(`${lookalike}_boot`), "the look-alike's boot volume was deleted");
      assert.deepEqual(await nvramLeft(planA.vms.map((v) => v.name)), []);

      const cleanedB = await backend.cleanup(runB);
      assert.deepEqual([cleanedB.deleted.domain, cleanedB.runIds], [1, [runB]]);
      assert.ok((await fx.lv.listAllDomains()).some((d) => d.name === lookalike));
      // Nothing of the run is left for a second cleanup.
      assert.deepEqual((await backend.cleanup(runA)).deleted, {});
    });
  },
});

testNeeding(missing, {
  name: "libvirt backend: an interrupt during create rolls back every VM the call made",
  async fn() {
    await withBackend(async (fx, backend) => {
      const tag = uniqueName("vwlv").slice(5);
      const plan = planOf(`runi-${tag}`, [
        plainVm(`vwlv-cpu-1-${tag}`),
        plainVm(`vwlv-cpu-2-${tag}`, "cpu", "worker", 2),
        plainVm(`vwlv-cpu-3-${tag}`, "cpu", "worker", 3),
      ]);
      await backend.peerAddresses(plan);
      const ac = new AbortController();
      const created: string[] = [];
      await assert.rejects(
        backend.create(plan, {
          signal: ac.signal,
          onEvent: (e) => {
            if (e.type !== "created") return;
            created.push(e.vm);
            // Ctrl-C right after the first VM exists: the second is in progress next.
            ac.abort(new Error("interrupted by test"));
          },
        }),
        (e: Error) => /rolled back: vwlv-cpu-1-/.test(e.message),
      );
      assert.deepEqual(created, [plan.vms[0]!.name]);
      const names = plan.vms.map((v) => v.name);
      const domains = (await fx.lv.listAllDomains()).map((d) => d.name);
      assert.deepEqual(domains.filter((d) => names.includes(d)), []);
      const vols = await volumesIn(fx.lv, fx.config.vmsPool);
      assert.deepEqual(vols.filter((v) => names.some((n) => v.startsWith(`${n}_`))), []);
      assert.deepEqual(await nvramLeft(names), []);
      assert.deepEqual((await backend.cleanup(plan.runId)).deleted, {});
    });
  },
});
