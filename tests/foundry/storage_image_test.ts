/**
 * `foundry image` against the real libvirtd: imports of images made with qemu-img, rejections, pulls
 * from an HTTP server on 127.0.0.1, and deletion refused while a VM disk uses the image (memory use
 * of a 1 GiB import: import_memory_test.ts). Every test owns its images pool (`--image-pool`,
 * `--storage-path`).
 */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import { baseImageProblem, importImage, parseQcow2Header } from "../../lib/foundry/images.ts";
import { buildVolumeXml } from "../../lib/foundry/storage_xml.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { libvirtTest, tempPool, uniqueName } from "../libvirt/_env.ts";
import { capture, imagesPool, run } from "./_storage_env.ts";

async function sha256sum(path: string): Promise<string> {
  const r = await run("sha256sum", [path]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split(" ")[0]!;
}

async function qemuImg(...args: string[]): Promise<string> {
  const r = await run("qemu-img", args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** A qcow2 image with some data in it, converted by qemu-img from a raw file. */
async function makeQcow2(dir: string, name: string, virtual = "2G"): Promise<string> {
  const raw = `${dir}/${name}.src`;
  const data = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 4096));
  await Deno.writeFile(raw, data);
  await qemuImg("resize", "-q", "-f", "raw", raw, virtual);
  const out = `${dir}/${name}`;
  await qemuImg("convert", "-q", "-f", "raw", "-O", "qcow2", raw, out);
  await Deno.remove(raw);
  return out;
}

/** A raw disk with an MBR boot signature, `size` bytes. */
async function makeBootableRaw(path: string, size: number): Promise<string> {
  await qemuImg("create", "-q", "-f", "raw", path, String(size));
  const f = await Deno.open(path, { write: true });
  await f.seek(446, Deno.SeekMode.Start);
  const mbr = new Uint8Array(66);
  mbr.set([0x00, 0x00, 0x02, 0x00, 0x83], 0); // one partition entry
  mbr[64] = 0x55;
  mbr[65] = 0xaa;
  await f.write(mbr);
  f.close();
  return path;
}

Deno.test("parseQcow2Header() reads the virtual size and flags of a qemu-img image", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = await makeQcow2(dir, "a.qcow2", "5G");
    // The first cluster: header extensions may sit anywhere in it.
    const head = (await Deno.readFile(path)).subarray(0, 65536);
    const info = JSON.parse(await qemuImg("info", "--output=json", path));
    assert.deepEqual(parseQcow2Header(head), {
      version: 3,
      virtualSize: info["virtual-size"],
      hasBackingFile: false,
      encrypted: false,
      clusterBits: 16,
      headerLength: 112,
      incompatibleFeatures: 0n,
    });
    assert.equal(baseImageProblem("a.qcow2", head), undefined);
    await qemuImg("create", "-q", "-f", "qcow2", "-b", path, "-F", "qcow2", `${dir}/o.qcow2`);
    const overlay = (await Deno.readFile(`${dir}/o.qcow2`)).subarray(0, 65536);
    assert.equal(
      baseImageProblem("o.qcow2", overlay),
      "o.qcow2 has a backing file; a base image must stand alone",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

libvirtTest("foundry image import: a qcow2 from qemu-img and a bootable raw disk", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const env = await imagesPool(lv, "ft-images");
  try {
    const qcow2 = await makeQcow2(env.work, "src.qcow2", "2G");
    let c = capture();
    assert.equal(
      await main([...env.flags, "image", "import", qcow2, "fedora-43.qcow2"], c.io),
      0,
      c.err(),
    );
    const want = await sha256sum(qcow2);
    assert.match(c.out(), new RegExp(`Imported fedora-43.qcow2 into pool ${env.pool}: qcow2`));
    assert.match(c.out(), new RegExp(`sha256 ${want}`));
    assert.match(c.err(), /fedora-43\.qcow2 +\S+ MiB in \d+s/, "progress summary on stderr");
    // The images pool was created on first use, where the configuration says.
    const pool = await lv.storagePoolLookupByName(env.pool);
    assert.match(await lv.storagePoolGetXmlDesc(pool), new RegExp(`<path>${env.dir}</path>`));
    // Byte-identical copy, and the checksum kept beside it in sha256sum format.
    assert.equal(await sha256sum(`${env.dir}/fedora-43.qcow2`), want);
    assert.equal(
      await Deno.readTextFile(`${env.dir}/fedora-43.qcow2.sha256`),
      `${want}  fedora-43.qcow2\n`,
    );

    // The import is in the audit trail.
    c = capture();
    assert.equal(
      await main([...env.flags, "history", "-t", "image", "-o", "json"], c.io),
      0,
      c.err(),
    );
    const imports = JSON.parse(c.out()) as {
      operation: string;
      resourceName: string;
      status: string;
    }[];
    assert.ok(
      imports.some((h) =>
        h.operation === "import" && h.resourceName === "fedora-43.qcow2" && h.status === "succeeded"
      ),
      c.out(),
    );

    const raw = await makeBootableRaw(`${env.work}/disk.img`, 8 * 1024 * 1024);
    c = capture();
    assert.equal(await main([...env.flags, "image", "import", raw, "debian-12.raw"], c.io), 0);

    c = capture();
    assert.equal(await main([...env.flags, "image", "list", "-o", "json"], c.io), 0, c.err());
    const info = JSON.parse(await qemuImg("info", "--output=json", qcow2));
    const listed = JSON.parse(c.out());
    assert.deepEqual(
      listed.map((i: Record<string, unknown>) => [i.name, i.format, i.virtualSize, i.users]),
      [
        ["debian-12.raw", "raw", 8 * 1024 * 1024, 0],
        ["fedora-43.qcow2", "qcow2", info["virtual-size"], 0],
      ],
    );
    assert.equal(listed[0].sha256, await sha256sum(raw));
    assert.equal(listed[1].sha256, want);
    c = capture();
    assert.equal(await main([...env.flags, "image", "list"], c.io), 0);
    assert.match(c.out(), /^NAME\s+FORMAT\s+VIRTUAL SIZE\s+ALLOCATION\s+SHA256\s+USED BY\n/);
    assert.match(
      c.out(),
      new RegExp(`fedora-43\\.qcow2\\s+qcow2\\s+2\\.0 GiB.*${want.slice(0, 12)}`),
    );
    assert.doesNotMatch(c.out(), /\.sha256/, "sidecars are not images");

    c = capture();
    assert.equal(await main([...env.flags, "image", "info", "fedora-43.qcow2"], c.io), 0);
    assert.match(c.out(), new RegExp(`Path: +${env.dir}/fedora-43\\.qcow2\n`));
    assert.match(c.out(), new RegExp(`SHA-256: +${want}\n`));

    // The same name again is refused and the existing image is untouched.
    c = capture();
    assert.equal(await main([...env.flags, "image", "import", qcow2, "fedora-43.qcow2"], c.io), 5);
    assert.match(c.err(), /Image fedora-43\.qcow2 exists already in pool/);
    assert.equal(await sha256sum(`${env.dir}/fedora-43.qcow2`), want);
  } finally {
    await env.cleanup();
    await lv.close();
  }
});

libvirtTest(
  "foundry image import rejects non-bootable raw, mismatched names and text",
  async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const env = await imagesPool(lv, "ft-images");
    try {
      const blank = `${env.work}/blank.raw`;
      await qemuImg("create", "-q", "-f", "raw", blank, "1M");
      const qcow2 = await makeQcow2(env.work, "x.qcow2", "1G");
      const text = `${env.work}/notes.txt`;
      await Deno.writeTextFile(text, "just some notes\n".repeat(100));
      const raw = await makeBootableRaw(`${env.work}/boot.img`, 1024 * 1024);
      const cases: [string, string, RegExp][] = [
        [
          blank,
          "blank.raw",
          /blank\.raw is not a bootable raw image: it has no boot signature 55 aa/,
        ],
        [qcow2, "x.raw", /x\.raw is named \.raw but holds a qcow2 image/],
        [raw, "boot.qcow2", /boot\.qcow2 is named \.qcow2 but holds a raw image/],
        [text, "notes.qcow2", /notes\.qcow2 is not a qcow2 image: it lacks the QFI\\xfb magic/],
        [text, "notes", /notes must end in \.qcow2 or \.raw/],
        [`${env.work}/missing.qcow2`, "m.qcow2", /Cannot read .*missing\.qcow2: /],
      ];
      for (const [path, name, why] of cases) {
        const c = capture();
        assert.equal(await main([...env.flags, "image", "import", path, name], c.io), 5, name);
        assert.match(c.err(), why);
        assert.equal(c.err().trim().split("\n").length, 1, "one line");
      }
      assert.deepEqual(await env.volumes(), [], "nothing created");
    } finally {
      await env.cleanup();
      await lv.close();
    }
  },
);

/**
 * A tiny HTTP/1.1 server on 127.0.0.1 serving files by path; `/cut/NAME` declares the full length
 * but closes after half the body, and anything else is a 404.
 */
function serve(files: Map<string, Uint8Array>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const enc = new TextEncoder();
  const handle = async (conn: Deno.Conn) => {
    try {
      const buf = new Uint8Array(8192);
      let req = "";
      while (!req.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        req += new TextDecoder().decode(buf.subarray(0, n));
      }
      const path = req.split(" ")[1] ?? "/";
      const cut = path.startsWith("/cut/");
      const chunked = path.startsWith("/chunked/");
      const body = files.get(cut ? path.slice(4) : chunked ? path.slice(8) : path);
      if (body === undefined) {
        await conn.write(enc.encode("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
        return;
      }
      if (chunked) {
        // No Content-Length: the size is known only at the end.
        await conn.write(
          enc.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
        );
        for (let off = 0; off < body.length; off += 100_000) {
          const part = body.subarray(off, off + 100_000);
          await conn.write(enc.encode(`${part.length.toString(16)}\r\n`));
          for (let o = 0; o < part.length;) o += await conn.write(part.subarray(o));
          await conn.write(enc.encode("\r\n"));
        }
        await conn.write(enc.encode("0\r\n\r\n"));
        return;
      }
      await conn.write(
        enc.encode(
          `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n` +
            `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        ),
      );
      const send = cut ? body.subarray(0, body.length >> 1) : body;
      for (let off = 0; off < send.length;) off += await conn.write(send.subarray(off));
    } catch {
      /* client went away */
    } finally {
      conn.close();
    }
  };
  const loop = (async () => {
    for await (const conn of listener) handle(conn);
  })().catch(() => {});
  const { port } = listener.addr as Deno.NetAddr;
  return {
    url: (p: string) => `http://127.0.0.1:${port}${p}`,
    async close() {
      listener.close();
      await loop;
    },
  };
}

libvirtTest("foundry image pull: checksums, a body cut short and HTTP errors", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const env = await imagesPool(lv, "ft-images");
  const path = await makeQcow2(env.work, "cloud.qcow2", "3G");
  const bytes = await Deno.readFile(path);
  const server = serve(new Map([["/images/cloud.qcow2", bytes]]));
  try {
    const sha256 = await sha256sum(path);
    const sha512 = (await run("sha512sum", [path])).stdout.split(" ")[0]!;
    const pull = async (...args: string[]) => {
      const c = capture();
      // A pull without --checksum must say so (image_hardening_test.ts tests that it must).
      if (!args.includes("--checksum")) args.push("--insecure-skip-checksum");
      const code = await main([...env.flags, "image", "pull", ...args], c.io);
      return { code, out: c.out(), err: c.err() };
    };

    // A wrong checksum: exit 5 with both digests, nothing left behind.
    const bad = `sha256:${"0".repeat(64)}`;
    let r = await pull(server.url("/images/cloud.qcow2"), "--checksum", bad);
    assert.equal(r.code, 5);
    assert.match(r.err, new RegExp(`Checksum mismatch .*expected ${bad}, got sha256:${sha256}`));
    assert.deepEqual(await env.volumes(), []);

    // A body cut short: exit 5, nothing left behind.
    r = await pull(server.url("/cut/images/cloud.qcow2"), "--name", "cut.qcow2");
    assert.equal(r.code, 5);
    assert.match(r.err, /Error: (Download of .* failed|.* ended after \d+ of \d+ bytes)/);
    assert.deepEqual(await env.volumes(), []);

    // HTTP errors: exit 5 before anything is created.
    r = await pull(server.url("/nope.qcow2"));
    assert.equal(r.code, 5);
    assert.match(
      r.err,
      /Cannot download http:\/\/127\.0\.0\.1:\d+\/nope\.qcow2: HTTP 404 Not Found/,
    );
    assert.deepEqual(await env.volumes(), []);

    // Credentials and query strings never reach the messages, whatever fails.
    r = await pull(server.url("/nope.qcow2?token=s3cret").replace("//", "//user:hunter2@"));
    assert.equal(r.code, 5);
    assert.doesNotMatch(r.err, /s3cret|hunter2/);
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (closed.addr as Deno.NetAddr).port;
    closed.close();
    r = await pull(`http://user:hunter2@127.0.0.1:${closedPort}/a.qcow2?token=s3cret`, "-v");
    assert.equal(r.code, 5);
    assert.match(r.err, /Cannot download http:\/\/127\.0\.0\.1:\d+\/a\.qcow2\?…: /);
    assert.doesNotMatch(r.err, /s3cret|hunter2/);
    assert.deepEqual(await env.volumes(), []);

    // The good checksum, sha512 and sha256; the name defaults to the URL's file name.
    r = await pull(server.url("/images/cloud.qcow2"), "--checksum", `sha512:${sha512}`);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`Pulled cloud\\.qcow2 into pool .*sha256 ${sha256}`));
    r = await pull(
      server.url("/images/cloud.qcow2"),
      "--name",
      "copy.qcow2",
      "--checksum",
      `sha256:${sha256.toUpperCase()}`,
      "-o",
      "json",
    );
    assert.equal(r.code, 0, r.err);
    const info = JSON.parse(await qemuImg("info", "--output=json", path));
    const pulled = JSON.parse(r.out);
    assert.equal(pulled.virtualSize, info["virtual-size"]);
    assert.equal(pulled.sha256, sha256);
    assert.equal(await sha256sum(`${env.dir}/copy.qcow2`), sha256);
    // Without Content-Length (chunked): the volume grows as the data comes.
    r = await pull(
      server.url("/chunked/images/cloud.qcow2"),
      "--name",
      "chunked.qcow2",
      "-o",
      "json",
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).virtualSize, info["virtual-size"]);
    assert.equal(await sha256sum(`${env.dir}/chunked.qcow2`), sha256);
    assert.deepEqual(await env.volumes(), [
      "chunked.qcow2",
      "chunked.qcow2.sha256",
      "cloud.qcow2",
      "cloud.qcow2.sha256",
      "copy.qcow2",
      "copy.qcow2.sha256",
    ]);

    r = await pull(server.url("/images/cloud.qcow2"), "--checksum", "md5:abc");
    assert.equal(r.code, 2);
    assert.match(
      r.err,
      /Invalid --checksum: a checksum must be sha256:HEX or sha512:HEX, got "md5:abc"/,
    );
    r = await pull(server.url("/images/cloud.qcow2"), "--checksum", "sha256:abc");
    assert.equal(r.code, 2);
    assert.match(r.err, /Invalid --checksum: a sha256 checksum has 64 hex digits, got 3/);
  } finally {
    await server.close();
    await env.cleanup();
    await lv.close();
  }
});

libvirtTest("foundry image delete is refused while a VM disk uses the image", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const env = await imagesPool(lv, "ft-images");
  const vms = await tempPool(lv, uniqueName("ft-vms"));
  const vmName = uniqueName("ft-vm");
  let domain: Awaited<ReturnType<Libvirt["domainDefineXml"]>> | undefined;
  try {
    const src = await makeQcow2(env.work, "base.qcow2", "1G");
    let c = capture();
    assert.equal(await main([...env.flags, "image", "import", src, "base.qcow2"], c.io), 0);
    const imagePath = `${env.dir}/base.qcow2`;
    const overlay = await lv.storageVolCreateXml(
      vms.pool,
      buildVolumeXml({
        role: "boot",
        name: `${vmName}_boot`,
        pool: vms.pool.name,
        capacityBytes: 2 ** 31,
        format: "qcow2",
        device: "vda",
        overlay: true,
      }, { path: imagePath, format: "qcow2" }),
    );
    const overlayPath = await lv.storageVolGetPath(overlay);
    domain = await lv.domainDefineXml(
      `<domain type='qemu'><name>${vmName}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>` +
        `<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>` +
        `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>` +
        `<source file='${overlayPath}'/><target dev='vda' bus='virtio'/></disk>` +
        `<memballoon model='none'/></devices></domain>`,
    );

    // A second VM boots from the image itself (a volume-type disk naming pool and volume).
    const direct = await lv.domainDefineXml(
      `<domain type='qemu'><name>${vmName}-ro</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>` +
        `<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>` +
        `<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>` +
        `<source pool='${env.pool}' volume='base.qcow2'/><target dev='vda' bus='virtio'/>` +
        `<readonly/></disk><memballoon model='none'/></devices></domain>`,
    );
    try {
      c = capture();
      assert.equal(await main([...env.flags, "image", "delete", "base.qcow2"], c.io), 5);
      assert.equal(
        c.err(),
        `Error: Image base.qcow2 is in use by VM(s) ${vmName}, ${vmName}-ro; ` +
          `use --force to delete it anyway\n`,
      );
      c = capture();
      assert.equal(
        await main([...env.flags, "image", "info", "base.qcow2", "-o", "json"], c.io),
        0,
      );
      assert.deepEqual(JSON.parse(c.out()).usedBy, [
        { volume: `${vms.pool.name}/${vmName}_boot`, path: overlayPath, vm: vmName },
        { volume: null, path: imagePath, vm: `${vmName}-ro` },
      ]);
      c = capture();
      assert.equal(await main([...env.flags, "image", "info", "base.qcow2"], c.io), 0);
      assert.match(c.out(), /Used by: +2 disk\(s\)\n/);
      assert.match(c.out(), new RegExp(`${vmName}-ro +\\(the image itself\\) +${imagePath}`));
      c = capture();
      assert.equal(await main([...env.flags, "image", "list", "-o", "json"], c.io), 0);
      assert.equal(JSON.parse(c.out())[0].users, 2);
    } finally {
      await lv.domainUndefine(direct);
    }

    // Without the VM the overlay still needs its base.
    await lv.domainUndefine(domain);
    domain = undefined;
    c = capture();
    assert.equal(await main([...env.flags, "image", "delete", "base.qcow2"], c.io), 5);
    assert.match(c.err(), new RegExp(`in use by volume\\(s\\) ${vms.pool.name}/${vmName}_boot;`));
    assert.deepEqual(await env.volumes(), ["base.qcow2", "base.qcow2.sha256"]);

    c = capture();
    assert.equal(await main([...env.flags, "image", "delete", "base.qcow2", "--force"], c.io), 0);
    assert.match(c.err(), /Warning: .*_boot lost its base image/);
    assert.deepEqual(await env.volumes(), [], "image and checksum gone");

    c = capture();
    assert.equal(await main([...env.flags, "image", "delete", "base.qcow2"], c.io), 5);
    assert.match(c.err(), /Image base\.qcow2 does not exist in pool/);
  } finally {
    if (domain) await lv.domainUndefine(domain).catch(() => {});
    await vms.cleanup();
    await env.cleanup();
    await lv.close();
  }
});

libvirtTest("an import interrupted half-way (Ctrl-C) leaves no volume behind", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const env = await imagesPool(lv, "ft-images");
  const pool = await tempPool(lv, env.pool);
  try {
    const path = await makeBootableRaw(`${env.work}/disk.raw`, 64 * 2 ** 20);
    const ac = new AbortController();
    let seen = 0;
    await assert.rejects(
      importImage(lv, env.pool, path, "disk.raw", {
        signal: ac.signal,
        onProgress: (n) => {
          seen = n;
          if (n >= 8 * 2 ** 20) ac.abort();
        },
      }),
      (e: Error) => e.name === "StorageError" && /Import of disk\.raw interrupted/.test(e.message),
    );
    assert.ok(seen >= 8 * 2 ** 20 && seen < 64 * 2 ** 20, `aborted after ${seen} bytes`);
    assert.deepEqual(await env.volumes(), []);
  } finally {
    await pool.cleanup();
    await env.cleanup();
    await lv.close();
  }
});
