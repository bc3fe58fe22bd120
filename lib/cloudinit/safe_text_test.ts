import assert from "node:assert/strict";
import { buildCloudConfig } from "./cloud_config.ts";
import { metaData, networkConfig, type NoCloudConfig, userData } from "./nocloud.ts";
import { assertSafeText, forbiddenCharacter, quoteForTerminal } from "./safe_text.ts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD a@b";

Deno.test("forbiddenCharacter() finds C0, C1, DEL, separators and bidi controls", () => {
  for (const c of ["\0", "\n", "\r", "\t", "\u001b", "\u007f", "\u009b", "\u2028", "\u202e"]) {
    assert.deepEqual(forbiddenCharacter(`ab${c}d`), { index: 2, codePoint: c.charCodeAt(0) });
  }
  assert.equal(forbiddenCharacter("héllo wörld, 日本"), undefined);
  assert.equal(forbiddenCharacter("a\nb\tc", "\n\t"), undefined);
  assert.throws(() => assertSafeText("a\u001bb", "name"), /name contains .* U\+001B/);
  assert.equal(quoteForTerminal("a\u009b\u202eb\n"), '"a\\u009b\\u202eb\\n"');
});

Deno.test("buildCloudConfig() refuses a key with a newline: one key is one authorized_keys line", () => {
  assert.throws(
    () => buildCloudConfig({ sshUser: "root", sshAuthorizedKeys: [`${KEY}\n${KEY}`] }),
    TypeError,
  );
});

Deno.test("buildCloudConfig() refuses control characters in every string it renders", () => {
  const bad: Parameters<typeof buildCloudConfig>[0][] = [
    { packages: ["vim\u001b[2J"] },
    { sshUser: "root\n" },
    { sshUser: "u", sshPassword: "pw\r" },
    { sshUser: "root", passwordHash: "$6$x\n" },
    { writeFiles: [{ path: "/etc/x\n", content: "" }] },
    { writeFiles: [{ path: "/etc/x", content: "a\u001bb" }] },
    { writeFiles: [{ path: "/etc/x", content: "", owner: "root\u0000" }] },
    { runcmd: [["echo", "a\nb"]] },
    { runcmd: ["echo \u0007"] },
    { extra: { hostname: "web\u2028" } },
    { extra: { "bad\nkey": 1 } },
    { extra: { nested: { list: ["ok", "no\u009b"] } } },
  ];
  for (const opts of bad) {
    assert.throws(() => buildCloudConfig(opts), TypeError, JSON.stringify(opts));
  }
});

Deno.test("file contents and shell command strings may hold newlines and tabs", () => {
  const text = buildCloudConfig({
    writeFiles: [{ path: "/etc/x", content: "line 1\n\tline 2\n" }],
    runcmd: ["set -e\necho hi"],
  });
  assert.match(text, /line 1/);
});

Deno.test("the NoCloud documents refuse control characters in names and addresses", () => {
  const good: NoCloudConfig = {
    instanceId: "web-1",
    hostname: "web",
    interfaces: [{ macAddress: "be:ef:c0:00:02:0a", addresses: ["192.0.2.10/24"] }],
  };
  assert.doesNotThrow(() => [userData(good), metaData(good), networkConfig(good)]);
  assert.throws(() => metaData({ ...good, hostname: "web\nx" }), TypeError);
  assert.throws(() => metaData({ ...good, instanceId: "i\u001b" }), TypeError);
  assert.throws(() => userData({ ...good, fqdn: "web.example.org\n" }), TypeError);
  assert.throws(
    () =>
      networkConfig({
        ...good,
        interfaces: [{ ...good.interfaces[0]!, nameservers: ["192.0.2.53\nsearch evil"] }],
      }),
    TypeError,
  );
});
