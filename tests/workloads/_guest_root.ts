/**
 * Runs the workloads' guest scripts on this host: a workload's `write_files` are written under a
 * scratch root, and the scripts are started with the environment that points them there
 * (`VIRTWORK_LIB_DIR`, `VIRTWORK_BIN_DIR`), at a console file and a results file in the root, with
 * a short result interval. Then the result lines are read back with lib/virtwork's parser.
 * @module
 */
import type { CloudConfigOptions } from "../../lib/cloudinit/cloud_config.ts";
import { parseResultLine, type ResultSample } from "../../lib/virtwork/results.ts";

/** A scratch guest root holding one workload's files. */
export interface GuestRoot {
  /** The root directory. */
  dir: string;
  /** The file standing in for /dev/ttyS0. */
  console: string;
  /** The results file. */
  results: string;
  /** Environment that points the scripts into the root. */
  env: Record<string, string>;
  /** Absolute host path of a guest path. */
  path(guestPath: string): string;
  /** Removes the root. */
  remove(): Promise<void>;
}

/** Writes `userData.writeFiles` under a new scratch root. */
export async function guestRoot(
  userData: CloudConfigOptions,
  intervalSeconds = 2,
  base?: string,
): Promise<GuestRoot> {
  const dir = await Deno.makeTempDir({ prefix: "virtwork-guest-", ...(base ? { dir: base } : {}) });
  await Deno.chmod(dir, 0o755);
  const path = (p: string) => `${dir}${p}`;
  for (const f of userData.writeFiles ?? []) {
    await Deno.mkdir(path(f.path.slice(0, f.path.lastIndexOf("/"))), { recursive: true });
    const mode = f.permissions ? parseInt(f.permissions, 8) : 0o644;
    await Deno.writeTextFile(path(f.path), f.content, { mode });
    await Deno.chmod(path(f.path), mode);
  }
  const console = path("/console");
  const results = path("/var/lib/virtwork/results.jsonl");
  return {
    dir,
    console,
    results,
    env: {
      VIRTWORK_LIB_DIR: path("/usr/local/lib/virtwork"),
      VIRTWORK_BIN_DIR: path("/usr/local/bin"),
      VIRTWORK_CONSOLE: console,
      VIRTWORK_RESULTS_FILE: results,
      VIRTWORK_INTERVAL: String(intervalSeconds),
    },
    path,
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Output of a finished script. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` with `env` added; output bounded to what the test needs to show. */
export async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  clearEnv = false,
): Promise<Run> {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout).slice(-4000),
    stderr: dec.decode(out.stderr).slice(-4000),
  };
}

/** The samples on the lines of `file` (empty when the file does not exist). */
export async function samplesIn(file: string): Promise<ResultSample[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return text.split("\n").map((l) => parseResultLine(l)).filter((s) => s !== undefined);
}
