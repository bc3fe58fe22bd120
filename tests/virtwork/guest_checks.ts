/**
 * Checks of generated guest content with the real tools: `cloud-init schema`, `systemd-analyze verify`,
 * `fio --parse-only` and `bash -n`. Tests that need a tool register
 * through tests/_require.ts (skipped on a developer's machine without it, failing in CI).
 *
 * Debian packages: cloud-init, systemd, fio.
 * @module
 */
import { parse } from "npm:yaml@^2.9.1";

export { hasTool, runTool } from "../_tools.ts";
export type { ToolResult } from "../_tools.ts";
import { runTool } from "../_tools.ts";

/** Validates user data with `cloud-init schema --config-file`; throws with the tool's output. */
export async function assertCloudInitSchema(userData: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "virtwork-ci-" });
  try {
    const file = `${dir}/user-data`;
    await Deno.writeTextFile(file, userData);
    const r = await runTool("cloud-init", ["schema", "--config-file", file]);
    if (r.code !== 0 || !/Valid cloud-config/.test(r.stdout + r.stderr)) {
      throw new Error(`cloud-init schema rejected the user data:\n${r.stdout}${r.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Checks a fio job file with `fio --parse-only`. */
export async function assertFioParses(profile: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "virtwork-fio-" });
  try {
    const file = `${dir}/job.fio`;
    await Deno.writeTextFile(file, profile);
    const r = await runTool("fio", ["--parse-only", file]);
    if (r.code !== 0 || r.stderr.trim() !== "") {
      throw new Error(`fio --parse-only rejected the profile:\n${r.stdout}${r.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Checks a shell script's syntax with `bash -n`. */
export async function assertBashSyntax(script: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "virtwork-sh-" });
  try {
    await Deno.writeTextFile(`${dir}/s.sh`, script);
    const r = await runTool("bash", ["-n", `${dir}/s.sh`]);
    if (r.code !== 0) throw new Error(`bash -n rejected the script:\n${r.stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A `write_files` entry as it appears in the parsed user data. */
interface ParsedWriteFile {
  path: string;
  content: string;
  permissions?: string;
}

/** Parses `#cloud-config` user data into a plain object. */
export function parseUserData(userData: string): Record<string, unknown> {
  const doc = parse(userData) as unknown;
  if (!doc || typeof doc !== "object") throw new Error("user data is not a YAML mapping");
  return doc as Record<string, unknown>;
}

/** The `write_files` entries of parsed user data. */
export function writeFilesOf(userData: string): ParsedWriteFile[] {
  return (parseUserData(userData).write_files ?? []) as ParsedWriteFile[];
}

/**
 * Materialises the user data's `write_files` in a scratch guest root, adds stub executables for what
 * the installed packages provide (`packageBinaries`), and runs `systemd-analyze verify --root` on
 * every unit under /etc/systemd/system. That checks unit syntax and that every Exec* command exists
 * in the guest, either written by cloud-init or provided by a package. Any diagnostic fails.
 *
 * @returns the unit paths that were verified
 */
export async function assertSystemdUnitsVerify(
  userData: string,
  packageBinaries: Readonly<Record<string, readonly string[]>>,
): Promise<string[]> {
  const root = await Deno.makeTempDir({ prefix: "virtwork-root-" });
  try {
    // The host's unit directory stands in for the guest's (targets such as multi-user.target).
    await Deno.mkdir(`${root}/usr/lib/systemd`, { recursive: true });
    const cp = await runTool("cp", ["-r", "/usr/lib/systemd/system", `${root}/usr/lib/systemd/`]);
    if (cp.code !== 0) throw new Error(`copying the unit directory failed: ${cp.stderr}`);
    const doc = parseUserData(userData);
    const stubs = ["/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sleep"];
    for (const pkg of (doc.packages ?? []) as string[]) stubs.push(...(packageBinaries[pkg] ?? []));
    for (const bin of stubs) {
      await Deno.mkdir(`${root}${bin.slice(0, bin.lastIndexOf("/"))}`, { recursive: true });
      await Deno.writeTextFile(`${root}${bin}`, "#!/bin/sh\n", { mode: 0o755 });
    }
    const units: string[] = [];
    for (const f of writeFilesOf(userData)) {
      await Deno.mkdir(`${root}${f.path.slice(0, f.path.lastIndexOf("/"))}`, { recursive: true });
      const mode = f.permissions ? parseInt(f.permissions, 8) : 0o644;
      await Deno.writeTextFile(`${root}${f.path}`, f.content, { mode });
      await Deno.chmod(`${root}${f.path}`, mode);
      if (f.path.startsWith("/etc/systemd/system/") && /\.(service|timer)$/.test(f.path)) {
        units.push(f.path);
      }
    }
    for (const unit of units) {
      const r = await runTool("systemd-analyze", ["verify", `--root=${root}`, `${root}${unit}`]);
      if (r.code !== 0 || r.stderr.trim() !== "") {
        throw new Error(`systemd-analyze verify rejected ${unit}:\n${r.stdout}${r.stderr}`);
      }
    }
    return units;
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}
