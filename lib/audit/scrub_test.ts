import assert from "node:assert/strict";
import { REDACTED, scrubText, scrubValue } from "./scrub.ts";

Deno.test("scrubText() removes the literal secrets it is given, wherever they appear", () => {
  assert.equal(
    scrubText("login as virtwork/hunter2-pw failed (hunter2-pw)", ["hunter2-pw"]),
    `login as virtwork/${REDACTED} failed (${REDACTED})`,
  );
  assert.equal(scrubText("abc", ["abc"]), "abc", "secrets shorter than 4 would shred text");
});

Deno.test("scrubText() recognises password hashes, SSH keys, PEM keys, tokens, URI passwords", () => {
  const hash = "$6$rounds=4096$saltsalt$0123456789abcdefABCDEF/.0123456789abcdef";
  assert.equal(scrubText(`hashed_passwd ${hash} rejected`), `hashed_passwd ${REDACTED} rejected`);
  assert.equal(scrubText("bad $y$j9T$abcdef$ghijkl"), `bad ${REDACTED}`);
  assert.equal(
    scrubText("$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"),
    REDACTED,
  );
  assert.equal(
    scrubText("key ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMvO6Ti4Sc0yH2b0 alice@host is invalid"),
    `key ssh-ed25519 ${REDACTED} is invalid`,
  );
  assert.equal(
    scrubText(
      "a\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\nz",
    ),
    `a\n${REDACTED}\nz`,
  );
  assert.equal(
    scrubText("Authorization: Bearer eyJhbGciOi.J9x"),
    `Authorization: Bearer ${REDACTED}`,
  );
  assert.equal(
    scrubText("cannot reach qemu+ssh://root:s3cret@host/system"),
    `cannot reach qemu+ssh://root:${REDACTED}@host/system`,
  );
  assert.equal(scrubText('password="a b c" user=x'), `password=${REDACTED} user=x`);
  assert.equal(scrubText('{"plain_text_passwd": "pw1"}'), `{"plain_text_passwd": ${REDACTED}}`);
  assert.equal(scrubText("token: abc123, next"), `token: ${REDACTED}, next`);
  assert.equal(scrubText("VM web-1 exists in pool default"), "VM web-1 exists in pool default");
});

Deno.test("scrubValue() redacts values under credential keys and scrubs strings deep down", () => {
  assert.deepEqual(
    scrubValue({
      sshUser: "virtwork",
      sshPassword: "pw",
      sshAuthorizedKeys: ["ssh-rsa AAAA"],
      sshAuthConfigured: true,
      emptyPassword: "",
      nested: { token: "t", note: ["uri qemu+ssh://u:pw@h/system"] },
      count: 3,
    }),
    {
      sshUser: "virtwork",
      sshPassword: REDACTED,
      sshAuthorizedKeys: REDACTED,
      sshAuthConfigured: true,
      emptyPassword: "",
      nested: { token: REDACTED, note: [`uri qemu+ssh://u:${REDACTED}@h/system`] },
      count: 3,
    },
  );
});
