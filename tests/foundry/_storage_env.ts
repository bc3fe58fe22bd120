/** Set-up shared by the storage tests: captured CLI output and test-owned pools. */
import type { Io } from "../../cli/_program.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { uniqueName } from "../libvirt/_env.ts";

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

/** What {@linkcode imagesPool} gives a test. */
export interface ImagesPool {
  /** The pool's name. */
  pool: string;
  /** The pool's directory. */
  dir: string;
  /** A scratch folder for source files. */
  work: string;
  /** Global flags that select the pool, its storage path and an audit database. */
  flags: string[];
  /** Whether the pool exists on the daemon. */
  exists(): Promise<boolean>;
  /** The pool's volume names, sorted, after a refresh. */
  volumes(): Promise<string[]>;
  /** Removes the pool, its volumes and both folders. */
  cleanup(): Promise<void>;
}

/**
 * A test-owned images pool named `prefix-...` in a temporary storage path: the CLI flags that
 * select it (with an audit database beside it), a scratch folder for source files, and cleanup.
 */
export async function imagesPool(lv: Libvirt, prefix: string): Promise<ImagesPool> {
  const pool = uniqueName(prefix);
  const storage = await Deno.makeTempDir({ prefix: "foundry-imgtest-" });
  const work = await Deno.makeTempDir({ prefix: "foundry-imgsrc-" });
  return {
    pool,
    dir: `${storage}/images`,
    work,
    flags: ["--image-pool", pool, "--storage-path", storage, "--audit-db", `${storage}/audit.db`],
    async exists(): Promise<boolean> {
      try {
        await lv.storagePoolLookupByName(pool);
        return true;
      } catch {
        return false;
      }
    },
    async volumes(): Promise<string[]> {
      const p = await lv.storagePoolLookupByName(pool);
      await lv.storagePoolRefresh(p);
      return (await lv.storagePoolListAllVolumes(p)).map((v) => v.name).sort();
    },
    async cleanup() {
      try {
        const p = await lv.storagePoolLookupByName(pool);
        for (const v of await lv.storagePoolListAllVolumes(p)) await lv.storageVolDelete(v);
        await lv.storagePoolDestroy(p);
        await lv.storagePoolUndefine(p);
      } catch { /* never created or gone */ }
      await Deno.remove(storage, { recursive: true }).catch(() => {});
      await Deno.remove(work, { recursive: true }).catch(() => {});
    },
  };
}
