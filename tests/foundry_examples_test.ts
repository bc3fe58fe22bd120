/**
 * Every example in examples/ loads, and what foundry derives from it (domain XML, cloud-init seed,
 * ISO) passes the external validators when they are installed.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { DEFAULT_CONFIG, parseConfigFile } from "../lib/foundry/config.ts";
import { cidataIsoFromVm, noCloudFilesFromVm } from "../lib/foundry/cloudinit.ts";
import { buildDomainXml } from "../lib/foundry/domain_xml.ts";
import { loadVirtualMachines } from "../lib/foundry/loader.ts";
import { parseDomainMetadata, withoutPasswordHash } from "../lib/foundry/metadata.ts";
import { hasTool } from "./_tools.ts";

const EXAMPLES = fileURLToPath(new URL("../examples/", import.meta.url));

const TOOLS = {
  validate: hasTool("virt-xml-validate") && hasTool("xmllint"),
  cloudInit: hasTool("cloud-init"),
  isoinfo: hasTool("isoinfo"),
};
for (const [tool, present] of Object.entries(TOOLS)) {
  if (!present) console.warn(`foundry examples: ${tool} checks skipped, the tool is not installed`);
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

const expected: Record<string, { name: string; disks: number; nics: number }> = {
  "simple-vm.yaml": { name: "simple-vm", disks: 0, nics: 1 },
  "multi-disk-vm.yaml": { name: "db-01", disks: 2, nics: 2 },
  "custom-pool-vm.yaml": { name: "build-runner", disks: 1, nics: 1 },
};

for (const [file, want] of Object.entries(expected)) {
  Deno.test(`examples/${file} loads and yields a valid domain, seed and ISO`, async () => {
    const vms = await loadVirtualMachines(`${EXAMPLES}${file}`);
    assert.equal(vms.length, 1);
    const vm = vms[0]!;
    assert.equal(vm.metadata.name, want.name);
    assert.equal(vm.spec.dataDisks?.length ?? 0, want.disks);
    assert.equal(vm.spec.networkInterfaces.length, want.nics);
    for (const net of vm.spec.networkInterfaces) {
      assert.match(net.ip, /^(192\.0\.2|198\.51\.100)\./, "examples use documentation addresses");
    }

    const domainType = vm.spec.domainType ?? "qemu";
    const xml = buildDomainXml(vm, { domainType });
    assert.deepEqual(parseDomainMetadata(xml), withoutPasswordHash(vm));
    const files = noCloudFilesFromVm(vm);
    const iso = cidataIsoFromVm(vm);
    const dir = await Deno.makeTempDir();
    try {
      if (TOOLS.validate) {
        await Deno.writeTextFile(`${dir}/domain.xml`, xml);
        const r = await run("virt-xml-validate", [`${dir}/domain.xml`, "domain"]);
        assert.ok(r.ok, r.out);
      }
      if (TOOLS.cloudInit) {
        await Deno.writeTextFile(`${dir}/user-data`, files["user-data"]);
        const r = await run("cloud-init", ["schema", "--config-file", `${dir}/user-data`]);
        assert.ok(r.ok, r.out);
        assert.doesNotMatch(r.out, /DEPRECATED/);
      }
      if (TOOLS.isoinfo) {
        await Deno.writeFile(`${dir}/seed.iso`, iso);
        for (const name of ["user-data", "meta-data", "network-config"] as const) {
          const r = await run("isoinfo", ["-R", "-i", `${dir}/seed.iso`, "-x", `/${name}`]);
          assert.equal(r.out, files[name]);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("examples/ has exactly the VM examples this test knows, plus config.yaml", async () => {
  const names: string[] = [];
  for await (const e of Deno.readDir(EXAMPLES)) if (e.name.endsWith(".yaml")) names.push(e.name);
  const known = [...Object.keys(expected), "config.yaml"].sort();
  for (const k of known) assert.ok(names.includes(k), `examples/${k} is missing`);
});

Deno.test("examples/config.yaml parses and states the defaults", async () => {
  const file = `${EXAMPLES}config.yaml`;
  const layer = parseConfigFile(await Deno.readTextFile(file), file);
  assert.deepEqual(layer, DEFAULT_CONFIG);
});
