/**
 * Hostile images and hostile servers against `foundry image import|pull` and the real libvirtd:
 * qcow2 files that point outside themselves (an external data file, a backing file) or carry
 * incompatible features we cannot check, sources that are not regular files, URLs that are not
 * http(s), servers that send too much or nothing, and a failure injected before each step of an
 * import or pull. Every case must leave no volume behind. Servers listen on 127.0.0.1 only.
 */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import { IMPORT_STEPS, importImage, type ImportStep, pullImage } from "../../lib/foundry/images.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { requireTool, testNeeding } from "../_require.ts";
import { libvirtSkipReason, libvirtTest, tempPool, uniqueName } from "../libvirt/_env.ts";
import { capture, imagesPool, run } from "./_storage_env.ts";

async function qemuImg(...args: string[]): Promise<string> {
  const r = await run("qemu-img", args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function foundry(flags: string[], ...args: string[]) {
  const c = capture();
  const code = await main([...flags, ...args], c.io);
  return { code, out: c.out(), err: c.err() };
}

/** A raw disk of `size` bytes whose first sector carries the MBR boot signature. */
function bootableRaw(size: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(size);
  b[446 + 4] = 0x83;
  b[510] = 0x55;
  b[511] = 0xaa;
  for (let i = 4096; i < size; i += 65536) b[i] = i & 0xff;
  return b;
}

/** Sets bit `bit` of the qcow2 v3 incompatible-features field (big-endian u64 at offset 72). */
async function setIncompatibleBit(path: string, bit: number): Promise<void> {
  const f = await Deno.open(path, { read: true, write: true });
  try {
    const field = new Uint8Array(8);
    await f.seek(72, Deno.SeekMode.Start);
    assert.equal(await f.read(field), 8);
    const dv = new DataView(field.buffer);
    dv.setBigUint64(0, dv.getBigUint64(0) | (1n << BigInt(bit)));
    await f.seek(72, Deno.SeekMode.Start);
    await f.write(field);
  } finally {
    f.close();
  }
}

/** Resolves with `p`, or rejects once `ms` passed (an overall deadline against hangs). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} still running after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

libvirtTest(
  "image import refuses qcow2 files with an external data file, unknown incompatible features or a backing file",
  async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const env = await imagesPool(lv, "ft-harden");
    try {
      // The data file stands for a host file the image would expose to every VM booted from it.
      const secret = `${env.work}/host-secret.raw`;
      const dataFile = `${env.work}/data.qcow2`;
      await qemuImg("create", "-q", "-f", "qcow2", "-o", `data_file=${secret}`, dataFile, "1M");
      await Deno.writeFile(secret, bootableRaw(1024 * 1024));
      const before = await Deno.readFile(secret);
      // The header extension "DATA" alone, feature bit 2 cleared: qemu refuses such a file too.
      const extOnly = `${env.work}/ext-only.qcow2`;
      await Deno.copyFile(dataFile, extOnly);
      {
        const bytes = await Deno.readFile(extOnly);
        const dv = new DataView(bytes.buffer);
        dv.setBigUint64(72, dv.getBigUint64(72) & ~(1n << 2n));
        await Deno.writeFile(extOnly, bytes);
      }
      const unknown = `${env.work}/unknown.qcow2`;
      await qemuImg("create", "-q", "-f", "qcow2", unknown, "16M");
      await setIncompatibleBit(unknown, 13);
      const high = `${env.work}/high.qcow2`;
      await qemuImg("create", "-q", "-f", "qcow2", high, "16M");
      await setIncompatibleBit(high, 63);
      const corrupt = `${env.work}/corrupt.qcow2`;
      await qemuImg("create", "-q", "-f", "qcow2", corrupt, "16M");
      await setIncompatibleBit(corrupt, 1);
      const base = `${env.work}/base.qcow2`;
      await qemuImg("create", "-q", "-f", "qcow2", base, "16M");
      const overlay = `${env.work}/overlay.qcow2`;
      await qemuImg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay);
      const cases: [string, RegExp][] = [
        [dataFile, /data\.qcow2 uses an external data file; a base image must hold its own data/],
        [extOnly, /ext-only\.qcow2 uses an external data file/],
        [
          unknown,
          /unknown\.qcow2 has incompatible qcow2 features foundry does not know \(bit 13\)/,
        ],
        [high, /high\.qcow2 has incompatible qcow2 features foundry does not know \(bit 63\)/],
        [corrupt, /corrupt\.qcow2 is marked corrupt/],
        [overlay, /overlay\.qcow2 has a backing file; a base image must stand alone/],
      ];
      for (const [path, why] of cases) {
        const name = path.split("/").pop()!;
        const r = await foundry(env.flags, "image", "import", path, name);
        assert.equal(r.code, 5, `${name}: ${r.err}`);
        assert.match(r.err, why);
        assert.equal(r.err.trim().split("\n").length, 1, `one line: ${r.err}`);
        assert.doesNotMatch(r.err, /host-secret/, "the data file's name is not echoed");
      }
      assert.deepEqual(await env.volumes(), [], "nothing created");
      assert.deepEqual(await Deno.readFile(secret), before, "the data file is untouched");

      // A plain qcow2 and a raw image still import.
      const plain = `${env.work}/plain.qcow2`;
      await qemuImg("create", "-q", "-f", "qcow2", plain, "16M");
      let r = await foundry(env.flags, "image", "import", plain, "plain.qcow2");
      assert.equal(r.code, 0, r.err);
      await Deno.writeFile(`${env.work}/disk.raw`, bootableRaw(2 * 1024 * 1024));
      r = await foundry(env.flags, "image", "import", `${env.work}/disk.raw`, "disk.raw");
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(await env.volumes(), [
        "disk.raw",
        "disk.raw.sha256",
        "plain.qcow2",
        "plain.qcow2.sha256",
      ]);
    } finally {
      await env.cleanup();
      await lv.close();
    }
  },
);

libvirtTest(
  "image import refuses a FIFO, a device and a directory as its source without blocking",
  async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const env = await imagesPool(lv, "ft-harden");
    const fifo = `${env.work}/pipe.raw`;
    assert.equal((await run("mkfifo", [fifo])).code, 0);
    const link = `${env.work}/zero.raw`;
    await Deno.symlink("/dev/zero", link);
    const dir = `${env.work}/dir.raw`;
    await Deno.mkdir(dir);
    try {
      const cases: [string, RegExp][] = [
        [fifo, /pipe\.raw is a FIFO \(named pipe\), not a regular file/],
        ["/dev/zero", /\/dev\/zero is a character device, not a regular file/],
        [link, /zero\.raw is a character device, not a regular file/],
        [dir, /dir\.raw is a directory, not a regular file/],
      ];
      for (const [path, why] of cases) {
        const r = await within(
          foundry(env.flags, "image", "import", path, "x.raw"),
          60_000,
          `import of ${path}`,
        ).catch(async (e) => {
          // Old behaviour: blocked in open(2) on the FIFO. Unblock it so the test can end.
          const w = await Deno.open(fifo, { write: true });
          w.close();
          throw e;
        });
        assert.equal(r.code, 5, `${path}: ${r.err}`);
        assert.match(r.err, why);
      }
      assert.equal(await env.exists() ? (await env.volumes()).length : 0, 0, "nothing created");
    } finally {
      await env.cleanup();
      await lv.close();
    }
  },
);

type Mode = "ok" | "silent" | "stall" | "more" | "endless" | "chunked";

/**
 * An HTTP/1.1 server on 127.0.0.1 with misbehaving paths: `/MODE/NAME` serves `body` as
 * `ok` (Content-Length), `chunked` (no length), `silent` (accepts, reads the request, sends
 * nothing), `stall` (headers and half the body, then nothing), `more` (declares the length, sends
 * twice as much) or `endless` (no length, sends until the client goes). `closed` counts connections
 * the client closed.
 */
function hostileServer(body: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const enc = new TextEncoder();
  const open = new Set<Deno.Conn>();
  const state = { closed: 0, requests: 0 };
  const writeAll = async (conn: Deno.Conn, b: Uint8Array) => {
    for (let o = 0; o < b.length;) o += await conn.write(b.subarray(o));
  };
  const handle = async (conn: Deno.Conn) => {
    open.add(conn);
    try {
      const buf = new Uint8Array(8192);
      let req = "";
      while (!req.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        req += new TextDecoder().decode(buf.subarray(0, n));
      }
      state.requests++;
      const mode = (req.split(" ")[1] ?? "/").split("/")[1] as Mode;
      if (mode === "silent" || mode === "stall") {
        if (mode === "stall") {
          await writeAll(
            conn,
            enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`),
          );
          await writeAll(conn, body.subarray(0, body.length >> 1));
        }
        // Wait for the client to give up (read returns null or fails).
        while ((await conn.read(buf)) !== null) { /* ignore */ }
        state.closed++;
        return;
      }
      if (mode === "endless") {
        await writeAll(conn, enc.encode("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"));
        await writeAll(conn, body);
        const zeros = new Uint8Array(256 * 1024);
        while (true) await writeAll(conn, zeros);
      }
      if (mode === "chunked") {
        await writeAll(
          conn,
          enc.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
        );
        await writeAll(conn, enc.encode(`${body.length.toString(16)}\r\n`));
        await writeAll(conn, body);
        await writeAll(conn, enc.encode("\r\n0\r\n\r\n"));
        return;
      }
      await writeAll(
        conn,
        enc.encode(
          `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        ),
      );
      await writeAll(conn, body);
      if (mode === "more") await writeAll(conn, body);
    } catch {
      state.closed++; // the client went away
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) handle(conn);
  })().catch(() => {});
  const { port } = listener.addr as Deno.NetAddr;
  return {
    state,
    url: (p: string) => `http://127.0.0.1:${port}${p}`,
    async close() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}

/** Resolves once `cond()` holds, polling; rejects after a generous overall deadline. */
async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

libvirtTest("image pull accepts only http and https URLs (exit 2, nothing created)", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const env = await imagesPool(lv, "ft-harden");
  try {
    const raw = `${env.work}/disk.raw`;
    await Deno.writeFile(raw, bootableRaw(1024 * 1024));
    for (
      const url of [
        `file://${raw}`,
        "ftp://127.0.0.1/disk.raw",
        "data:application/octet-stream;base64,UUZJ+w==",
        "FILE:///etc/passwd",
        "javascript:alert(1)",
      ]
    ) {
      const r = await foundry(
        env.flags,
        "image",
        "pull",
        url,
        "--name",
        "disk.raw",
        "--insecure-skip-checksum",
      );
      assert.equal(r.code, 2, `${url}: ${r.err}`);
      assert.match(r.err, /^Error: Only http and https URLs can be pulled, got [a-z]+:/, url);
    }
    assert.equal(await env.exists(), false, "not even the images pool was created");
  } finally {
    await env.cleanup();
    await lv.close();
  }
});

libvirtTest(
  "image pull wants --checksum or --insecure-skip-checksum, stops at --max-size and after --idle-timeout",
  async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const env = await imagesPool(lv, "ft-harden");
    const body = bootableRaw(3 * 1024 * 1024);
    const server = hostileServer(body);
    const pull = (...args: string[]) => foundry(env.flags, "image", "pull", ...args);
    try {
      // No checksum and no explicit opt-out: a usage error before anything is fetched.
      let r = await pull(server.url("/ok/disk.raw"));
      assert.equal(r.code, 2, r.err);
      assert.match(
        r.err,
        /--checksum sha256:HEX \(or --insecure-skip-checksum to pull without one\)$/m,
      );
      assert.equal(server.state.requests, 0, "nothing was requested");
      assert.equal(await env.exists(), false);
      r = await pull(server.url("/ok/disk.raw"), "--insecure-skip-checksum");
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(await env.volumes(), ["disk.raw", "disk.raw.sha256"]);

      // A declared length above the cap: refused before any volume exists.
      r = await pull(
        server.url("/ok/big.raw"),
        "--insecure-skip-checksum",
        "--max-size",
        "1M",
      );
      assert.equal(r.code, 5, r.err);
      assert.match(
        r.err,
        /big\.raw is 3145728 bytes, more than the size limit of 1048576 bytes \(--max-size\)$/m,
      );
      // No length and a body that never ends: cut off at the cap, nothing left behind.
      const closedBefore = server.state.closed;
      r = await pull(
        server.url("/endless/endless.raw"),
        "--insecure-skip-checksum",
        "--max-size",
        "8M",
      );
      assert.equal(r.code, 5, r.err);
      assert.match(
        r.err,
        /endless\.raw sent more than the size limit of 8388608 bytes \(--max-size\)$/m,
      );
      await until(() => server.state.closed > closedBefore, "the server to see the client leave");
      // Chunked within the cap is fine; a chunked body above it is cut off.
      r = await pull(
        server.url("/chunked/small.raw"),
        "--insecure-skip-checksum",
        "--max-size",
        "2MiB",
      );
      assert.equal(r.code, 5, r.err);
      assert.match(
        r.err,
        /small\.raw sent more than the size limit of 2097152 bytes \(--max-size\)$/m,
      );
      // More than the declared Content-Length: the client stops at the declared length.
      const sha256 = Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", body)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      r = await pull(server.url("/more/more.raw"), "--checksum", `sha256:${sha256}`, "-o", "json");
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).virtualSize, body.length);
      assert.equal(JSON.parse(r.out).sha256, sha256);

      // A server that accepts and says nothing, and one that stops half-way through the body.
      r = await within(
        pull(server.url("/silent/silent.raw"), "--insecure-skip-checksum", "--idle-timeout", "1"),
        120_000,
        "pull from a silent server",
      );
      assert.equal(r.code, 5, r.err);
      assert.match(
        r.err,
        /No response from http:\/\/127\.0\.0\.1:\d+\/silent\/silent\.raw within the idle timeout of 1 s \(--idle-timeout\)$/m,
      );
      r = await within(
        pull(server.url("/stall/stall.raw"), "--insecure-skip-checksum", "--idle-timeout", "1"),
        120_000,
        "pull from a stalling server",
      );
      assert.equal(r.code, 5, r.err);
      assert.match(
        r.err,
        /No data from http:\/\/127\.0\.0\.1:\d+\/stall\/stall\.raw for 1 s after 1572864 bytes \(--idle-timeout\)$/m,
      );

      // Bad flag values are usage errors.
      for (
        const bad of [
          ["--max-size", "0"],
          ["--max-size", "12Q"],
          ["--idle-timeout", "-1"],
          ["--connect-timeout", "soon"],
        ]
      ) {
        r = await pull(server.url("/ok/x.raw"), "--insecure-skip-checksum", ...bad);
        assert.equal(r.code, 2, `${bad.join(" ")}: ${r.err}`);
        assert.match(r.err, new RegExp(bad[0]!));
      }
      assert.deepEqual(
        await env.volumes(),
        ["disk.raw", "disk.raw.sha256", "more.raw", "more.raw.sha256"],
        "nothing else left",
      );
    } finally {
      await server.close();
      await env.cleanup();
      await lv.close();
    }
  },
);

testNeeding([libvirtSkipReason, requireTool("python3")], {
  name: "image pull gives up on a server that never accepts after --connect-timeout",
  fn: async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const env = await imagesPool(lv, "ft-harden");
    // A listener with a backlog of 0 whose one queue slot we fill: the kernel then drops further
    // connection attempts (SYNs) to it, as a firewall that drops packets would.
    const py = new Deno.Command("python3", {
      args: [
        "-c",
        "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\n" +
        "print(s.getsockname()[1],flush=True)\nsys.stdin.read()",
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const lines = py.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const filler: Deno.Conn[] = [];
    try {
      const port = Number((await lines.read()).value?.trim());
      assert.ok(port > 0);
      filler.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      const r = await within(
        foundry(
          env.flags,
          "image",
          "pull",
          `http://127.0.0.1:${port}/never.raw`,
          "--insecure-skip-checksum",
          "--connect-timeout",
          "1",
        ),
        120_000,
        "pull from a server that never accepts",
      );
      assert.equal(r.code, 5, r.err);
      assert.match(
        r.err,
        /^Error: Cannot connect to http:\/\/127\.0\.0\.1:\d+\/never\.raw within the connect timeout of 1 s \(--connect-timeout\)$/m,
      );
      assert.deepEqual(await env.volumes(), []);
    } finally {
      for (const c of filler) c.close();
      await py.stdin.close();
      await lines.cancel();
      await py.status;
      await env.cleanup();
      await lv.close();
    }
  },
});

libvirtTest(
  "a failure injected before each step of import and pull leaves nothing behind",
  async () => {
    const lv = await Libvirt.connect("qemu:///system");
    const name = uniqueName("ft-inject");
    const pool = await tempPool(lv, name);
    const work = await Deno.makeTempDir({ prefix: "foundry-inject-" });
    const body = bootableRaw(2 * 1024 * 1024);
    const server = hostileServer(body);
    const volumes = async () => {
      await lv.storagePoolRefresh(pool.pool);
      return (await lv.storagePoolListAllVolumes(pool.pool)).map((v) => v.name).sort();
    };
    try {
      const src = `${work}/disk.raw`;
      await Deno.writeFile(src, body);
      assert.ok(IMPORT_STEPS.length >= 5, IMPORT_STEPS.join(", "));
      for (const failAt of IMPORT_STEPS) {
        const beforeStep = (s: ImportStep) => {
          if (s === failAt) throw new Error(`injected failure before ${s}`);
        };
        await assert.rejects(
          importImage(lv, name, src, "disk.raw", { beforeStep }),
          new RegExp(`injected failure before ${failAt}$`),
        );
        assert.deepEqual(await volumes(), [], `import, after failing at ${failAt}`);
        await assert.rejects(
          pullImage(lv, name, server.url("/ok/disk.raw"), {
            beforeStep,
            insecureSkipChecksum: true,
          }),
          new RegExp(`injected failure before ${failAt}$`),
        );
        assert.deepEqual(await volumes(), [], `pull, after failing at ${failAt}`);
      }
      // Without an injected failure both work, so every step above was reached.
      const seen: ImportStep[] = [];
      await importImage(lv, name, src, "disk.raw", { beforeStep: (s) => void seen.push(s) });
      assert.deepEqual(seen, [...IMPORT_STEPS]);
    } finally {
      await server.close();
      await pool.cleanup();
      await Deno.remove(work, { recursive: true });
      await lv.close();
    }
  },
);

libvirtTest("an import whose cleanup fails names the volumes it left behind", async () => {
  const lv = await Libvirt.connect("qemu:///system");
  const name = uniqueName("ft-leftover");
  const pool = await tempPool(lv, name);
  const work = await Deno.makeTempDir({ prefix: "foundry-leftover-" });
  try {
    const src = `${work}/disk.raw`;
    await Deno.writeFile(src, bootableRaw(1024 * 1024));
    // Stopping the pool before the last step makes the failure real and its cleanup fail too.
    await assert.rejects(
      importImage(lv, name, src, "disk.raw", {
        beforeStep: async (s) => {
          if (s !== "verify") return;
          await lv.storagePoolDestroy(pool.pool);
          throw new Error("injected failure before verify");
        },
      }),
      (e: Error) => {
        assert.equal(e.name, "StorageError");
        assert.match(
          e.message,
          /injected failure before verify; cleanup also failed, left behind: /,
        );
        assert.match(e.message, new RegExp(`${name}/disk\\.raw \\(`));
        assert.match(e.message, new RegExp(`${name}/disk\\.raw\\.sha256 \\(`));
        return true;
      },
    );
    // They are really there: the files stay while the pool is stopped.
    await Deno.stat(`${pool.dir}/disk.raw`);
    await Deno.stat(`${pool.dir}/disk.raw.sha256`);
    await lv.storagePoolCreate(pool.pool);
  } finally {
    await pool.cleanup();
    await Deno.remove(work, { recursive: true });
    await lv.close();
  }
});
