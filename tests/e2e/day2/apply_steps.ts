/**
 * `foundry apply` on the shared day-2 guest, after the resize step: the guest's own spec file with
 * the sizes foundry stored (whatever resize left) plans unchanged; then a changed file (memory
 * +256 MiB within the 2 GiB maximum, a new 1 GB data disk with a serial, a new label) is diffed
 * (exit 1), applied while the guest runs, and seen from inside the guest (/proc/meminfo, the disk
 * by its serial) and in the stored spec; the same file again plans unchanged (diff exit 0); a
 * `virsh setmem --live` behind foundry's back is drift (`diff NAME` exits 1, `get` says Drifted)
 * until it is set back. The
 * guest is left running with the new disk attached (unformatted, unmounted); the snapshot step
 * after it counts the pool's volumes from its own start, so the new volume is part of its baseline.
 */
import assert from "node:assert/strict";
import { parse, stringify } from "npm:yaml@^2.9.1";
import { type Day2Guest, until } from "./_guest.ts";

const SERIAL = "h3-apply-vdc";

type Spec = {
  metadata: { labels?: Record<string, string> };
  spec: {
    vcpus: number;
    memoryGiB: number;
    dataDisks?: { device: string; sizeGB: number; serial?: string }[];
  };
};

/** The apply step. */
export async function run(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  const memTotalKiB = async () =>
    Number((await guest.sh("grep MemTotal /proc/meminfo")).replace(/[^0-9]/g, ""));
  const file = `${guest.dir}/apply-${guest.name}.yaml`;
  let doc: Spec = parse(await Deno.readTextFile(guest.specFile)) as Spec;
  let memBefore = 0;

  await t.step("the guest's spec with the sizes foundry stored plans unchanged", async () => {
    const got = await guest.foundry(["get", guest.name, "-o", "json"]);
    assert.equal(got.code, 0, got.err);
    const stored = JSON.parse(got.out).spec as Spec["spec"];
    // Whatever the steps before left (resize: 2 vCPUs for the next boot, 1.5 GiB, vdb 2 GB).
    doc.spec.vcpus = stored.vcpus;
    doc.spec.memoryGiB = stored.memoryGiB;
    doc.spec.dataDisks = stored.dataDisks ?? [];
    await Deno.writeTextFile(file, stringify(doc));
    const r = await guest.foundry(["diff", "-f", file]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, new RegExp(`^= unchanged ${guest.name}`, "m"));
    memBefore = await until(
      memTotalKiB,
      (m) => m <= stored.memoryGiB * 1024 * 1024,
      600_000,
    );
  });

  await t.step("a changed file: diff shows live changes and exits 1", async () => {
    doc = structuredClone(doc);
    doc.spec.memoryGiB += 0.25;
    doc.spec.dataDisks = [...(doc.spec.dataDisks ?? []), {
      device: "vdc",
      sizeGB: 1,
      serial: SERIAL,
    }];
    doc.metadata.labels = { ...doc.metadata.labels, applied: "h3" };
    await Deno.writeTextFile(file, stringify(doc));
    const r = await guest.foundry(["diff", "-f", file]);
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, new RegExp(`^~ update ${guest.name}`, "m"));
    assert.match(r.out, /^ {4}metadata\.labels\.applied: \+ h3 \(live\)$/m);
    assert.match(r.out, /^ {4}spec\.memoryGiB: .* \(live\)$/m);
    assert.match(r.out, /^ {4}spec\.dataDisks\[vdc\]: \+ .* \(live: a new volume .*_data-vdc/m);
  });

  await t.step("apply while running; the guest sees the memory and the disk", async () => {
    const r = await guest.foundry(["apply", "-f", file]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.doesNotMatch(r.out, /no free PCIe slot/, "the disk went in live");
    const grown = await until(memTotalKiB, (m) => m - memBefore >= 250 * 1024, 120_000);
    const delta = grown - memBefore;
    assert.ok(delta >= 250 * 1024 && delta <= 262 * 1024, `MemTotal grew by ${delta} kB`);
    const disk = await until(
      () => guest.sh(`lsblk -dbnro NAME,SIZE,SERIAL | awk '$3 == "${SERIAL}"'`),
      (line) => line !== "",
      60_000,
    );
    assert.match(disk, new RegExp(`^vd[a-z]+ ${1024 ** 3} ${SERIAL}$`), disk);
  });

  await t.step("the stored spec follows; the same file again is unchanged", async () => {
    const got = await guest.foundry(["get", guest.name, "-o", "json"]);
    const vm = JSON.parse(got.out);
    assert.equal(vm.metadata.labels.applied, "h3");
    assert.equal(vm.spec.memoryGiB, doc.spec.memoryGiB);
    assert.ok(
      vm.spec.dataDisks.some((d: { device: string; serial?: string }) =>
        d.device === "vdc" && d.serial === SERIAL
      ),
    );
    const again = await guest.foundry(["apply", "-f", file]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, new RegExp(`^= unchanged ${guest.name}`, "m"));
    assert.equal((await guest.foundry(["diff", "-f", file])).code, 0);
  });

  await t.step("virsh setmem behind foundry's back is drift, until it is set back", async () => {
    const virsh = async (...args: string[]) => {
      const out = await new Deno.Command("virsh", { args, stdout: "piped", stderr: "piped" })
        .output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
    };
    const diff = () => guest.foundry(["diff", guest.name]);
    const drifted = async () => {
      const got = await guest.foundry(["get", guest.name, "-o", "json"]);
      const c = JSON.parse(got.out).status.conditions.find((x: { type: string }) =>
        x.type === "Drifted"
      );
      return c?.status as string;
    };
    const storedKiB = Math.round(doc.spec.memoryGiB * 1024 * 1024);
    await virsh("setmem", guest.name, `${storedKiB - 256 * 1024}`, "--live");
    const seen = await until(diff, (r) => r.code === 1, 60_000);
    assert.equal(seen.code, 1, seen.out + seen.err);
    assert.match(seen.out, /spec\.memoryGiB/);
    assert.equal(await drifted(), "True");
    await virsh("setmem", guest.name, `${storedKiB}`, "--live");
    const back = await until(diff, (r) => r.code === 0, 120_000);
    assert.equal(back.code, 0, back.out + back.err);
    assert.equal(await drifted(), "False");
  });
}
