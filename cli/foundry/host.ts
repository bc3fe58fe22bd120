// Placeholder registered by the integrator; the owning helper replaces this whole file.
import { Command } from "npm:commander@^15.1.0";
import type { Io } from "../_program.ts";

/** `foundry host` (being built). */
export function hostCommand(_io: Io): Command {
  return new Command("host").description("(being built)");
}
