/**
 * Keeps credentials out of the audit trail: error text and settings pass through here before they
 * are stored. Known secrets (the password and keys of a run) are removed wherever they appear;
 * password hashes, SSH public keys, PEM private keys, bearer tokens, URI passwords and
 * `password=…`-style pairs are recognised by shape.
 * @module
 */

/** What replaces a secret. */
export const REDACTED = "[REDACTED]";

const PATTERNS: readonly [RegExp, string][] = [
  // PEM private keys, whole.
  [
    /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g,
    REDACTED,
  ],
  // crypt(3) hashes: $1$, $2b$, $5$, $6$, $y$, $gy$, $7$, $argon2id$, …
  [
    /\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5|argon2(?:id|i|d)?|scrypt|pbkdf2(?:-sha\d+)?)\$[^\s"',;]+/g,
    REDACTED,
  ],
  // OpenSSH public keys: keep the type, drop the key body and comment.
  [
    /\b((?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com))\s+[A-Za-z0-9+/]{16,}={0,3}(?:[ \t]+[^\s"',;]+)?/g,
    `$1 ${REDACTED}`,
  ],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // user:password@ in URIs.
  [/(\/\/[^/\s:@]+):[^/\s@]+@/g, `$1:${REDACTED}@`],
  // password=…, "token": "…", plain_text_passwd: …
  [
    /\b([\w-]*(?:passw(?:or)?d|passwd|secret|token|api[_-]?key|private[_-]?key|credentials?)[\w-]*)("?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;}]+)/gi,
    `$1$2${REDACTED}`,
  ],
];

/**
 * `text` without credentials: each of `secrets` (literal strings, e.g. the run's password and
 * keys) and everything that looks like a credential is replaced by {@linkcode REDACTED}.
 */
export function scrubText(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= 4) out = out.split(s).join(REDACTED);
  }
  for (const [re, to] of PATTERNS) out = out.replace(re, to);
  return out;
}

const SECRET_KEY =
  /passw(?:or)?d|passwd|secret|token|api[_-]?key|private[_-]?key|credential|^(?:ssh)?[_-]?(?:authorized)?[_-]?keys?$|authorizedkeys|sshkeys?/i;

/**
 * A deep copy of `value` fit to store: values under keys that name credentials (`password`,
 * `sshAuthorizedKeys`, `token`, …) become {@linkcode REDACTED}, strings are scrubbed.
 */
export function scrubValue(value: unknown, secrets: readonly string[] = []): unknown {
  if (typeof value === "string") return scrubText(value, secrets);
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, secrets));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const empty = v === "" || v === undefined || v === null ||
        (Array.isArray(v) && v.length === 0);
      out[k] = SECRET_KEY.test(k) && !empty ? REDACTED : scrubValue(v, secrets);
    }
    return out;
  }
  return value;
}
