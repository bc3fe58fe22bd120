/**
 * A builder for `#cloud-config` user data: packages, write_files, runcmd, a login user and extra keys.
 *
 * Shared by virtwork (KubeVirt cloudInitNoCloud) and foundry (NoCloud ISO), so it knows nothing of
 * either backend: it takes plain options and returns the document as a string. The text is YAML
 * 1.1-safe (strings such as `on` or `12:30` are quoted), since cloud-init reads it with PyYAML.
 *
 * @example
 * ```ts
 * import { buildCloudConfig } from "./cloud_config.ts";
 * const userData = buildCloudConfig({
 *   packages: ["stress-ng"],
 *   runcmd: [["systemctl", "enable", "--now", "virtwork-cpu.service"]],
 *   sshUser: "virtwork",
 *   sshAuthorizedKeys: ["ssh-ed25519 AAAA... me@host"],
 * });
 * ```
 * @module
 */
import { stringify } from "npm:yaml@^2.9.1";
import { assertSafeText } from "./safe_text.ts";

/** The first line of every cloud-config document; cloud-init ignores user data without it. */
export const CLOUD_CONFIG_HEADER = "#cloud-config";

/** One `write_files` entry. */
export interface WriteFile {
  /** Absolute path in the guest. */
  path: string;
  /** File content, written as-is. */
  content: string;
  /** Octal mode as a string, e.g. `"0644"`; cloud-init's default applies when omitted. */
  permissions?: string;
  /** `user:group`; cloud-init's default (root:root) applies when omitted. */
  owner?: string;
}

/** What a cloud-config document should contain; empty and omitted fields produce no key. */
export interface CloudConfigOptions {
  /** Packages to install on first boot. */
  packages?: readonly string[];
  /** Files to write before packages are installed. */
  writeFiles?: readonly WriteFile[];
  /** Commands for the final stage: a string runs under `sh -c`, an array runs without a shell. */
  runcmd?: readonly (string | readonly string[])[];
  /** More top-level keys, merged as given; they may not replace a key this builder manages. */
  extra?: Readonly<Record<string, unknown>>;
  /** Login user to create; no `users` block when empty. */
  sshUser?: string;
  /** Plain-text password for `sshUser`; enables password SSH login. */
  sshPassword?: string;
  /** Password of `sshUser` as a crypt(3) hash, set with `chpasswd`; enables password SSH login. */
  passwordHash?: string;
  /** Public keys authorised for `sshUser`. */
  sshAuthorizedKeys?: readonly string[];
  /** `ssh_pwauth`, when given; otherwise true with a password and left out without one. */
  sshPwauth?: boolean;
}

/** Options for `stringify` of the `yaml` package that PyYAML (YAML 1.1) reads as intended. */
export const CLOUD_INIT_YAML = { version: "1.1", lineWidth: 0 } as const;

/** Top-level keys the builder writes itself, which `extra` may not override. */
export const MANAGED_KEYS: readonly string[] = [
  "packages",
  "write_files",
  "runcmd",
  "users",
  "ssh_pwauth",
  "chpasswd",
  "disable_root",
];

/** True when the options put a password or an SSH key into the document (it must be kept secret). */
export function carriesCredentials(opts: CloudConfigOptions): boolean {
  return Boolean(opts.sshUser) &&
    (Boolean(opts.sshPassword) || Boolean(opts.passwordHash) ||
      (opts.sshAuthorizedKeys?.length ?? 0) > 0);
}

/**
 * Builds a `#cloud-config` document.
 *
 * A `users` block is written only when `sshUser` is set: the user gets passwordless sudo and bash,
 * `lock_passwd: true` without a password, `lock_passwd: false` and `plain_text_passwd` with one, and
 * `ssh_authorized_keys` when keys are given. `root` exists in every image, so its entry carries only
 * its keys, its password goes through `chpasswd` and `disable_root: false` keeps cloud-init from
 * prefixing its keys with a "log in as the default user" command. A `passwordHash` is set with
 * `chpasswd.users` (type `hash`, understood since cloud-init 22.3). `ssh_pwauth` is `sshPwauth` when
 * given, else true only when there is a password.
 *
 * No string of the document may hold a control character (see safe_text.ts): a newline in a key
 * would add a line to `authorized_keys`. File contents and shell command strings may hold newlines
 * and tabs, nothing else.
 *
 * @throws {TypeError} when `extra` tries to replace a managed key, an entry is malformed or a string
 * holds a control character
 */
export function buildCloudConfig(opts: CloudConfigOptions = {}): string {
  const doc: Record<string, unknown> = {};
  if (opts.packages && opts.packages.length > 0) doc.packages = [...opts.packages];
  if (opts.writeFiles && opts.writeFiles.length > 0) {
    doc.write_files = opts.writeFiles.map((f) => {
      if (!f.path.startsWith("/")) {
        throw new TypeError(`write_files path must be absolute, got "${f.path}"`);
      }
      const entry: Record<string, string> = { path: f.path, content: f.content };
      if (f.permissions !== undefined) entry.permissions = f.permissions;
      if (f.owner !== undefined) entry.owner = f.owner;
      return entry;
    });
  }
  if (opts.runcmd && opts.runcmd.length > 0) {
    doc.runcmd = opts.runcmd.map((c) => (typeof c === "string" ? c : [...c]));
  }
  if (opts.sshUser) Object.assign(doc, usersBlock(opts.sshUser, opts));
  for (const [key, value] of Object.entries(opts.extra ?? {})) {
    if (MANAGED_KEYS.includes(key)) {
      throw new TypeError(`extra key "${key}" is managed by the builder, use its own option`);
    }
    if (value === undefined || value === null) continue;
    doc[key] = value;
  }
  assertSafeDocument(doc, "cloud-config");
  // An empty document is still written as a mapping: cloud-init rejects a bare header.
  const body = Object.keys(doc).length === 0 ? "{}\n" : stringify(doc, CLOUD_INIT_YAML);
  return `${CLOUD_CONFIG_HEADER}\n${body}`;
}

/** The `users`, `chpasswd`, `ssh_pwauth` and `disable_root` keys of `name`; see buildCloudConfig. */
function usersBlock(name: string, opts: CloudConfigOptions): Record<string, unknown> {
  const root = name === "root";
  const hasPassword = Boolean(opts.sshPassword) || Boolean(opts.passwordHash);
  const block: Record<string, unknown> = {};
  const user: Record<string, unknown> = { name };
  if (root) {
    block.disable_root = false;
  } else {
    Object.assign(user, { sudo: "ALL=(ALL) NOPASSWD:ALL", shell: "/bin/bash" });
    user.lock_passwd = !hasPassword;
    if (opts.sshPassword) user.plain_text_passwd = opts.sshPassword;
  }
  const keys = (opts.sshAuthorizedKeys ?? []).filter((k) => k.trim() !== "");
  if (keys.length > 0) user.ssh_authorized_keys = keys;
  block.users = [user];
  const chpasswd = opts.passwordHash
    ? { name, password: opts.passwordHash, type: "hash" }
    : root && opts.sshPassword
    ? { name, password: opts.sshPassword, type: "text" }
    : undefined;
  if (chpasswd) block.chpasswd = { users: [chpasswd], expire: false };
  const pwauth = opts.sshPwauth ?? (hasPassword ? true : undefined);
  if (pwauth !== undefined) block.ssh_pwauth = pwauth;
  return block;
}

/**
 * Throws a TypeError when any key or string value of `value` holds a control character; a
 * `write_files` entry's `content` and a `runcmd` entry that is a string (a shell script) may hold
 * newlines and tabs.
 */
export function assertSafeDocument(value: unknown, where: string, allowed = ""): void {
  if (typeof value === "string") {
    assertSafeText(value, where, allowed);
  } else if (Array.isArray(value)) {
    const script = where.endsWith(".runcmd");
    value.forEach((v, i) =>
      assertSafeDocument(v, `${where}[${i}]`, script && typeof v === "string" ? "\n\t" : "")
    );
  } else if (value !== null && typeof value === "object") {
    const fileEntry = /\.write_files\[\d+\]$/.test(where);
    for (const [k, v] of Object.entries(value)) {
      assertSafeText(k, `${where} key`);
      assertSafeDocument(v, `${where}.${k}`, fileEntry && k === "content" ? "\n\t" : "");
    }
  }
}
