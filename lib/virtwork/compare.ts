/**
 * Comparing two runs' latencies and gating a run on them.
 *
 * {@linkcode compareRuns} gives, per phase and statistic, run B minus run A with a bootstrap 95 %
 * confidence interval: {@linkcode BOOTSTRAP_RESAMPLES} times, each run's samples are resampled
 * with replacement (same size, independently), the statistic is computed on both resamples and
 * their difference kept; the interval is the 2.5th and 97.5th percentile of those differences
 * (percentile bootstrap, quantiles by the report's linear method). The pseudo-random generator is
 * seeded (mulberry32), so the same two runs always give the same interval. An interval that does
 * not contain 0 says the difference is unlikely to be noise; with few samples, p99's interval is
 * wide and should be read so.
 *
 * {@linkcode parseThreshold} reads `--threshold PHASE.STAT=VALUE` (`VMReady.p99=60s`); a gate
 * holds when the statistic is at most the value. VMs that never reached the phase count as
 * infinitely late, so a run whose VMs did not get there cannot pass a gate on it by leaving them
 * out ({@linkcode evaluateThresholds}).
 *
 * @example
 * ```ts
 * import { evaluateThresholds, parseThreshold } from "./compare.ts";
 * const gate = parseThreshold("VMReady.p99=60s");
 * const [r] = evaluateThresholds([gate], { VMReady: [2_000, 3_500] }, 2);
 * console.log(r!.ok, r!.actual); // true 3485
 * ```
 * @module
 */
import { quantile, STAT_NAMES, type StatName } from "./latency.ts";

/** Resamples per bootstrap interval. */
export const BOOTSTRAP_RESAMPLES = 2000;

/** The seed of the bootstrap's generator unless another is given. */
export const BOOTSTRAP_SEED = 0x5eed_1234;

/** The statistics {@linkcode compareRuns} compares. */
export const COMPARED_STATS = ["p50", "p95", "p99", "avg"] as const;

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `stat` of ascending `sorted` samples (non-empty; `count` is their number). */
export function statOf(sorted: readonly number[], stat: StatName): number {
  switch (stat) {
    case "count":
      return sorted.length;
    case "min":
      return sorted[0]!;
    case "max":
      return sorted[sorted.length - 1]!;
    case "avg": {
      let s = 0;
      for (const x of sorted) s += x;
      return s / sorted.length;
    }
    case "p50":
      return quantile(sorted, 0.5);
    case "p95":
      return quantile(sorted, 0.95);
    case "p99":
      return quantile(sorted, 0.99);
  }
}

/** One statistic of one phase in two runs. */
export interface StatDelta {
  /** Phase. */
  phase: string;
  /** Statistic. */
  stat: StatName;
  /** Run A's value, ms. */
  a: number;
  /** Run B's value, ms. */
  b: number;
  /** `b - a`, ms. */
  delta: number;
  /** `delta` relative to `a` (null when `a` is 0). */
  relative: number | null;
  /** Bootstrap 95 % confidence interval of `delta`, ms. */
  ci95: [number, number];
}

/** A phase one run has samples of and the other has not. */
export interface UnpairedPhase {
  /** Phase. */
  phase: string;
  /** Samples in run A. */
  countA: number;
  /** Samples in run B. */
  countB: number;
}

/** What {@linkcode compareRuns} found. */
export interface RunComparison {
  /** Deltas, phase by phase, in the order of `phases`, each in {@linkcode COMPARED_STATS}' order. */
  deltas: StatDelta[];
  /** Phases without samples in one of the runs. */
  unpaired: UnpairedPhase[];
  /** Resamples per interval. */
  resamples: number;
  /** Generator seed. */
  seed: number;
}

/** Options of {@linkcode compareRuns}. */
export interface CompareOptions {
  /** Resamples per interval (default {@linkcode BOOTSTRAP_RESAMPLES}). */
  resamples?: number;
  /** Generator seed (default {@linkcode BOOTSTRAP_SEED}). */
  seed?: number;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/**
 * Per phase present in both runs, B minus A for p50, p95, p99 and avg with bootstrap 95 %
 * intervals. `a` and `b` map a phase to its samples in ms (one per VM that reached it).
 */
export function compareRuns(
  a: Readonly<Record<string, readonly number[]>>,
  b: Readonly<Record<string, readonly number[]>>,
  o: CompareOptions = {},
): RunComparison {
  const resamples = o.resamples ?? BOOTSTRAP_RESAMPLES;
  if (!Number.isInteger(resamples) || resamples < 100 || resamples > 100_000) {
    throw new RangeError(`resamples must be an integer in 100..100000, got ${resamples}`);
  }
  const seed = o.seed ?? BOOTSTRAP_SEED;
  const phases = [...Object.keys(a), ...Object.keys(b).filter((p) => !(p in a))];
  const deltas: StatDelta[] = [];
  const unpaired: UnpairedPhase[] = [];
  for (const phase of phases) {
    const sa = [...(a[phase] ?? [])].sort((x, y) => x - y);
    const sb = [...(b[phase] ?? [])].sort((x, y) => x - y);
    if (sa.length === 0 || sb.length === 0) {
      unpaired.push({ phase, countA: sa.length, countB: sb.length });
      continue;
    }
    // One generator per phase, seeded from the run seed and the phase name, so adding a phase
    // never changes another's interval.
    const rand = mulberry32(seed ^ hash(phase));
    const boot: Record<string, number[]> = {};
    for (const s of COMPARED_STATS) boot[s] = [];
    const ra = new Array<number>(sa.length);
    const rb = new Array<number>(sb.length);
    for (let i = 0; i < resamples; i++) {
      for (let j = 0; j < sa.length; j++) ra[j] = sa[Math.floor(rand() * sa.length)]!;
      for (let j = 0; j < sb.length; j++) rb[j] = sb[Math.floor(rand() * sb.length)]!;
      ra.sort((x, y) => x - y);
      rb.sort((x, y) => x - y);
      for (const s of COMPARED_STATS) boot[s]!.push(statOf(rb, s) - statOf(ra, s));
    }
    for (const stat of COMPARED_STATS) {
      const va = statOf(sa, stat);
      const vb = statOf(sb, stat);
      const d = boot[stat]!.sort((x, y) => x - y);
      deltas.push({
        phase,
        stat,
        a: round3(va),
        b: round3(vb),
        delta: round3(vb - va),
        relative: va === 0 ? null : round3((vb - va) / va),
        ci95: [round3(quantile(d, 0.025)), round3(quantile(d, 0.975))],
      });
    }
  }
  return { deltas, unpaired, resamples, seed };
}

/** FNV-1a of a string, 32 bits. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A gate: `phase`'s `stat` must be at most `maxMs`. */
export interface Threshold {
  /** Phase (`VMReady`). */
  phase: string;
  /** Statistic. */
  stat: StatName;
  /** Upper bound in ms (for `count`: a number of VMs). */
  maxMs: number;
  /** As given. */
  text: string;
}

/** A threshold gate that cannot be read; the CLI names its flag in front of the message. */
export class ThresholdError extends Error {
  /** The value as given. */
  readonly value: string;
  /** Says what is wrong with `value`. */
  constructor(value: string, problem: string) {
    super(`threshold ${JSON.stringify(value)}: ${problem}`);
    this.name = "ValidationError";
    this.value = value;
  }
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000 };

/** Longest `--threshold` value read. */
const MAX_THRESHOLD = 200;

/**
 * Reads `PHASE.STAT=VALUE`: `PHASE` a phase name (letters and digits), `STAT` one of
 * {@linkcode STAT_NAMES}, `VALUE` a non-negative number with a unit `ms`, `s` or `m` (`count`
 * takes a bare number).
 *
 * @throws {ThresholdError} naming the gate and what is wrong (exit 2 in the CLI)
 */
export function parseThreshold(text: string): Threshold {
  if (text.length > MAX_THRESHOLD) {
    throw new ThresholdError(text.slice(0, 40) + "...", `longer than ${MAX_THRESHOLD} characters`);
  }
  const m = /^([A-Za-z][A-Za-z0-9]{0,63})\.([a-z0-9]+)=(.*)$/.exec(text);
  if (!m) throw new ThresholdError(text, "expected PHASE.STAT=VALUE, e.g. VMReady.p99=60s");
  const [, phase, stat, value] = m as unknown as [string, string, string, string];
  if (!(STAT_NAMES as readonly string[]).includes(stat)) {
    throw new ThresholdError(
      text,
      `statistic must be one of ${STAT_NAMES.join(", ")}, got ${stat}`,
    );
  }
  const v = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!v) {
    throw new ThresholdError(
      text,
      `value must be a non-negative number with a unit ms, s or m, got ${JSON.stringify(value)}`,
    );
  }
  const n = Number(v[1]);
  const unit = v[2];
  if (stat === "count") {
    if (unit !== undefined) throw new ThresholdError(text, "count takes a number of VMs, no unit");
    return { phase, stat: "count", maxMs: n, text };
  }
  if (unit === undefined) throw new ThresholdError(text, "value needs a unit: ms, s or m");
  return { phase, stat: stat as StatName, maxMs: n * UNIT_MS[unit]!, text };
}

/** How one gate fared. */
export interface ThresholdResult {
  /** The gate. */
  threshold: Threshold;
  /** Whether it held. */
  ok: boolean;
  /** The statistic's value in ms (Infinity when VMs that never got there decide it). */
  actual: number;
  /** Why it failed, for people. */
  reason?: string;
}

/**
 * Evaluates `gates` against a run: `samples` maps a phase to the figures of the VMs that reached
 * it, `vmCount` is the number of VMs in the run. VMs without the phase count as infinitely late,
 * so `max` and `avg` fail with any of them, and a quantile fails when they reach its rank.
 */
export function evaluateThresholds(
  gates: readonly Threshold[],
  samples: Readonly<Record<string, readonly number[]>>,
  vmCount: number,
): ThresholdResult[] {
  return gates.map((g) => {
    const s = [...(samples[g.phase] ?? [])].sort((x, y) => x - y);
    const missing = Math.max(0, vmCount - s.length);
    if (g.stat === "count") {
      const ok = s.length <= g.maxMs;
      return {
        threshold: g,
        ok,
        actual: s.length,
        ...(ok ? {} : { reason: `${s.length} VMs reached ${g.phase}, more than ${g.maxMs}` }),
      };
    }
    if (s.length === 0) {
      return {
        threshold: g,
        ok: false,
        actual: Infinity,
        reason: `no VM reached ${g.phase}`,
      };
    }
    const all = [...s, ...new Array<number>(missing).fill(Infinity)];
    let actual = g.stat === "min" ? s[0]! : statOf(all, g.stat);
    if (Number.isNaN(actual)) actual = Infinity; // Infinity - Infinity in an interpolation
    actual = Number.isFinite(actual) ? round3(actual) : actual;
    const ok = actual <= g.maxMs;
    const late = missing > 0 ? ` (${missing} of ${vmCount} VMs never reached ${g.phase})` : "";
    return {
      threshold: g,
      ok,
      actual,
      ...(ok ? {} : {
        reason: `${g.phase}.${g.stat} is ${formatMs(actual)}, over ${formatMs(g.maxMs)}${late}`,
      }),
    };
  });
}

/** Milliseconds for people: `850ms`, `2.98s`, `12.3s`, `2m05s`, `never`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "never";
  if (Math.abs(ms) < 1000) return `${Math.round(ms * 10) / 10}ms`;
  // Rounded in integers first: 6975 ms is 6.98s, not toFixed's 6.97 of a binary 6.975.
  if (Math.abs(ms) < 10_000) return `${(Math.round(ms / 10) / 100).toFixed(2)}s`;
  if (Math.abs(ms) < 120_000) return `${(Math.round(ms / 100) / 10).toFixed(1)}s`;
  const s = Math.round(Math.abs(ms) / 1000);
  return `${ms < 0 ? "-" : ""}${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}
