/** foundry's entry point called in-process, as scripts and tests use it. */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import denoConfig from "../../deno.json" with { type: "json" };
import { libvirtTest } from "../libvirt/_env.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

Deno.test("foundry --version prints the version from deno.json and exits 0", async () => {
  const c = capture();
  assert.equal(await main(["--version"], c.io), 0);
  assert.equal(c.out().trim(), denoConfig.version);
});

Deno.test("foundry with an unknown command or option exits 2 (usage error)", async () => {
  const c = capture();
  assert.equal(await main(["frobnicate"], c.io), 2);
  assert.match(c.err(), /unknown command 'frobnicate'/);
  assert.equal(await main(["version", "--output", "xml"], capture().io), 2);
});

Deno.test("foundry exits 3 with a one-line reason when libvirtd cannot be reached", async () => {
  const c = capture();
  const code = await main(
    ["--connect", "qemu:///system?socket=/nonexistent/sock", "version"],
    c.io,
  );
  assert.equal(code, 3);
  assert.equal(c.err().trim().split("\n").length, 1);
  assert.match(c.err(), /Cannot connect to \/nonexistent\/sock/);
});

libvirtTest("foundry version -o json reports the daemon's versions", async () => {
  const c = capture();
  assert.equal(await main(["version", "-o", "json"], c.io), 0);
  const info = JSON.parse(c.out());
  assert.equal(info.foundry, denoConfig.version);
  assert.match(info.libvirt, /^\d+\.\d+\.\d+$/);
  assert.equal(info.host, Deno.hostname());
});

Deno.test("the URI comes from --connect, then FOUNDRY_URI, then LIBVIRT_DEFAULT_URI", async () => {
  // The environment is given to main(), never set on the process: other test files run in the
  // same process under --parallel and would connect to these sockets.
  const tryUri = async (env: Record<string, string>, args: string[] = []) => {
    const c = capture();
    await main([...args, "version"], c.io, { env });
    return /Cannot connect to (\S+):/.exec(c.err())?.[1];
  };
  const fromLibvirt = { LIBVIRT_DEFAULT_URI: "qemu:///system?socket=/nonexistent/from-libvirt" };
  const fromBoth = {
    ...fromLibvirt,
    FOUNDRY_URI: "qemu:///system?socket=/nonexistent/from-foundry",
  };
  assert.equal(await tryUri(fromLibvirt), "/nonexistent/from-libvirt");
  assert.equal(await tryUri(fromBoth), "/nonexistent/from-foundry");
  assert.equal(
    await tryUri(fromBoth, ["--connect", "qemu:///system?socket=/nonexistent/from-flag"]),
    "/nonexistent/from-flag",
  );
  const c = capture();
  const env = { FOUNDRY_CONFIG: "/nonexistent/config.yaml" };
  assert.equal(await main(["version"], c.io, { env }), 1, "FOUNDRY_CONFIG from the given env");
  assert.match(c.err(), /Configuration file \/nonexistent\/config\.yaml does not exist/);
});
