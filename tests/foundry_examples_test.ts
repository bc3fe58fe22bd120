/**
 * Every `examples/*.yaml` is checked: each VM file loads through foundry's loader, and what foundry
 * derives from it passes the external validators (the domain XML through virt-xml-validate, the
 * user-data through `cloud-init schema`, the seed ISO read back with isoinfo); `config.yaml` loads
 * through the configuration loader. The folder is globbed, so a new example is checked without
 * editing this file.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { DEFAULT_CONFIG, loadConfig } from "../lib/foundry/config.ts";
import { cidataIsoFromVm, noCloudFilesFromVm } from "../lib/foundry/cloudinit.ts";
import { buildDomainXml } from "../lib/foundry/domain_xml.ts";
import { loadVirtualMachines } from "../lib/foundry/loader.ts";
import { parseDomainMetadata, withoutPasswordHash } from "../lib/foundry/metadata.ts";
import type { VirtualMachine } from "../lib/foundry/types.ts";
import { requireTool, testNeeding } from "./_require.ts";
import { runTool } from "./_tools.ts";

const EXAMPLES = fileURLToPath(new URL("../examples/", import.meta.url));
const CONFIG_EXAMPLE = "config.yaml";

/** Every YAML file in examples/, sorted; all but config.yaml are VM manifests. */
const yamlFiles = [...Deno.readDirSync(EXAMPLES)]
  .filter((e) => e.isFile && e.name.endsWith(".yaml"))
  .map((e) => e.name)
  .sort();
const vmFiles = yamlFiles.filter((f) => f !== CONFIG_EXAMPLE);

/** Details checked for the examples README names; other files get the generic checks only. */
const known: Record<string, { name: string; disks: number; nics: number }> = {
  "simple-vm.yaml": { name: "simple-vm", disks: 0, nics: 1 },
  "multi-disk-vm.yaml": { name: "db-01", disks: 2, nics: 2 },
  "custom-pool-vm.yaml": { name: "build-runner", disks: 1, nics: 1 },
  "demo-vm.yaml": { name: "demo-vm", disks: 1, nics: 1 },
  "cpu-numa-vm.yaml": { name: "numa-vm", disks: 0, nics: 1 },
  "graphics-vm.yaml": { name: "graphics-vm", disks: 0, nics: 1 },
  "install-from-iso.yaml": { name: "iso-install", disks: 0, nics: 1 },
};

Deno.test("examples/ holds config.yaml and every VM example README names", () => {
  assert.ok(yamlFiles.includes(CONFIG_EXAMPLE), "examples/config.yaml is missing");
  for (const k of Object.keys(known)) assert.ok(vmFiles.includes(k), `examples/${k} is missing`);
});

async function vmsOf(file: string): Promise<VirtualMachine[]> {
  const vms = await loadVirtualMachines(`${EXAMPLES}${file}`);
  assert.ok(vms.length >= 1, `${file} holds no VirtualMachine`);
  return vms;
}

function domainXmlOf(vm: VirtualMachine): string {
  return buildDomainXml(vm, { domainType: vm.spec.domainType === "kvm" ? "kvm" : "qemu" });
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "foundry-examples-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const file of vmFiles) {
  Deno.test(`examples/${file} loads, and its domain XML keeps the spec`, async () => {
    const vms = await vmsOf(file);
    const want = known[file];
    if (want) {
      assert.equal(vms.length, 1);
      const vm = vms[0]!;
      assert.equal(vm.metadata.name, want.name);
      assert.equal(vm.spec.dataDisks?.length ?? 0, want.disks);
      assert.equal(vm.spec.networkInterfaces.length, want.nics);
    }
    for (const vm of vms) {
      assert.ok(vm.spec.networkInterfaces.length >= 1, `${vm.metadata.name} has no NIC`);
      for (const net of vm.spec.networkInterfaces) {
        assert.match(
          net.ip ?? "",
          /^(192\.0\.2|198\.51\.100)\./,
          "examples use documentation addresses",
        );
      }
      assert.deepEqual(parseDomainMetadata(domainXmlOf(vm)), withoutPasswordHash(vm));
    }
  });

  testNeeding(requireTool("virt-xml-validate", "xmllint"), {
    name: `examples/${file}: virt-xml-validate accepts the domain XML`,
    fn: () =>
      inTempDir(async (dir) => {
        for (const vm of await vmsOf(file)) {
          await Deno.writeTextFile(`${dir}/domain.xml`, domainXmlOf(vm));
          const r = await runTool("virt-xml-validate", [`${dir}/domain.xml`, "domain"]);
          assert.equal(r.code, 0, `${vm.metadata.name}: ${r.stdout}${r.stderr}`);
        }
      }),
  });

  testNeeding(requireTool("cloud-init"), {
    name: `examples/${file}: cloud-init schema accepts the user-data`,
    fn: () =>
      inTempDir(async (dir) => {
        for (const vm of await vmsOf(file)) {
          await Deno.writeTextFile(`${dir}/user-data`, noCloudFilesFromVm(vm)["user-data"]);
          const r = await runTool("cloud-init", ["schema", "--config-file", `${dir}/user-data`]);
          const out = r.stdout + r.stderr;
          assert.equal(r.code, 0, `${vm.metadata.name}: ${out}`);
          assert.match(out, /Valid cloud-config/);
          assert.doesNotMatch(out, /DEPRECATED/);
        }
      }),
  });

  testNeeding(requireTool("isoinfo"), {
    name: `examples/${file}: isoinfo reads the seed files back from the cidata ISO`,
    fn: () =>
      inTempDir(async (dir) => {
        for (const vm of await vmsOf(file)) {
          const files = noCloudFilesFromVm(vm);
          await Deno.writeFile(`${dir}/seed.iso`, cidataIsoFromVm(vm));
          for (const name of ["user-data", "meta-data", "network-config"] as const) {
            const r = await runTool("isoinfo", ["-R", "-i", `${dir}/seed.iso`, "-x", `/${name}`]);
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout, files[name], `${vm.metadata.name} ${name}`);
          }
        }
      }),
  });
}

Deno.test("examples/config.yaml loads through the configuration loader and states the defaults", async () => {
  const config = await loadConfig({
    flags: { config: `${EXAMPLES}${CONFIG_EXAMPLE}` },
    env: () => undefined,
  });
  assert.deepEqual(config, DEFAULT_CONFIG);
});
