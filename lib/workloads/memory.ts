/**
 * The memory workload: one stress-ng VM stressor holding 80% of guest memory.
 *
 * `--vm 1`, not `--vm 0`: memory pressure is about capacity, not parallelism, so one allocator sized
 * as a share of total memory is right. 80% keeps the guest responsive without provoking the OOM
 * killer; `--vm-method all` rotates through every access pattern.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type GuestContext } from "./workload.ts";
import { enableUnit, serviceUnit, unitFile } from "./_guest.ts";

/** Unit name of the memory stressor. */
export const MEMORY_UNIT = "virtwork-memory.service";

/** The stress-ng command line of the memory workload. */
export const MEMORY_COMMAND =
  "/usr/bin/stress-ng --vm 1 --vm-bytes 80% --vm-method all --timeout 0";

/** Keeps most of guest memory busy with stress-ng. */
export class MemoryWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "memory";

  /** Installs stress-ng and starts {@linkcode MEMORY_UNIT}. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    return this.withSsh({
      packages: ["stress-ng"],
      writeFiles: [
        unitFile(
          MEMORY_UNIT,
          serviceUnit({
            description: "virtwork memory pressure (stress-ng)",
            execStart: MEMORY_COMMAND,
          }),
        ),
      ],
      runcmd: enableUnit(MEMORY_UNIT),
    });
  }
}
