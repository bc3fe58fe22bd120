/**
 * One exit-code table for both executables (cli/_program.ts): lib/'s errors carry data and no exit
 * codes; the CLI maps each class to the code of the design by its name.
 */
import assert from "node:assert/strict";
import { errorText, ExitCode, exitCodeFor } from "../../cli/_program.ts";
import { ConfigError } from "../../lib/config/layered.ts";
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
    [new ConfigError("must be kvm, qemu or auto", "domainType", "--domain-type"), 2],
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

Deno.test("no error class in lib/ declares an exit code or tells the user a flag", async () => {
  const root = new URL("../../lib/", import.meta.url);
  const found: string[] = [];
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(new URL(e.name, dir));
        for (const [i, line] of text.split("\n").entries()) {
          if (/^\s*(\*|\/\/)/.test(line)) continue;
          if (/\bexitCode\s*[:=]\s*\d/.test(line) || /(use|pass) --[a-z]/.test(line)) {
            found.push(`${dir.pathname.slice(root.pathname.length)}${e.name}:${i + 1}`);
          }
        }
      }
    }
  };
  await walk(root);
  assert.deepEqual(found, []);
});
