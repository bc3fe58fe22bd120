/**
 * The memory workload: a stress-ng VM stressor that holds and keeps rewriting 70% of guest memory
 * for as long as the workload runs, and beside it time slices of a 64 MiB VM stressor, each slice
 * reporting its bogo-ops per second (the memory throughput left under that pressure).
 *
 * Why two: a VM stressor counts its operations only as its passes over the buffer complete, and a
 * fresh process first faults its whole buffer in. A slice over 80% of memory on an emulated guest
 * spends the whole slice faulting and reports zero; the holder faults its memory in once, and the
 * small sampler completes passes in every slice. `--vm 1`, not `--vm 0`: pressure is about
 * capacity, not parallelism; `--vm-method all` rotates through every access pattern.
 *
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type GuestContext } from "./workload.ts";
import { stressNgFiles } from "./_stress.ts";

/** Unit name of the memory stressor. */
export const MEMORY_UNIT = "virtwork-memory.service";

/** The holder: 70% of memory (`$VIRTWORK_VM_BYTES` overrides it), kept mapped and rewritten. */
export const MEMORY_HOLD_COMMAND =
  'stress-ng --vm 1 --vm-bytes "${VIRTWORK_VM_BYTES:-70%}" --vm-keep --vm-method all';

/** The stress-ng arguments of one slice (`$VIRTWORK_SAMPLE_VM_BYTES` overrides the size). */
export const MEMORY_COMMAND =
  'stress-ng --vm 1 --vm-bytes "${VIRTWORK_SAMPLE_VM_BYTES:-64M}" --vm-method all';

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
      holdArgs: MEMORY_HOLD_COMMAND,
      os: ctx.os,
      intervalSeconds: this.resultIntervalSeconds,
    }));
  }
}
