/**
 * `foundry storage status`: every pool's capacity, allocation, available space and volume count, and
 * a warning for pools more than {@link FULL_WARNING_PERCENT} % full.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { storageStatus } from "./storage_status.ts";
 * const lv = await Libvirt.connect("qemu:///system");
 * for (const p of await storageStatus(lv)) if (p.warning) console.log(`${p.name} is ${p.usedPercent}% full`);
 * await lv.close();
 * ```
 * @module
 */
import type { Libvirt } from "../libvirt/mod.ts";
import { listPools, type PoolSummary } from "./pools.ts";

/** A pool more than this full (percent of capacity not available) gets a warning. */
export const FULL_WARNING_PERCENT = 85;

/** One pool's line of the storage status. */
export interface PoolStatus extends PoolSummary {
  /** Percent of the capacity not available, one decimal; null while inactive (no figures). */
  usedPercent: number | null;
  /** True when {@link PoolStatus.usedPercent} is above {@link FULL_WARNING_PERCENT}. */
  warning: boolean;
}

/**
 * Used percentage of a pool: what is not available out of the capacity. For a dir pool that is the
 * whole filesystem's use, which is what decides whether the next disk fits.
 */
export function usedPercent(p: Pick<PoolSummary, "capacity" | "available">): number | null {
  if (p.capacity <= 0) return null;
  return Math.round(((p.capacity - p.available) / p.capacity) * 1000) / 10;
}

/** The status of every pool of the host, sorted by name. */
export async function storageStatus(lv: Libvirt): Promise<PoolStatus[]> {
  return (await listPools(lv)).map((p) => {
    const used = usedPercent(p);
    return { ...p, usedPercent: used, warning: used !== null && used > FULL_WARNING_PERCENT };
  });
}
