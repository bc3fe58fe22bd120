import { join } from "node:path";

/** A temporary directory with an audit database path in it, removed by `cleanup`. */
export async function tempDb(): Promise<
  { dir: string; path: string; cleanup: () => Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "audit_test_" });
  return {
    dir,
    path: join(dir, "audit.db"),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** The bytes of the database and its -wal and -shm files, as latin1 text to search. */
export async function dbFileText(path: string): Promise<string> {
  let text = "";
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    try {
      const bytes = await Deno.readFile(p);
      text += new TextDecoder("latin1").decode(bytes);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return text;
}

/** A clock that advances one second per reading, from a fixed start. */
export function steppingClock(start = Date.parse("2026-01-02T03:04:05.000Z")): () => Date {
  let t = start;
  return () => {
    const d = new Date(t);
    t += 1000;
    return d;
  };
}
