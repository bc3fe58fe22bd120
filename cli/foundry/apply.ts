// Placeholder registered by the integrator; the owning helper replaces this whole file.
import { Command } from "npm:commander@^15.1.0";
import type { Io } from "../_program.ts";

/** `foundry apply` (being built). */
export function applyCommand(_io: Io): Command {
  return new Command("apply").description("(being built)");
}

/** `foundry diff` (being built). */
export function diffCommand(_io: Io): Command {
  return new Command("diff").description("(being built)");
}
