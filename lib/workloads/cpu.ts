/**
 * The CPU workload: stress-ng on every core, forever.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type GuestContext } from "./workload.ts";
import { enableUnit, serviceUnit, unitFile } from "./_guest.ts";

/** Unit name of the CPU stressor. */
export const CPU_UNIT = "virtwork-cpu.service";

/** The stress-ng command line: one worker per online CPU (`--cpu 0`), all methods, no end. */
export const CPU_COMMAND = "/usr/bin/stress-ng --cpu 0 --cpu-method all --timeout 0";

/** Loads every vCPU with stress-ng. */
export class CpuWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "cpu";

  /** Installs stress-ng and starts {@linkcode CPU_UNIT}. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    return this.withSsh({
      packages: ["stress-ng"],
      writeFiles: [
        unitFile(
          CPU_UNIT,
          serviceUnit({ description: "virtwork CPU load (stress-ng)", execStart: CPU_COMMAND }),
        ),
      ],
      runcmd: enableUnit(CPU_UNIT),
    });
  }
}
