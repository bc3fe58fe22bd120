#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=deno,cat
/**
 * Benchmark: `virtwork run` of many VMs, as its own process (`deno run cli/virtwork.ts run ...`),
 * against the Kubernetes API test server started here with known per-VM ready times, through the
 * real client and its rate limit (virtwork's default QPS and burst unless given). While it runs,
 * the CLI's memory is sampled from `/proc/<pid>/status` (VmHWM: the peak resident set so far).
 *
 * Prints one JSON line per figure: `{"figure": name, "value": v, "unit"?: u, "note"?: text}`.
 * The QPS floor is the least time the client-side token bucket allows for the requests made:
 * every request waits for the bucket, which starts with `burst` tokens and refills at `qps` a
 * second, so the last of R requests cannot leave before `(R - burst) / qps` seconds after the
 * first. The run cannot end before that; its wall time (first create to the process's exit) over
 * the floor is the ratio the acceptance bounds (1.1).
 *
 * Usage: `deno task bench:virtwork [--vms 1000] [--latency-ms 20] [--ready-ms 500]
 * [--ready-spread-ms 1000] [--qps N] [--burst N] [--audit] [--cli-v8-flags FLAGS]`
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { DEFAULTS } from "../lib/virtwork/defaults.ts";
import { quantile } from "../lib/virtwork/latency.ts";
import { K8sTestServer } from "../tests/virtwork/k8s_server.ts";
import { KUBEVIRT_SCHEMA_PATH, OpenApiValidator } from "../tests/virtwork/openapi_validator.ts";

/** Benchmark settings. */
export interface BenchOptions {
  /** VMs to run (of `cpu`, then `memory` and `disk` beyond 500: {@linkcode workloadsOf}). */
  vms: number;
  /** Delay the server adds to every response, ms. */
  latencyMs: number;
  /** Least time from a VMI's creation to Ready, ms. */
  readyMs: number;
  /** Each VM's ready time is `readyMs` plus a fixed pseudo-random share of this, ms. */
  readySpreadMs: number;
  /** Client QPS (default: virtwork's). */
  qps?: number;
  /** Client burst (default: virtwork's). */
  burst?: number;
  /** Keep the audit trail on (a database in a temporary directory); default off. */
  audit?: boolean;
  /** Readiness timeout of the run, s (default 600). */
  timeoutSeconds?: number;
  /** V8 flags of the CLI process (`--prof,--logfile=...` to profile it). */
  cliV8Flags?: string;
  /** Memory samples this far apart, ms (default 250). */
  sampleMs?: number;
}

/** What one run measured. */
export interface BenchResult {
  /** The CLI's exit code. */
  exitCode: number;
  vms: number;
  qps: number;
  burst: number;
  /** Requests the server received, by kind. */
  requests: { create: number; list: number; watch: number; get: number; other: number };
  /** Every request goes through the client's token bucket. */
  rateLimited: number;
  /** `(rateLimited - burst) / qps`, s. */
  floorSeconds: number;
  /** From the server's receipt of the first create to the CLI process's exit, s. */
  wallSeconds: number;
  /** wallSeconds / floorSeconds. */
  ratio: number;
  /** From the last VMI turning Ready (the server's clock) to the process's exit, s. */
  lastReadyToEndSeconds: number;
  /** From the last create's receipt to the last Ready, s (the last VMs' own ready time). */
  lastCreateToLastReadySeconds: number;
  /** Highest VmHWM sampled, MiB. */
  peakRssMiB: number;
  /** CPU time the CLI process used, as last sampled, s. */
  cliCpuSeconds: number;
  /** CPU time this process (the API test server, mostly) used meanwhile, s. */
  serverCpuSeconds: number;
  /** Memory samples taken. */
  memorySamples: number;
  /** VMs the run reported ready. */
  vmsReady: number;
  /** VMs whose VMReady differs from the server's truth by 1 s or more. */
  readyOff1s: number;
  /** Largest |VMReady - truth|, ms. */
  readyMaxErrorMs: number;
  /** VMs whose VMReady is earlier than the truth. */
  readyEarly: number;
  /** Median of VMReady - truth, ms. */
  readyErrorP50Ms: number;
  /** 99th percentile of VMReady - truth, ms. */
  readyErrorP99Ms: number;
  /** Lines virtwork wrote to its (piped) stderr. */
  stderrLines: number;
  /** Progress lines among them (`VM x created`, `VM x ready after`). */
  progressLines: number;
  /** The most requests the server handled at once. */
  maxInFlight: number;
  /** The CLI's stderr when it failed (the last 2000 characters). */
  stderrTail?: string;
}

/** The ready time of VM `name`: `readyMs` plus a share of `spread` fixed by its name. */
export function readyTimeOf(name: string, readyMs: number, spread: number): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return readyMs + (spread > 0 ? h % (spread + 1) : 0);
}

/** Most VMs virtwork runs of one workload (`--vm-count`). */
const MAX_PER_WORKLOAD = 500;
/** Workloads of plain VMs (no Service, no peer), taken in this order as more VMs are asked for. */
const PLAIN_WORKLOADS = ["cpu", "memory", "disk"] as const;

/** The workloads `vms` VMs are spread over evenly (500 at most each). */
export function workloadsOf(vms: number): string[] {
  const n = Math.ceil(vms / MAX_PER_WORKLOAD);
  if (!Number.isInteger(vms) || vms < 1 || n > PLAIN_WORKLOADS.length || vms % n !== 0) {
    throw new RangeError(
      `vms must be 1-${MAX_PER_WORKLOAD}, or a multiple of 2 or 3 up to ` +
        `${MAX_PER_WORKLOAD * PLAIN_WORKLOADS.length}, got ${vms}`,
    );
  }
  return PLAIN_WORKLOADS.slice(0, n);
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

/** One field of /proc/PID/status in kB, or undefined. */
function statusKiB(text: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Reads and drains a stream to text, at most `max` characters kept from the end. */
async function drain(s: ReadableStream<Uint8Array>, onLine?: (l: string) => void): Promise<string> {
  let text = "";
  let partial = "";
  for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    if (onLine) {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    }
  }
  if (onLine && partial !== "") onLine(partial);
  return text;
}

/** Runs the benchmark once. */
export async function benchVirtwork(o: BenchOptions): Promise<BenchResult> {
  const qps = o.qps ?? DEFAULTS.QPS;
  const burst = o.burst ?? DEFAULTS.BURST;
  const server = K8sTestServer.start({
    latencyMs: o.latencyMs,
    readyAfterMs: (n) => readyTimeOf(n, o.readyMs, o.readySpreadMs),
    validator: await OpenApiValidator.fromFile(KUBEVIRT_SCHEMA_PATH),
  });
  const dir = await Deno.makeTempDir({ prefix: "virtwork-bench-" });
  try {
    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kubeconfig, server.kubeconfig());
    const cli = new URL("../cli/virtwork.ts", import.meta.url).pathname;
    const args = [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-sys=hostname",
      ...(o.cliV8Flags ? [`--v8-flags=${o.cliV8Flags}`] : []),
      cli,
      "run",
      "--workloads",
      workloadsOf(o.vms).join(","),
      "--vm-count",
      String(o.vms / workloadsOf(o.vms).length),
      "--timeout",
      String(o.timeoutSeconds ?? 600),
      "-o",
      "json",
      ...(o.qps !== undefined ? ["--qps", String(o.qps)] : []),
      ...(o.burst !== undefined ? ["--burst", String(o.burst)] : []),
      ...(o.audit ? ["--audit-db", `${dir}/audit.db`] : ["--no-audit"]),
    ];
    const child = new Deno.Command("deno", {
      args,
      cwd: dir,
      env: { KUBECONFIG: kubeconfig, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let hwm = 0;
    let cpuTicks = 0;
    const benchCpu0 = process.cpuUsage();
    let samples = 0;
    let stderrLines = 0;
    let progressLines = 0;
    // Deno reads /proc only with --allow-all: cat reads it. VmHWM is the peak so far, so a
    // sample every quarter second misses at most the process's last moments.
    let running = true;
    const sampler = (async () => {
      while (running) {
        const r = await new Deno.Command("cat", {
          args: [`/proc/${child.pid}/status`],
          stdout: "piped",
          stderr: "null",
        }).output().catch(() => undefined);
        const st = await new Deno.Command("cat", {
          args: [`/proc/${child.pid}/stat`],
          stdout: "piped",
          stderr: "null",
        }).output().catch(() => undefined);
        if (st?.success) {
          // utime and stime, fields 14 and 15, in clock ticks (100 a second on Linux).
          const f = new TextDecoder().decode(st.stdout).replace(/^.*\) /s, "").split(" ");
          cpuTicks = Number(f[11]) + Number(f[12]);
        }
        if (r?.success) {
          const t = new TextDecoder().decode(r.stdout);
          const h = statusKiB(t, "VmHWM") ?? statusKiB(t, "VmRSS");
          if (h !== undefined) {
            hwm = Math.max(hwm, h);
            samples++;
          }
        }
        await new Promise((res) => setTimeout(res, o.sampleMs ?? 250));
      }
    })();
    const [out, err, status] = await Promise.all([
      drain(child.stdout),
      drain(child.stderr, (l) => {
        stderrLines++;
        if (/^VM \S+ (created|exists|ready after)/.test(l)) progressLines++;
      }),
      child.status,
    ]);
    const ended = Date.now();
    running = false;
    await sampler;
    const benchCpu = process.cpuUsage(benchCpu0);

    const requests = { create: 0, list: 0, watch: 0, get: 0, other: 0 };
    for (const r of server.requests) {
      const named =
        /\/(virtualmachines|virtualmachineinstances|secrets|services|namespaces)\/[^/]+$/
          .test(r.path);
      if (r.method === "POST") requests.create++;
      else if (r.method === "GET" && /[?&]watch=(1|true)/.test(r.query)) requests.watch++;
      else if (r.method === "GET" && named) requests.get++;
      else if (r.method === "GET") requests.list++;
      else requests.other++;
    }
    const creates = server.requests.filter((r) => r.method === "POST").map((r) => r.at);
    const firstCreate = Math.min(...creates);
    const lastCreate = Math.max(...creates);
    const rateLimited = server.requests.length;
    const floorSeconds = Math.max(0, rateLimited - burst) / qps;
    const wallSeconds = (ended - firstCreate) / 1000;

    // The truth: when the server made each VM and turned its VMI Ready (ms, its clock).
    const made = new Map(
      server.objects("virtualmachines").map((v) => [
        v.metadata.name as string,
        Date.parse(v.metadata.creationTimestamp as string),
      ]),
    );
    const readyAt = new Map<string, number>();
    for (const v of server.objects("virtualmachineinstances")) {
      const c = ((v.status?.conditions ?? []) as {
        type: string;
        status: string;
        lastTransitionTime?: string;
      }[])
        .find((x) => x.type === "Ready" && x.status === "True");
      if (c?.lastTransitionTime) readyAt.set(v.metadata.name, Date.parse(c.lastTransitionTime));
    }
    const lastReady = Math.max(...readyAt.values());
    let vmsReady = 0;
    let readyOff1s = 0;
    let readyMaxErrorMs = 0;
    let readyEarly = 0;
    const errors: number[] = [];
    if (status.code === 0 || status.code === 4 || status.code === 6) {
      const doc = JSON.parse(out) as {
        vms: { name: string; ready: boolean }[];
        latency: { name: string; phases: Record<string, number> }[];
      };
      vmsReady = doc.vms.filter((v) => v.ready).length;
      for (const l of doc.latency) {
        const got = l.phases.VMReady;
        const r = readyAt.get(l.name);
        const m = made.get(l.name);
        if (got === undefined || r === undefined || m === undefined) continue;
        const want = r - m;
        const e = got - want;
        errors.push(e);
        // Date.now() and performance.now() may disagree by a millisecond.
        if (e < -2) readyEarly++;
        if (Math.abs(e) >= 1000) readyOff1s++;
        readyMaxErrorMs = Math.max(readyMaxErrorMs, Math.abs(e));
      }
    }
    return {
      exitCode: status.code,
      vms: o.vms,
      qps,
      burst,
      requests,
      rateLimited,
      floorSeconds,
      wallSeconds,
      ratio: wallSeconds / floorSeconds,
      lastReadyToEndSeconds: (ended - lastReady) / 1000,
      lastCreateToLastReadySeconds: (lastReady - lastCreate) / 1000,
      peakRssMiB: hwm / 1024,
      cliCpuSeconds: cpuTicks / 100,
      serverCpuSeconds: (benchCpu.user + benchCpu.system) / 1e6,
      memorySamples: samples,
      vmsReady,
      readyOff1s,
      readyMaxErrorMs: round3(readyMaxErrorMs),
      readyEarly,
      readyErrorP50Ms: errors.length > 0 ? round3(quantile(errors.sort((a, b) => a - b), 0.5)) : 0,
      readyErrorP99Ms: errors.length > 0 ? round3(quantile(errors, 0.99)) : 0,
      stderrLines,
      progressLines,
      maxInFlight: server.maxInFlight,
      ...(status.code !== 0 ? { stderrTail: err.slice(-2000) } : {}),
    };
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The figures of `r` as JSON lines, one per figure. */
export function figureLines(r: BenchResult): string[] {
  const f = (figure: string, value: unknown, unit?: string, note?: string) =>
    JSON.stringify({
      figure,
      value,
      ...(unit !== undefined ? { unit } : {}),
      ...(note !== undefined ? { note } : {}),
    });
  const round = (n: number, d = 3) => Math.round(n * 10 ** d) / 10 ** d;
  return [
    f("exitCode", r.exitCode),
    f("vms", r.vms),
    f("vmsReady", r.vmsReady),
    f("qps", r.qps),
    f("burst", r.burst),
    f("requests", r.requests, undefined, "by kind, as the API server received them"),
    f("rateLimitedRequests", r.rateLimited, undefined, "every request waits for the token bucket"),
    f(
      "qpsFloor",
      round(r.floorSeconds),
      "s",
      `(rateLimitedRequests - burst) / qps = (${r.rateLimited} - ${r.burst}) / ${r.qps}`,
    ),
    f("wall", round(r.wallSeconds), "s", "first create received to the CLI process's exit"),
    f("ratio", round(r.ratio, 4), undefined, "wall / qpsFloor"),
    f("lastReadyToEnd", round(r.lastReadyToEndSeconds), "s", "last VMI Ready to the exit"),
    f(
      "lastCreateToLastReady",
      round(r.lastCreateToLastReadySeconds),
      "s",
      "the last VMs' own ready time after the floor",
    ),
    f("peakRss", round(r.peakRssMiB, 1), "MiB", `highest VmHWM of ${r.memorySamples} samples`),
    f("cliCpu", round(r.cliCpuSeconds, 2), "s", "user+system of the CLI process, last sample"),
    f("serverCpu", round(r.serverCpuSeconds, 2), "s", "user+system of the bench process (server)"),
    f("listCalls", r.requests.list),
    f("watchCalls", r.requests.watch),
    f("vmReadyOff1s", r.readyOff1s, undefined, "VMs whose VMReady is 1 s or more from the truth"),
    f("vmReadyMaxError", r.readyMaxErrorMs, "ms", "largest |VMReady - truth|"),
    f(
      "vmReadyError",
      { p50: r.readyErrorP50Ms, p99: r.readyErrorP99Ms },
      "ms",
      "VMReady - truth (the server's ms Ready time - its VM creation time)",
    ),
    f("vmReadyEarly", r.readyEarly, undefined, "VMs measured ready before the server made them so"),
    f("progressLines", r.progressLines, undefined, `of ${r.stderrLines} stderr lines (piped)`),
    f("maxInFlight", r.maxInFlight),
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      vms: { type: "string", default: "1000" },
      "latency-ms": { type: "string", default: "20" },
      "ready-ms": { type: "string", default: "500" },
      "ready-spread-ms": { type: "string", default: "1000" },
      qps: { type: "string" },
      burst: { type: "string" },
      audit: { type: "boolean", default: false },
      "cli-v8-flags": { type: "string" },
    },
  });
  const r = await benchVirtwork({
    vms: Number(values.vms),
    latencyMs: Number(values["latency-ms"]),
    readyMs: Number(values["ready-ms"]),
    readySpreadMs: Number(values["ready-spread-ms"]),
    ...(values.qps !== undefined ? { qps: Number(values.qps) } : {}),
    ...(values.burst !== undefined ? { burst: Number(values.burst) } : {}),
    audit: values.audit,
    ...(values["cli-v8-flags"] ? { cliV8Flags: values["cli-v8-flags"] } : {}),
  });
  for (const l of figureLines(r)) console.log(l);
  if (r.stderrTail) console.error(r.stderrTail);
  if (r.exitCode !== 0) Deno.exit(1);
}
