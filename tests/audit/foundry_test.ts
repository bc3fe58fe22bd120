/**
 * foundry's side of the audit trail: the flags, where the database goes, `withFoundryAudit` around
 * an operation (as foundry's commands call it) and `foundry history [NAME]`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Command } from "npm:commander@^15.1.0";
import { ConfigError } from "../../lib/config/layered.ts";
import { auditSettings, foundryAuditDbPath, withFoundryAudit } from "../../cli/_audit.ts";
import { main } from "../../cli/foundry.ts";
import { foundryProgram } from "../../cli/_foundry_program.ts";
import { type Io, runProgram } from "../../cli/_program.ts";
import { openAuditDb } from "../../lib/audit/mod.ts";
import { dbFileText, tempDb } from "./_helpers.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const HASH =
  "$6$Zm91bmRyeQ$0mH9fVq7s1tC3pR8kLx2yN5bW4eA6dG9jK1lM3nP5qR7sT9uV1wX3yZ5aB7cD9eF1gH3iJ5kL7mN9oP1qR3s";
const KEY_BODY = "AAAAC3NzaC1lZDI1NTE5AAAAIFoundryKeyThatMustNotBeStored00";
const PASSWORD = "Foundry-plain-pw-42";

function capture(): Io & { text: () => { out: string; err: string } } {
  let out = "";
  let err = "";
  return { out: (s) => (out += s), err: (s) => (err += s), text: () => ({ out, err }) };
}

/**
 * foundry's program plus a stand-in for an operation command, wired the way create, destroy,
 * start/stop, image and pool commands are asked to wire themselves.
 */
async function programWithOperation(io: Io): Promise<Command> {
  const program = await foundryProgram(io);
  program.addCommand(
    new Command("fake-op")
      .argument("<verb>")
      .argument("<type>")
      .argument("<name>")
      .option("--fail <message>")
      .action(async (verb: string, type: string, name: string, o: { fail?: string }, cmd) => {
        await withFoundryAudit(
          cmd,
          {
            resourceType: type,
            name,
            uri: "qemu:///system",
            operation: verb,
            details: { vcpus: 2, passwordHash: HASH },
          },
          (op) => {
            op.object({ kind: "volume", name: `${name}-boot.qcow2`, outcome: "created" });
            if (o.fail) throw Object.assign(new Error(o.fail), { name: "LibvirtError" });
          },
          { secrets: [PASSWORD] },
        );
        io.out(`${verb} ${name}: ok\n`);
      }),
  );
  program.exitOverride();
  return program;
}

async function run(args: string[]) {
  const io = capture();
  const code = await runProgram(await programWithOperation(io), args, io);
  return { code, ...io.text() };
}

Deno.test("foundryAuditDbPath(): XDG_DATA_HOME, else ~/.local/share, else a ConfigError", () => {
  assert.equal(
    foundryAuditDbPath({ XDG_DATA_HOME: "/x/data", HOME: "/home/u" }),
    "/x/data/foundry/audit.db",
  );
  assert.equal(foundryAuditDbPath({ HOME: "/home/u" }), "/home/u/.local/share/foundry/audit.db");
  assert.equal(
    foundryAuditDbPath({ XDG_DATA_HOME: "", HOME: "/home/u" }),
    "/home/u/.local/share/foundry/audit.db",
  );
  assert.throws(() => foundryAuditDbPath({}), ConfigError);
});

Deno.test("auditSettings(): flag > FOUNDRY_AUDIT[_DB] > default", async () => {
  let seen: unknown;
  const grab = async (args: string[], env: Record<string, string>) => {
    const program = await foundryProgram(capture());
    program.addCommand(new Command("probe").action((_o, cmd: Command) => {
      seen = auditSettings(cmd, "foundry", env);
    }));
    await program.parseAsync(args, { from: "user" });
    return seen;
  };
  const home = { HOME: "/h" };
  assert.deepEqual(await grab(["probe"], home), {
    enabled: true,
    path: "/h/.local/share/foundry/audit.db",
  });
  assert.deepEqual(
    await grab(["probe"], { ...home, FOUNDRY_AUDIT: "0", FOUNDRY_AUDIT_DB: "/e.db" }),
    {
      enabled: false,
      path: "/e.db",
    },
  );
  assert.deepEqual(
    await grab(["--audit", "--audit-db", "/f.db", "probe"], { ...home, FOUNDRY_AUDIT: "no" }),
    { enabled: true, path: "/f.db" },
  );
  assert.deepEqual(await grab(["probe", "--no-audit"], home), {
    enabled: false,
    path: "/h/.local/share/foundry/audit.db",
  });
});

Deno.test("foundry operations are recorded; history filters by name and type; no secret stored", async () => {
  const t = await tempDb();
  try {
    const db = ["--audit-db", t.path];
    // Keeps the -wal file alive so the secret scan sees it (the last close would checkpoint it).
    const holder = openAuditDb(t.path);
    try {
      assert.equal((await run([...db, "fake-op", "create", "vm", "web-01"])).code, 0);
      assert.equal((await run([...db, "fake-op", "start", "vm", "web-01"])).code, 0);
      assert.equal((await run([...db, "fake-op", "import", "image", "fedora-41"])).code, 0);
      const failed = await run([
        ...db,
        "fake-op",
        "create",
        "vm",
        "db-01",
        "--fail",
        `cloud-init: bad hash ${HASH} for ${PASSWORD}, key ssh-ed25519 ${KEY_BODY} me@h`,
      ]);
      assert.equal(failed.code, 4);
      assert.match(failed.err, /cloud-init: bad hash/);

      const all = capture();
      assert.equal(await main([...db, "history", "-o", "json"], all), 0);
      const entries = JSON.parse(all.text().out) as Any[];
      assert.deepEqual(
        entries.map((e) => [e.operation, e.resourceType, e.resourceName, e.status]),
        [
          ["create", "vm", "db-01", "failed"],
          ["import", "image", "fedora-41", "succeeded"],
          ["start", "vm", "web-01", "succeeded"],
          ["create", "vm", "web-01", "succeeded"],
        ],
      );
      for (const e of entries) {
        assert.equal(e.tool, "foundry");
        assert.equal(e.target, "qemu:///system");
        assert.equal(typeof e.durationMs, "number");
        assert.equal(e.config.passwordHash, "[REDACTED]");
      }
      assert.equal(
        entries[0].errorSummary,
        "cloud-init: bad hash [REDACTED] for [REDACTED], key ssh-ed25519 [REDACTED]",
      );

      const web = capture();
      assert.equal(await main([...db, "history", "WEB-01", "-o", "json"], web), 0);
      assert.deepEqual(JSON.parse(web.text().out).map((e: Any) => e.operation), [
        "start",
        "create",
      ]);
      const images = capture();
      assert.equal(await main([...db, "history", "--type", "image", "-o", "json"], images), 0);
      assert.deepEqual(JSON.parse(images.text().out).map((e: Any) => e.resourceName), [
        "fedora-41",
      ]);
      const one = capture();
      assert.equal(await main([...db, "history", "--limit", "1", "-o", "json"], one), 0);
      assert.equal(JSON.parse(one.text().out).length, 1);

      const table = capture();
      assert.equal(await main([...db, "history"], table), 0);
      const lines = table.text().out.trimEnd().split("\n");
      assert.match(
        lines[0]!,
        /^STARTED \(UTC\)\s+OPERATION\s+TYPE\s+NAME\s+STATUS\s+DURATION\s+URI/,
      );
      assert.equal(lines.length, 5);
      assert.match(lines[1]!, /create\s+vm\s+db-01\s+failed/);

      const bytes = await dbFileText(t.path);
      assert.ok(bytes.includes("cloud-init: bad hash"), "the scan reads the stored error");
      for (const secret of [HASH, PASSWORD, KEY_BODY, "me@h"]) {
        assert.ok(!bytes.includes(secret), `the audit database holds ${secret}`);
      }
    } finally {
      holder.close();
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("--no-audit records nothing; history of a missing database is empty", async () => {
  const t = await tempDb();
  try {
    const r = await run(["--no-audit", "--audit-db", t.path, "fake-op", "stop", "vm", "web-01"]);
    assert.equal(r.code, 0);
    assert.equal(r.out, "stop web-01: ok\n");
    await assert.rejects(Deno.stat(t.path), Deno.errors.NotFound);
    const h = capture();
    assert.equal(await main(["--audit-db", t.path, "history", "-o", "json"], h), 0);
    assert.equal(h.text().out, "[]\n");
    const bad = capture();
    assert.equal(await main(["--audit-db", t.path, "history", "-o", "xml"], bad), 2);
  } finally {
    await t.cleanup();
  }
});

Deno.test("withFoundryAudit() creates $XDG_DATA_HOME/foundry/audit.db by default", async () => {
  const t = await tempDb();
  try {
    const program = await foundryProgram(capture());
    let result: unknown;
    program.addCommand(new Command("probe").action(async (_o, cmd: Command) => {
      result = await withFoundryAudit(
        cmd,
        { resourceType: "pool", name: "foundry-vms", uri: "qemu:///session", operation: "add" },
        () => 42,
        { env: { XDG_DATA_HOME: t.dir } },
      );
    }));
    await program.parseAsync(["probe"], { from: "user" });
    assert.equal(result, 42);
    const path = join(t.dir, "foundry", "audit.db");
    const db = openAuditDb(path);
    const row = db.prepare("SELECT operation, resource_type, status FROM audit_log").get();
    assert.deepEqual({ ...row }, { operation: "add", resource_type: "pool", status: "succeeded" });
    db.close();
  } finally {
    await t.cleanup();
  }
});
