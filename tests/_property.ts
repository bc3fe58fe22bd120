/**
 * Runs property-based tests (fast-check) in a worker, so that a decoder that loops forever fails its
 * test after a generous deadline instead of stalling the whole suite.
 *
 * A property test file lists its properties and calls {@linkcode propertyTests} once. Loaded by
 * `deno test`, the file registers one test per property; each test loads the same file again in a
 * worker, where the call serves the properties instead. Every property passes a fixed `seed` to
 * `fc.assert`, so a failure (which fast-check reports with its seed, path and counterexample) reproduces.
 *
 * @module
 */

import { type Missing, testNeeding } from "./_require.ts";

/** Named properties: each runs its `fc.assert` and throws on failure. */
export type Properties = Record<string, () => void | Promise<void>>;

/** How long one property may run before it counts as hung: far above any normal run. */
const HANG_DEADLINE_MS = 120_000;

interface Outcome {
  ok: boolean;
  message?: string;
}

function inWorker(): boolean {
  const scope = (globalThis as { WorkerGlobalScope?: abstract new () => unknown })
    .WorkerGlobalScope;
  return scope !== undefined && globalThis instanceof scope;
}

/**
 * Registers one `Deno.test` per property (in the main thread), or serves the properties (in the
 * worker that such a test starts).
 *
 * @param moduleUrl `import.meta.url` of the calling test file
 * @param properties the properties, by test name
 * @param needs what a property needs from the machine (a tool), as tests/_require.ts words it
 */
export function propertyTests(
  moduleUrl: string,
  properties: Properties,
  needs: Readonly<Record<string, Missing>> = {},
): void {
  if (inWorker()) {
    const scope = globalThis as unknown as {
      onmessage: ((e: MessageEvent<string>) => void) | null;
      postMessage(o: Outcome | { ready: true }): void;
    };
    scope.onmessage = async (e) => {
      try {
        await properties[e.data]!();
        scope.postMessage({ ok: true });
      } catch (err) {
        scope.postMessage({ ok: false, message: describe(err) });
      }
    };
    // A module with top-level await is evaluated after the first message could arrive: say when
    // the handler is in place.
    scope.postMessage({ ready: true });
    return;
  }
  for (const name of Object.keys(properties)) {
    testNeeding(needs[name] ?? null, { name, fn: () => runInWorker(moduleUrl, name) });
  }
}

/** fast-check's report (seed, path, counterexample), then the assertion that failed, as its cause. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `\nCaused by: ${err.cause.stack ?? err.cause}` : "";
  return `${err.message}${cause}`;
}

async function runInWorker(moduleUrl: string, name: string): Promise<void> {
  const worker = new Worker(moduleUrl, { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const outcome = await new Promise<Outcome>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<Outcome | { ready: true }>) => {
        if ("ready" in e.data) worker.postMessage(name);
        else resolve(e.data);
      };
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`The property worker failed: ${e.message}`));
      };
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `Property "${name}" did not finish within ${HANG_DEADLINE_MS / 1000} s: ` +
                "something loops forever (the seed is fixed; run the file alone to reproduce)",
            ),
          ),
        HANG_DEADLINE_MS,
      );
    });
    if (!outcome.ok) throw new Error(outcome.message);
  } finally {
    clearTimeout(timer);
    worker.terminate();
  }
}
