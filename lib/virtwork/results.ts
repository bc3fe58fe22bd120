/**
 * The results channel shared by both backends: a workload in the guest writes one marked line per
 * sample to its serial console (`/dev/ttyS0`, which KubeVirt exposes as the VMI's console
 * subresource and libvirt as the domain's console stream) and appends it to
 * {@linkcode RESULTS_FILE} (readable through the guest agent):
 *
 * ```text
 * VIRTWORK-RESULT {"v":1,"workload":"disk","t":1764669600,"metrics":{"write_iops":850,"read_p99_ms":4.1}}
 * VIRTWORK-RESULT {"v":1,"workload":"database","t":1764669600,"error":"postgresql is not installed and no package source answers"}
 * ```
 *
 * `metrics` maps a name that carries its unit (`bogo_ops_per_s`, `write_iops`, `read_p99_ms`,
 * `tps`, `sent_mbit_per_s`) to a finite number. The parser takes the marker anywhere in a line
 * (console output interleaves kernel messages), bounds the line length and the number of metrics,
 * and ignores anything malformed.
 * @module
 */

/** The marker that starts a result on a console line. */
export const RESULT_MARKER = "VIRTWORK-RESULT ";

/** Where the guest also appends its result lines. */
export const RESULTS_FILE = "/var/lib/virtwork/results.jsonl";

/** Longest result line read, in characters; longer lines are ignored. */
export const MAX_RESULT_LINE = 4096;

/** Most metrics one sample may carry. */
export const MAX_METRICS = 32;

/** One sample a guest reported. */
export interface ResultSample {
  /** Workload that reported it. */
  workload: string;
  /** Guest clock, seconds since the epoch. */
  t: number;
  /** Figures by name (the name carries the unit). */
  metrics: Record<string, number>;
  /** Why the workload cannot run (then `metrics` is empty). */
  error?: string;
}

const METRIC_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The sample on one console or file line, or undefined when the line carries none (no marker,
 * too long, not JSON, wrong shape).
 */
export function parseResultLine(line: string): ResultSample | undefined {
  if (line.length > MAX_RESULT_LINE) return undefined;
  const at = line.indexOf(RESULT_MARKER);
  if (at < 0) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(line.slice(at + RESULT_MARKER.length).trim());
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  if (d.v !== 1 || typeof d.workload !== "string" || !/^[a-z][a-z0-9-]{0,31}$/.test(d.workload)) {
    return undefined;
  }
  if (typeof d.t !== "number" || !Number.isFinite(d.t)) return undefined;
  const metrics: Record<string, number> = {};
  if (d.metrics !== undefined) {
    if (typeof d.metrics !== "object" || d.metrics === null || Array.isArray(d.metrics)) {
      return undefined;
    }
    const entries = Object.entries(d.metrics as Record<string, unknown>);
    if (entries.length > MAX_METRICS) return undefined;
    for (const [k, v] of entries) {
      if (!METRIC_NAME.test(k) || typeof v !== "number" || !Number.isFinite(v)) return undefined;
      metrics[k] = v;
    }
  }
  const sample: ResultSample = { workload: d.workload, t: d.t, metrics };
  if (d.error !== undefined) {
    if (typeof d.error !== "string") return undefined;
    // Control characters never reach a terminal or the audit trail.
    // deno-lint-ignore no-control-regex
    sample.error = d.error.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ").slice(0, 500);
  }
  if (!sample.error && entries(metrics) === 0) return undefined;
  return sample;
}

function entries(o: Record<string, number>): number {
  return Object.keys(o).length;
}

/**
 * Splits a byte stream (a console) into lines and yields the samples on them. Bounded: a line
 * longer than {@linkcode MAX_RESULT_LINE} is dropped up to its end.
 */
export class ResultLineSplitter {
  #buf = "";
  #skipping = false;
  #decoder = new TextDecoder("utf-8", { fatal: false });

  /** Feeds bytes; returns the samples completed by them. */
  push(chunk: Uint8Array): ResultSample[] {
    const out: ResultSample[] = [];
    const text = this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      const piece = nl < 0 ? text.slice(start) : text.slice(start, nl);
      if (!this.#skipping) {
        this.#buf += piece;
        if (this.#buf.length > MAX_RESULT_LINE) {
          this.#buf = "";
          this.#skipping = true;
        }
      }
      if (nl < 0) break;
      if (!this.#skipping) {
        const s = parseResultLine(this.#buf.replace(/\r$/, ""));
        if (s) out.push(s);
      }
      this.#buf = "";
      this.#skipping = false;
      start = nl + 1;
    }
    return out;
  }
}
