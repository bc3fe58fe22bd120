/** Set-up shared by the storage tests: captured CLI output and test-owned pools. */
import type { Io } from "../../cli/_program.ts";

/** Captures what a command prints. */
export function capture(): { io: Io; out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (s) => out.push(s), err: (s) => err.push(s) },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

/** Runs a command and returns its output. */
export async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}
