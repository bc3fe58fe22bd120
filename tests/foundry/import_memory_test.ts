/**
 * Memory use of a 1 GiB image import, measured in a child process of its own: the peak resident
 * size of the whole test process would count every other test file's threads under --parallel.
 */
import assert from "node:assert/strict";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { libvirtTest, tempPool, uniqueName } from "../libvirt/_env.ts";
import { run } from "./_storage_env.ts";

const CHILD = new URL("./_import_memory.ts", import.meta.url).pathname;

libvirtTest("importing a 1 GiB sparse image keeps memory far below its size", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const pool = await tempPool(lv, uniqueName("ft-mem"));
  const work = await Deno.makeTempDir({ prefix: "foundry-memsrc-" });
  try {
    const size = 2 ** 30;
    const path = `${work}/big.raw`;
    // A sparse raw disk with an MBR boot signature, as an importable image needs.
    assert.equal((await run("truncate", ["-s", String(size), path])).code, 0);
    const f = await Deno.open(path, { write: true });
    await f.seek(510, Deno.SeekMode.Start);
    await f.write(new Uint8Array([0x55, 0xaa]));
    f.close();

    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-net",
        "--allow-env",
        CHILD,
        pool.pool.name,
        path,
        "big.raw",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.equal(child.code, 0, dec.decode(child.stderr));
    const r = JSON.parse(dec.decode(child.stdout).trim().split("\n").at(-1)!);
    const grew = r.peak - r.before;
    console.log(
      `1 GiB import: peak RSS ${(r.peak / 2 ** 20).toFixed(0)} MiB, ` +
        `${(grew / 2 ** 20).toFixed(0)} MiB above the ${
          (r.before / 2 ** 20).toFixed(0)
        } MiB before`,
    );
    assert.equal(r.virtualSize, size);
    const sum = await run("sha256sum", [path]);
    assert.equal(r.sha256, sum.stdout.split(" ")[0]);
    assert.ok(r.samples > 100, `only ${r.samples} memory samples during the import`);
    assert.ok(grew < 128 * 2 ** 20, `RSS grew by ${grew} bytes`);
  } finally {
    await pool.cleanup();
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await lv.close();
  }
});
