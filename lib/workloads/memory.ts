/**
 * The memory workload: one stress-ng VM stressor holding 80% of guest memory, in time slices of
 * the result interval, each slice reporting its bogo-ops per second.
 *
 * `--vm 1`, not `--vm 0`: memory pressure is about capacity, not parallelism, so one allocator sized
 * as a share of total memory is right. 80% keeps the guest responsive without provoking the OOM
 * killer; `--vm-method all` rotates through every access pattern.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type GuestContext } from "./workload.ts";
import { stressNgFiles } from "./_stress.ts";

/** Unit name of the memory stressor. */
export const MEMORY_UNIT = "virtwork-memory.service";

/** The stress-ng arguments of one slice (`$VIRTWORK_VM_BYTES` overrides the share, for tests). */
export const MEMORY_COMMAND =
  "stress-ng --vm 1 --vm-bytes ${VIRTWORK_VM_BYTES:-80%} --vm-method all";

/** Keeps most of guest memory busy with stress-ng. */
export class MemoryWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "memory";

  /** Checks for stress-ng (installing it when missing) and starts {@linkcode MEMORY_UNIT}. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    return this.withSsh(stressNgFiles({
      workload: this.name,
      unit: MEMORY_UNIT,
      description: "virtwork memory pressure (stress-ng)",
      stressArgs: MEMORY_COMMAND,
      os: ctx.os,
      intervalSeconds: this.resultIntervalSeconds,
    }));
  }
}
