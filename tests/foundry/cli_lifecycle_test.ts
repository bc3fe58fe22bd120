/** foundry's VM commands end to end through main(), on the real libvirtd. */
import assert from "node:assert/strict";
import { stringify } from "npm:yaml@^2.9.1";
import { main } from "../../cli/foundry.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { foundryFixture, leftovers, testVm, writeConfigFile } from "./_fixture.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

Deno.test("create with invalid YAML exits 2 naming file, line and field, and never connects", async () => {
  const dir = await Deno.makeTempDir();
  const sock = `${dir}/sock`;
  const listener = Deno.listen({ transport: "unix", path: sock });
  let accepted = 0;
  const accepting = (async () => {
    for await (const c of listener) {
      accepted++;
      c.close();
    }
  })().catch(() => {});
  try {
    const file = `${dir}/bad.yaml`;
    await Deno.writeTextFile(
      file,
      "apiVersion: foundry.cofront.xyz/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: bad\nspec:\n  vcpus: 0\n  memoryGiB: 1\n",
    );
    const c = capture();
    const code = await main(["--connect", `qemu:///system?socket=${sock}`, "create", file], c.io);
    assert.equal(code, 2);
    assert.match(
      c.err(),
      new RegExp(
        `${file.replaceAll("/", "\\/")}:6:\\d+ spec\\.vcpus: must be a positive integer, got 0`,
      ),
    );
    assert.equal(accepted, 0, "libvirt was contacted for invalid input");
  } finally {
    listener.close();
    await accepting;
    await Deno.remove(dir, { recursive: true });
  }
});

libvirtTest("foundry create, list, get, stop, start, destroy through the CLI", async () => {
  const fx = await foundryFixture();
  try {
    const cfg = await writeConfigFile(fx);
    const tier = `cli-${crypto.randomUUID().slice(0, 8)}`;
    const vm = testVm(fx, { labels: { tier } });
    const name = vm.metadata.name;
    const file = `${fx.dir}/vm.yaml`;
    await Deno.writeTextFile(
      file,
      stringify({ apiVersion: vm.apiVersion, kind: vm.kind, metadata: vm.metadata, spec: vm.spec }),
    );
    const run = async (...args: string[]) => {
      const c = capture();
      const code = await main(["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, ...args], c.io);
      return { code, out: c.out(), err: c.err() };
    };

    const created = await run("create", file);
    assert.equal(created.code, 0, created.err);
    assert.match(created.out, new RegExp(`Creating VM '${name}'`));
    for (
      const line of [
        "Configuration validated",
        "Storage created",
        "Cloud-init ISO generated",
        "Domain defined",
        "VM started",
      ]
    ) {
      assert.match(created.out, new RegExp(`ok ${line}`));
    }
    assert.match(created.out, new RegExp(`Successfully created VM '${name}'`));

    const table = await run("list", "-l", `tier=${tier}`);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /^NAME\s+STATE\s+VCPUS\s+MEMORY\s+IP ADDRESS/);
    assert.match(
      table.out,
      new RegExp(
        `${name}\\s+running\\s+1\\s+256 MiB\\s+${vm.spec.networkInterfaces[0]!.ip!.split("/")[0]}`,
      ),
    );
    const json = JSON.parse((await run("list", "-o", "json", "-l", `tier=${tier}`)).out);
    assert.deepEqual(json.map((v: { name: string }) => v.name), [name]);

    const got = JSON.parse((await run("get", name, "-o", "json")).out);
    assert.equal(got.status.phase, "Running");
    assert.equal(got.spec.cloudInit.fqdn, `${name}.example.org`);
    const info = await run("vm", "info", name);
    assert.match(info.out, /phase: Running/);

    assert.equal((await run("stop", name, "--force")).code, 0);
    assert.match((await run("get", name)).out, /phase: Stopped/);
    assert.equal((await run("start", name)).code, 0);
    assert.match((await run("get", name)).out, /phase: Running/);

    const destroyed = await run("destroy", name);
    assert.equal(destroyed.code, 0, destroyed.err);
    assert.match(destroyed.out, /Successfully destroyed/);
    assert.deepEqual(await leftovers(fx, name), []);

    // Every operation is in the audit trail, with its outcome, and no secret is.
    const history = JSON.parse((await run("history", name, "-o", "json")).out) as {
      operation: string;
      outcome?: string;
    }[];
    const ops = history.map((h) => h.operation);
    for (const op of ["create", "stop", "start", "destroy"]) {
      assert.ok(ops.includes(op), `no ${op} in ${ops}`);
    }
    const db = new TextDecoder().decode(await Deno.readFile(`${fx.dir}/audit.db`)) +
      await Deno.readTextFile(`${fx.dir}/audit.db-wal`).catch(() => "");
    assert.ok(!db.includes(vm.spec.cloudInit!.passwordHash!), "password hash in the audit db");
    assert.ok(!db.includes("AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9G"), "SSH key in the audit db");

    const missing = await run("destroy", name);
    assert.equal(missing.code, 4);
    assert.match(missing.err, new RegExp(`VM ${name} does not exist`));
    const again = await run("create", file, "--pool", "no-such-pool");
    assert.equal(again.code, 5, again.err);
    assert.deepEqual(await leftovers(fx, name), []);
  } finally {
    await fx.cleanup();
  }
});
