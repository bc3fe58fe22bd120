/**
 * Running the real tools tests check our output with, and knowing whether they are installed,
 * shared by every test file. What a missing tool means (skipped on a developer's machine, a failure
 * in CI) is decided in tests/_require.ts.
 * @module
 */

/** Output of one finished tool run. */
export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command and collects its output. */
export async function runTool(cmd: string, args: string[]): Promise<ToolResult> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** True when `name` is an executable on PATH. */
export function hasTool(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      const st = Deno.statSync(`${dir}/${name}`);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}
