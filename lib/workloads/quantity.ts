/**
 * Kubernetes quantities (`2Gi`, `1.5G`, `512Mi`) as users write sizes, and the bytes workloads hand
 * to backends. Same grammar as lib/kubevirt/config.ts's check (kept here so lib/workloads imports
 * nothing but lib/cloudinit).
 * @module
 */

const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const FACTOR: Readonly<Record<string, number>> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** True when `q` is written as a Kubernetes quantity (`2Gi`, `1.5G`, `100`), whatever its size. */
export function isQuantity(q: string): boolean {
  return QUANTITY.test(q);
}

/**
 * Bytes of a Kubernetes quantity such as `2Gi` or `1.5G`, rounded to a whole byte; undefined when
 * it is not one, or when it is larger than a safe integer.
 */
export function quantityBytes(q: string): number | undefined {
  const m = QUANTITY.exec(q);
  if (!m) return undefined;
  const unit = m[2] ?? "";
  const bytes = Math.round(Number(q.slice(0, q.length - unit.length)) * FACTOR[unit]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * Bytes of `q`, or a RangeError naming `what`: `memory must be a Kubernetes quantity such as 2Gi,
 * got "2 GB"`. Zero is rejected too.
 */
export function requireQuantityBytes(q: string, what: string): number {
  const bytes = quantityBytes(q);
  if (bytes === undefined || bytes <= 0) {
    throw new RangeError(
      `${what} must be a positive Kubernetes quantity such as 2Gi, got ${JSON.stringify(q)}`,
    );
  }
  return bytes;
}

/**
 * The shortest binary quantity for `bytes` (`2147483648` → `2Gi`, `1536Mi`), or the plain number
 * when no binary unit divides it; `quantityBytes(formatQuantity(n)) === n`.
 */
export function formatQuantity(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`bytes must be a non-negative integer, got ${bytes}`);
  }
  for (const unit of ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"] as const) {
    const f = FACTOR[unit]!;
    if (bytes >= f && bytes % f === 0) return `${bytes / f}${unit}`;
  }
  return String(bytes);
}
