/**
 * A strict parser for OpenSSH public keys as they appear in `authorized_keys`: `[options] type base64
 * [comment]`. The key blob must decode, its embedded type must match the declared one, and its
 * structure must be complete for that type (a truncated blob is refused), so what reaches a guest's
 * `authorized_keys` is exactly one well-formed line.
 *
 * Errors never quote the key material or comment back: keys are treated like credentials in logs.
 *
 * @example
 * ```ts
 * const problem = sshKeyProblem("ssh-ed25519 AAAA me@host");
 * if (problem) console.error(`--ssh-key: ${problem}`);
 * ```
 * @module
 */

/** Key types accepted (OpenSSH's plain public key types; certificates are not accepted). */
export const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ssh-dss",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;

/** One of {@linkcode SSH_KEY_TYPES}. */
export type SshKeyType = typeof SSH_KEY_TYPES[number];

/** Largest decoded key blob, in bytes (OpenSSH's `SSH_MAX_PUBKEY_BYTES`). */
export const SSH_KEY_MAX_BLOB_BYTES = 16384;
/** Longest comment, in characters. */
export const SSH_KEY_MAX_COMMENT_LENGTH = 1024;
/** Longest options field, in characters. */
export const SSH_KEY_MAX_OPTIONS_LENGTH = 4096;
/** Longest whole line, in characters (blob, options and comment at their limits, plus spaces). */
export const SSH_KEY_MAX_LINE_LENGTH: number = 4 * Math.ceil(SSH_KEY_MAX_BLOB_BYTES / 3) +
  SSH_KEY_MAX_COMMENT_LENGTH + SSH_KEY_MAX_OPTIONS_LENGTH + 64;

/** Smallest RSA modulus OpenSSH accepts, in bits (`SSH_RSA_MINIMUM_MODULUS_SIZE`). */
const RSA_MIN_BITS = 1024;

/**
 * `authorized_keys` option names OpenSSH knows (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"); matched
 * case-insensitively, as sshd does.
 */
const OPTION_NAMES = new Set([
  "agent-forwarding",
  "cert-authority",
  "command",
  "environment",
  "expiry-time",
  "from",
  "no-agent-forwarding",
  "no-port-forwarding",
  "no-pty",
  "no-touch-required",
  "no-user-rc",
  "no-x11-forwarding",
  "permitlisten",
  "permitopen",
  "port-forwarding",
  "principals",
  "pty",
  "restrict",
  "tunnel",
  "user-rc",
  "verify-required",
  "x11-forwarding",
]);

/** A parsed public key line. */
export interface SshPublicKey {
  /** The `authorized_keys` options field as written, when there is one. */
  options?: string;
  /** The key type. */
  type: SshKeyType;
  /** The key blob, base64 as written. */
  blob: string;
  /** The comment, when there is one. */
  comment?: string;
  /** The line in canonical form: the fields joined by single spaces. */
  line: string;
}

/** Why a string is not an acceptable public key line; carries no key material. */
export class SshKeyError extends Error {
  /** What is wrong, in words that can follow a field name. */
  readonly reason: string;

  /**
   * Builds the error from what was found.
   *
   * @param reason what was found instead of a key, e.g. `a ssh-ed25519 key whose key data is truncated`
   */
  constructor(reason: string) {
    super(`must be an OpenSSH public key like "ssh-ed25519 AAAA... comment", got ${reason}`);
    this.name = "SshKeyError";
    this.reason = reason;
  }
}

/** Options of {@linkcode parseSshPublicKey}. */
export interface ParseSshKeyOptions {
  /** Accept a leading `authorized_keys` options field (default false). */
  allowOptions?: boolean;
}

/**
 * Control characters (C0, DEL, C1), line and paragraph separators, and bidirectional overrides and
 * isolates: none may appear in a line that is written to a file or shown on a terminal.
 */
// deno-lint-ignore no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses one public key line strictly.
 *
 * @throws {SshKeyError} when the line is not a well-formed key of a supported type
 */
export function parseSshPublicKey(line: string, o: ParseSshKeyOptions = {}): SshPublicKey {
  if (typeof line !== "string") throw new SshKeyError("a value that is not a string");
  if (line.length > SSH_KEY_MAX_LINE_LENGTH) {
    throw new SshKeyError(`a line longer than ${SSH_KEY_MAX_LINE_LENGTH} characters`);
  }
  if (FORBIDDEN.test(line)) {
    throw new SshKeyError("a line with a control character (such as a newline or tab)");
  }
  let rest = line.replace(/^ +| +$/g, "");
  if (rest === "") throw new SshKeyError("an empty value");
  let options: string | undefined;
  const first = rest.split(" ", 1)[0] ?? "";
  if (!(SSH_KEY_TYPES as readonly string[]).includes(first)) {
    if (!o.allowOptions || !/^[A-Za-z]/.test(first)) {
      throw new SshKeyError(`a key type that is not one of ${SSH_KEY_TYPES.join(", ")}`);
    }
    const end = optionsEnd(rest);
    options = rest.slice(0, end);
    if (options.length > SSH_KEY_MAX_OPTIONS_LENGTH) {
      throw new SshKeyError(`options longer than ${SSH_KEY_MAX_OPTIONS_LENGTH} characters`);
    }
    rest = rest.slice(end).replace(/^ +/, "");
  }
  const [type = "", blob = "", ...commentWords] = rest.split(/ +/);
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    throw new SshKeyError(`a key type that is not one of ${SSH_KEY_TYPES.join(", ")}`);
  }
  const keyType = type as SshKeyType;
  if (blob === "") throw new SshKeyError(`a ${keyType} key without key data`);
  const bytes = decodeBase64(blob, keyType);
  checkBlob(bytes, keyType);
  const comment = commentWords.join(" ");
  if (comment.length > SSH_KEY_MAX_COMMENT_LENGTH) {
    throw new SshKeyError(`a comment longer than ${SSH_KEY_MAX_COMMENT_LENGTH} characters`);
  }
  const key: SshPublicKey = {
    type: keyType,
    blob,
    line: [options, keyType, blob, comment].filter((f) => f !== undefined && f !== "").join(" "),
  };
  if (options !== undefined) key.options = options;
  if (comment !== "") key.comment = comment;
  return key;
}

/**
 * Why `line` is not an acceptable public key, or undefined when it is one. The reason reads after a
 * field name (`--ssh-key: must be an OpenSSH public key ..., got ...`) and never quotes the key.
 */
export function sshKeyProblem(line: string, o: ParseSshKeyOptions = {}): string | undefined {
  try {
    parseSshPublicKey(line, o);
    return undefined;
  } catch (e) {
    if (e instanceof SshKeyError) return e.message;
    throw e;
  }
}

/** Index just past an options field: `name` or `name="value"` items joined by commas. */
function optionsEnd(s: string): number {
  let i = 0;
  for (;;) {
    const name = /^[A-Za-z0-9-]+/.exec(s.slice(i))?.[0];
    if (name === undefined) throw new SshKeyError("a malformed options field");
    if (!OPTION_NAMES.has(name.toLowerCase())) {
      throw new SshKeyError("an options field with an option sshd does not know");
    }
    i += name.length;
    if (s[i] === "=") {
      if (s[i + 1] !== '"') throw new SshKeyError("an option value that is not quoted");
      i += 2;
      while (i < s.length && s[i] !== '"') i += s[i] === "\\" && s[i + 1] === '"' ? 2 : 1;
      if (i >= s.length) throw new SshKeyError("an option value without its closing quote");
      i++;
    }
    if (s[i] === ",") {
      i++;
      continue;
    }
    if (s[i] === " ") return i;
    throw new SshKeyError("a malformed options field");
  }
}

function decodeBase64(blob: string, type: SshKeyType): Uint8Array {
  const notBase64 = new SshKeyError(`a ${type} key whose key data is not base64`);
  if (!BASE64.test(blob) || blob.length % 4 !== 0) throw notBase64;
  if (blob.length > 4 * Math.ceil(SSH_KEY_MAX_BLOB_BYTES / 3)) {
    throw new SshKeyError(`a ${type} key longer than ${SSH_KEY_MAX_BLOB_BYTES} bytes`);
  }
  let binary: string;
  try {
    binary = atob(blob);
  } catch {
    throw notBase64;
  }
  // Canonical encoding only: stray bits in the last character would make two spellings of one key.
  if (btoa(binary) !== blob) throw notBase64;
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** Reads SSH wire-format fields (RFC 4251 section 5) from a blob. */
class WireReader {
  #bytes: Uint8Array;
  #view: DataView;
  #pos = 0;
  #type: SshKeyType;

  constructor(bytes: Uint8Array, type: SshKeyType) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#type = type;
  }

  string(): Uint8Array {
    if (this.#pos + 4 > this.#bytes.length) throw this.truncated();
    const len = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    if (len > this.#bytes.length - this.#pos) throw this.truncated();
    const out = this.#bytes.subarray(this.#pos, this.#pos + len);
    this.#pos += len;
    return out;
  }

  text(): string {
    return new TextDecoder("utf-8", { fatal: false }).decode(this.string());
  }

  /** A positive mpint; returns its size in bits. */
  positiveMpint(): number {
    const b = this.string();
    if (b.length === 0 || (b[0]! & 0x80) !== 0) throw this.invalid();
    let i = 0;
    while (i < b.length && b[i] === 0) i++;
    if (i === b.length) throw this.invalid();
    return (b.length - i) * 8 - Math.clz32(b[i]!) + 24;
  }

  end(): void {
    if (this.#pos !== this.#bytes.length) {
      throw new SshKeyError(`a ${this.#type} key with trailing bytes after its key data`);
    }
  }

  truncated(): SshKeyError {
    return new SshKeyError(`a ${this.#type} key whose key data is truncated`);
  }

  invalid(): SshKeyError {
    return new SshKeyError(`a ${this.#type} key whose key data is not a valid ${this.#type} key`);
  }
}

const EC_POINT_BYTES: Record<string, number> = {
  nistp256: 65,
  nistp384: 97,
  nistp521: 133,
};

function checkBlob(bytes: Uint8Array, type: SshKeyType): void {
  const r = new WireReader(bytes, type);
  let inner: string;
  try {
    inner = r.text();
  } catch {
    throw new SshKeyError(`a ${type} key whose key data is not a ${type} key`);
  }
  if (inner !== type) throw new SshKeyError(`a ${type} key whose key data is not a ${type} key`);
  switch (type) {
    case "ssh-rsa": {
      r.positiveMpint(); // e
      const bits = r.positiveMpint(); // n
      if (bits < RSA_MIN_BITS) {
        throw new SshKeyError(`an ssh-rsa key of ${bits} bits, fewer than ${RSA_MIN_BITS}`);
      }
      break;
    }
    case "ssh-dss":
      for (let i = 0; i < 4; i++) r.positiveMpint(); // p, q, g, y
      break;
    case "ssh-ed25519":
    case "sk-ssh-ed25519@openssh.com":
      if (r.string().length !== 32) throw r.invalid();
      if (type === "sk-ssh-ed25519@openssh.com") applicationOf(r);
      break;
    case "ecdsa-sha2-nistp256":
    case "ecdsa-sha2-nistp384":
    case "ecdsa-sha2-nistp521":
    case "sk-ecdsa-sha2-nistp256@openssh.com": {
      const curve = r.text();
      const expected = type.startsWith("sk-") ? "nistp256" : type.slice("ecdsa-sha2-".length);
      if (curve !== expected) throw r.invalid();
      const point = r.string();
      if (point.length !== EC_POINT_BYTES[curve] || point[0] !== 0x04) throw r.invalid();
      if (type === "sk-ecdsa-sha2-nistp256@openssh.com") applicationOf(r);
      break;
    }
  }
  r.end();
}

/** A security key's application string, which OpenSSH requires to be present. */
function applicationOf(r: WireReader): void {
  if (r.string().length === 0) throw r.invalid();
}
