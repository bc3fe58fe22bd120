/**
 * The examples/ files as the KubeVirt target's tests see them: which hold VirtualMachines, and
 * which of those KubeVirt carries over only in part (warned of, --allow-lossy to create them).
 * @module
 */

/** Example files that hold no VirtualMachine: foundry's configuration file (hosts:, pools). */
const NOT_VM_EXAMPLES = new Set(["config.yaml"]);

/**
 * Examples whose VM has fields KubeVirt carries over only in part (warned of; a real create needs
 * --allow-lossy), with those fields in the order they are warned of. Every example maps.
 */
export const KUBEVIRT_LOSSY_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  "graphics-vm.yaml": ["spec.graphics.passwordSecret"],
  "cpu-numa-vm.yaml": ["spec.numa"],
};

/** The installation ISO source the tests give (`--install-media-url`). */
export const INSTALL_MEDIA_URL = "https://images.example.org/debian-12.7.0-amd64-netinst.iso";

/** The VirtualMachine files of examples/ (`*.yaml`), by name and absolute path, sorted. */
export async function vmExamples(): Promise<{ name: string; path: string }[]> {
  const dir = new URL("../../examples/", import.meta.url);
  const out: { name: string; path: string }[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !/\.ya?ml$/.test(e.name) || NOT_VM_EXAMPLES.has(e.name)) continue;
    out.push({ name: e.name, path: new URL(e.name, dir).pathname });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Where the value of the field `path` (`spec.graphics.passwordSecret`) starts in `text`, 1-based:
 * after its key on the key's line, or at the first line below it (a mapping or a list). The key
 * (the path's last segment) must stand once in the file.
 */
export function valuePosition(text: string, path: string): { line: number; column: number } {
  const key = path.split(".").at(-1)!;
  const lines = text.split("\n");
  const at = lines.flatMap((l, i) => new RegExp(`^\\s*${key}:`).test(l) ? [i] : []);
  if (at.length !== 1) throw new Error(`${key}: expected once in the file, found ${at.length}`);
  const i = at[0]!;
  const rest = /^(\s*\S+:\s*)([^#\s].*)?$/.exec(lines[i]!)!;
  if (rest[2] !== undefined) return { line: i + 1, column: rest[1]!.length + 1 };
  const next = lines.findIndex((l, j) => j > i && l.trim() !== "" && !l.trim().startsWith("#"));
  return { line: next + 1, column: lines[next]!.search(/\S/) + 1 };
}
