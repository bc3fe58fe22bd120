/**
 * The CPU workload: stress-ng on every core, in time slices of the result interval, each slice
 * reporting its bogo-ops per second.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import { BaseWorkload, type GuestContext } from "./workload.ts";
import { stressNgFiles } from "./_stress.ts";

/** Unit name of the CPU stressor. */
export const CPU_UNIT = "virtwork-cpu.service";

/**
 * The stress-ng arguments of one slice: one worker per online CPU (`--cpu 0`, or
 * `$VIRTWORK_STRESS_WORKERS`), every method in turn.
 */
export const CPU_COMMAND = 'stress-ng --cpu "${VIRTWORK_STRESS_WORKERS:-0}" --cpu-method all';

/** Loads every vCPU with stress-ng. */
export class CpuWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "cpu";

  /** Checks for stress-ng (installing it when missing) and starts {@linkcode CPU_UNIT}. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    return this.withSsh(stressNgFiles({
      workload: this.name,
      unit: CPU_UNIT,
      description: "virtwork CPU load (stress-ng)",
      stressArgs: CPU_COMMAND,
      os: ctx.os,
      intervalSeconds: this.resultIntervalSeconds,
    }));
  }
}
