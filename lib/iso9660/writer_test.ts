import assert from "node:assert/strict";
import { requireTool, testNeeding } from "../../tests/_require.ts";
import { BLOCK_SIZE, buildIso, DEFAULT_DATE, type IsoFile, level1Name } from "./writer.ts";

const ISOINFO = requireTool("isoinfo");
const XORRISO = requireTool("xorriso");

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: Uint8Array; err: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: r.code, out: r.stdout, err: new TextDecoder().decode(r.stderr) };
}

function seed(): IsoFile[] {
  return [
    { name: "user-data", data: "#cloud-config\nhostname: web-01\n" },
    { name: "meta-data", data: "instance-id: web-01-0123456789ab\nlocal-hostname: web-01\n" },
    { name: "network-config", data: "version: 2\nethernets: {}\n" },
  ];
}

/** Files that exercise block boundaries: empty, exactly one block, just over, several blocks. */
function awkward(): IsoFile[] {
  const bytes = (n: number, seed: number) =>
    new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);
  return [
    { name: "empty", data: new Uint8Array() },
    { name: "one-block", data: bytes(BLOCK_SIZE, 1) },
    { name: "one-block-and-a-byte", data: bytes(BLOCK_SIZE + 1, 2) },
    { name: "several.bin", data: bytes(5 * BLOCK_SIZE + 17, 3) },
    { name: "Ünïcode name ✓", data: "utf-8 name\n" },
  ];
}

function bytesOf(f: IsoFile): Uint8Array {
  return typeof f.data === "string" ? new TextEncoder().encode(f.data) : f.data;
}

async function withImage(image: Uint8Array, fn: (path: string, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/image.iso`;
    await Deno.writeFile(path, image);
    await fn(path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function text(bytes: Uint8Array, from: number, length: number): string {
  return new TextDecoder().decode(bytes.subarray(from, from + length));
}

Deno.test("buildIso() writes the volume descriptors where ECMA-119 puts them", () => {
  const image = buildIso(seed(), { volumeId: "cidata" });
  assert.equal(image.length % BLOCK_SIZE, 0);
  const pvd = 16 * BLOCK_SIZE;
  assert.equal(image[pvd], 1);
  assert.equal(text(image, pvd + 1, 5), "CD001");
  assert.equal(text(image, pvd + 40, 32), "cidata".padEnd(32, " "));
  const view = new DataView(image.buffer);
  assert.equal(view.getUint32(pvd + 80, true), image.length / BLOCK_SIZE);
  assert.equal(view.getUint32(pvd + 84, false), image.length / BLOCK_SIZE);
  assert.equal(view.getUint16(pvd + 128, true), BLOCK_SIZE);
  assert.equal(text(image, pvd + 813, 16), "2000010100000000");
  const svd = 17 * BLOCK_SIZE;
  assert.equal(image[svd], 2);
  assert.equal(text(image, svd + 88, 3), "%/E");
  assert.equal(image[18 * BLOCK_SIZE], 255);
  assert.ok(image.subarray(0, 16 * BLOCK_SIZE).every((b) => b === 0));
});

/** SUSP entries of a system use area: signature and data. */
function suspEntries(area: Uint8Array): { sig: string; data: Uint8Array }[] {
  const out: { sig: string; data: Uint8Array }[] = [];
  for (let i = 0; i + 4 <= area.length;) {
    const len = area[i + 2] ?? 0;
    if (len < 4) break;
    out.push({ sig: text(area, i, 2), data: area.subarray(i + 4, i + len) });
    i += len;
  }
  return out;
}

Deno.test("the root directory announces Rock Ridge with SP and an ER reached through CE", () => {
  const image = buildIso(seed(), { volumeId: "cidata" });
  const view = new DataView(image.buffer);
  const pvd = 16 * BLOCK_SIZE;
  const rootExtent = view.getUint32(pvd + 156 + 2, true);
  const dot = rootExtent * BLOCK_SIZE;
  const dotLength = image[dot] ?? 0;
  const idLength = image[dot + 32] ?? 0;
  const suStart = dot + 33 + idLength + (idLength % 2 === 0 ? 1 : 0);
  const entries = suspEntries(image.subarray(suStart, dot + dotLength));
  assert.equal(entries[0]?.sig, "SP", "SP must come first");
  assert.deepEqual([...(entries[0]?.data ?? [])], [0xbe, 0xef, 0]);
  const ce = entries.find((e) => e.sig === "CE");
  assert.ok(ce, "root record has a continuation entry");
  const ceView = new DataView(ce.data.buffer, ce.data.byteOffset, ce.data.byteLength);
  const block = ceView.getUint32(0, true);
  const offset = ceView.getUint32(8, true);
  const length = ceView.getUint32(16, true);
  const area = image.subarray(block * BLOCK_SIZE + offset, block * BLOCK_SIZE + offset + length);
  const er = suspEntries(area).find((e) => e.sig === "ER");
  assert.ok(er, "continuation area holds an ER entry");
  const idLen = er.data[0] ?? 0;
  assert.equal(text(er.data, 4, idLen), "RRIP_1991A");
  // Every file record carries its Rock Ridge name.
  const names: string[] = [];
  for (let at = dot + dotLength; image[at] !== 0;) {
    const len = image[at] ?? 0;
    const idLen = image[at + 32] ?? 0;
    const su = image.subarray(at + 33 + idLen + (idLen % 2 === 0 ? 1 : 0), at + len);
    const nm = suspEntries(su).find((e) => e.sig === "NM");
    if (nm) names.push(new TextDecoder().decode(nm.data.subarray(1)));
    at += len;
  }
  assert.deepEqual(names.sort(), ["meta-data", "network-config", "user-data"]);
});

Deno.test("buildIso() is deterministic and independent of the order of files", () => {
  const a = buildIso(seed(), { volumeId: "cidata" });
  assert.deepEqual(buildIso(seed(), { volumeId: "cidata" }), a);
  assert.deepEqual(buildIso([...seed()].reverse(), { volumeId: "cidata" }), a);
  const later = buildIso(seed(), { volumeId: "cidata", date: new Date("2030-06-15T12:34:56Z") });
  assert.notDeepEqual(later, a);
  assert.equal(text(later, 16 * BLOCK_SIZE + 813, 16), "2030061512345600");
  assert.equal(DEFAULT_DATE.toISOString(), "2000-01-01T00:00:00.000Z");
});

Deno.test("buildIso() rejects bad volume IDs and file names", () => {
  assert.throws(() => buildIso([], { volumeId: "" }), RangeError);
  assert.throws(() => buildIso([], { volumeId: "a".repeat(17) }), RangeError);
  assert.throws(() => buildIso([], { volumeId: "cïdata" }), RangeError);
  for (const name of ["", "a/b", ".", "..", "x".repeat(65), "nul\0"]) {
    assert.throws(() => buildIso([{ name, data: "" }], { volumeId: "v" }), RangeError, name);
  }
  assert.throws(
    () => buildIso([{ name: "a", data: "1" }, { name: "a", data: "2" }], { volumeId: "v" }),
    /Duplicate file name "a"/,
  );
});

Deno.test("level1Name() makes unique 8.3 names of d-characters", () => {
  assert.equal(level1Name("user-data"), "USER_DAT.");
  assert.equal(level1Name("network-config"), "NETWORK_.");
  assert.equal(level1Name("archive.tar.gz"), "ARCHIVE_.GZ");
  assert.equal(level1Name(".hidden"), "_HIDDEN.");
  const taken = new Set(["USER_DAT."]);
  assert.equal(level1Name("user-date", taken), "USER_DA1.");
  taken.add("USER_DA1.");
  assert.equal(level1Name("user-datum", taken), "USER_DA2.");
});

testNeeding(ISOINFO, {
  name: "isoinfo reads back the files byte for byte under ISO 9660, Joliet and Rock Ridge names",
  fn: async () => {
    const all = [...seed(), ...awkward()];
    await withImage(buildIso(all, { volumeId: "cidata" }), async (path) => {
      const info = new TextDecoder().decode((await run("isoinfo", ["-d", "-i", path])).out);
      assert.match(info, /Volume id: cidata\n/);
      assert.match(info, /Joliet with UCS level 3 found/);
      assert.match(info, /Rock Ridge signatures version 1 found/);
      for (const [flag, label] of [["-R", "Rock Ridge"], ["-J", "Joliet"]] as const) {
        // This isoinfo converts Joliet names to a single-byte charset only, so Joliet is checked
        // here with ASCII names; the xorriso test covers Unicode Joliet names.
        const files = label === "Joliet" ? all.filter((f) => /^[\x20-\x7e]+$/.test(f.name)) : all;
        const listing = new TextDecoder().decode(
          (await run("isoinfo", [flag, "-f", "-i", path])).out,
        );
        if (label === "Rock Ridge") assert.ok(files.some((f) => f.name.includes("✓")));
        assert.deepEqual(
          listing.trim().split("\n").filter((l) => label !== "Joliet" || /^[\x20-\x7e]+$/.test(l))
            .sort(),
          files.map((f) => `/${f.name}`).sort(),
          label,
        );
        for (const f of files) {
          const r = await run("isoinfo", [flag, "-i", path, "-x", `/${f.name}`]);
          assert.equal(r.code, 0, r.err);
          assert.deepEqual(r.out, bytesOf(f), `${label} ${f.name}`);
        }
      }
      const plain = await run("isoinfo", ["-i", path, "-x", "/USER_DAT.;1"]);
      assert.deepEqual(plain.out, bytesOf(seed()[0]!));
      const modes = new TextDecoder().decode((await run("isoinfo", ["-R", "-l", "-i", path])).out);
      assert.match(modes, /-r--r--r-- +1 +0 +0 +\d+ Jan +1 2000 .* user-data/);
    });
  },
});

testNeeding(XORRISO, {
  name: "xorriso extracts the Rock Ridge and the Joliet tree without complaint",
  fn: async () => {
    const files = [...seed(), ...awkward()];
    await withImage(buildIso(files, { volumeId: "cidata" }), async (path, dir) => {
      for (const tree of ["any", "norock"]) {
        const r = await run("xorriso", [
          "-read_fs",
          tree,
          "-abort_on",
          "FAILURE",
          "-return_with",
          "WARNING",
          "32",
          "-osirrox",
          "on",
          "-indev",
          path,
          "-extract",
          "/",
          `${dir}/${tree}`,
        ]);
        assert.equal(r.code, 0, r.err);
        assert.doesNotMatch(r.err, /WARNING|SORRY|FAILURE/, r.err);
        assert.match(r.err, /Volume id\s*: 'cidata'/);
        for (const f of files) {
          assert.deepEqual(await Deno.readFile(`${dir}/${tree}/${f.name}`), bytesOf(f), f.name);
        }
      }
    });
  },
});

testNeeding(ISOINFO, {
  name: "a root directory larger than one block is packed without splitting records",
  fn: async () => {
    const files = Array.from({ length: 60 }, (_, i) => ({
      name: `a-rather-long-file-name-number-${String(i).padStart(3, "0")}.yaml`,
      data: `file ${i}\n`,
    }));
    await withImage(buildIso(files, { volumeId: "many" }), async (path) => {
      const listing = new TextDecoder().decode(
        (await run("isoinfo", ["-R", "-f", "-i", path])).out,
      );
      assert.equal(listing.trim().split("\n").length, 60);
      for (const i of [0, 29, 59]) {
        const f = files[i]!;
        const r = await run("isoinfo", ["-J", "-i", path, "-x", `/${f.name}`]);
        assert.equal(new TextDecoder().decode(r.out), f.data);
      }
    });
  },
});
