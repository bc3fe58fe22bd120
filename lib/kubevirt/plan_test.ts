import assert from "node:assert/strict";
import { defaultRegistry, withNamespace, withSshCredentials } from "../workloads/mod.ts";
import { BaseWorkload, type Workload } from "../workloads/workload.ts";
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { DEFAULTS, LABELS, managedSelector } from "./constants.ts";
import {
  buildVirtualMachine,
  decodeBase64,
  type KubeObject,
  SECRET_USERDATA_KEY,
  USERDATA_INLINE_MAX,
} from "./manifests.ts";
import { buildRunPlan, planObjects } from "./plan.ts";
import {
  formatProblems,
  KUBEVIRT_SCHEMA_PATH,
  OpenApiValidator,
} from "../../tests/virtwork/openapi_validator.ts";
import { requireSchemas, testNeeding } from "../../tests/_require.ts";

const noSchema = requireSchemas();
const validator = noSchema ? undefined : await OpenApiValidator.fromFile(KUBEVIRT_SCHEMA_PATH);
const config = { enabled: true, vmCount: 1, cpuCores: 2, memory: "2Gi" };
const ssh = { user: "virtwork", password: "hunter2", authorizedKeys: ["ssh-ed25519 AAAAKEY me"] };

function allWorkloads(withSsh: boolean, ns = "virtwork"): Workload[] {
  const r = defaultRegistry();
  return r.list().map((n) =>
    r.get(n, config, withNamespace(ns), withSshCredentials(withSsh ? ssh : {}))
  );
}

// deno-lint-ignore no-explicit-any
type Any = any;
const spec = (vm: KubeObject): Any => vm.spec;

function assertValidVm(vm: KubeObject): void {
  const problems = validator!.validate("v1.VirtualMachine", vm);
  assert.equal(problems.length, 0, `${vm.metadata.name}:\n${formatProblems(problems)}`);
}

testNeeding(noSchema, {
  name: "validator rejects wrong types, unknown fields and missing required fields",
  fn: () => {
    const vm = structuredClone(
      buildRunPlan(allWorkloads(false), {
        namespace: "n",
        runId: "r",
        containerDiskImage: "img",
      }).vms[0]!.vm,
    ) as Any;
    vm.spec.runstrategy = "Always";
    vm.spec.template.spec.domain.cpu.cores = "2";
    delete vm.spec.template.spec.domain.devices.disks[0].name;
    const problems = validator!.validate("v1.VirtualMachine", vm).map((p) => p.path);
    assert.ok(problems.includes(".spec.runstrategy"), problems.join());
    assert.ok(problems.includes(".spec.template.spec.domain.cpu.cores"), problems.join());
    assert.ok(
      problems.includes(".spec.template.spec.domain.devices.disks[0].name"),
      problems.join(),
    );
    assert.ok(validator!.validate("v1.VirtualMachine", {}).some((p) => p.path === ".spec"));
  },
});

testNeeding(noSchema, {
  name: "every VM of every workload validates against v1.VirtualMachine, with and without SSH",
  fn: () => {
    let n = 0;
    for (const withSsh of [false, true]) {
      const plan = buildRunPlan(allWorkloads(withSsh), {
        namespace: "virtwork",
        runId: "run-1",
        containerDiskImage: DEFAULTS.CONTAINER_DISK_IMAGE,
      });
      for (const v of plan.vms) {
        assertValidVm(v.vm);
        n++;
      }
    }
    assert.equal(n, 12);
  },
});

Deno.test("VM spec: runStrategy Always, no spec.running, container disk, masquerade, virtio", () => {
  const plan = buildRunPlan(allWorkloads(false), {
    namespace: "ns1",
    runId: "r",
    containerDiskImage: "quay.io/x/y:1",
  });
  const vm = plan.vms.find((v) => v.workload === "cpu")!.vm;
  assert.equal(vm.apiVersion, "kubevirt.io/v1");
  assert.equal(vm.kind, "VirtualMachine");
  assert.equal(vm.metadata.namespace, "ns1");
  assert.equal(spec(vm).runStrategy, "Always");
  assert.equal("running" in spec(vm), false);
  const t = spec(vm).template.spec;
  assert.deepEqual(t.volumes[0].containerDisk, { image: "quay.io/x/y:1" });
  assert.deepEqual(t.networks, [{ name: "default", pod: {} }]);
  assert.deepEqual(t.domain.devices.interfaces[0].masquerade, {});
  assert.equal(t.domain.devices.interfaces[0].model, "virtio");
  for (const d of t.domain.devices.disks) assert.equal(d.disk.bus, "virtio");
  assert.equal(t.domain.cpu.cores, 2);
  assert.equal(t.domain.resources.requests.memory, "2Gi");
  assert.equal(spec(vm).dataVolumeTemplates, undefined);
});

Deno.test("VM labels: name, managed-by, component, role and run id on VM and pod template", () => {
  const plan = buildRunPlan(allWorkloads(false), {
    namespace: "n",
    runId: "abc",
    containerDiskImage: "i",
  });
  const server = plan.vms.find((v) => v.workload === "network" && v.role === "server")!.vm;
  const expected = {
    [LABELS.APP_NAME]: "virtwork",
    [LABELS.MANAGED_BY]: "virtwork",
    [LABELS.COMPONENT]: "network",
    [LABELS.ROLE]: "server",
    [LABELS.RUN_ID]: "abc",
  };
  assert.deepEqual(server.metadata.labels, expected);
  assert.deepEqual(spec(server).template.metadata.labels, expected);
  assert.equal(managedSelector("abc"), "app.kubernetes.io/managed-by=virtwork,virtwork/run-id=abc");
});

Deno.test("data disks: DataVolumeTemplate with spec.storage and blank source, disk with serial", () => {
  const plan = buildRunPlan(allWorkloads(false), {
    namespace: "n",
    runId: "r",
    containerDiskImage: "i",
  });
  for (const name of ["disk", "database"]) {
    const vm = plan.vms.find((v) => v.workload === name)!.vm;
    const [dvt] = spec(vm).dataVolumeTemplates;
    assert.deepEqual(dvt.spec.source, { blank: {} });
    assert.deepEqual(dvt.spec.storage, { resources: { requests: { storage: "10Gi" } } });
    assert.equal(dvt.spec.pvc, undefined);
    const t = spec(vm).template.spec;
    const vol = t.volumes.find((v: Any) => v.dataVolume);
    assert.equal(vol.dataVolume.name, dvt.metadata.name);
    const disk = t.domain.devices.disks.find((d: Any) => d.name === vol.name);
    assert.ok(disk.serial, `${name} data disk has a serial`);
  }
});

Deno.test("credentials go into a Secret referenced by secretRef; the VM does not contain them", () => {
  const plan = buildRunPlan(allWorkloads(true), {
    namespace: "n",
    runId: "r",
    containerDiskImage: "i",
  });
  assert.equal(plan.vms.length, 6);
  assert.equal(plan.secrets.length, plan.vms.length);
  for (const v of plan.vms) {
    const json = JSON.stringify(v.vm);
    assert.equal(json.includes("hunter2"), false);
    assert.equal(json.includes("AAAAKEY"), false);
    const ci = spec(v.vm).template.spec.volumes.find((x: Any) => x.cloudInitNoCloud)
      .cloudInitNoCloud;
    assert.deepEqual(ci, { secretRef: { name: v.secret!.metadata.name } });
    const userData = decodeBase64((v.secret as Any).data[SECRET_USERDATA_KEY]);
    assert.match(userData, /^#cloud-config\n/);
    assert.match(userData, /hunter2/);
  }
});

/** A workload whose user data is small enough to travel inline. */
class TinyWorkload extends BaseWorkload {
  readonly name = "cpu";
  userData(): CloudConfigOptions {
    return this.withSsh({ runcmd: [["true"]] });
  }
}

Deno.test("small user data without credentials stays inline; user data over 2048 bytes goes to a Secret", () => {
  const plan = buildRunPlan([...allWorkloads(false), new TinyWorkload({ config })].slice(1), {
    namespace: "n",
    runId: "r",
    containerDiskImage: "i",
  });
  for (const v of plan.vms) {
    const ci = spec(v.vm).template.spec.volumes[1].cloudInitNoCloud;
    if (v.secret) {
      const size = new TextEncoder().encode(decodeBase64((v.secret as Any).data.userdata)).length;
      assert.ok(size > USERDATA_INLINE_MAX, `${v.name} uses a Secret only when too large`);
      assert.deepEqual(ci, { secretRef: { name: v.secret.metadata.name } });
    } else {
      assert.match(ci.userData, /^#cloud-config\n/);
      assert.ok(new TextEncoder().encode(ci.userData).length <= USERDATA_INLINE_MAX);
    }
  }
  assert.ok(plan.vms.some((v) => !v.secret), "some user data is inline");
});

Deno.test("default plan: 6 VMs (cpu 1, memory 1, disk 1, database 1, network 2) and 1 Service", () => {
  const plan = buildRunPlan(allWorkloads(false, "perf"), {
    namespace: "perf",
    runId: "r",
    containerDiskImage: "i",
  });
  const count = (w: string) => plan.vms.filter((v) => v.workload === w).length;
  assert.equal(plan.vms.length, 6);
  assert.deepEqual(
    ["cpu", "memory", "disk", "database", "network"].map(count),
    [1, 1, 1, 1, 2],
  );
  assert.equal(plan.services.length, 1);
  const svc = plan.services[0] as Any;
  assert.equal(svc.metadata.namespace, "perf");
  assert.deepEqual(svc.spec.selector, {
    [LABELS.COMPONENT]: "network",
    [LABELS.ROLE]: "server",
  });
  // Every workload's user data (with its result reporting) exceeds the inline limit, so each
  // travels in a Secret.
  assert.deepEqual(planObjects(plan).map((o) => o.kind), [
    "Namespace",
    ...Array(6).fill("Secret"),
    "Service",
    ...Array(6).fill("VirtualMachine"),
  ]);
  assert.equal(new Set(plan.vms.map((v) => v.name)).size, 6, "VM names are unique");
});

Deno.test("disabled workloads and vmCount 0 contribute nothing", () => {
  const r = defaultRegistry();
  const plan = buildRunPlan([
    r.get("cpu", { ...config, enabled: false }),
    r.get("memory", { ...config, vmCount: 0 }),
    r.get("disk", { ...config, vmCount: 3 }),
  ], { namespace: "n", runId: "r", containerDiskImage: "i" });
  assert.deepEqual(plan.vms.map((v) => v.name), [
    "virtwork-disk-1",
    "virtwork-disk-2",
    "virtwork-disk-3",
  ]);
});

Deno.test("buildVirtualMachine() needs exactly one of inline user data and a Secret", () => {
  const base = {
    name: "a",
    namespace: "n",
    containerDiskImage: "i",
    cpuCores: 1,
    memory: "1Gi",
    labels: {},
  };
  assert.throws(() => buildVirtualMachine(base), TypeError);
  assert.throws(
    () => buildVirtualMachine({ ...base, userData: "x", userDataSecret: "s" }),
    TypeError,
  );
});
