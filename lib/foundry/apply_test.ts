import assert from "node:assert/strict";
import { planVm, refusedChanges, setPath } from "./apply.ts";
import type { CurrentVm } from "./apply.ts";
import { cloudInitSha256, passwordHashSha256 } from "./metadata.ts";
import type { DomainSizes } from "./resize.ts";
import type { VirtualMachine } from "./types.ts";

const HASH = "$6$salt$abcdefghijklmnopqrstuv";

function vm(patch: (v: VirtualMachine) => void = () => {}): VirtualMachine {
  const v: VirtualMachine = {
    apiVersion: "foundry.cofront.xyz/v1alpha1",
    kind: "VirtualMachine",
    metadata: { name: "web-01", labels: { tier: "web" } },
    spec: {
      vcpus: 2,
      memoryGiB: 1,
      bootDisk: { sizeGB: 10, image: "debian.qcow2" },
      dataDisks: [{ device: "vdb", sizeGB: 5 }],
      networkInterfaces: [{ ip: "10.0.0.5/24", gateway: "10.0.0.1", bridge: "br0" }],
      cloudInit: { fqdn: "web-01.example.org", passwordHash: HASH },
    },
  };
  patch(v);
  return v;
}

function sizes(over: Partial<DomainSizes> = {}): DomainSizes {
  return {
    type: "kvm",
    vcpus: 2,
    maxVcpus: 4,
    memoryMiB: 1024,
    maxMemoryMiB: 2048,
    disks: new Map([["vda", { pool: "foundry-vms", volume: "web-01_boot" }]]),
    ...over,
  };
}

/** What the domain of `stored` is, as readCurrentVm gives it (with hashes, as create writes them). */
function current(
  stored: VirtualMachine,
  over: Partial<Omit<CurrentVm, "domain" | "uuid">> = {},
): Omit<CurrentVm, "domain" | "uuid"> {
  const { passwordHash: _p, ...cloudInit } = stored.spec.cloudInit ?? {};
  const withoutHash = { ...stored, spec: { ...stored.spec, cloudInit } };
  return {
    stored: {
      vm: withoutHash,
      passwordHashSha256: passwordHashSha256(HASH),
      cloudInitSha256: cloudInitSha256(stored),
    },
    live: sizes(),
    config: sizes(),
    running: true,
    autostart: true,
    ...over,
  };
}

const classes = (p: ReturnType<typeof planVm>) =>
  Object.fromEntries(p.changes.map((c) => [c.path, c.class]));

Deno.test("planVm: a missing VM is created; the same spec is unchanged", () => {
  assert.deepEqual(planVm(vm(), undefined), { name: "web-01", action: "create", changes: [] });
  const p = planVm(vm(), current(vm()));
  assert.equal(p.action, "unchanged");
  assert.deepEqual(p.changes, []);
});

Deno.test("planVm: a stored spec without hashes compares cloud-init fields and the password fingerprint", () => {
  const c = current(vm());
  delete c.stored.cloudInitSha256;
  assert.equal(planVm(vm(), c).action, "unchanged");
  const other = vm((v) => v.spec.cloudInit!.passwordHash = "$6$salt$different");
  const p = planVm(other, c);
  assert.deepEqual(classes(p), { "spec.cloudInit.passwordHash": "recreate" });
  assert.ok(!JSON.stringify(p).includes("$6$"), "the password hash never appears in a plan");
});

Deno.test("planVm: labels and annotations are live, one change per key", () => {
  const p = planVm(
    vm((v) => {
      v.metadata.labels = { tier: "db", zone: "a" };
      v.metadata.annotations = { note: "x" };
    }),
    current(vm()),
  );
  assert.equal(p.action, "update");
  assert.deepEqual(p.changes, [
    { path: "metadata.labels.tier", from: "web", to: "db", class: "live" },
    { path: "metadata.labels.zone", to: "a", class: "live" },
    { path: "metadata.annotations.note", to: "x", class: "live" },
  ]);
});

Deno.test("planVm: memory and vCPUs within the maximum are live, above it reboot", () => {
  let p = planVm(vm((v) => (v.spec.memoryGiB = 1.5, v.spec.vcpus = 1)), current(vm()));
  assert.deepEqual(classes(p), { "spec.vcpus": "live", "spec.memoryGiB": "live" });
  assert.equal(p.changes.find((c) => c.path === "spec.memoryGiB")?.from, 1);
  p = planVm(vm((v) => (v.spec.memoryGiB = 3, v.spec.vcpus = 8)), current(vm()));
  assert.deepEqual(classes(p), { "spec.vcpus": "reboot", "spec.memoryGiB": "reboot" });
  assert.match(p.changes[0]!.reason!, /reserved maximum of 4 vCPUs/);
});

Deno.test("planVm: a vCPU increase on a running TCG domain waits for the next boot (resize's rule)", () => {
  const tcg = { live: sizes({ type: "qemu" }), config: sizes({ type: "qemu" }) };
  const p = planVm(vm((v) => v.spec.vcpus = 3), current(vm(), tcg));
  assert.equal(p.changes[0]?.class, "reboot");
  assert.match(p.changes[0]!.reason!, /TCG/);
  // A decrease, and any change on a stopped VM, is live.
  assert.equal(planVm(vm((v) => v.spec.vcpus = 1), current(vm(), tcg)).changes[0]?.class, "live");
  const stopped = planVm(vm((v) => v.spec.vcpus = 3), current(vm(), { ...tcg, running: false }));
  assert.equal(stopped.changes[0]?.class, "live");
  assert.match(stopped.changes[0]!.reason!, /not running/);
});

Deno.test("planVm: a change waiting in the definition is not planned again", () => {
  // vCPUs 2 -> 3 deferred on TCG: the definition and the stored spec say 3, the running domain 2.
  const stored = vm((v) => v.spec.vcpus = 3);
  const p = planVm(
    stored,
    current(stored, { live: sizes({ type: "qemu" }), config: sizes({ type: "qemu", vcpus: 3 }) }),
  );
  assert.equal(p.action, "unchanged");
});

Deno.test("planVm: explicit maxima are reboot changes; absent ones keep the domain's", () => {
  const p = planVm(
    vm((v) => v.spec.resources = { maxVcpus: 6, maxMemoryGiB: 2 }),
    current(vm()),
  );
  assert.deepEqual(classes(p), { "spec.resources.maxVcpus": "reboot" });
});

Deno.test("planVm: disks: new is live, growth live, shrinking forbidden, removal recreate", () => {
  const p = planVm(
    vm((v) => {
      v.spec.bootDisk.sizeGB = 20;
      v.spec.dataDisks = [{ device: "vdc", sizeGB: 3 }];
    }),
    current(vm()),
  );
  assert.deepEqual(classes(p), {
    "spec.bootDisk.sizeGB": "live",
    "spec.dataDisks[vdc]": "live",
    "spec.dataDisks[vdb]": "recreate",
  });
  assert.match(p.changes[1]!.reason!, /web-01_data-vdc/);
  assert.equal(p.changes[2]!.reason, "removing vdb deletes its data");
  const shrink = planVm(vm((v) => v.spec.dataDisks![0]!.sizeGB = 4), current(vm()));
  assert.deepEqual(shrink.changes, [{
    path: "spec.dataDisks[vdb].sizeGB",
    from: 5,
    to: 4,
    class: "forbidden",
    reason: "shrinking a disk loses data",
  }]);
  assert.equal(refusedChanges(shrink).length, 1);
});

Deno.test("planVm: a changed boot image is recreate; --recreate makes the action recreate", () => {
  const desired = vm((v) => v.spec.bootDisk.image = "trixie.qcow2");
  const p = planVm(desired, current(vm()));
  assert.equal(p.action, "update");
  assert.deepEqual(classes(p), { "spec.bootDisk.image": "recreate" });
  assert.deepEqual(refusedChanges(p).map((c) => c.path), ["spec.bootDisk.image"]);
  const r = planVm(desired, current(vm()), { recreate: true });
  assert.equal(r.action, "recreate");
  assert.deepEqual(refusedChanges(r), []);
});

Deno.test("planVm: NICs: new attach and removed detach are live, bridge reboot, address recreate", () => {
  const two = vm((v) => v.spec.networkInterfaces.push({ ip: "10.1.0.5/24", bridge: "br1" }));
  let p = planVm(two, current(vm()));
  assert.deepEqual(classes(p), { "spec.networkInterfaces[be:ef:0a:01:00:05]": "live" });
  assert.match(p.changes[0]!.reason!, /addresses it itself/);
  p = planVm(vm(), current(two));
  assert.deepEqual(classes(p), { "spec.networkInterfaces[be:ef:0a:01:00:05]": "live" });
  assert.equal(p.changes[0]!.to, undefined);
  p = planVm(vm((v) => v.spec.networkInterfaces[0]!.bridge = "br9"), current(vm()));
  assert.deepEqual(classes(p), { "spec.networkInterfaces[be:ef:0a:00:00:05].bridge": "reboot" });
  p = planVm(vm((v) => v.spec.networkInterfaces[0]!.ip = "10.0.0.6/24"), current(vm()));
  assert.deepEqual(classes(p), { "spec.networkInterfaces[be:ef:0a:00:00:05]": "recreate" });
});

Deno.test("planVm: cloud-init, cpu, autostart, templateRef, domainType, storagePool", () => {
  const p = planVm(
    vm((v) => {
      v.spec.cloudInit!.fqdn = "other.example.org";
      v.spec.cpu = { sockets: 1, cores: 4 };
      v.spec.autostart = false;
      v.spec.templateRef = { name: "small" };
      v.spec.domainType = "qemu";
      v.spec.storagePool = "fast";
    }),
    current(vm()),
  );
  assert.deepEqual(classes(p), {
    "spec.cloudInit.fqdn": "recreate",
    "spec.cpu": "reboot",
    "spec.templateRef": "live",
    "spec.autostart": "live",
    "spec.storagePool": "recreate",
    "spec.domainType": "recreate",
  });
  assert.equal(p.changes[0]!.reason, "cloud-init runs only at first boot");
});

Deno.test("planVm: an adopted VM: recreate changes and unpatchable reboot changes are forbidden", () => {
  const adopted = vm((v) => v.metadata.annotations = { "foundry.cofront.xyz/adopted": "true" });
  const p = planVm(
    vm((v) => {
      v.metadata.annotations = { "foundry.cofront.xyz/adopted": "true" };
      v.spec.bootDisk.image = "other.qcow2";
      v.spec.cpu = { sockets: 2 };
      v.spec.networkInterfaces[0]!.bridge = "br9";
      v.spec.memoryGiB = 1.5;
    }),
    current(adopted),
    { recreate: true },
  );
  assert.deepEqual(classes(p), {
    "spec.memoryGiB": "live",
    "spec.bootDisk.image": "forbidden",
    "spec.networkInterfaces[be:ef:0a:00:00:05].bridge": "reboot",
    "spec.cpu": "forbidden",
  });
  assert.equal(p.action, "update");
  assert.match(p.changes[1]!.reason!, /foundry did not create this VM's disks/);
});

Deno.test("setPath: each kind of path reaches the stored spec, and removals remove", () => {
  const target = vm();
  const source = vm((v) => {
    v.metadata.labels = { zone: "a" };
    v.spec.dataDisks = [{ device: "vdb", sizeGB: 9 }, { device: "vdc", sizeGB: 1 }];
    v.spec.networkInterfaces = [];
    v.spec.autostart = false;
    v.spec.resources = { maxVcpus: 8 };
  });
  for (
    const p of [
      "metadata.labels.tier",
      "metadata.labels.zone",
      "spec.dataDisks[vdb].sizeGB",
      "spec.dataDisks[vdc]",
      "spec.networkInterfaces[be:ef:0a:00:00:05]",
      "spec.autostart",
      "spec.resources.maxVcpus",
    ]
  ) setPath(target, source, p);
  assert.deepEqual(target.metadata.labels, { zone: "a" });
  assert.deepEqual(target.spec.dataDisks, [{ device: "vdb", sizeGB: 9 }, {
    device: "vdc",
    sizeGB: 1,
  }]);
  assert.deepEqual(target.spec.networkInterfaces, []);
  assert.equal(target.spec.autostart, false);
  assert.deepEqual(target.spec.resources, { maxVcpus: 8 });
});
