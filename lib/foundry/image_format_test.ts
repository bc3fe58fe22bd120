import assert from "node:assert/strict";
import { requireTool, testNeeding } from "../../tests/_require.ts";
import {
  baseImageHeaderBytes,
  detectImageFormat,
  IMAGE_HEADER_BYTES,
  imageProblem,
  isIso9660,
  ISO_HEADER_BYTES,
} from "./image_format.ts";

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

function isoHeader(): Uint8Array {
  const b = new Uint8Array(ISO_HEADER_BYTES);
  b[32768] = 1;
  b.set(new TextEncoder().encode("CD001"), 32769);
  return b;
}

const QEMU_IMG = requireTool("qemu-img");
const XORRISO = requireTool("xorriso");

Deno.test("detectImageFormat() knows ISO 9660 by CD001 at 32769, even with an MBR (isohybrid)", () => {
  assert.equal(detectImageFormat(isoHeader()), "iso");
  assert.ok(isIso9660(isoHeader()));
  const hybrid = isoHeader();
  hybrid[510] = 0x55;
  hybrid[511] = 0xaa;
  assert.equal(detectImageFormat(hybrid), "iso");
  // One byte short of the identifier's end: not recognised.
  assert.equal(isIso9660(isoHeader().subarray(0, ISO_HEADER_BYTES - 1)), false);
  const off = isoHeader();
  off[32773] = 0x32; // CD002
  assert.equal(detectImageFormat(off), undefined);
});

Deno.test("imageProblem() accepts an ISO only named .iso, and a .iso only if it is one", () => {
  assert.equal(imageProblem("debian-13-netinst.iso", isoHeader()), undefined);
  assert.match(
    imageProblem("disk.iso", mbr()) ?? "",
    /disk\.iso is named \.iso but holds a raw image/,
  );
  assert.match(
    imageProblem("notes.iso", new Uint8Array(ISO_HEADER_BYTES)) ?? "",
    /not an ISO 9660 image: it lacks CD001 at offset 32769/,
  );
  assert.match(imageProblem("x.qcow2", isoHeader()) ?? "", /named \.qcow2 but holds an iso image/);
  assert.equal(baseImageHeaderBytes(new Uint8Array(512), "a.iso"), ISO_HEADER_BYTES);
  assert.equal(baseImageHeaderBytes(mbr(), "a.raw"), IMAGE_HEADER_BYTES);
});

testNeeding(XORRISO, {
  name: "detectImageFormat() recognises an ISO made by xorriso -as mkisofs",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/readme.txt`, "hello\n");
      const r = await new Deno.Command("xorriso", {
        args: ["-as", "mkisofs", "-quiet", "-o", `${dir}/m.iso`, `${dir}/readme.txt`],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.ok(r.success);
      const bytes = await Deno.readFile(`${dir}/m.iso`);
      assert.equal(detectImageFormat(bytes.subarray(0, ISO_HEADER_BYTES)), "iso");
      assert.equal(imageProblem("m.iso", bytes.subarray(0, ISO_HEADER_BYTES)), undefined);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

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
  assert.match(
    imageProblem("debian-12.img", mbr()) ?? "",
    /must end in \.qcow2 or \.raw \(a disk image\) or \.iso/,
  );
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
