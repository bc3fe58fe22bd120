/**
 * `foundry resize` on the shared day-2 guest, while it runs: memory 1 -> 1.5 GiB (within the
 * headroom the guest got from its spec's defaults: 2 GiB) and data disk vdb 1 -> 2 GB with an ext4
 * filesystem on it grown in place, each seen from inside the guest (/proc/meminfo, df) and in the
 * stored spec (`foundry get -o json`). vCPUs 1 -> 2 go to the next boot: the guest is TCG, and
 * QEMU 7.2's TCG aborted this very guest on a live vCPU hot-plug (`tcg_region_initial_alloc__locked:
 * assertion failed`), so foundry does not hot-plug vCPUs into TCG domains; the snapshot step's
 * restart then checks the guest has 2. A smaller disk is refused. The guest is left running; the
 * filesystem is unmounted again.
 */
import assert from "node:assert/strict";
import { type Day2Guest, until } from "./_guest.ts";

const MNT = "/mnt/foundry-resize";
const GIB = 1024 ** 3;

export async function run(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  const memTotalKiB = async () =>
    Number((await guest.sh("grep MemTotal /proc/meminfo")).replace(/[^0-9]/g, ""));
  const nproc = async () => Number(await guest.sh("nproc"));
  // The guest's name for the 1 GB data disk (virtio order is not promised to follow vdb).
  let dev = "";
  let memBefore = 0;
  let dfBefore = 0;

  await t.step("before: 1 vCPU, 1 GiB, an ext4 filesystem on the 1 GB data disk", async () => {
    assert.equal(await nproc(), 1);
    // The guest boots seeing the 2 GiB maximum; its balloon driver then takes it down to 1 GiB,
    // which on a loaded TCG host may still be going on after a restart (snapshot revert).
    memBefore = await until(memTotalKiB, (m) => m <= 1024 * 1024, 600_000);
    assert.ok(memBefore <= 1024 * 1024, `MemTotal ${memBefore} kB`);
    dev = await guest.sh(
      `lsblk -dbnro NAME,SIZE | awk '$2 == ${GIB} && $1 ~ /^vd/ { print $1; exit }'`,
    );
    assert.match(dev, /^vd[a-z]+$/, "the 1 GiB data disk in the guest");
    await guest.sh(
      `umount ${MNT} /dev/${dev} 2>/dev/null; mkfs.ext4 -q -F /dev/${dev} && mkdir -p ${MNT} && ` +
        `mount /dev/${dev} ${MNT} && echo kept > ${MNT}/marker`,
    );
    dfBefore = Number(await guest.sh(`df -B1 --output=size ${MNT} | tail -1`));
    assert.ok(dfBefore > 0.8 * GIB && dfBefore < GIB, `df size ${dfBefore}`);
  });

  await t.step("resize --vcpus 2 --memory 1.5 --disk vdb=2 while running, -o json", async () => {
    const r = await guest.foundry([
      "resize",
      guest.name,
      "--vcpus",
      "2",
      "--memory",
      "1.5",
      "--disk",
      "vdb=2",
      "-o",
      "json",
    ]);
    assert.equal(r.code, 0, r.err);
    const out = JSON.parse(r.out);
    assert.equal(out.running, true);
    const by = (what: string) => out.changes.find((c: { what: string }) => c.what === what);
    assert.deepEqual(
      [by("vcpus").from, by("vcpus").to, by("vcpus").applied],
      [1, 2, "nextBoot"],
    );
    assert.match(by("vcpus").message, /TCG/);
    assert.deepEqual(
      [by("memory").from, by("memory").to, by("memory").applied],
      [1024, 1536, "live"],
    );
    const disk = by("disk");
    assert.deepEqual([disk.device, disk.from, disk.to, disk.applied], [
      "vdb",
      GIB,
      2 * GIB,
      "live",
    ]);
    assert.equal(disk.filesystems.length, 1, JSON.stringify(disk));
    assert.equal(disk.filesystems[0].device, `/dev/${dev}`);
    assert.equal(disk.filesystems[0].mountpoint, MNT);
    assert.equal(disk.filesystems[0].grown, true, JSON.stringify(disk.filesystems[0]));
    assert.deepEqual(out.spec.vcpus, 2);
    assert.deepEqual(out.spec.memoryGiB, 1.5);
  });

  await t.step("the guest sees 512 MiB more memory and a 2 GB filesystem", async () => {
    assert.equal(await nproc(), 1, "vCPUs wait for the next boot");
    // The balloon deflates in steps; MemTotal grows by what it gives back.
    const grown = await until(memTotalKiB, (m) => m - memBefore >= 500 * 1024, 120_000);
    const delta = grown - memBefore;
    assert.ok(delta >= 500 * 1024 && delta <= 524 * 1024, `MemTotal grew by ${delta} kB`);
    const df = Number(await guest.sh(`df -B1 --output=size ${MNT} | tail -1`));
    assert.ok(df > 1.8 * GIB && df < 2 * GIB, `df size ${df} (was ${dfBefore})`);
    assert.equal(await guest.sh(`cat ${MNT}/marker`), "kept");
  });

  await t.step("the stored spec follows: foundry get -o json", async () => {
    const r = await guest.foundry(["get", guest.name, "-o", "json"]);
    assert.equal(r.code, 0, r.err);
    const spec = JSON.parse(r.out).spec;
    assert.equal(spec.vcpus, 2);
    assert.equal(spec.memoryGiB, 1.5);
    assert.equal(
      spec.dataDisks.find((d: { device: string }) => d.device === "vdb").sizeGB,
      2,
    );
  });

  await t.step("a smaller disk is refused (exit 4) and nothing changes", async () => {
    const r = await guest.foundry(["resize", guest.name, "--disk", "vdb=1", "--vcpus", "1"]);
    assert.equal(r.code, 4, r.out + r.err);
    assert.match(r.err, /shrinking a disk is refused/);
    assert.equal(await nproc(), 1);
    const none = await guest.foundry(["resize", guest.name]);
    assert.equal(none.code, 2);
  });

  await t.step("leave the guest as the next steps expect it: filesystem unmounted", async () => {
    await guest.sh(`umount ${MNT} && rmdir ${MNT}`);
  });
}
