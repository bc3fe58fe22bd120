/**
 * A client-side token bucket, as client-go's: `qps` tokens a second, up to `burst` at once.
 * @module
 */

/** Limits how often callers proceed: `qps` per second on average, `burst` at once. */
export class RateLimiter {
  readonly #qps: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;
  readonly #now: () => number;

  /**
   * Creates a full bucket.
   *
   * @param qps average permits per second (> 0)
   * @param burst permits available at once (>= 1)
   * @param now clock in milliseconds, for tests
   */
  constructor(qps: number, burst: number, now: () => number = () => performance.now()) {
    if (!(qps > 0)) throw new RangeError(`qps must be positive, got ${qps}`);
    if (!(Number.isInteger(burst) && burst >= 1)) {
      throw new RangeError(`burst must be a positive integer, got ${burst}`);
    }
    this.#qps = qps;
    this.#burst = burst;
    this.#tokens = burst;
    this.#now = now;
    this.#last = now();
  }

  /**
   * Reserves one permit and returns how many milliseconds the caller must wait for it. Reservations
   * may drive the bucket negative, so concurrent callers queue in order.
   */
  reserve(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#qps);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.#qps) * 1000;
  }

  /** Waits until a permit is available; rejects when `signal` aborts first. */
  async acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const wait = this.reserve();
    if (wait > 0) await sleep(wait, signal);
  }
}

/** Sleeps `ms`, rejecting with the signal's reason when it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
