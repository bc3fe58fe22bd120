import assert from "node:assert/strict";
import { runTool } from "../../tests/_tools.ts";
import { requireTool, testNeeding } from "../../tests/_require.ts";
import {
  parseSshPublicKey,
  SSH_KEY_MAX_COMMENT_LENGTH,
  SshKeyError,
  sshKeyProblem,
} from "./ssh_key.ts";

/** Real keys made with ssh-keygen (public halves only; the private halves were discarded). */
const KEYS = {
  ed25519: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZKz9W6QyVjphGNCQ9HPN4+I7FDP5bCzwJolwuYBUlN",
  rsa2048: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCeYWiqdYP7ve/godhVOvy8OUIH2aVs6OAYO2q8qEG/" +
    "KPhIH1PUdiBUDPfGtIVkvNo9iG86V6kwLtx3nQembbhHyTRcWLJ4P+l6kSCTlWCNuvVd4hE+JaKmaH0+7Z/FDezQztDQ" +
    "UKmx2A7dL0Wa6x7hHmJgok0L1BToCepNSy2fAPSTszIke3SVzJXK1fu4mZZ5lck1ZcyhOye6gKGJI/fdUA6/uC/pGXok" +
    "oFefDlzdKqjnGoyZCvqjKMXvD6mHSaAAGtexHCX9EiNDzOO0pjwqU1L6+NJ2/DTftA7ZTWlEN/XxFDPKtSmq5YOXmvJR" +
    "MGs64CFVdNB/ij0BoWEwp+s7",
  rsa1024: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDJ7qG8jHmW0tAVipnKo0Xuk+xyQTNERh0EE0kpg+UI" +
    "j6P5n8CtOdBJ+sl3jxBycM942fhECnlnqiuGXiJIg3ew9Bb5f+smhRnT55k4y33XBLW9oqkUVXBbU/tmWE7lengXE+Ja" +
    "qO0h6Ol1CTTRBju2yNtGVTLosJotRV/VzO2RWw==",
  p256: "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEHzvvfQ+f1xJv" +
    "w4cnWHcAobqY4Sd1MMY189bzlhNKjrjT/g8on+EHx8TEl5oksdGFlXoEpL30ZY80MikxW+OOs=",
  p384: "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBP2JDWH1G4g0BP" +
    "6ZCQw2H1oNZPNP//h6qPgOY4ZrcabvB+nEpFVfibWfWPKJM2vU2s+va+duaz6ZdEwmFIqz1tz+zZONwnnyblmwj1ZStz" +
    "evFRyOe8gdkuAx6aJpGhE7hw==",
  p521: "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAHvKC83DF+n0j" +
    "CQgqNy7xIgL2cX8Z8YQjy/qqv5UYa99l4gjCIh07bVCsJS1tkj8Vs5XMFGXZkUH+PHZojgq54tZQAoxy2nNCWFkx7OBf" +
    "UTJPOj3T9ftgrj1WjL63ytwpYd+RGHLWUiIi/D0nF2Zs4Ll2aqPPy9thFb/mYSH+198/YAZQ==",
  dsa: "ssh-dss AAAAB3NzaC1kc3MAAACBAJoXfsuKOe3o3WlZt2sdQJO5wlZSL3C9fvOCSmeC+LWQ0KsJxacegefySgZh" +
    "3xEy+5hJNCIOhId7hAgm+hHuz/sSVNacfq20dL8MFJsZ7kEMdTqySNxGzvgJuKrjMJ6jnHeiHjVaPwOL1qeL8zG2Gu70" +
    "u8h9A/d5E7rOdw30yQyNAAAAFQDIhb5Wmc5Sq0xV23S6giAIi+glmwAAAIAV5OK/JW6Q2hDdlFhxSrIQrqwbkCx3LLXd" +
    "+GClnGdc7vGfjiBEc8YCdoicasDUPQf6tjGIIEfZuOc8nF177IwD546lMQiEID3TrkS0YhfKHAoAS2uAdgaPG4v21Axz" +
    "sm+txzwwZL506DASDkfajVUH+Y9PhA8Jp+KdRrteWf8q1wAAAIEAjauplI30Vpv/GLfYq16d32v/T7wUpGm61DR83wT1" +
    "mayq4CyKZ6iieN3bSE8KvNPNuRgU3jA7lzf7F0RrojekRXc+K42etx+bmk13Hrql0UOBzImKbfhvL41roiEGPD/DfYkM" +
    "dENYy4cbI1OO6CEE9WhgTzHR82RoULxCna5T8oI=",
};

/** SSH wire encoding of strings (RFC 4251), for building blobs ssh-keygen cannot make here. */
function wire(...parts: (string | Uint8Array)[]): string {
  const chunks: number[] = [];
  for (const p of parts) {
    const b = typeof p === "string" ? new TextEncoder().encode(p) : p;
    chunks.push(b.length >>> 24, (b.length >>> 16) & 255, (b.length >>> 8) & 255, b.length & 255);
    chunks.push(...b);
  }
  return btoa(String.fromCharCode(...chunks));
}

function blobOf(line: string): string {
  return line.split(" ")[1]!;
}

function bytesOf(blob: string): Uint8Array {
  return Uint8Array.from(atob(blob), (c) => c.charCodeAt(0));
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

Deno.test("parseSshPublicKey() accepts real keys of every ssh-keygen type, with and without a comment", () => {
  for (const [name, line] of Object.entries(KEYS)) {
    const k = parseSshPublicKey(line);
    assert.equal(k.type, line.split(" ")[0], name);
    assert.equal(k.comment, undefined, name);
    const c = parseSshPublicKey(`  ${line}   alice@laptop  (work)  `);
    assert.equal(c.comment, "alice@laptop (work)", name);
    assert.equal(c.line, `${line} alice@laptop (work)`, name);
  }
});

Deno.test("parseSshPublicKey() accepts well-formed security-key (sk-) keys", () => {
  const ed = wire("sk-ssh-ed25519@openssh.com", new Uint8Array(32).fill(7), "ssh:");
  assert.equal(parseSshPublicKey(`sk-ssh-ed25519@openssh.com ${ed} yubi`).comment, "yubi");
  const point = new Uint8Array(65).fill(9);
  point[0] = 4;
  const ec = wire("sk-ecdsa-sha2-nistp256@openssh.com", "nistp256", point, "ssh:");
  assert.equal(parseSshPublicKey(`sk-ecdsa-sha2-nistp256@openssh.com ${ec}`).blob, ec);
  const noApp = wire("sk-ssh-ed25519@openssh.com", new Uint8Array(32));
  assert.throws(
    () => parseSshPublicKey(`sk-ssh-ed25519@openssh.com ${noApp}`),
    /truncated/,
  );
});

Deno.test("parseSshPublicKey() refuses a truncated blob at every cut point", () => {
  for (const [name, line] of Object.entries(KEYS)) {
    const bytes = bytesOf(blobOf(line));
    for (let cut = 1; cut < bytes.length; cut += Math.max(1, Math.floor(bytes.length / 40))) {
      const short = `${line.split(" ")[0]} ${b64(bytes.subarray(0, cut))}`;
      assert.throws(() => parseSshPublicKey(short), SshKeyError, `${name} cut at ${cut}`);
    }
  }
});

testNeeding(requireTool("ssh-keygen"), {
  name: "ssh-keygen (the real tool) refuses the truncated keys the parser refuses",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const bytes = bytesOf(blobOf(KEYS.ed25519));
      for (const cut of [10, 30, bytes.length - 1]) {
        const line = `ssh-ed25519 ${b64(bytes.subarray(0, cut))}`;
        assert.throws(() => parseSshPublicKey(line), SshKeyError);
        await Deno.writeTextFile(`${dir}/k.pub`, `${line}\n`);
        const r = await runTool("ssh-keygen", ["-l", "-f", `${dir}/k.pub`]);
        assert.notEqual(r.code, 0, `ssh-keygen accepted a key cut at ${cut}`);
      }
      for (const line of Object.values(KEYS)) {
        await Deno.writeTextFile(`${dir}/ok.pub`, `${line}\n`);
        const r = await runTool("ssh-keygen", ["-l", "-f", `${dir}/ok.pub`]);
        assert.equal(r.code, 0, r.stderr);
        parseSshPublicKey(line);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("parseSshPublicKey() refuses trailing bytes, a mismatched embedded type and a wrong curve", () => {
  const bytes = bytesOf(blobOf(KEYS.ed25519));
  const longer = new Uint8Array([...bytes, 0, 0, 0, 0]);
  assert.throws(() => parseSshPublicKey(`ssh-ed25519 ${b64(longer)}`), /trailing bytes/);
  assert.throws(
    () => parseSshPublicKey(`ssh-rsa ${blobOf(KEYS.ed25519)}`),
    /ssh-rsa key whose key data is not a ssh-rsa key/,
  );
  const p384AsP256 = blobOf(KEYS.p384);
  assert.throws(() => parseSshPublicKey(`ecdsa-sha2-nistp256 ${p384AsP256}`), SshKeyError);
  const wrongCurve = wire("ecdsa-sha2-nistp256", "nistp384", new Uint8Array(65).fill(4));
  assert.throws(() => parseSshPublicKey(`ecdsa-sha2-nistp256 ${wrongCurve}`), /not a valid/);
  const shortEd = wire("ssh-ed25519", new Uint8Array(31));
  assert.throws(() => parseSshPublicKey(`ssh-ed25519 ${shortEd}`), /not a valid/);
});

Deno.test("parseSshPublicKey() refuses an RSA modulus under 1024 bits and a negative mpint", () => {
  const n = new Uint8Array(96).fill(0x55); // 767 bits
  const small = wire("ssh-rsa", new Uint8Array([1, 0, 1]), n);
  assert.throws(() => parseSshPublicKey(`ssh-rsa ${small}`), /767 bits, fewer than 1024/);
  const negative = wire("ssh-rsa", new Uint8Array([0x81]), new Uint8Array(129).fill(0x7f));
  assert.throws(() => parseSshPublicKey(`ssh-rsa ${negative}`), /not a valid ssh-rsa key/);
  assert.equal(parseSshPublicKey(KEYS.rsa1024).type, "ssh-rsa");
});

Deno.test("parseSshPublicKey() refuses control characters anywhere: one key never becomes two lines", () => {
  for (
    const bad of [
      `${KEYS.ed25519} a\n${KEYS.rsa2048}`,
      `${KEYS.ed25519}\r\n`,
      `${KEYS.ed25519}\tcomment`,
      `${KEYS.ed25519} bell\u0007`,
      `${KEYS.ed25519} esc\u001b[31m`,
      `${KEYS.ed25519} c1\u0085`,
      `${KEYS.ed25519} sep\u2028x`,
      `${KEYS.ed25519} rtl\u202ex`,
      `\u0000${KEYS.ed25519}`,
    ]
  ) {
    assert.throws(() => parseSshPublicKey(bad), /control character/, JSON.stringify(bad));
  }
});

Deno.test("parseSshPublicKey() refuses what is not a key, and never quotes the key back", () => {
  const cases: [string, RegExp][] = [
    ["", /an empty value/],
    ["   ", /an empty value/],
    ["notakey", /key type that is not one of/],
    ["ssh-ed25519", /without key data/],
    ["ssh-ed25519 AAAA k", /not a ssh-ed25519 key|truncated/],
    ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5!!!", /not base64/],
    ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE", /not base64/],
    [KEYS.p256.replace(/s=$/, "t="), /not base64/], // stray bits in the last character
    ["SSH-ED25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZKz9W6QyVjphGNCQ9HPN4+I7FDP5bCzwJolwuYBUlN", /type/],
    [`ssh-ed25519-cert-v01@openssh.com ${blobOf(KEYS.ed25519)}`, /type/],
    [`${KEYS.ed25519} ${"c".repeat(SSH_KEY_MAX_COMMENT_LENGTH + 1)}`, /comment longer/],
    [`ssh-rsa ${"A".repeat(30000)}`, /longer than/],
  ];
  for (const [input, re] of cases) {
    const problem = sshKeyProblem(input);
    assert.ok(problem !== undefined, `accepted ${JSON.stringify(input.slice(0, 60))}`);
    assert.match(problem, re, JSON.stringify(input.slice(0, 60)));
    assert.ok(!problem.includes("AAAAC3"), "the key material is quoted in the error");
    assert.match(problem, /^must be an OpenSSH public key/);
  }
  assert.equal(sshKeyProblem(`${KEYS.ed25519} me@host`), undefined);
});

Deno.test("parseSshPublicKey() reads authorized_keys options only when allowed, and strictly", () => {
  const line =
    `from="10.0.0.0/8,192.168.1.1",command="echo \\"hi there\\"",no-pty ${KEYS.ed25519} me`;
  assert.match(sshKeyProblem(line) ?? "", /key type that is not one of/);
  const k = parseSshPublicKey(line, { allowOptions: true });
  assert.equal(k.options, 'from="10.0.0.0/8,192.168.1.1",command="echo \\"hi there\\"",no-pty');
  assert.equal(k.type, "ssh-ed25519");
  assert.equal(k.comment, "me");
  assert.equal(
    parseSshPublicKey(`RESTRICT ${KEYS.p256}`, { allowOptions: true }).options,
    "RESTRICT",
  );
  for (
    const bad of [
      `bogus-option ${KEYS.ed25519}`,
      `command=echo ${KEYS.ed25519}`,
      `command="unterminated ${KEYS.ed25519}`,
      `no-pty,,restrict ${KEYS.ed25519}`,
      `no-pty ssh-foo ${blobOf(KEYS.ed25519)}`,
    ]
  ) {
    assert.throws(() => parseSshPublicKey(bad, { allowOptions: true }), SshKeyError, bad);
  }
});
