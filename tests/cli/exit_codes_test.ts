/**
 * One exit-code table for both executables (cli/_program.ts): lib/'s errors carry data and no exit
 * codes; the CLI maps each class to the code of the design by its name.
 */
import assert from "node:assert/strict";
import { errorText, ExitCode, exitCodeFor } from "../../cli/_program.ts";
import { ConfigError, FLAG_SOURCE } from "../../lib/config/layered.ts";
import { SettingValidationError } from "../../lib/kubevirt/config.ts";
import { FLAG_SOURCE as CLI_FLAG_SOURCE } from "../../cli/_setting_flags.ts";
import { FOUNDRY_SETTING_FLAGS, withFoundryFlag } from "../../cli/foundry/_config_flags.ts";
import { VIRTWORK_SETTING_FLAGS, withVirtworkFlag } from "../../cli/virtwork/_config_flags.ts";
import { foundryProgram } from "../../cli/_foundry_program.ts";
import { virtworkProgram } from "../../cli/_virtwork_program.ts";
import { main as foundryMain } from "../../cli/foundry.ts";
import { main as virtworkMain } from "../../cli/virtwork.ts";
import { CreateCheckError } from "../../lib/foundry/create_many.ts";
import { ImageRequestError, PullLimitError } from "../../lib/foundry/images.ts";
import { StorageError } from "../../lib/foundry/pools.ts";
import { DestroyIncompleteError, RuntimeCheckError } from "../../lib/foundry/vm.ts";
import { VmNotFoundError, VmOperationError } from "../../lib/foundry/lookup.ts";
import { VmNotRunningError, WaitTimeoutError } from "../../lib/foundry/wait.ts";
import { ConnectionError, InterruptedError, LibvirtError } from "../../lib/libvirt/errors.ts";

const destroyLeft = (domainUndefined: boolean) =>
  new DestroyIncompleteError("destroy stopped", {
    vmName: "web-01",
    domainUndefined,
    volumesDeleted: [],
    volumesLeft: ["foundry-vms/web-01_boot"],
  });

Deno.test("lib errors map to the design's exit codes, and none carries an exit code itself", () => {
  const cases: [Error, number][] = [
    [new CreateCheckError(new Map()), ExitCode.VALIDATION],
    [new RuntimeCheckError("web-01", []), ExitCode.VALIDATION],
    [new ImageRequestError("no checksum"), ExitCode.VALIDATION],
    [new ConfigError("bad"), ExitCode.CONFIG],
    [new ConfigError("must be kvm, qemu or auto", "domainType", FLAG_SOURCE), 2],
    [new ConfigError("must be kvm, qemu or auto", "domainType", "env FOUNDRY_DOMAIN_TYPE"), 1],
    [new VmOperationError("define failed"), ExitCode.VM_OPERATION],
    [new VmNotFoundError("web-01"), ExitCode.VM_OPERATION],
    [destroyLeft(false), ExitCode.VM_OPERATION],
    [destroyLeft(true), ExitCode.STORAGE],
    [new StorageError("pool full"), ExitCode.STORAGE],
    [new InterruptedError("Interrupted by SIGINT"), ExitCode.INTERRUPTED],
    [new Error("anything else"), ExitCode.CONFIG],
  ];
  for (const [err, code] of cases) {
    assert.equal(exitCodeFor(err), code, `${err.name}: ${err.message}`);
    assert.equal("exitCode" in err, false, `${err.name} carries no exit code`);
  }
  // Subclasses are mapped by their own names.
  for (const cls of [WaitTimeoutError, VmNotRunningError]) {
    assert.equal(exitCodeFor(Object.create(cls.prototype, { name: { value: cls.name } })), 4);
  }
  assert.equal(
    exitCodeFor(Object.create(PullLimitError.prototype, { name: { value: "PullLimitError" } })),
    5,
  );
  for (const cls of [ConnectionError, LibvirtError]) {
    const e = Object.create(cls.prototype, { name: { value: cls.name } });
    assert.equal(exitCodeFor(e), cls === ConnectionError ? 3 : 4);
  }
});

Deno.test("errorText(): lib's option hints become flags; lib's messages name none", () => {
  const force = new StorageError("Image base.qcow2 is in use by VM(s) a", {
    hint: { option: "force", effect: "delete it anyway" },
  });
  assert.equal(force.message, "Image base.qcow2 is in use by VM(s) a");
  assert.equal(
    errorText(force),
    "Image base.qcow2 is in use by VM(s) a; use --force to delete it anyway",
  );
  assert.equal(
    errorText(new StorageError("Cannot take an image name from URL", { hint: { option: "name" } })),
    "Cannot take an image name from URL; pass --name",
  );
  assert.equal(errorText(new VmOperationError("define failed")), "define failed");
  assert.equal(errorText("text"), "text");
});

Deno.test("a setting lib/ reports by its key is shown with the flag of the executable", () => {
  assert.equal(CLI_FLAG_SOURCE, FLAG_SOURCE, "cli/ spells lib's flag source as lib does");
  const domainType = new ConfigError(
    'must be one of auto, kvm, qemu, got "xen"',
    "domainType",
    "flag",
  );
  assert.equal(domainType.message, 'flag domainType: must be one of auto, kvm, qemu, got "xen"');
  assert.equal(withFoundryFlag(domainType), domainType);
  assert.equal(domainType.message, '--domain-type: must be one of auto, kvm, qemu, got "xen"');
  assert.equal(exitCodeFor(domainType), ExitCode.VALIDATION);
  const vmCount = new SettingValidationError(
    "vmCount",
    FLAG_SOURCE,
    "must be from 1 to 500, got 0",
  );
  assert.equal(withVirtworkFlag(vmCount).message, "--vm-count: must be from 1 to 500, got 0");
  assert.equal(exitCodeFor(vmCount), ExitCode.VALIDATION);
  // Values from elsewhere keep their source; another executable's keys are not renamed.
  const env = new SettingValidationError("vmCount", "env VIRTWORK_VM_COUNT", "must be ...");
  assert.equal(withVirtworkFlag(env).message, "env VIRTWORK_VM_COUNT: must be ...");
  assert.equal(withFoundryFlag(vmCount).message, "--vm-count: must be from 1 to 500, got 0");
  const other = new ConfigError("must be ...", "vmCount", FLAG_SOURCE);
  assert.equal(withFoundryFlag(other).message, "flag vmCount: must be ...");
});

Deno.test("both executables name a bad flag value by its flag, with exit 2", async () => {
  const run = async (main: typeof foundryMain, args: string[]) => {
    const err: string[] = [];
    const code = await main(args, { out: () => {}, err: (s) => void err.push(s) }, { env: {} });
    return { code, err: err.join("") };
  };
  // list and get run without commander (the front door); stop goes through commander.
  for (const command of [["list"], ["stop", "x"]]) {
    assert.deepEqual(await run(foundryMain, ["--no-audit", "--domain-type", "xen", ...command]), {
      code: 2,
      err: 'Error: --domain-type: must be one of auto, kvm, qemu, got "xen"\n',
    });
  }
  assert.deepEqual(
    await run(virtworkMain, ["run", "--no-audit", "--dry-run", "--vm-count", "0"]),
    { code: 2, err: "Error: --vm-count: must be from 1 to 500, got 0\n" },
  );
  assert.deepEqual(
    await run(virtworkMain, ["cleanup", "--no-audit", "--poll-interval", "0"]),
    { code: 2, err: "Error: --poll-interval: must be from 0.01 to 3600, got 0\n" },
  );
});

Deno.test("each executable's table of setting flags names flags its commands declare", async () => {
  const longs = (cmd: import("npm:commander@^15.1.0").Command) =>
    new Set(cmd.options.flatMap((o) => o.long ? [o.long] : []));
  const foundry = longs(await foundryProgram());
  for (const flag of Object.values(FOUNDRY_SETTING_FLAGS)) {
    assert.ok(foundry.has(flag), `foundry declares ${flag}`);
  }
  const virtwork = await virtworkProgram();
  const declared = new Set([
    ...longs(virtwork),
    ...virtwork.commands.flatMap((c) => [...longs(c)]),
  ]);
  for (const flag of Object.values(VIRTWORK_SETTING_FLAGS)) {
    assert.ok(declared.has(flag), `virtwork declares ${flag}`);
  }
});

/**
 * Strings of lib/ that may hold a flag: none of them is one of ours, and no user reads them as one.
 * A file and flag (`foundry/loader.ts --method`) or a folder (`workloads/`), from lib/, with why.
 */
const FLAGS_ALLOWED_IN_LIB: Record<string, string> = {
  "workloads/": "command lines run inside the guest VMs: stress-ng, systemctl, iperf3, initdb",
  "foundry/loader.ts --method": "names mkpasswd's option, the tool that makes the hash asked for",
  "foundry/host_check.ts --target":
    "names virsh pool-define-as's option, in the command line a failed check suggests running",
};

/** The allowance that lets `flag` stand in a string of `path`, if any. */
function allowance(path: string, flag: string): string | undefined {
  return Object.keys(FLAGS_ALLOWED_IN_LIB).find((k) =>
    k.endsWith("/") ? path.startsWith(k) : k === `${path} ${flag}`
  );
}

/** Comments, string literals and regular expression literals of TypeScript source, in order. */
const TOKEN = new RegExp(
  [
    String.raw`\/\/[^\n]*`,
    String.raw`\/\*[\s\S]*?\*\/`,
    String.raw`"(?:\\.|[^"\\\n])*"`,
    String.raw`'(?:\\.|[^'\\\n])*'`,
    String.raw`\x60(?:\\.|[^\x60\\])*\x60`,
    String
      .raw`(?<=(?:^|[=(,:\[!&|?{};]|return)\s*)\/(?![/*])(?:\\.|\[(?:\\.|[^\]\\\n])*\]|[^/\\\n\[])+\/[a-z]*`,
  ].join("|"),
  "g",
);

/** Flag spellings (`--domain-type`) in the string literals of `text`, with their lines. */
export function flagsInStrings(text: string): { line: number; flag: string }[] {
  const found: { line: number; flag: string }[] = [];
  for (const m of text.matchAll(TOKEN)) {
    if (!/^["'\x60]/.test(m[0])) continue;
    for (const f of m[0].matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) {
      found.push({ line: text.slice(0, m.index + f.index).split("\n").length, flag: f[0] });
    }
  }
  return found;
}

Deno.test("flagsInStrings(): strings count; comments and regular expressions do not", () => {
  const text = [
    "/** Use `--force`. */",
    'const a = "--no-start"; // --x',
    "const b = /--y/; const c = `${a} --vm-pool`;",
    "/* --z */ const d = '-- e';",
  ].join("\n");
  assert.deepEqual(flagsInStrings(text), [
    { line: 2, flag: "--no-start" },
    { line: 3, flag: "--vm-pool" },
  ]);
});

Deno.test("no error class in lib/ declares an exit code or tells the user a flag", async () => {
  const root = new URL("../../lib/", import.meta.url);
  const found: string[] = [];
  const allowedSeen = new Set<string>();
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(new URL(e.name, dir));
        const path = `${dir.pathname.slice(root.pathname.length)}${e.name}`;
        for (const [i, line] of text.split("\n").entries()) {
          if (/^\s*(\*|\/\/)/.test(line)) continue;
          if (/\bexitCode\s*[:=]\s*\d/.test(line) || /(use|pass) --[a-z]/.test(line)) {
            found.push(`${path}:${i + 1}`);
          }
        }
        // Flags are cli/'s: lib/ names a setting by its key, an option by its name (option_hint.ts).
        for (const { line, flag } of flagsInStrings(text)) {
          const allowed = allowance(path, flag);
          if (allowed !== undefined) allowedSeen.add(allowed);
          else found.push(`${path}:${line} ${flag}`);
        }
      }
    }
  };
  await walk(root);
  assert.deepEqual(found, []);
  // An allowance whose string is gone goes too.
  assert.deepEqual([...allowedSeen].sort(), Object.keys(FLAGS_ALLOWED_IN_LIB).sort());
});

Deno.test("SQLite stays behind lib/audit: no other product module names node:sqlite", async () => {
  const root = new URL("../../", import.meta.url);
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const path = `${dir}${e.name}`;
      if (e.isDirectory) {
        if (path !== "lib/audit") await walk(`${path}/`);
      } else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(new URL(path, root));
        if (/["']node:sqlite["']/.test(text)) found.push(path);
      }
    }
  };
  for (const dir of ["cli/", "lib/", "tasks/", "examples/"]) await walk(dir);
  for (const entry of ["mod.ts"]) {
    if (/["']node:sqlite["']/.test(await Deno.readTextFile(new URL(entry, root)))) {
      found.push(entry);
    }
  }
  assert.deepEqual(found, []);
});
