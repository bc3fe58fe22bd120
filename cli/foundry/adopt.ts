// Placeholder registered by the integrator; the owning helper replaces this whole file.
import { Command } from "npm:commander@^15.1.0";
import type { Io } from "../_program.ts";

/** `foundry adopt` (being built). */
export function adoptCommand(_io: Io): Command {
  return new Command("adopt").description("(being built)");
}
