import assert from "node:assert/strict";
import { readGraphicsPassword, resolveDiskRef } from "./spec_media.ts";
import { graphicsAddress, graphicsOfDomainXml } from "./graphics_console.ts";

async function secretFile(text: string, mode: number): Promise<{ path: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "h2-secret-" });
  const path = `${dir}/pw`;
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
  return { path, dir };
}

Deno.test("readGraphicsPassword() takes the first line of a 0600 file", async () => {
  const { path, dir } = await secretFile("h2pass\nsecond line\n", 0o600);
  try {
    assert.deepEqual(await readGraphicsPassword(path, "vnc"), { password: "h2pass" });
    await Deno.writeTextFile(path, "no-newline-spice-password-of-40-bytes-xx");
    assert.deepEqual(await readGraphicsPassword(path, "spice"), {
      password: "no-newline-spice-password-of-40-bytes-xx",
    });
    await Deno.writeTextFile(path, "crlf\r\n");
    assert.deepEqual(await readGraphicsPassword(path, "vnc"), { password: "crlf" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readGraphicsPassword() refuses and never repeats the password", async () => {
  const cases: [string, number, "vnc" | "spice", RegExp][] = [
    ["h2open\n", 0o644, "vnc", /accessible by group or others \(mode 0644\); chmod 600 it/],
    ["h2open\n", 0o640, "vnc", /accessible by group or others/],
    ["h2toolongforvnc\n", 0o600, "vnc", /VNC password has at most 8 characters, this one has 15/],
    ["\nh2after-empty\n", 0o600, "spice", /first line is empty/],
    ["h2\tbad\n", 0o600, "spice", /printable ASCII/],
    ["h2é\n", 0o600, "spice", /printable ASCII/],
    ["h2" + "x".repeat(70), 0o600, "spice", /longer than 64 bytes/],
  ];
  for (const [text, mode, type, want] of cases) {
    const { path, dir } = await secretFile(text, mode);
    try {
      const r = await readGraphicsPassword(path, type);
      assert.ok("problem" in r, `${JSON.stringify(text)} refused`);
      assert.match(r.problem, want);
      assert.ok(r.problem.includes(path), "the file is named");
      const secret = text.split("\n").find((l) => l !== "")!;
      assert.ok(!r.problem.includes(secret.slice(0, 6)), "the password is not in the message");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "h2-secret-" });
  try {
    const r = await readGraphicsPassword(dir, "vnc");
    assert.ok("problem" in r && /not a regular file/.test(r.problem));
    const gone = await readGraphicsPassword(`${dir}/missing`, "vnc");
    assert.ok("problem" in gone && /cannot read password file/.test(gone.problem));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveDiskRef() reads pool:volume and absolute paths", () => {
  assert.deepEqual(resolveDiskRef("default:web.qcow2"), {
    kind: "volume",
    pool: "default",
    volume: "web.qcow2",
  });
  assert.deepEqual(resolveDiskRef("/var/lib/libvirt/images/web.qcow2"), {
    kind: "path",
    path: "/var/lib/libvirt/images/web.qcow2",
  });
});

Deno.test("graphicsAddress() shows a wildcard listen address as the host's name", () => {
  const xml = `<domain type='qemu'><name>x</name><devices>
    <graphics type='vnc' port='5901' autoport='yes' listen='0.0.0.0'>
      <listen type='address' address='0.0.0.0'/>
    </graphics>
    <graphics type='spice' port='-1' listen='192.0.2.7'><listen type='address' address='192.0.2.7'/></graphics>
  </devices></domain>`;
  const [vnc, spice] = graphicsOfDomainXml(xml);
  assert.deepEqual(vnc, { type: "vnc", port: 5901, listen: "0.0.0.0" });
  assert.deepEqual(spice, { type: "spice", port: undefined, listen: "192.0.2.7" });
  assert.deepEqual(graphicsAddress({ ...vnc!, port: 5901 }, "host1.example.org"), {
    type: "vnc",
    host: "host1.example.org",
    port: 5901,
    url: "vnc://host1.example.org:5901",
  });
  assert.equal(
    graphicsAddress({ type: "spice", port: 5930, listen: "fd00::7" }, "h").url,
    "spice://[fd00::7]:5930",
  );
  assert.equal(
    graphicsAddress({ type: "vnc", port: 5900, listen: "127.0.0.1" }, "h").url,
    "vnc://127.0.0.1:5900",
  );
  assert.deepEqual(graphicsOfDomainXml("<domain><devices/></domain>"), []);
});
