import assert from "node:assert/strict";
import { requireTool, testNeeding } from "../../tests/_require.ts";
import { baseImageHeaderBytes, baseImageProblem } from "./image_format.ts";
import {
  parseQcow2Header,
  QCOW2_EXTENSION,
  QCOW2_INCOMPATIBLE,
  qcow2Extensions,
  qcow2HeaderBytes,
  qcow2Problem,
} from "./qcow2.ts";

/** A qcow2 v3 header with 64 KiB clusters and the given extensions, in a 64 KiB first cluster. */
function qcow2(
  opts: { incompatible?: bigint; extensions?: [number, Uint8Array][]; size?: bigint } = {},
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(65536);
  const dv = new DataView(b.buffer);
  b.set([0x51, 0x46, 0x49, 0xfb]);
  dv.setUint32(4, 3);
  dv.setUint32(20, 16);
  dv.setBigUint64(24, opts.size ?? 1n << 30n);
  dv.setBigUint64(72, opts.incompatible ?? 0n);
  dv.setUint32(96, 4);
  dv.setUint32(100, 112);
  let off = 112;
  for (const [type, data] of opts.extensions ?? []) {
    dv.setUint32(off, type);
    dv.setUint32(off + 4, data.length);
    b.set(data, off + 8);
    off += 8 + Math.ceil(data.length / 8) * 8;
  }
  return b;
}

const enc = new TextEncoder();

Deno.test("qcow2Problem() accepts a plain v3 header and reads its fields", () => {
  const h = qcow2();
  assert.equal(qcow2Problem("a.qcow2", h), undefined);
  assert.deepEqual(parseQcow2Header(h), {
    version: 3,
    virtualSize: 2 ** 30,
    hasBackingFile: false,
    encrypted: false,
    clusterBits: 16,
    headerLength: 112,
    incompatibleFeatures: 0n,
  });
  assert.equal(qcow2HeaderBytes(h.subarray(0, 512)), 65536);
  assert.equal(baseImageHeaderBytes(h.subarray(0, 512)), 65536);
  assert.deepEqual(qcow2Extensions(h), []);
});

Deno.test("qcow2Problem() refuses an external data file by feature bit or by extension", () => {
  const why = /^a\.qcow2 uses an external data file; a base image must hold its own data$/;
  assert.match(
    qcow2Problem("a.qcow2", qcow2({ incompatible: 1n << 2n })) ?? "",
    why,
  );
  // The extension anywhere in the first cluster, after a large one, with the bit cleared.
  const h = qcow2({
    extensions: [
      [QCOW2_EXTENSION.FEATURE_NAME_TABLE, new Uint8Array(48 * 200)],
      [QCOW2_EXTENSION.EXTERNAL_DATA_FILE, enc.encode("/etc/shadow")],
    ],
  });
  assert.deepEqual(qcow2Extensions(h), [
    QCOW2_EXTENSION.FEATURE_NAME_TABLE,
    QCOW2_EXTENSION.EXTERNAL_DATA_FILE,
  ]);
  const problem = qcow2Problem("a.qcow2", h) ?? "";
  assert.match(problem, why);
  assert.doesNotMatch(problem, /shadow/, "names inside the image are never quoted");
  // Only the first 512 bytes: the extension sits beyond them, so the header is incomplete.
  assert.match(qcow2Problem("a.qcow2", h.subarray(0, 512)) ?? "", /header extensions are cut/);
});

Deno.test("qcow2Problem() refuses unknown incompatible features, corrupt and dirty images", () => {
  assert.match(
    qcow2Problem("a.qcow2", qcow2({ incompatible: (1n << 5n) | (1n << 63n) })) ?? "",
    /^a\.qcow2 has incompatible qcow2 features foundry does not know \(bit 5, bit 63\)/,
  );
  assert.match(
    qcow2Problem("a.qcow2", qcow2({ incompatible: 1n << BigInt(QCOW2_INCOMPATIBLE.CORRUPT) })) ??
      "",
    /is marked corrupt/,
  );
  assert.match(
    qcow2Problem("a.qcow2", qcow2({ incompatible: 1n << BigInt(QCOW2_INCOMPATIBLE.DIRTY) })) ??
      "",
    /dirty bit set/,
  );
  // Known features that change only how data is stored are fine.
  const known = (1n << BigInt(QCOW2_INCOMPATIBLE.COMPRESSION_TYPE)) |
    (1n << BigInt(QCOW2_INCOMPATIBLE.EXTENDED_L2));
  assert.equal(qcow2Problem("a.qcow2", qcow2({ incompatible: known })), undefined);
});

Deno.test("qcow2Problem() refuses malformed headers and extensions", () => {
  let h = qcow2();
  new DataView(h.buffer).setUint32(20, 30);
  assert.match(qcow2Problem("a.qcow2", h) ?? "", /cluster_bits of 30/);
  h = qcow2();
  new DataView(h.buffer).setUint32(100, 100);
  assert.match(qcow2Problem("a.qcow2", h) ?? "", /header_length of 100/);
  h = qcow2({ extensions: [[0x12345678, new Uint8Array(16)]] });
  new DataView(h.buffer).setUint32(116, 0xffffff00);
  assert.match(qcow2Problem("a.qcow2", h) ?? "", /run past the first cluster/);
  h = qcow2();
  new DataView(h.buffer).setUint32(4, 4);
  assert.match(qcow2Problem("a.qcow2", h) ?? "", /qcow2 version 4; expected 2 or 3/);
  assert.match(qcow2Problem("a.qcow2", qcow2({ size: 0n })) ?? "", /virtual size of 0 bytes/);
  assert.match(qcow2Problem("a.qcow2", h.subarray(0, 40)) ?? "", /cut short/);
  // An unknown extension is ignorable by the specification.
  assert.equal(
    qcow2Problem("a.qcow2", qcow2({ extensions: [[0x12345678, new Uint8Array(5)]] })),
    undefined,
  );
});

Deno.test("baseImageProblem() checks qcow2 headers and leaves raw images alone", () => {
  const raw = new Uint8Array(512);
  raw[510] = 0x55;
  raw[511] = 0xaa;
  assert.equal(baseImageProblem("a.raw", raw), undefined);
  assert.equal(baseImageHeaderBytes(raw), 512);
  assert.match(baseImageProblem("a.raw", qcow2()) ?? "", /named \.raw but holds a qcow2/);
  assert.match(
    baseImageProblem("a.qcow2", qcow2({ incompatible: 1n << 2n })) ?? "",
    /external data file/,
  );
});

async function qemuImg(...args: string[]): Promise<void> {
  const r = await new Deno.Command("qemu-img", { args, stderr: "piped" }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
}

testNeeding(requireTool("qemu-img"), {
  name: "qcow2Problem() refuses what qemu-img makes with a data file or a backing file",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await qemuImg(
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        `data_file=${dir}/d.raw`,
        `${dir}/d`,
        "1M",
      );
      await qemuImg("create", "-q", "-f", "qcow2", `${dir}/b`, "1M");
      await qemuImg("create", "-q", "-f", "qcow2", "-b", `${dir}/b`, "-F", "qcow2", `${dir}/o`);
      await qemuImg("create", "-q", "-f", "qcow2", "-o", "compat=0.10", `${dir}/v2`, "1M");
      const head = async (p: string) => {
        const all = await Deno.readFile(p);
        return all.subarray(0, baseImageHeaderBytes(all.subarray(0, 512)));
      };
      assert.match(qcow2Problem("d", await head(`${dir}/d`)) ?? "", /external data file/);
      assert.match(qcow2Problem("o", await head(`${dir}/o`)) ?? "", /has a backing file/);
      assert.equal(qcow2Problem("b", await head(`${dir}/b`)), undefined);
      assert.equal(qcow2Problem("v2", await head(`${dir}/v2`)), undefined);
      assert.equal(parseQcow2Header(await head(`${dir}/v2`))?.version, 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
