/**
 * One slot for the end-to-end tests that boot TCG guests. `deno test --parallel` runs two test
 * files at once on these 2-core hosts; two guest-booting files at once (six virtwork guests and the
 * day-2 guest) starve each other's guests past their timeouts, while run one after the other each
 * gets the CPU it was measured with. The slot is a file lock, so it holds across test workers and
 * across processes; the other worker goes on with tests that boot nothing meanwhile.
 */

/** Runs `fn` while holding the guest slot; says how long it waited when that was more than 1 s. */
export async function withGuestSlot<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const path = `${Deno.env.get("TMPDIR") ?? "/tmp"}/foundry-e2e-guest-slot.lock`;
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  try {
    const started = performance.now();
    await file.lock(true);
    const waited = performance.now() - started;
    if (waited > 1000) {
      console.log(`  ${what}: waited ${Math.round(waited / 1000)} s for the guest slot`);
    }
    return await fn();
  } finally {
    await file.unlock().catch(() => {});
    file.close();
  }
}
