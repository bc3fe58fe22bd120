import assert from "node:assert/strict";
import { ConfigError } from "../config/layered.ts";
import { loadVirtworkConfig } from "./config.ts";
import { DEFAULTS, KUBEVIRT_API, LABELS } from "./constants.ts";

/** A real ed25519 public key (ssh-keygen); keys are parsed strictly. */
const ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZKz9W6QyVjphGNCQ9HPN4+I7FDP5bCzwJolwuYBUlN";

Deno.test("constants: KubeVirt API group, default namespace and label key format", () => {
  assert.equal(KUBEVIRT_API.GROUP, "kubevirt.io");
  assert.equal(DEFAULTS.NAMESPACE, "virtwork");
  for (const key of Object.values(LABELS)) {
    assert.match(key, /^([a-z0-9.-]+\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/);
  }
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
  await assert.rejects(
    () => loadVirtworkConfig({ flags: { workloads: ["cpu", "gpu"] } }),
    /unknown workload "gpu", expected one of: cpu, database, disk, memory, network/,
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
