import assert from "node:assert/strict";
import { requireTool, testNeeding } from "../../tests/_require.ts";
import { detectImageFormat, IMAGE_HEADER_BYTES, imageProblem } from "./image_format.ts";

function mbr(): Uint8Array {
  const b = new Uint8Array(IMAGE_HEADER_BYTES);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

function qcow2Magic(): Uint8Array {
  const b = new Uint8Array(IMAGE_HEADER_BYTES);
  b.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]);
  return b;
}

const QEMU_IMG = requireTool("qemu-img");

Deno.test("detectImageFormat() knows qcow2 by magic and raw by boot signature", () => {
  assert.equal(detectImageFormat(qcow2Magic()), "qcow2");
  assert.equal(detectImageFormat(mbr()), "raw");
  assert.equal(detectImageFormat(new Uint8Array(IMAGE_HEADER_BYTES)), undefined);
  assert.equal(detectImageFormat(new Uint8Array(3)), undefined);
  assert.equal(detectImageFormat(mbr().subarray(0, 511)), undefined);
});

Deno.test("imageProblem() wants a matching extension and a bootable image", () => {
  assert.equal(imageProblem("debian-12.qcow2", qcow2Magic()), undefined);
  assert.equal(imageProblem("debian-12.raw", mbr()), undefined);
  assert.match(imageProblem("debian-12.img", mbr()) ?? "", /must end in \.qcow2 or \.raw/);
  assert.match(imageProblem("debian-12.raw", qcow2Magic()) ?? "", /named \.raw but holds a qcow2/);
  assert.match(imageProblem("debian-12.qcow2", mbr()) ?? "", /named \.qcow2 but holds a raw/);
  assert.match(imageProblem("x.raw", new Uint8Array(512)) ?? "", /not a bootable raw image/);
  assert.match(imageProblem("x.qcow2", new Uint8Array(512)) ?? "", /not a qcow2 image/);
});

testNeeding(QEMU_IMG, {
  name: "detectImageFormat() recognises an image made by qemu-img",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/disk.qcow2`;
      const r = await new Deno.Command("qemu-img", {
        args: ["create", "-q", "-f", "qcow2", path, "16M"],
      }).output();
      assert.ok(r.success);
      const file = await Deno.open(path);
      const header = new Uint8Array(IMAGE_HEADER_BYTES);
      await file.read(header);
      file.close();
      assert.equal(detectImageFormat(header), "qcow2");
      assert.equal(imageProblem("disk.qcow2", header), undefined);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
