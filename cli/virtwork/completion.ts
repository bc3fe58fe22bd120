/**
 * `virtwork completion bash|zsh|fish`: the completion script of virtwork's whole command tree.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";
import { completionCommand as make } from "../_completion.ts";
import type { Io } from "../_program.ts";

/** The `completion` command. */
export function completionCommand(io: Io): Command {
  return make(io, "virtwork", async () => {
    // The running program holds only the commands this run needs: build the whole tree.
    const { virtworkProgram } = await import("../_virtwork_program.ts");
    return await virtworkProgram(io);
  });
}
