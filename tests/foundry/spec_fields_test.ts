/**
 * Issue 15's spec fields on the real libvirtd: each VM is loaded from YAML, its domain XML passes
 * virt-xml-validate, is defined (never started: OS-less, TCG), and `foundry get NAME -o yaml` reads
 * the spec back equal to what was loaded. A graphics password reaches the domain only.
 */
import assert from "node:assert/strict";
import { parse, stringify } from "npm:yaml@^2.9.1";
import { main } from "../../cli/foundry.ts";
import { buildDomainXml } from "../../lib/foundry/domain_xml.ts";
import { parseVirtualMachines } from "../../lib/foundry/loader.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import { libvirtSkipReason } from "../libvirt/_env.ts";
import { requireTool, testNeeding } from "../_require.ts";
import { runTool } from "../_tools.ts";
import { foundryFixture, nextHostNumber, writeConfigFile } from "./_fixture.ts";

const VALIDATOR = requireTool("virt-xml-validate", "xmllint");
const VIRSH = requireTool("virsh");

/** The spec fields of each case, under a VM with one bridge interface; YAML text. */
function cases(
  image: string,
  bridges: [string, string],
  imagesPool: string,
): Record<string, string> {
  const n = nextHostNumber();
  const nic = `{ip: 192.0.2.${n}/24, gateway: 192.0.2.1, bridge: ${bridges[0]}}`;
  const vm = (label: string, spec: string, extraDocs = "", meta = "") =>
    `${extraDocs}apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: h1-${crypto.randomUUID().slice(0, 8)}-${label}${meta}
spec:
  vcpus: 1
  memoryGiB: 0.25
${spec}`;
  return {
    cpu: vm(
      "cpu",
      `  cpu: {sockets: 2, cores: 1, threads: 1}
  numa: [{cpus: "0", memoryGiB: 0.25}, {cpus: "1", memoryGiB: 0.25}]
  bootDisk: {sizeGB: 1, image: ${image}}
  networkInterfaces: [${nic}]
`,
    ),
    graphics: vm(
      "vnc",
      `  graphics: {type: vnc, listen: 127.0.0.1, passwordSecret: vnc.pw}
  bootDisk: {sizeGB: 1, image: ${image}}
  networkInterfaces: [${nic}]
`,
    ),
    spice: vm(
      "spice",
      `  graphics: {type: spice}
  bootDisk: {sizeGB: 1, image: ${image}}
  networkInterfaces: [${nic}]
`,
    ),
    iso: vm(
      "iso",
      `  installMedia: {image: install.iso, imagePool: ${imagesPool}}
  bootDisk: {sizeGB: 1, empty: true}
  networkInterfaces: [${nic}]
`,
    ),
    volumes: vm(
      "vol",
      `  bootDisk: {sizeGB: 1, volume: "${imagesPool}:${image}"}
  dataDisks: [{device: vdb, sizeGB: 1, volume: /var/lib/h1-absent/data.qcow2}]
  networkInterfaces: [{mac: "52:54:00:12:34:${(n % 256).toString(16).padStart(2, "0")}", bridge: ${
        bridges[1]
      }}]
`,
    ),
    template: vm(
      "tpl",
      `  templateRef: {name: h1-small}
  networkInterfaces: [${nic}]
`,
      `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachineTemplate
metadata: {name: h1-small}
spec:
  template:
    metadata: {labels: {tier: small}}
    spec:
      vcpus: 2
      cpu: {mode: host-model, sockets: 1}
      bootDisk: {sizeGB: 1, image: ${image}}
---
`,
      "\n  labels: {suite: h1}",
    ),
  };
}

testNeeding(libvirtSkipReason ?? VALIDATOR ?? VIRSH, {
  name: "every new spec field: virt-xml-validate, define on libvirtd, get -o yaml reads it back",
  fn: async () => {
    const fx = await foundryFixture();
    const defined: string[] = [];
    try {
      const cfg = await writeConfigFile(fx);
      const secret = `h1${crypto.randomUUID().slice(0, 6)}`; // VNC: at most 8 characters
      await Deno.writeTextFile(`${fx.dir}/vnc.pw`, `${secret}\n`, { mode: 0o600 });
      const run = async (...args: string[]) => {
        const out: string[] = [];
        const err: string[] = [];
        const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) };
        const code = await main(["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, ...args], io);
        return { code, out: out.join(""), err: err.join("") };
      };
      for (
        const [label, text] of Object.entries(cases(fx.image, fx.bridges, fx.config.imagesPool))
      ) {
        const file = `${fx.dir}/${label}.yaml`;
        await Deno.writeTextFile(file, text);
        const [vm] = parseVirtualMachines(text, file) as [VirtualMachine];
        const xml = buildDomainXml(vm, {
          domainType: "qemu",
          pool: fx.config.vmsPool,
          defaultImagePool: fx.config.imagesPool,
          ...(vm.spec.graphics?.passwordSecret === undefined ? {} : {
            graphicsPassword: (await Deno.readTextFile(vm.spec.graphics.passwordSecret)).split(
              "\n",
            )[0]!,
          }),
        });
        await Deno.writeTextFile(`${fx.dir}/${label}.xml`, xml);
        const valid = await runTool("virt-xml-validate", [`${fx.dir}/${label}.xml`, "domain"]);
        assert.equal(valid.code, 0, `${label}: ${valid.stdout}${valid.stderr}`);
        defined.push(vm.metadata.name);
        await fx.lv.domainDefineXml(xml);
        const got = await run("get", vm.metadata.name, "-o", "yaml");
        assert.equal(got.code, 0, `${label}: ${got.err}`);
        const back = parse(got.out) as VirtualMachine;
        assert.deepEqual(back.metadata, vm.metadata, label);
        assert.deepEqual(back.spec, vm.spec, label);
        if (label === "graphics") {
          assert.equal(back.spec.graphics?.passwordSecret, `${fx.dir}/vnc.pw`);
          assert.ok(!got.out.includes(secret), "the password is not in get's output");
          const dump = await runTool("virsh", [
            "-c",
            "qemu:///system",
            "dumpxml",
            vm.metadata.name,
          ]);
          assert.equal(dump.code, 0, dump.stderr);
          assert.match(dump.stdout, /<graphics type='vnc'/);
          assert.ok(!dump.stdout.includes(secret), "dumpxml without --security-info shows it");
          assert.doesNotMatch(dump.stdout, /passwd=/);
          // It is in the domain: the security-info view shows it.
          const secure = await runTool("virsh", [
            "-c",
            "qemu:///system",
            "dumpxml",
            "--security-info",
            vm.metadata.name,
          ]);
          assert.ok(secure.stdout.includes(`passwd='${secret}'`), "the domain has the password");
        }
        if (label === "cpu") {
          const live = await fx.lv.domainGetXmlDesc(
            await fx.lv.domainLookupByName(vm.metadata.name),
          );
          assert.match(live, /<topology sockets='2' dies='1' cores='1' threads='1'\/>/);
          // libvirt keeps <memory> equal to the cells' sum, which is the memory maximum.
          assert.match(live, /<memory unit='KiB'>524288<\/memory>/);
          assert.match(live, /<currentMemory unit='KiB'>262144<\/currentMemory>/);
        }
        if (label === "iso") {
          const live = await fx.lv.domainGetXmlDesc(
            await fx.lv.domainLookupByName(vm.metadata.name),
          );
          assert.match(live, /<target dev='sdb' bus='scsi'\/>\s*<readonly\/>\s*<boot order='1'\/>/);
          assert.doesNotMatch(live, /<boot dev=/);
        }
        if (label === "template") {
          assert.deepEqual(back.metadata.labels, { tier: "small", suite: "h1" });
          // The VM's own vcpus win; the rest comes from the template.
          assert.equal(back.spec.vcpus, 1);
          assert.deepEqual(back.spec.cpu, { mode: "host-model", sockets: 1 });
          assert.equal(back.spec.bootDisk.image, fx.image);
          assert.deepEqual(back.spec.templateRef, { name: "h1-small" });
        }
      }
      // Stored as written, so the YAML written back loads to the same VM.
      const again = await run("get", defined[0]!, "-o", "yaml");
      const reread = parse(again.out) as VirtualMachine;
      const { status: _status, ...doc } = reread;
      const [loaded] = parseVirtualMachines(stringify(doc), "again.yaml");
      assert.deepEqual(loaded?.spec, reread.spec);
    } finally {
      for (const name of defined) {
        try {
          await fx.lv.domainUndefine(await fx.lv.domainLookupByName(name), 4);
        } catch { /* never defined */ }
      }
      await fx.cleanup();
    }
  },
});
