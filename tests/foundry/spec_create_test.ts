/**
 * create and destroy with the issue-15 spec fields on the real libvirtd (OS-less TCG domains):
 * an installation ISO with an empty boot disk, `image import` of ISO 9660 images, a boot image file
 * outside the pools, existing disks, the graphical console's password and address, and the
 * Creating / Destroying phases seen from a second connection.
 */
import assert from "node:assert/strict";
import { DomainXmlFlags, Libvirt, MetadataType } from "../../lib/libvirt/mod.ts";
import { main } from "../../cli/foundry.ts";
import { parseVirtualMachine } from "../../lib/foundry/loader.ts";
import { METADATA_NAMESPACE, VOLUMES_NAMESPACE } from "../../lib/foundry/stored_metadata.ts";
import { createVm, destroyVm, RuntimeCheckError, STATUS_NAMESPACE } from "../../lib/foundry/vm.ts";
import { getVm, listVms } from "../../lib/foundry/inventory.ts";
import { lookupVm } from "../../lib/foundry/lookup.ts";
import { storedMetadataXml } from "../../lib/foundry/metadata.ts";
import { importImage, listImages } from "../../lib/foundry/images.ts";
import { StorageError } from "../../lib/foundry/pools.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import { libvirtTest, uniqueName } from "../libvirt/_env.ts";
import {
  type FoundryFixture,
  foundryFixture,
  nextHostNumber,
  writeConfigFile,
} from "./_fixture.ts";
import { capture, run } from "./_storage_env.ts";

/** An OS-less VM on the fixture's first bridge; `spec` is YAML under `spec:` after the NIC. */
function h2Vm(fx: FoundryFixture, name: string, spec: string): VirtualMachine {
  const n = nextHostNumber();
  return parseVirtualMachine(
    `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels:
    suite: h2
spec:
  vcpus: 1
  memoryGiB: 0.25
  networkInterfaces:
    - ip: 192.0.2.${n}/24
      gateway: 192.0.2.1
      bridge: ${fx.bridges[0]}
${spec}`,
    `${fx.dir}/h2.yaml`,
  );
}

/** Removes what is left of the test's VMs (their domains; the fixture removes the pools). */
async function removeDomains(lv: Libvirt, names: string[]): Promise<void> {
  for (const d of await lv.listAllDomains()) {
    if (!names.includes(d.name)) continue;
    await lv.domainDestroy(d).catch(() => {});
    await lv.domainUndefine(d, 4 | 2).catch(() => {});
  }
}

/**
 * A test with a fixture of its own; the domains of the VMs it names in `names` are removed at the
 * end whatever happens, then the fixture (pools, bridges, files).
 */
function h2Test(title: string, fn: (fx: FoundryFixture, names: string[]) => Promise<void>): void {
  libvirtTest(title, async () => {
    const fx = await foundryFixture();
    const names: string[] = [];
    try {
      await fn(fx, names);
    } finally {
      await removeDomains(fx.lv, names);
      await fx.cleanup();
    }
  });
}

async function makeIso(dir: string, name: string): Promise<string> {
  await Deno.mkdir(`${dir}/iso-src`, { recursive: true });
  await Deno.writeTextFile(`${dir}/iso-src/README.TXT`, "h2 install media\n");
  const path = `${dir}/${name}`;
  const r = await run("xorriso", [
    "-as",
    "mkisofs",
    "-quiet",
    "-V",
    "H2MEDIA",
    "-o",
    path,
    `${dir}/iso-src`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return path;
}

async function qcow2(path: string, size: string): Promise<void> {
  const r = await run("qemu-img", ["create", "-q", "-f", "qcow2", path, size]);
  assert.equal(r.code, 0, r.stderr);
}

/** The `<disk>` element of `xml` whose target is `dev`. */
function diskOf(xml: string, dev: string): string {
  const disk = [...xml.matchAll(/<disk\b[\s\S]*?<\/disk>/g)].map((m) => m[0])
    .find((d) => d.includes(`<target dev='${dev}'`));
  assert.ok(disk, `disk ${dev} in the XML`);
  return disk;
}

h2Test(
  "create boots an empty disk from an imported ISO first; destroy keeps the ISO",
  async (fx, names) => {
    // image import takes an ISO 9660 image named .iso, and refuses anything else named .iso.
    const isoPath = await makeIso(fx.dir, "h2-src.iso");
    const imported = await importImage(fx.lv, fx.config.imagesPool, isoPath, "h2-install.iso");
    assert.equal(imported.format, "iso");
    const raw = `${fx.dir}/h2-disk.raw`;
    await Deno.writeFile(raw, new Uint8Array(64 * 1024));
    await assert.rejects(
      importImage(fx.lv, fx.config.imagesPool, raw, "h2-fake.iso"),
      (e: Error) =>
        e instanceof StorageError && /h2-fake\.iso is not an ISO 9660 image/.test(e.message),
    );
    const listed = await listImages(fx.lv, fx.config.imagesPool);
    assert.deepEqual(
      listed.filter((i) => i.name.startsWith("h2-")).map((i) => [i.name, i.format]),
      [["h2-install.iso", "iso"]],
    );
    const cfg = await writeConfigFile(fx);
    const c = capture();
    assert.equal(await main(["--config", cfg, "image", "list"], c.io), 0, c.err());
    assert.match(c.out(), /h2-install\.iso\s+iso\s/);

    // A missing ISO is a runtime-check problem naming the field, before anything is made.
    const missingName = uniqueName("h2");
    names.push(missingName);
    const missing = h2Vm(
      fx,
      missingName,
      "  bootDisk: {sizeGB: 1, empty: true}\n  installMedia: {image: h2-instal.iso}\n",
    );
    await assert.rejects(
      createVm(fx.lv, missing, { config: fx.config }),
      (e: Error) =>
        e instanceof RuntimeCheckError &&
        /spec\.installMedia\.image: ISO "h2-instal\.iso" is not in pool .*did you mean "h2-install\.iso"/
          .test(e.message),
    );
    assert.equal((await fx.lv.listAllDomains()).some((d) => d.name === missingName), false);

    const name = uniqueName("h2");
    names.push(name);
    const vm = h2Vm(
      fx,
      name,
      "  bootDisk: {sizeGB: 1, empty: true}\n  installMedia: {image: h2-install.iso}\n",
    );
    const r = await createVm(fx.lv, vm, { config: fx.config });
    assert.deepEqual(
      r.volumes.map((v) => v.name).sort(),
      [`${name}_boot`, `${name}_cloudinit`],
      "the ISO is not one of the VM's volumes",
    );
    const d = await fx.lv.domainLookupByName(name);
    assert.equal((await fx.lv.domainGetState(d)).state, 1, "running");
    const xml = await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE);
    const cdrom = [...xml.matchAll(/<disk\b[\s\S]*?<\/disk>/g)].map((m) => m[0])
      .find((x) => x.includes("h2-install.iso"));
    assert.ok(cdrom, "the ISO is a disk of the domain");
    assert.match(cdrom, /device='cdrom'/);
    assert.match(cdrom, /<readonly\/>/);
    assert.match(cdrom, /<boot order='1'\/>/, "the ISO boots first");
    assert.match(diskOf(xml, "vda"), /<boot order='2'\/>/, "then the disk");
    await Deno.writeTextFile(`${fx.dir}/h2-iso.xml`, xml);
    const valid = await run("virt-xml-validate", [`${fx.dir}/h2-iso.xml`, "domain"]);
    assert.equal(valid.code, 0, valid.stderr + valid.stdout);
    // The boot disk is an empty qcow2 volume, no overlay of anything.
    const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
    const boot = await fx.lv.storageVolGetXmlDesc(
      await fx.lv.storageVolLookupByName(pool, `${name}_boot`),
    );
    assert.doesNotMatch(boot, /<backingStore>\s*<path>/);
    const record = await fx.lv.domainGetMetadata(d, MetadataType.ELEMENT, VOLUMES_NAMESPACE);
    assert.doesNotMatch(record, /h2-install\.iso/, "the ISO is not recorded as the VM's");

    const gone = await destroyVm(fx.lv, name, { timeoutSeconds: 1 });
    assert.deepEqual(gone.volumesDeleted.sort(), [
      `${fx.config.vmsPool}/${name}_boot`,
      `${fx.config.vmsPool}/${name}_cloudinit`,
    ]);
    const images = await fx.lv.storagePoolLookupByName(fx.config.imagesPool);
    await fx.lv.storagePoolRefresh(images);
    await fx.lv.storageVolLookupByName(images, "h2-install.iso"); // still there
  },
);

h2Test(
  "a boot image file outside the pools is imported once, reused, and a different one refused",
  async (fx, names) => {
    await Deno.mkdir(`${fx.dir}/outside`);
    await Deno.mkdir(`${fx.dir}/other`);
    const file = `${fx.dir}/outside/h2-base.qcow2`;
    await qcow2(file, "64M");
    const spec = (path: string) => `  bootDisk: {sizeGB: 1, image: ${path}}\n`;

    const a = uniqueName("h2");
    names.push(a);
    await createVm(fx.lv, h2Vm(fx, a, spec(file)), { config: fx.config, noStart: true });
    const images = await fx.lv.storagePoolLookupByName(fx.config.imagesPool);
    await fx.lv.storagePoolRefresh(images);
    const copy = await fx.lv.storageVolLookupByName(images, "h2-base.qcow2");
    const copyPath = await fx.lv.storageVolGetPath(copy);
    assert.equal(copyPath, `${fx.config.imagesPath}/h2-base.qcow2`);
    const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
    const bootA = await fx.lv.storageVolGetXmlDesc(
      await fx.lv.storageVolLookupByName(pool, `${a}_boot`),
    );
    assert.match(bootA, new RegExp(`<backingStore>\\s*<path>${copyPath}</path>`));
    assert.doesNotMatch(bootA, new RegExp(`${fx.dir}/outside`), "never the user's file");

    // The same file again: the copy is reused, not imported twice.
    const b = uniqueName("h2");
    names.push(b);
    await createVm(fx.lv, h2Vm(fx, b, spec(file)), { config: fx.config, noStart: true });
    await fx.lv.storagePoolRefresh(images);
    const vols = (await fx.lv.storagePoolListAllVolumes(images)).map((v) => v.name)
      .filter((n) => n.startsWith("h2-base")).sort();
    assert.deepEqual(vols, ["h2-base.qcow2", "h2-base.qcow2.sha256"]);

    // Another file of the same name with other content: refused, naming both; nothing made.
    const other = `${fx.dir}/other/h2-base.qcow2`;
    await qcow2(other, "32M");
    const c = uniqueName("h2");
    names.push(c);
    await assert.rejects(
      createVm(fx.lv, h2Vm(fx, c, spec(other)), { config: fx.config, noStart: true }),
      (e: Error) =>
        e instanceof StorageError &&
        e.message.includes(other) &&
        /differs from image h2-base\.qcow2 already in pool/.test(e.message),
    );
    assert.equal((await fx.lv.listAllDomains()).some((d) => d.name === c), false);
    await fx.lv.storagePoolRefresh(pool);
    assert.equal(
      (await fx.lv.storagePoolListAllVolumes(pool)).some((v) => v.name.startsWith(`${c}_`)),
      false,
    );

    // A failed create removes a copy it imported itself (no other disk uses it).
    const fresh = `${fx.dir}/outside/h2-fresh.qcow2`;
    await qcow2(fresh, "64M");
    const f = uniqueName("h2");
    names.push(f);
    await assert.rejects(
      createVm(fx.lv, h2Vm(fx, f, spec(fresh)), {
        config: fx.config,
        noStart: true,
        beforeStep: (s) => {
          if (s === "define") throw new Error("h2 injected failure");
        },
      }),
      /h2 injected failure/,
    );
    await fx.lv.storagePoolRefresh(images);
    assert.equal(
      (await fx.lv.storagePoolListAllVolumes(images)).some((v) => v.name.startsWith("h2-fresh")),
      false,
    );

    for (const n of [a, b]) await destroyVm(fx.lv, n, { timeoutSeconds: 1 });
    await fx.lv.storageVolLookupByName(images, "h2-base.qcow2"); // an image of the pool now
    await Deno.stat(file); // the user's file untouched
  },
);

h2Test(
  "existing disks are used as they are, not recorded, and kept by destroy",
  async (fx, names) => {
    await qcow2(`${fx.config.imagesPath}/h2-existing-boot.qcow2`, "1G");
    const images = await fx.lv.storagePoolLookupByName(fx.config.imagesPool);
    await fx.lv.storagePoolRefresh(images);
    const dataFile = `${fx.dir}/h2-existing-data.qcow2`;
    await qcow2(dataFile, "1G");
    const spec = (boot: string) =>
      `  bootDisk: {sizeGB: 1, volume: "${fx.config.imagesPool}:${boot}"}\n` +
      `  dataDisks:\n    - {device: vdb, sizeGB: 1, volume: ${dataFile}}\n` +
      `    - {device: vdc, sizeGB: 1}\n`;

    const missingName = uniqueName("h2");
    names.push(missingName);
    await assert.rejects(
      createVm(fx.lv, h2Vm(fx, missingName, spec("h2-nope.qcow2")), { config: fx.config }),
      (e: Error) =>
        e instanceof RuntimeCheckError &&
        /spec\.bootDisk\.volume: existing disk .*h2-nope\.qcow2 does not exist/.test(e.message),
    );

    const name = uniqueName("h2");
    names.push(name);
    const r = await createVm(fx.lv, h2Vm(fx, name, spec("h2-existing-boot.qcow2")), {
      config: fx.config,
    });
    assert.deepEqual(r.volumes.map((v) => v.name).sort(), [
      `${name}_cloudinit`,
      `${name}_data-vdc`,
    ]);
    const d = await fx.lv.domainLookupByName(name);
    const xml = await fx.lv.domainGetXmlDesc(d);
    assert.match(diskOf(xml, "vda"), /h2-existing-boot\.qcow2/);
    assert.match(diskOf(xml, "vdb"), new RegExp(dataFile));
    const record = await fx.lv.domainGetMetadata(d, MetadataType.ELEMENT, VOLUMES_NAMESPACE);
    assert.doesNotMatch(record, /h2-existing/);

    const gone = await destroyVm(fx.lv, name, { timeoutSeconds: 1 });
    assert.deepEqual(gone.volumesDeleted.sort(), [
      `${fx.config.vmsPool}/${name}_cloudinit`,
      `${fx.config.vmsPool}/${name}_data-vdc`,
    ]);
    await fx.lv.storagePoolRefresh(images);
    await fx.lv.storageVolLookupByName(images, "h2-existing-boot.qcow2");
    await Deno.stat(dataFile);
  },
);

h2Test(
  "graphics: the password from a 0600 file reaches the domain only; console --graphics",
  async (fx, names) => {
    const secret = `${fx.dir}/h2-vnc-password`;
    const password = "h2Pw7xQz";
    await Deno.writeTextFile(secret, `${password}\n`);
    await Deno.chmod(secret, 0o644);
    const spec = `  bootDisk: {sizeGB: 1, image: ${fx.image}}\n` +
      `  graphics: {type: vnc, passwordSecret: ${secret}}\n`;

    const refusedName = uniqueName("h2");
    names.push(refusedName);
    await assert.rejects(
      createVm(fx.lv, h2Vm(fx, refusedName, spec), { config: fx.config }),
      (e: Error) =>
        e instanceof RuntimeCheckError &&
        /spec\.graphics\.passwordSecret: password file .* accessible by group or others \(mode 0644\)/
          .test(e.message) &&
        !e.message.includes(password),
    );
    assert.equal((await fx.lv.listAllDomains()).some((d) => d.name === refusedName), false);

    const cfg = await writeConfigFile(fx);
    const audit = `${fx.dir}/audit.db`;
    const cli = async (...args: string[]) => {
      const c = capture();
      const code = await main(["--config", cfg, "--audit-db", audit, ...args], c.io);
      return { code, out: c.out(), err: c.err() };
    };
    // Through the CLI, so that the audit trail is written too.
    await Deno.chmod(secret, 0o600);
    const name = uniqueName("h2");
    names.push(name);
    const file = `${fx.dir}/h2-graphics.yaml`;
    await Deno.writeTextFile(file, JSON.stringify(h2Vm(fx, name, spec)));
    const made = await cli("create", file);
    assert.equal(made.code, 0, made.err);
    assert.ok(!made.out.includes(password) && !made.err.includes(password));
    const d = await fx.lv.domainLookupByName(name);
    const dump = await run("virsh", ["-c", "qemu:///system", "dumpxml", name]);
    assert.equal(dump.code, 0, dump.stderr);
    assert.match(dump.stdout, /<graphics type='vnc'/);
    assert.doesNotMatch(dump.stdout, /passwd/);
    assert.ok(!dump.stdout.includes(password));
    const secure = await run("virsh", [
      "-c",
      "qemu:///system",
      "dumpxml",
      "--security-info",
      name,
    ]);
    assert.match(secure.stdout, new RegExp(`passwd='${password}'`), "the domain has it");
    const stored = await fx.lv.domainGetMetadata(d, MetadataType.ELEMENT, METADATA_NAMESPACE);
    assert.ok(!stored.includes(password), "not in the stored spec");
    assert.ok(stored.includes(secret), "the stored spec keeps the file's path");
    // The audit database and its journal, as bytes: the password is in neither.
    let auditBytes = "";
    for (const f of Deno.readDirSync(fx.dir)) {
      if (!f.name.startsWith("audit.db")) continue;
      auditBytes += new TextDecoder("latin1").decode(await Deno.readFile(`${fx.dir}/${f.name}`));
    }
    assert.ok(auditBytes.includes(name), "the audit trail has the create");
    assert.equal(auditBytes.includes(password), false, "not in the audit trail");
    const xmlFile = `${fx.dir}/h2-graphics.xml`;
    await Deno.writeTextFile(xmlFile, secure.stdout);
    const valid = await run("virt-xml-validate", [xmlFile, "domain"]);
    assert.equal(valid.code, 0, valid.stderr + valid.stdout);
    const text = await cli("console", name, "--graphics");
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^vnc:\/\/127\.0\.0\.1:(\d+)\n$/);
    const json = JSON.parse((await cli("console", name, "--graphics", "-o", "json")).out);
    assert.equal(json.type, "vnc");
    assert.ok(json.port >= 5900, `port ${json.port}`);
    assert.equal(json.url, `vnc://127.0.0.1:${json.port}`);

    // A VM without graphics: exit 4, said clearly.
    const plain = uniqueName("h2");
    names.push(plain);
    await createVm(fx.lv, h2Vm(fx, plain, `  bootDisk: {sizeGB: 1, image: ${fx.image}}\n`), {
      config: fx.config,
    });
    const none = await cli("console", plain, "--graphics");
    assert.equal(none.code, 4);
    assert.match(none.err, /has no graphical console/);

    for (const n of [name, plain]) await destroyVm(fx.lv, n, { timeoutSeconds: 1 });
  },
);

h2Test(
  "Creating and Destroying are what another connection sees while they run",
  async (fx, names) => {
    const other = await Libvirt.connect();
    try {
      const phaseSeen = async (name: string) => {
        const got = await getVm(other, name);
        const row = (await listVms(other)).vms.find((v) => v.name === name);
        return [got.vm.status?.phase, row?.phase];
      };
      const name = uniqueName("h2");
      names.push(name);
      const during = new Map<string, unknown[]>();
      await createVm(fx.lv, h2Vm(fx, name, `  bootDisk: {sizeGB: 1, image: ${fx.image}}\n`), {
        config: fx.config,
        beforeStep: async (s) => {
          if (s === "autostart" || s === "start") during.set(s, await phaseSeen(name));
        },
      });
      assert.deepEqual(Object.fromEntries(during), {
        autostart: ["Creating", "Creating"],
        start: ["Creating", "Creating"],
      });
      assert.deepEqual(await phaseSeen(name), ["Running", "Running"]);

      // A marker left by a create that died (in the status record, which get reads, and on the
      // spec's element, which list reads) is believed only until it expires.
      const operation = (expiresAt: Date) => ({
        phase: "Creating" as const,
        pid: 1,
        host: "h2-elsewhere",
        startedAt: new Date(Date.now() - 3_600_000).toISOString(),
        expiresAt: expiresAt.toISOString(),
      });
      const domain = await fx.lv.domainLookupByName(name);
      const { stored } = await lookupVm(fx.lv, name);
      assert.ok(stored);
      const setMarker = async (expiresAt: Date) => {
        const op = operation(expiresAt);
        await fx.lv.domainSetMetadata(
          domain,
          MetadataType.ELEMENT,
          `<status>${JSON.stringify({ phase: "Creating", operation: op })}</status>`,
          "foundrystatus",
          STATUS_NAMESPACE,
          3,
        );
        await fx.lv.domainSetMetadata(
          domain,
          MetadataType.ELEMENT,
          storedMetadataXml(stored.vm, stored.passwordHashSha256, op, stored),
          "foundry",
          METADATA_NAMESPACE,
          3,
        );
      };
      await setMarker(new Date(Date.now() + 3_600_000));
      assert.deepEqual(await phaseSeen(name), ["Creating", "Creating"]);
      await setMarker(new Date(Date.now() - 1000));
      assert.deepEqual(await phaseSeen(name), ["Running", "Running"]);

      // A destroy that stops before the undefine puts the phase back.
      await assert.rejects(
        destroyVm(fx.lv, name, {
          timeoutSeconds: 1,
          beforeStep: async (s) => {
            if (s !== "undefine") return;
            during.set("failing", await phaseSeen(name));
            throw new Error("h2 injected failure");
          },
        }),
        /h2 injected failure/,
      );
      assert.deepEqual(during.get("failing"), ["Destroying", "Destroying"]);
      assert.deepEqual(await phaseSeen(name), ["Stopped", "Stopped"]);

      await destroyVm(fx.lv, name, {
        timeoutSeconds: 1,
        beforeStep: async (s) => {
          if (s === "undefine") during.set("destroy", await phaseSeen(name));
        },
      });
      assert.deepEqual(during.get("destroy"), ["Destroying", "Destroying"]);
    } finally {
      await other.close();
    }
  },
);
