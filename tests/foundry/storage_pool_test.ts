/** `foundry pool` against the real libvirtd, with test-owned pools under temporary directories. */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import { buildPoolXml } from "../../lib/foundry/pools.ts";
import { Libvirt, LibvirtError } from "../../lib/libvirt/mod.ts";
import { libvirtTest, uniqueName } from "../libvirt/_env.ts";
import { capture, run } from "./_storage_env.ts";

/** The audit trail of these tests goes to a temporary file, never the user's. */
const AUDIT = ["--audit-db", `${await Deno.makeTempDir({ prefix: "foundry-pooltest-" })}/audit.db`];

async function poolExists(lv: Libvirt, name: string): Promise<boolean> {
  try {
    await lv.storagePoolLookupByName(name);
    return true;
  } catch (e) {
    if (e instanceof LibvirtError && e.isNoStoragePool()) return false;
    throw e;
  }
}

/** Removes a pool left by a failed test. */
async function dropPool(lv: Libvirt, name: string): Promise<void> {
  try {
    const p = await lv.storagePoolLookupByName(name);
    for (const v of await lv.storagePoolListAllVolumes(p).catch(() => [])) {
      await lv.storageVolDelete(v).catch(() => {});
    }
    await lv.storagePoolDestroy(p).catch(() => {});
    await lv.storagePoolUndefine(p).catch(() => {});
  } catch { /* gone */ }
}

Deno.test("buildPoolXml() rejects unknown types, bad names and relative targets", () => {
  assert.throws(
    () => buildPoolXml({ name: "p", type: "floppy", target: "/x" }),
    /Pool type "floppy" is not one of dir, fs/,
  );
  assert.throws(() => buildPoolXml({ name: "a b", type: "dir", target: "/x" }), /Pool name "a b"/);
  assert.throws(
    () => buildPoolXml({ name: "p", type: "dir", target: "rel" }),
    /absolute path, got "rel"/,
  );
  const xml = buildPoolXml({
    name: "n",
    type: "netfs",
    target: "/mnt/n",
    sourceHost: "nas",
    sourcePath: "/export",
    sourceFormat: "nfs",
  });
  assert.match(xml, /<pool type="netfs">/);
  assert.match(xml, /<host name="nas"/);
  assert.match(xml, /<dir path="\/export"/);
  assert.match(xml, /<path>\/mnt\/n<\/path>/);
});

libvirtTest("foundry pool add/list/info/refresh/delete manage a dir pool", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const name = uniqueName("ft-pool");
  const parent = await Deno.makeTempDir({ prefix: "foundry-pooltest-" });
  const dir = `${parent}/pool`; // pool-build creates it
  try {
    let c = capture();
    assert.equal(await main([...AUDIT, "pool", "add", name, "dir", dir], c.io), 0, c.err());
    assert.match(c.out(), new RegExp(`Pool ${name} \\(dir\\) added at ${dir}`));
    assert.ok((await Deno.stat(dir)).isDirectory, "pool-build made the directory");
    const ref = await lv.storagePoolLookupByName(name);
    assert.equal(await lv.storagePoolGetAutostart(ref), true);

    // Adding it again is refused with exit 5.
    c = capture();
    assert.equal(await main([...AUDIT, "pool", "add", name, "dir", dir], c.io), 5);
    assert.match(c.err(), /Storage pool ft-pool-\w+ exists already/);

    c = capture();
    assert.equal(await main([...AUDIT, "pool", "list", "-o", "json"], c.io), 0, c.err());
    const listed = (JSON.parse(c.out()) as { name: string }[]).find((p) => p.name === name);
    assert.deepEqual(
      { ...listed, capacity: 0, allocation: 0, available: 0 },
      {
        name,
        type: "dir",
        state: "running",
        autostart: true,
        path: dir,
        capacity: 0,
        allocation: 0,
        available: 0,
        volumes: 0,
      },
    );
    c = capture();
    assert.equal(await main([...AUDIT, "pool", "list"], c.io), 0);
    assert.match(
      c.out(),
      /^NAME\s+TYPE\s+STATE\s+AUTOSTART\s+CAPACITY\s+ALLOCATION\s+AVAILABLE\s+VOLUMES/,
    );
    assert.match(c.out(), new RegExp(`${name}\\s+dir\\s+running\\s+yes\\s+.*\\s0\\n`));

    // A file written behind libvirt's back appears after refresh; info lists it.
    const q = await run("qemu-img", ["create", "-q", "-f", "qcow2", `${dir}/disk.qcow2`, "1G"]);
    assert.equal(q.code, 0, q.stderr);
    c = capture();
    assert.equal(await main([...AUDIT, "pool", "refresh", name], c.io), 0, c.err());
    assert.match(c.out(), /refreshed: 1 volume\(s\)/);
    c = capture();
    assert.equal(await main([...AUDIT, "pool", "info", name, "-o", "yaml"], c.io), 0, c.err());
    assert.match(c.out(), /volumeList:\n {2}- name: disk\.qcow2\n/);
    assert.match(c.out(), /format: qcow2\n/);
    assert.match(c.out(), /capacity: 1073741824\n/);
    c = capture();
    assert.equal(await main([...AUDIT, "pool", "info", name], c.io), 0);
    assert.match(c.out(), /Type: +dir\n/);
    assert.match(c.out(), /disk\.qcow2 +qcow2 +1\.0 GiB/);

    // A pool with volumes is kept unless --force.
    c = capture();
    assert.equal(await main([...AUDIT, "pool", "delete", name], c.io), 5);
    assert.match(c.err(), /holds 1 volume\(s\) \(disk\.qcow2\); use --force/);
    assert.ok(await poolExists(lv, name));
    assert.ok((await Deno.stat(`${dir}/disk.qcow2`)).isFile, "nothing deleted");

    c = capture();
    assert.equal(await main([...AUDIT, "pool", "delete", name, "--force"], c.io), 0, c.err());
    assert.match(c.out(), /Deleted volume disk\.qcow2\nPool ft-pool-\w+ deleted\n/);
    assert.equal(await poolExists(lv, name), false);
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound, "the empty directory is removed");

    c = capture();
    assert.equal(await main([...AUDIT, "pool", "info", name], c.io), 5);
    assert.equal(c.err(), `Error: Storage pool ${name} does not exist\n`);
  } finally {
    await dropPool(lv, name);
    await lv.close();
    await Deno.remove(parent, { recursive: true }).catch(() => {});
  }
});

libvirtTest("foundry pool delete refuses foundry-images and foundry-vms", async () => {
  for (const name of ["foundry-images", "foundry-vms"]) {
    for (const extra of [[], ["--force"]]) {
      const c = capture();
      assert.equal(await main([...AUDIT, "pool", "delete", name, ...extra], c.io), 5);
      assert.equal(
        c.err(),
        `Error: Refusing to delete ${name}: foundry keeps its images and VM disks there\n`,
      );
    }
  }
  // The configured names are protected too, whatever they are.
  const c = capture();
  assert.equal(await main(["--image-pool", "my-images", "pool", "delete", "my-images"], c.io), 5);
  assert.match(c.err(), /Refusing to delete my-images/);
});

libvirtTest("foundry pool add undoes the definition when the build fails", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const name = uniqueName("ft-pool");
  try {
    // The parent of the target is a regular file, so pool-build cannot make the directory.
    const file = await Deno.makeTempFile({ prefix: "foundry-notadir-" });
    const c = capture();
    assert.equal(await main([...AUDIT, "pool", "add", name, "dir", `${file}/sub`], c.io), 5);
    assert.match(c.err(), new RegExp(`Cannot build pool ${name}: `));
    assert.equal(c.err().trim().split("\n").length, 1);
    assert.equal(await poolExists(lv, name), false, "nothing left defined");
    await Deno.remove(file);

    // Another type libvirt offers: defined from our XML, then its build fails (no such volume
    // group or device here), and the definition is undone.
    const vg = capture();
    assert.equal(
      await main(
        [
          "pool",
          "add",
          name,
          "logical",
          `/dev/${name}`,
          "--source-name",
          name,
          "--source-dev",
          "/dev/nonexistent-disk",
        ],
        vg.io,
      ),
      5,
    );
    assert.match(vg.err(), new RegExp(`Cannot (build|start) pool ${name}: `));
    assert.equal(await poolExists(lv, name), false, "nothing left defined");

    const bad = capture();
    assert.equal(await main([...AUDIT, "pool", "add", name, "floppy", "/x"], bad.io), 5);
    assert.match(bad.err(), /Pool type "floppy" is not one of/);
  } finally {
    await dropPool(lv, name);
    await lv.close();
  }
});

libvirtTest(
  "foundry pool list shows an inactive pool without figures; delete removes it",
  async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const name = uniqueName("ft-pool");
    const dir = await Deno.makeTempDir({ prefix: "foundry-inactive-" });
    try {
      await lv.storagePoolDefineXml(buildPoolXml({ name, type: "dir", target: dir }));
      let c = capture();
      assert.equal(await main([...AUDIT, "pool", "list", "-o", "json"], c.io), 0, c.err());
      const p = (JSON.parse(c.out()) as Record<string, unknown>[]).find((x) => x.name === name);
      assert.equal(p?.state, "inactive");
      assert.equal(p?.volumes, null);
      assert.equal(p?.autostart, false);
      c = capture();
      assert.equal(await main([...AUDIT, "pool", "list"], c.io), 0);
      assert.match(c.out(), new RegExp(`${name}\\s+dir\\s+inactive\\s+no\\s+.*\\s-\\n`));
      // Its files cannot be listed as volumes while it is inactive: they stay, only the definition goes.
      await Deno.writeTextFile(`${dir}/keep.raw`, "data");
      c = capture();
      assert.equal(await main([...AUDIT, "pool", "delete", name], c.io), 0, c.err());
      assert.equal(await poolExists(lv, name), false);
      assert.equal(await Deno.readTextFile(`${dir}/keep.raw`), "data");
    } finally {
      await dropPool(lv, name);
      await lv.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
