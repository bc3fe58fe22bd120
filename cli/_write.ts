/**
 * Writing the output of both executables: whole, and quietly when the reader went away (`foundry
 * list | head`). No imports, so the front door (`_launch.ts`) can print `--version` with it.
 * @module
 */

/** Writes all of `text` to `f`; a reader that went away is not an error. */
export function writeAllSync(f: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text);
  try {
    let off = 0;
    while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}

/** Writes `text` to stdout whole. */
export function writeStdout(text: string): void {
  writeAllSync(Deno.stdout, text);
}
