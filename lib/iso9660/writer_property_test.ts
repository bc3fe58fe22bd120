/**
 * Property-based tests of the ISO 9660 writer: random file sets with valid names are read back
 * unchanged by the real tools (xorriso, isoinfo), the image does not depend on the order of files,
 * and names ISO 9660/Joliet cannot hold are refused with a RangeError, never written.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { BLOCK_SIZE, buildIso, type IsoFile } from "./writer.ts";
import { propertyTests } from "../../tests/_property.ts";
import { requireTool } from "../../tests/_require.ts";

/** Printable ASCII less what Joliet forbids in names (`* / : ; ? \`). */
const ASCII_OK = Array.from({ length: 0x5f }, (_, i) => String.fromCharCode(0x20 + i))
  .filter((c) => !"*/:;?\\".includes(c));

/** One UTF-16 unit of a valid name: mostly ASCII, some of the rest of the BMP, no controls. */
const nameChar = fc.oneof(
  { arbitrary: fc.constantFrom(...ASCII_OK), weight: 6 },
  {
    arbitrary: fc.integer({ min: 0xa0, max: 0xd7ff }).map((c) => String.fromCharCode(c)),
    weight: 1,
  },
  {
    arbitrary: fc.integer({ min: 0xe000, max: 0xfffd }).map((c) => String.fromCharCode(c)),
    weight: 1,
  },
);

const utf8Length = (s: string) => new TextEncoder().encode(s).length;

const validName = fc.oneof(
  fc.string({ unit: nameChar, minLength: 1, maxLength: 64 }),
  // Names that share their 8.3 form, so the writer must number them.
  fc.tuple(fc.constantFrom("user-data", "meta-data", "network-config"), fc.nat(12)).map((
    [base, n],
  ) => `${base}${n === 0 ? "" : n}`),
).filter((n) => n !== "." && n !== ".." && utf8Length(n) <= 128);

const contents = fc.oneof(
  fc.uint8Array({ maxLength: 5000 }),
  fc.string({ maxLength: 200 }),
  fc.constant(new Uint8Array()),
  fc.nat(3).map((k) => new Uint8Array(BLOCK_SIZE * k).fill(k + 1)),
);

const fileSet = fc.uniqueArray(fc.record({ name: validName, data: contents }), {
  minLength: 1,
  maxLength: 6,
  selector: (f) => f.name,
});

/** A name that is not valid: empty, `.`/`..`, too long, or valid with one bad character. */
const invalidName = fc.oneof(
  fc.constantFrom("", ".", ".."),
  fc.string({ unit: nameChar, minLength: 65, maxLength: 90 }),
  fc.integer({ min: 43, max: 64 }).map((n) => "✓".repeat(n)), // 64 characters at most, > 128 bytes
  fc.tuple(
    fc.string({ unit: nameChar, maxLength: 20 }),
    fc.oneof(
      fc.constantFrom("/", "*", ":", ";", "?", "\\", "\0"),
      fc.integer({ min: 0x01, max: 0x1f }).map((c) => String.fromCharCode(c)), // C0 controls
      fc.integer({ min: 0x7f, max: 0x9f }).map((c) => String.fromCharCode(c)), // DEL, C1 controls
      fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), // lone surrogate
      fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)), // beyond UCS-2
    ),
    fc.string({ unit: nameChar, maxLength: 20 }),
  ).map(([a, bad, b]) => a + bad + b),
);

function bytesOf(f: IsoFile): Uint8Array {
  return typeof f.data === "string" ? new TextEncoder().encode(f.data) : f.data;
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: Uint8Array; err: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { LC_ALL: "C.UTF-8" },
  }).output();
  return { code: r.code, out: r.stdout, err: new TextDecoder().decode(r.stderr) };
}

async function readBack(files: readonly IsoFile[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "iso-property-" });
  try {
    const path = `${dir}/image.iso`;
    const image = buildIso(files, { volumeId: "cidata" });
    const view = new DataView(image.buffer);
    assert.equal(view.getUint32(16 * BLOCK_SIZE + 80, true) * BLOCK_SIZE, image.length);
    await Deno.writeFile(path, image);
    // "any" reads Rock Ridge names, "norock" the Joliet tree.
    for (const tree of ["any", "norock"]) {
      const out = `${dir}/${tree}`;
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
        out,
      ]);
      assert.equal(r.code, 0, r.err);
      assert.doesNotMatch(r.err, /WARNING|SORRY|FAILURE/, r.err);
      const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
      assert.deepEqual(names, files.map((f) => f.name).sort(), tree);
      for (const f of files) {
        assert.deepEqual(await Deno.readFile(`${out}/${f.name}`), bytesOf(f), `${tree} ${f.name}`);
      }
    }
    const listing = new TextDecoder().decode((await run("isoinfo", ["-R", "-f", "-i", path])).out);
    assert.deepEqual(
      listing.split("\n").filter((l) => l !== "").sort(),
      files.map((f) => `/${f.name}`).sort(),
      "isoinfo -R",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const READ_BACK = "ISO: xorriso and isoinfo read every file back by its Rock Ridge and Joliet name";

propertyTests(import.meta.url, {
  "ISO: the image does not depend on the order of the files": () => {
    fc.assert(
      fc.property(
        fileSet.chain((fs) =>
          fc.tuple(
            fc.constant(fs),
            fc.shuffledSubarray(fs, {
              minLength: fs.length,
            }),
          )
        ),
        ([files, shuffled]) => {
          const a = buildIso(files, { volumeId: "cidata" });
          const b = buildIso(shuffled, { volumeId: "cidata" });
          // Not deepEqual: its diff of two images takes minutes to print.
          const at = a.findIndex((x, i) => x !== b[i]);
          assert.ok(a.length === b.length && at === -1, `the images differ at byte ${at}`);
        },
      ),
      { seed: 0x150, numRuns: 150 },
    );
  },

  "ISO: a name ISO 9660 or Joliet cannot hold is refused with a RangeError naming it": () => {
    fc.assert(
      fc.property(fileSet, invalidName, fc.nat(), (files, bad, at) => {
        const all = [...files];
        all.splice(at % (all.length + 1), 0, { name: bad, data: "x" });
        assert.throws(
          () => buildIso(all, { volumeId: "cidata" }),
          (e: unknown) => e instanceof RangeError && e.message.includes(JSON.stringify(bad)),
        );
      }),
      { seed: 0xbad150, numRuns: 400 },
    );
  },

  "ISO: any names, IDs and dates build an image or fail with a RangeError": () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ name: fc.string({ unit: "binary", maxLength: 70 }), data: contents }),
          {
            maxLength: 5,
          },
        ),
        fc.string({ unit: "binary", maxLength: 20 }),
        fc.string({ maxLength: 140 }),
        fc.date({ min: new Date(-8e15), max: new Date(8e15) }),
        (files, volumeId, applicationId, date) => {
          try {
            const image = buildIso(files, { volumeId, applicationId, date });
            assert.equal(image.length % BLOCK_SIZE, 0);
          } catch (e) {
            assert.ok(e instanceof RangeError, `buildIso threw ${e}`);
          }
        },
      ),
      { seed: 0xa11, numRuns: 150 },
    );
  },

  [READ_BACK]: async () => {
    await fc.assert(fc.asyncProperty(fileSet, readBack), { seed: 0x9660, numRuns: 8 });
  },
}, { [READ_BACK]: requireTool("xorriso", "isoinfo") });
