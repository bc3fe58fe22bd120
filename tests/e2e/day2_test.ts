/**
 * Day-2 operations end to end on one shared, booted test-image guest (see `day2/_guest.ts`):
 * each step module `day2/<step>_steps.ts` exports `run(guest, t)` and leaves the guest running
 * for the next. The snapshot step restarts the guest once for revert, events and clone together
 * (see day2/snapshot_steps.ts), so it goes last.
 */
import { bootDay2Guest, type Day2Guest, ONLY } from "./day2/_guest.ts";
import { libvirtSkipReason } from "../libvirt/_env.ts";
import { firstMissing, requireRoot, requireTool, testNeeding } from "../_require.ts";
import { withGuestSlot } from "./_guest_slot.ts";

/** One step module's contract. */
export interface Day2Steps {
  run(guest: Day2Guest, t: Deno.TestContext): Promise<void>;
}

/** The steps, in the order they run on the shared guest. */
const STEPS = ["console", "agent", "describe", "resize", "apply", "snapshot"] as const;

const missing = firstMissing(
  libvirtSkipReason,
  requireRoot("building the image and bridges"),
  requireTool("tmux", "ip"),
);

testNeeding(missing, {
  name: "day-2: console, exec/cp/logs, describe/events, snapshots, resize, clone on one guest",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) =>
    withGuestSlot("day-2", async () => {
      const guest = await bootDay2Guest();
      try {
        for (const step of STEPS) {
          if (ONLY && !ONLY.has(step)) continue;
          const mod = await import(
            new URL(`./day2/${step}_steps.ts`, import.meta.url).href
          ) as Day2Steps;
          const started = performance.now();
          await t.step(step, (s) => mod.run(guest, s));
          console.log(
            `  day2 step ${step}: ${((performance.now() - started) / 1000).toFixed(1)} s`,
          );
        }
      } finally {
        await guest.cleanup();
      }
    }),
});
