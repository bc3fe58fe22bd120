/**
 * `foundry completion bash|zsh|fish`: the completion script of foundry's whole command tree. VM,
 * pool and image arguments complete to the names foundry lists (`foundry list --all -o name`).
 * @module
 */
import type { Argument, Command } from "npm:commander@^15.1.0";
import { type ArgCompletion, completionCommand as make, fileArgs } from "../_completion.ts";
import type { Io } from "../_program.ts";

/** What foundry's first positional arguments complete to. */
export function foundryArgs(path: readonly string[], arg: Argument): ArgCompletion {
  const [top, sub] = path;
  const name = arg.name();
  if (top === "pool" && sub !== "add" && name === "name") {
    return { kind: "dynamic", args: ["pool", "list", "-o", "name"] };
  }
  if (top === "image" && (sub === "info" || sub === "delete")) {
    return { kind: "dynamic", args: ["image", "list", "-o", "name"] };
  }
  if ((path.length === 1 || top === "vm") && /^names?$/.test(name)) {
    return { kind: "dynamic", args: ["list", "--all", "-o", "name"] };
  }
  return fileArgs(path, arg);
}

/** The `completion` command. */
export function completionCommand(io: Io): Command {
  return make(io, "foundry", async () => {
    // The running program holds only the commands this run needs: build the whole tree.
    const { foundryProgram } = await import("../_foundry_program.ts");
    return await foundryProgram(io);
  }, foundryArgs);
}
