/** The pure parts of exec, cp, logs and ssh: operands, sizes, the guest and ssh command lines. */
import assert from "node:assert/strict";
import { parseCopyEnd, parseSize } from "../../cli/foundry/cp.ts";
import { logsArgv, tailLines } from "../../cli/foundry/logs.ts";
import { shellQuote, sshArgv } from "../../cli/foundry/ssh.ts";
import { secondsFlag } from "../../cli/foundry/exec.ts";

Deno.test("cp operands: NAME:/path is in a VM, anything else is local", () => {
  assert.deepEqual(parseCopyEnd("web-01:/etc/hosts"), { vm: "web-01", path: "/etc/hosts" });
  assert.deepEqual(parseCopyEnd("Web-01:/x"), { vm: "web-01", path: "/x" });
  assert.deepEqual(parseCopyEnd("./a:b"), { local: "./a:b" });
  assert.deepEqual(parseCopyEnd("/tmp/x"), { local: "/tmp/x" });
  assert.throws(() => parseCopyEnd("web-01:relative"), /NAME:\/absolute\/path/);
});

Deno.test("cp --max-size reads K, M, G and refuses nonsense", () => {
  assert.equal(parseSize("256M"), 256 * 2 ** 20);
  assert.equal(parseSize("1G"), 2 ** 30);
  assert.equal(parseSize("512KiB"), 512 * 1024);
  assert.equal(parseSize("1000"), 1000);
  for (const bad of ["", "0", "-1M", "1T", "lots"]) {
    assert.throws(() => parseSize(bad), (e: Error & { exitCode?: number }) => e.exitCode === 2);
  }
});

Deno.test("logs runs journalctl for this boot, or tail of cloud-init's output", () => {
  assert.deepEqual(logsArgv({ cloudInit: false, follow: false }), [
    "journalctl",
    "--no-pager",
    "-b",
  ]);
  assert.deepEqual(logsArgv({ cloudInit: false, follow: true, tail: 20 }), [
    "journalctl",
    "--no-pager",
    "-b",
    "-n",
    "20",
    "-f",
  ]);
  assert.deepEqual(logsArgv({ cloudInit: true, follow: false }), [
    "tail",
    "-n",
    "+1",
    "/var/log/cloud-init-output.log",
  ]);
  assert.deepEqual(logsArgv({ cloudInit: true, follow: true, tail: 5 }), [
    "tail",
    "-n",
    "5",
    "-F",
    "/var/log/cloud-init-output.log",
  ]);
  assert.equal(tailLines("0"), 0);
  assert.throws(() => tailLines("-3"), /--tail/);
  assert.throws(() => tailLines("3.5"), /--tail/);
});

Deno.test("ssh's argv: key, user and options before --, the address and command after", () => {
  assert.deepEqual(
    sshArgv("192.0.2.7", {
      user: "root",
      key: "/k",
      extra: ["-o", "StrictHostKeyChecking=no"],
      command: ["ls", "-l"],
    }),
    ["-i", "/k", "-l", "root", "-o", "StrictHostKeyChecking=no", "--", "192.0.2.7", "ls", "-l"],
  );
  assert.deepEqual(sshArgv("10.0.0.1", { user: "debian" }), ["-l", "debian", "--", "10.0.0.1"]);
  assert.equal(shellQuote("plain/path-1.2"), "plain/path-1.2");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote("a b"), "'a b'");
});

Deno.test("exec --timeout takes seconds > 0 only", () => {
  assert.equal(secondsFlag("--timeout", "1.5"), 1.5);
  for (const bad of ["0", "-1", "", "soon"]) assert.throws(() => secondsFlag("--timeout", bad));
});
