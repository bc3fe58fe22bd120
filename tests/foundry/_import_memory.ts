/**
 * Child process of import_memory_test.ts: imports one image into a pool and prints its resident
 * memory before the import and the most it saw during it (sampled at every progress report), as
 * one JSON line. It runs alone in its own process so that no other test's threads count.
 *
 * Usage: deno run --allow-read --allow-write --allow-net --allow-env _import_memory.ts POOL PATH NAME
 */
import { importImage } from "../../lib/foundry/images.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";

const [pool, path, name] = Deno.args;
if (!pool || !path || !name) throw new Error("usage: _import_memory.ts POOL PATH NAME");
const lv = await Libvirt.connect("qemu:///system");
try {
  const before = Deno.memoryUsage().rss;
  let peak = before;
  let samples = 0;
  const image = await importImage(lv, pool, path, name, {
    onProgress: () => {
      samples++;
      peak = Math.max(peak, Deno.memoryUsage().rss);
    },
  });
  peak = Math.max(peak, Deno.memoryUsage().rss);
  console.log(JSON.stringify({
    before,
    peak,
    samples,
    virtualSize: image.virtualSize,
    sha256: image.sha256,
  }));
} finally {
  await lv.close();
}
