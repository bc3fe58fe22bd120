/** `foundry storage status` against the real libvirtd, with a nearly full pool on a small tmpfs. */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import { storageStatus, usedPercent } from "../../lib/foundry/storage_status.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { libvirtSkipReason, tempPool, uniqueName } from "../libvirt/_env.ts";
import { requireRoot, testNeeding } from "../_require.ts";
import { capture, run } from "./_storage_env.ts";

Deno.test("usedPercent() is the share of the capacity not available", () => {
  assert.equal(usedPercent({ capacity: 1000, available: 150 }), 85);
  assert.equal(usedPercent({ capacity: 1000, available: 149 }), 85.1);
  assert.equal(usedPercent({ capacity: 0, available: 0 }), null);
});

/** Why a small tmpfs cannot be mounted here (tried once), or null. */
async function mountSkipReason(): Promise<string | null> {
  if (libvirtSkipReason) return libvirtSkipReason;
  const root = requireRoot("mounting a small tmpfs");
  if (root) return root;
  const dir = await Deno.makeTempDir({ prefix: "foundry-mountprobe-" });
  try {
    const m = await run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
    if (m.code !== 0) return `cannot mount a tmpfs here: ${m.stderr.trim()}`;
    await run("umount", [dir]);
    return null;
  } finally {
    await Deno.remove(dir).catch(() => {});
  }
}

const tmpfsSkip = await mountSkipReason();

testNeeding(tmpfsSkip, {
  name: "foundry storage status shows every pool and warns above 85 % full",
  fn: async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const dir = await Deno.makeTempDir({ prefix: "foundry-full-" });
    const m = await run("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", dir]);
    assert.equal(m.code, 0, m.stderr);
    const full = await tempPoolAt(lv, uniqueName("ft-full"), dir);
    const roomy = await tempPool(lv, uniqueName("ft-roomy"));
    try {
      // 7.5 MiB of 8 MiB used, in two volumes.
      await Deno.writeFile(`${dir}/a.img`, new Uint8Array(4 * 2 ** 20).fill(1));
      await Deno.writeFile(`${dir}/b.img`, new Uint8Array(3.5 * 2 ** 20).fill(1));
      await lv.storagePoolRefresh(full.pool);

      let c = capture();
      assert.equal(await main(["storage", "status", "-o", "json"], c.io), 0, c.err());
      const pools = JSON.parse(c.out()) as Record<string, unknown>[];
      const f = pools.find((p) => p.name === full.pool.name)!;
      assert.equal(f.capacity, 8 * 2 ** 20);
      assert.equal(f.volumes, 2);
      assert.ok((f.usedPercent as number) > 90, `used ${f.usedPercent}`);
      assert.equal(f.warning, true);
      assert.equal(f.state, "running");
      assert.equal(f.capacity, (f.allocation as number) + (f.available as number));
      const r = pools.find((p) => p.name === roomy.pool.name)!;
      assert.equal(r.volumes, 0);
      assert.equal(r.warning, (r.usedPercent as number) > 85);
      assert.match(c.err(), new RegExp(`Warning: pool ${full.pool.name} is 9\\d\\.\\d% full`));
      assert.doesNotMatch(c.err(), new RegExp(`pool ${roomy.pool.name} is`));

      c = capture();
      assert.equal(await main(["storage", "status"], c.io), 0);
      assert.match(c.out(), /^POOL\s+STATE\s+CAPACITY\s+ALLOCATION\s+AVAILABLE\s+USED\s+VOLUMES\n/);
      assert.match(
        c.out(),
        new RegExp(`${full.pool.name}\\s+running\\s+8\\.0 MiB\\s.*9\\d\\.\\d%\\s+2\\n`),
      );
      assert.ok(!c.out().includes("\x1b["), "no colour off a terminal");

      // The warning starts above 85 %: of the tmpfs's 2048 pages, 1741 used is 85.0 % (no
      // warning) and 1743 is 85.1 % (a warning).
      const page = 4096;
      await Deno.writeFile(`${dir}/b.img`, new Uint8Array(0));
      await Deno.writeFile(`${dir}/a.img`, new Uint8Array(1741 * page).fill(1));
      await lv.storagePoolRefresh(full.pool);
      const fullStatus = async () =>
        (await storageStatus(lv)).find((p) => p.name === full.pool.name)!;
      let st = await fullStatus();
      assert.equal(st.capacity, 2048 * page);
      assert.deepEqual([st.usedPercent, st.warning], [85, false]);
      await Deno.writeFile(`${dir}/b.img`, new Uint8Array(2 * page).fill(1));
      await lv.storagePoolRefresh(full.pool);
      st = await fullStatus();
      assert.deepEqual([st.usedPercent, st.warning], [85.1, true]);
    } finally {
      await roomy.cleanup();
      await full.cleanup();
      await run("umount", [dir]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await lv.close();
    }
  },
});

/** A started dir pool on an existing directory; cleanup keeps the directory. */
async function tempPoolAt(lv: Libvirt, name: string, dir: string) {
  const pool = await lv.storagePoolDefineXml(
    `<pool type='dir'><name>${name}</name><target><path>${dir}</path></target></pool>`,
  );
  await lv.storagePoolCreate(pool);
  return {
    pool,
    async cleanup() {
      for (const v of await lv.storagePoolListAllVolumes(pool)) await lv.storageVolDelete(v);
      await lv.storagePoolDestroy(pool).catch(() => {});
      await lv.storagePoolUndefine(pool).catch(() => {});
    },
  };
}
