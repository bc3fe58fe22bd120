/**
 * A builder for `#cloud-config` user data: packages, write_files, runcmd, a login user and extra keys.
 *
 * Shared by virtwork (KubeVirt cloudInitNoCloud) and foundry (NoCloud ISO), so it knows nothing of
 * either backend: it takes plain options and returns the document as a string.
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
  /** Public keys authorised for `sshUser`. */
  sshAuthorizedKeys?: readonly string[];
}

/** Top-level keys the builder writes itself, which `extra` may not override. */
export const MANAGED_KEYS: readonly string[] = [
  "packages",
  "write_files",
  "runcmd",
  "users",
  "ssh_pwauth",
];

/** True when the options put a password or an SSH key into the document (it must be kept secret). */
export function carriesCredentials(opts: CloudConfigOptions): boolean {
  return Boolean(opts.sshUser) &&
    (Boolean(opts.sshPassword) || (opts.sshAuthorizedKeys?.length ?? 0) > 0);
}

/**
 * Builds a `#cloud-config` document.
 *
 * A `users` block is written only when `sshUser` is set: the user gets passwordless sudo and bash,
 * `lock_passwd: true` without a password, `lock_passwd: false` and `plain_text_passwd` with one, and
 * `ssh_authorized_keys` when keys are given. `ssh_pwauth: true` is set only when there is a password.
 *
 * @throws {TypeError} when `extra` tries to replace a managed key or an entry is malformed
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
  if (opts.sshUser) {
    const user: Record<string, unknown> = {
      name: opts.sshUser,
      sudo: "ALL=(ALL) NOPASSWD:ALL",
      shell: "/bin/bash",
      lock_passwd: !opts.sshPassword,
    };
    if (opts.sshPassword) user.plain_text_passwd = opts.sshPassword;
    const keys = (opts.sshAuthorizedKeys ?? []).filter((k) => k.trim() !== "");
    if (keys.length > 0) user.ssh_authorized_keys = keys;
    doc.users = [user];
    if (opts.sshPassword) doc.ssh_pwauth = true;
  }
  for (const [key, value] of Object.entries(opts.extra ?? {})) {
    if (MANAGED_KEYS.includes(key)) {
      throw new TypeError(`extra key "${key}" is managed by the builder, use its own option`);
    }
    if (value === undefined || value === null) continue;
    doc[key] = value;
  }
  // An empty document is still written as a mapping: cloud-init rejects a bare header.
  const body = Object.keys(doc).length === 0 ? "{}\n" : stringify(doc, { lineWidth: 0 });
  return `${CLOUD_CONFIG_HEADER}\n${body}`;
}
