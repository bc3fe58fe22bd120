import assert from "node:assert/strict";
import { parse } from "npm:yaml@^2.9.1";
import { buildCloudConfig, carriesCredentials, type CloudConfigOptions } from "./cloud_config.ts";
import { assertCloudInitSchema } from "../../tests/virtwork/guest_checks.ts";
import { requireTool, testNeeding } from "../../tests/_require.ts";

const noCloudInit = requireTool("cloud-init");

function parsed(opts: CloudConfigOptions): Record<string, unknown> {
  return parse(buildCloudConfig(opts)) ?? {};
}

function firstUser(opts: CloudConfigOptions): Record<string, unknown> {
  const users = parsed(opts).users as Record<string, unknown>[];
  assert.equal(users.length, 1);
  return users[0]!;
}

Deno.test("buildCloudConfig() starts with the exact #cloud-config header line", () => {
  assert.equal(buildCloudConfig({}), "#cloud-config\n{}\n");
  assert.match(buildCloudConfig({ packages: ["fio"] }), /^#cloud-config\n[^\n]/);
});

Deno.test("buildCloudConfig() writes packages, write_files and runcmd", () => {
  const doc = parsed({
    packages: ["fio", "stress-ng"],
    writeFiles: [{ path: "/etc/x.conf", content: "a: 1\n", permissions: "0600" }],
    runcmd: ["echo hi", ["systemctl", "enable", "--now", "x.service"]],
  });
  assert.deepEqual(doc.packages, ["fio", "stress-ng"]);
  assert.deepEqual(doc.write_files, [{
    path: "/etc/x.conf",
    content: "a: 1\n",
    permissions: "0600",
  }]);
  assert.deepEqual(doc.runcmd, ["echo hi", ["systemctl", "enable", "--now", "x.service"]]);
});

Deno.test("buildCloudConfig() omits empty lists and absent fields", () => {
  const doc = parsed({ packages: [], writeFiles: [], runcmd: [], sshUser: "" });
  assert.deepEqual(Object.keys(doc), []);
});

Deno.test("buildCloudConfig() merges extra keys at the top level and rejects managed ones", () => {
  const doc = parsed({ packages: ["fio"], extra: { timezone: "UTC", bootcmd: ["true"] } });
  assert.equal(doc.timezone, "UTC");
  assert.deepEqual(doc.bootcmd, ["true"]);
  assert.throws(() => buildCloudConfig({ extra: { packages: ["x"] } }), TypeError);
});

Deno.test("buildCloudConfig() rejects a relative write_files path", () => {
  assert.throws(
    () => buildCloudConfig({ writeFiles: [{ path: "etc/x", content: "" }] }),
    /must be absolute/,
  );
});

Deno.test("buildCloudConfig() keeps long lines and multi-line content intact", () => {
  const long = "x".repeat(300);
  const content = `[Unit]\nDescription=${long}\n\n[Service]\nExecStart=/bin/true\n`;
  const doc = parsed({ writeFiles: [{ path: "/a", content }], runcmd: [long] });
  assert.equal((doc.write_files as { content: string }[])[0]!.content, content);
  assert.deepEqual(doc.runcmd, [long]);
});

Deno.test("users block: key-only user is locked and gets sudo, bash and keys", () => {
  const keys = ["ssh-ed25519 AAAA1 a@b", "ssh-rsa AAAA2 c@d"];
  const opts = { sshUser: "virtwork", sshAuthorizedKeys: keys };
  const user = firstUser(opts);
  assert.equal(user.name, "virtwork");
  assert.equal(user.sudo, "ALL=(ALL) NOPASSWD:ALL");
  assert.equal(user.shell, "/bin/bash");
  assert.equal(user.lock_passwd, true);
  assert.equal(user.plain_text_passwd, undefined);
  assert.deepEqual(user.ssh_authorized_keys, keys);
  assert.equal(parsed(opts).ssh_pwauth, undefined);
});

Deno.test("users block: a password unlocks the user and enables ssh_pwauth", () => {
  const opts = { sshUser: "virtwork", sshPassword: "s3cret" };
  const user = firstUser(opts);
  assert.equal(user.lock_passwd, false);
  assert.equal(user.plain_text_passwd, "s3cret");
  assert.equal(user.ssh_authorized_keys, undefined);
  assert.equal(parsed(opts).ssh_pwauth, true);
});

Deno.test("users block: password and keys combine; empty key list adds no key entry", () => {
  const both = firstUser({ sshUser: "u", sshPassword: "p", sshAuthorizedKeys: ["ssh-ed25519 K"] });
  assert.equal(both.lock_passwd, false);
  assert.deepEqual(both.ssh_authorized_keys, ["ssh-ed25519 K"]);
  const none = firstUser({ sshUser: "u", sshAuthorizedKeys: [] });
  assert.equal(none.ssh_authorized_keys, undefined);
});

Deno.test("users block: absent when sshUser is empty, even with a password", () => {
  const doc = parsed({ sshPassword: "p", sshAuthorizedKeys: ["k"], packages: ["fio"] });
  assert.equal(doc.users, undefined);
  assert.equal(doc.ssh_pwauth, undefined);
});

const HASH =
  "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdef";

Deno.test("users block: a password hash goes through chpasswd and unlocks the user", () => {
  const doc = parsed({ sshUser: "u", passwordHash: HASH });
  assert.deepEqual(doc.chpasswd, {
    users: [{ name: "u", password: HASH, type: "hash" }],
    expire: false,
  });
  assert.equal(firstUser({ sshUser: "u", passwordHash: HASH }).lock_passwd, false);
  assert.equal(doc.ssh_pwauth, true);
  assert.equal(parsed({ sshUser: "u", passwordHash: HASH, sshPwauth: false }).ssh_pwauth, false);
});

Deno.test("users block: root keeps its account, gets its keys and disable_root: false", () => {
  assert.deepEqual(parsed({ sshUser: "root", sshAuthorizedKeys: ["ssh-ed25519 K"] }), {
    disable_root: false,
    users: [{ name: "root", ssh_authorized_keys: ["ssh-ed25519 K"] }],
  });
  assert.deepEqual(parsed({ sshUser: "root", sshPassword: "p", sshPwauth: false }), {
    disable_root: false,
    users: [{ name: "root" }],
    chpasswd: { users: [{ name: "root", password: "p", type: "text" }], expire: false },
    ssh_pwauth: false,
  });
  assert.throws(() => buildCloudConfig({ extra: { chpasswd: {} } }), TypeError);
});

Deno.test("buildCloudConfig() quotes strings that PyYAML (YAML 1.1) would read as something else", () => {
  const text = buildCloudConfig({ sshUser: "u", sshPassword: "on", extra: { hostname: "12:30" } });
  const doc = parse(text, { version: "1.1" }) as Record<string, unknown>;
  assert.equal((doc.users as Record<string, unknown>[])[0]!.plain_text_passwd, "on");
  assert.equal(doc.hostname, "12:30");
});

Deno.test("carriesCredentials() is true only for a user with a password or keys", () => {
  assert.equal(carriesCredentials({}), false);
  assert.equal(carriesCredentials({ sshUser: "u" }), false);
  assert.equal(carriesCredentials({ sshPassword: "p" }), false);
  assert.equal(carriesCredentials({ sshUser: "u", sshPassword: "p" }), true);
  assert.equal(carriesCredentials({ sshUser: "u", sshAuthorizedKeys: ["k"] }), true);
  assert.equal(carriesCredentials({ sshUser: "root", passwordHash: HASH }), true);
});

testNeeding(noCloudInit, {
  name: "buildCloudConfig() output passes cloud-init schema for every users variant",
  async fn() {
    const base: CloudConfigOptions = {
      packages: ["stress-ng"],
      writeFiles: [{
        path: "/etc/systemd/system/a.service",
        content: "[Unit]\n",
        permissions: "0644",
      }],
      runcmd: [["systemctl", "daemon-reload"], "echo done"],
      extra: { package_update: true },
    };
    const variants: CloudConfigOptions[] = [
      {},
      base,
      { ...base, sshUser: "virtwork" },
      { ...base, sshUser: "virtwork", sshPassword: "pw" },
      { ...base, sshUser: "virtwork", sshAuthorizedKeys: ["ssh-ed25519 AAAA k"] },
      { ...base, sshUser: "virtwork", sshPassword: "pw", sshAuthorizedKeys: ["ssh-rsa AAAA k"] },
      { ...base, sshUser: "virtwork", passwordHash: HASH, sshPwauth: false },
      { sshUser: "root", sshAuthorizedKeys: ["ssh-ed25519 AAAA k"], passwordHash: HASH },
      { sshUser: "root", sshPassword: "pw", sshPwauth: false },
    ];
    for (const v of variants) await assertCloudInitSchema(buildCloudConfig(v));
  },
});

testNeeding(noCloudInit, {
  name: "cloud-init schema check catches an invalid document (the check can fail)",
  async fn() {
    await assert.rejects(
      () =>
        assertCloudInitSchema(
          buildCloudConfig({
            extra: { bootcmd: 5 },
          }),
        ),
      /cloud-init schema rejected/,
    );
  },
});
