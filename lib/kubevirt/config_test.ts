import assert from "node:assert/strict";
import { ConfigError } from "../config/layered.ts";
import { loadVirtworkConfig, SettingValidationError } from "./config.ts";
import { DEFAULTS, KUBEVIRT_API, LABELS } from "./constants.ts";
import { buildRunPlan, planObjects } from "./plan.ts";
import { defaultRegistry, withNamespace, withSshCredentials } from "../workloads/mod.ts";

/** A real ed25519 public key (ssh-keygen); keys are parsed strictly. */
const ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZKz9W6QyVjphGNCQ9HPN4+I7FDP5bCzwJolwuYBUlN";

/** A Kubernetes label key: an optional DNS-subdomain prefix and a name of at most 63 characters. */
function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = key.slice(slash + 1);
  if (
    prefix !== undefined &&
    (prefix.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(prefix))
  ) {
    return "bad prefix";
  }
  return labelValueProblem(name) ?? (name === "" ? "empty name" : undefined);
}

/** A Kubernetes label value: at most 63 alphanumerics, `-`, `_` and `.`, alphanumeric at the ends. */
function labelValueProblem(value: string): string | undefined {
  if (value.length > 63) return "longer than 63";
  if (value !== "" && !/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(value)) {
    return "bad characters";
  }
  return undefined;
}

Deno.test("every label on every planned object is valid, and every LABELS key is in use", () => {
  const registry = defaultRegistry();
  const workloads = registry.list().map((n) =>
    registry.get(
      n,
      { enabled: true, vmCount: 2, cpuCores: 2, memory: "2Gi" },
      withNamespace("virtwork"),
      withSshCredentials({ user: "virtwork", password: "pw" }),
    )
  );
  const plan = buildRunPlan(workloads, {
    namespace: "virtwork",
    runId: "3f2a1b00-aaaa-4bbb-8ccc-0123456789ab",
    containerDiskImage: DEFAULTS.CONTAINER_DISK_IMAGE,
  });
  const used = new Set<string>();
  let labelled = 0;
  for (const o of planObjects(plan)) {
    // deno-lint-ignore no-explicit-any
    const template = (o as any).spec?.template?.metadata?.labels as
      | Record<string, string>
      | undefined;
    for (const labels of [o.metadata.labels, template]) {
      if (!labels) continue;
      labelled++;
      for (const [k, v] of Object.entries(labels)) {
        used.add(k);
        assert.equal(labelKeyProblem(k), undefined, `${o.kind} ${o.metadata.name}: key ${k}`);
        assert.equal(labelValueProblem(v), undefined, `${o.kind} ${o.metadata.name}: ${k}=${v}`);
      }
    }
    if (o.kind === "VirtualMachine") {
      assert.equal(o.apiVersion, `${KUBEVIRT_API.GROUP}/${KUBEVIRT_API.VERSION}`);
    }
  }
  assert.ok(labelled > plan.vms.length, `only ${labelled} label sets`);
  assert.deepEqual([...used].filter((k) => !Object.values(LABELS).includes(k as never)), []);
  assert.deepEqual(Object.values(LABELS).filter((k) => !used.has(k)), [], "LABELS keys unused");
  // The checks can fail: what the API server refuses is refused here too.
  assert.notEqual(labelKeyProblem("virtwork/run id"), undefined);
  assert.notEqual(labelValueProblem("x".repeat(64)), undefined);
});

Deno.test("loadVirtworkConfig(): the design's defaults", async () => {
  const c = await loadVirtworkConfig({});
  assert.equal(c.namespace, "virtwork");
  assert.equal(c.containerDiskImage, "quay.io/containerdisks/fedora:41");
  assert.equal(c.cpuCores, 2);
  assert.equal(c.memory, "2Gi");
  assert.equal(c.diskSize, "10Gi");
  assert.equal(c.sshUser, "virtwork");
  assert.equal(c.sshPassword, "");
  assert.deepEqual(c.sshAuthorizedKeys, []);
  assert.equal(c.timeout, 600);
  assert.equal(c.pollInterval, 15);
  assert.equal(c.qps, 20);
  assert.equal(c.burst, 20);
  assert.deepEqual(c.selected.map((w) => w.name), ["cpu", "database", "disk", "memory", "network"]);
  assert.ok(c.selected.every((w) => w.config.vmCount === 1 && w.config.cpuCores === 2));
});

Deno.test("loadVirtworkConfig(): YAML file, then VIRTWORK_ env, then flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/virtwork.yaml`;
    await Deno.writeTextFile(
      path,
      `namespace: from-file\nvm_count: 3\nssh_authorized_keys:\n  - ${ED} one\n  - ${ED} two\n`,
    );
    const fileOnly = await loadVirtworkConfig({ configPath: path });
    assert.equal(fileOnly.namespace, "from-file");
    assert.equal(fileOnly.vmCount, 3);
    assert.deepEqual(fileOnly.sshAuthorizedKeys, [`${ED} one`, `${ED} two`]);
    const env = {
      VIRTWORK_NAMESPACE: "from-env",
      VIRTWORK_SSH_AUTHORIZED_KEYS: `${ED} k1,${ED} k2`,
      VIRTWORK_CONFIG: path,
    };
    const withEnv = await loadVirtworkConfig({ env });
    assert.equal(withEnv.namespace, "from-env");
    assert.equal(withEnv.vmCount, 3, "file value still applies where env is silent");
    assert.deepEqual(withEnv.sshAuthorizedKeys, [`${ED} k1`, `${ED} k2`]);
    const withFlags = await loadVirtworkConfig({ env, flags: { namespace: "from-flag" } });
    assert.equal(withFlags.namespace, "from-flag");
    assert.equal(withFlags.sources.namespace, "flag");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadVirtworkConfig(): per-workload mapping in the file, overridden by flags", async () => {
  const file = {
    cpu_cores: 3,
    workloads: {
      cpu: { vm_count: 4, memory: "1Gi" },
      memory: { enabled: false },
      network: { cpu_cores: 8 },
    },
  };
  const c = await loadVirtworkConfig({ file });
  const by = Object.fromEntries(c.selected.map((w) => [w.name, w.config]));
  assert.equal(by.memory, undefined, "enabled: false drops the workload");
  assert.deepEqual(by.cpu, { enabled: true, vmCount: 4, cpuCores: 3, memory: "1Gi" });
  assert.equal(by.network!.cpuCores, 8);
  assert.equal(by.disk!.cpuCores, 3);
  const flagged = await loadVirtworkConfig({ file, flags: { vmCount: 2 } });
  assert.equal(flagged.selected.find((w) => w.name === "cpu")!.config.vmCount, 2);
});

Deno.test("loadVirtworkConfig(): rejects unknown workloads, bad quantities and bad files", async () => {
  // Bad input on a flag (exit 2 in the CLI), named like every other bad value.
  await assert.rejects(
    () => loadVirtworkConfig({ flags: { workloads: ["cpu", "gpu"] } }),
    (e: unknown) =>
      e instanceof SettingValidationError && e.key === "workloads" && e.where === "flag" &&
      e.reason ===
        'unknown workload "gpu", expected one of: cpu, database, disk, memory, network' &&
      e.message === `flag workloads: ${e.reason}`,
  );
  await assert.rejects(
    () => loadVirtworkConfig({ env: { VIRTWORK_MEMORY: "lots" } }),
    /VIRTWORK_MEMORY: must be a Kubernetes quantity such as 2Gi, got "lots"/,
  );
  await assert.rejects(() => loadVirtworkConfig({ configPath: "/nonexistent.yaml" }), ConfigError);
  await assert.rejects(
    () => loadVirtworkConfig({ file: { workloads: { cpu: { vm_count: -2 } } } }),
    /workloads\.cpu\.vm_count: must be from 1 to 500, got -2/,
  );
  await assert.rejects(() => loadVirtworkConfig({ file: { namespase: "x" } }), /unknown key/);
});
