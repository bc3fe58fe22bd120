import type { Command } from "npm:commander@^15.1.0";
import { intArg, numberArg } from "../_args.ts";
import { openAuditReader } from "../_audit.ts";
import { clusterRunIds, resolveRunIdPrefix } from "../../lib/kubevirt/run_id.ts";
import type { ClusterApi } from "../../lib/kubevirt/client.ts";
import type { Auditor } from "../../lib/audit/types.ts";
import type { ClientOptions, KubeClient } from "../../lib/kubevirt/client.ts";
import { ConnectionError } from "../../lib/kubevirt/errors.ts";
import type { VirtworkSettings } from "../../lib/virtwork/config.ts";
import { RunFailedError } from "../../lib/kubevirt/run.ts";
import { PlanRunError } from "../../lib/virtwork/run.ts";
import { ExitCode, exitCodeFor } from "../_program.ts";
import { interruptSignal as processInterrupt } from "../_signals.ts";
import { VIRTWORK_SETTING_FLAGS as F, withVirtworkFlag } from "./_config_flags.ts";

/** What the commands take from their surroundings; tests substitute each part. */
export interface VirtworkDeps {
  /** Environment (default: the process environment). */
  env?: Record<string, string | undefined>;
  /** Stops a run or cleanup; when absent, Ctrl-C (SIGINT) does. */
  signal?: AbortSignal;
  /** Whether stdout is a terminal (for colour). */
  isTerminal?: boolean;
  /** Audit sink (default: none). */
  auditor?: Auditor;
  /** Client settings merged over the configured ones (tests use fast backoff). */
  client?: ClientOptions;
}

/** Maps commander option names to configuration keys, for options the user actually gave. */
export function givenFlags(
  cmd: Command,
  keys: readonly (keyof VirtworkSettings)[],
): Partial<Record<keyof VirtworkSettings, unknown>> {
  const opts = cmd.opts() as Record<string, unknown>;
  const flags: Partial<Record<keyof VirtworkSettings, unknown>> = {};
  for (const key of keys) {
    if (cmd.getOptionValueSource(key) === "cli") flags[key] = opts[key];
  }
  return flags;
}

/**
 * Adds the options that say how to reach the cluster, which run and cleanup both take:
 * `--kubeconfig`, `--context`, `--qps` and `--burst`.
 */
export function addClusterOptions(command: Command): Command {
  return command
    .option(
      `${F.kubeconfig} <path>`,
      "kubeconfig file (default: in-cluster, KUBECONFIG, ~/.kube/config)",
    )
    .option(`${F.context} <name>`, "kubeconfig context")
    .option(`${F.qps} <n>`, "client-side API requests per second (default 20)", numberArg)
    .option(`${F.burst} <n>`, "client-side API request burst (default 20)", intArg);
}

/** Collects a repeatable option. */
export function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** Splits a comma-separated option value. */
export function csv(v: string): string[] {
  return v.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/**
 * Connects with the configured kubeconfig, context and rate limit. The Kubernetes client is loaded
 * here, not at start-up: `run --dry-run`, `audit` and `--help` never need it (~150 ms measured).
 */
export async function clusterClient(
  cfg: Pick<VirtworkSettings, "kubeconfig" | "context" | "qps" | "burst">,
  deps: VirtworkDeps,
  signal: AbortSignal | undefined,
  onRetry?: ClientOptions["onRetry"],
): Promise<{ client: KubeClient; source: string }> {
  const { connect } = await import("../../lib/kubevirt/client.ts");
  try {
    return connectWith(connect, cfg, deps, signal, onRetry);
  } catch (e) {
    if (e instanceof ConnectionError && e.message.startsWith(NO_CLUSTER)) {
      throw new ConnectionError(
        `${e.message}; pass --kubeconfig or set KUBECONFIG, or try virtwork run --dry-run, ` +
          "which prints every object and needs no cluster",
        [],
        { cause: e },
      );
    }
    throw e;
  }
}

/** How lib/kubevirt's error begins when no kubeconfig or in-cluster account was found. */
const NO_CLUSTER = "no cluster configuration found";

function connectWith(
  connect: typeof import("../../lib/kubevirt/client.ts").connect,
  cfg: Pick<VirtworkSettings, "kubeconfig" | "context" | "qps" | "burst">,
  deps: VirtworkDeps,
  signal: AbortSignal | undefined,
  onRetry?: ClientOptions["onRetry"],
): { client: KubeClient; source: string } {
  return connect({
    ...(cfg.kubeconfig ? { kubeconfig: cfg.kubeconfig } : {}),
    ...(cfg.context ? { context: cfg.context } : {}),
    env: deps.env ?? Deno.env.toObject(),
    qps: cfg.qps,
    burst: cfg.burst,
    ...(signal ? { signal } : {}),
    ...(onRetry ? { onRetry } : {}),
    ...deps.client,
  });
}

/**
 * An AbortSignal that fires on Ctrl-C, SIGTERM or SIGHUP (the run's scope, `cli/_signals.ts`),
 * unless the caller supplied one. `dispose` is kept for callers; the scope ends with the run.
 */
export function interruptSignal(deps: VirtworkDeps): { signal: AbortSignal; dispose: () => void } {
  const signal = deps.signal ?? processInterrupt() ?? new AbortController().signal;
  return { signal, dispose: () => {} };
}

/**
 * An error carrying the exit code of the design for a failure from lib/kubevirt: the shared table
 * (cli/_program.ts) decides, and a failure it does not know is a cluster operation's (4). A bad
 * setting given as a flag is named by its flag (`--vm-count: must be ...`).
 */
export function withExitCode(err: unknown): Error & { exitCode: number } {
  const inner = err instanceof RunFailedError || err instanceof PlanRunError ? err.cause : err;
  const e = withVirtworkFlag(err instanceof Error ? err : new Error(String(err))) as Error & {
    exitCode: number;
  };
  e.exitCode = exitCodeFor(inner, ExitCode.VM_OPERATION);
  return e;
}

/** A whole run id (what `crypto.randomUUID` makes): nothing to resolve. */
const WHOLE_RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The run id `idOrPrefix` stands for, as `audit show` takes one: a whole id as it is, else the one
 * run of the audit trail (runs in `namespace`, or on that libvirt URI) or of the objects in
 * `namespace` that it begins (with `api`: on a cluster).
 * Cleanup selects objects by label, and a label selector needs the whole value.
 *
 * @throws {AmbiguousRunIdError} when the prefix fits several runs (exit 2)
 */
export async function resolveRunId(
  idOrPrefix: string,
  where: { auditDb: string; namespace: string; api?: ClusterApi },
): Promise<string> {
  if (WHOLE_RUN_ID.test(idOrPrefix)) return idOrPrefix;
  const known = new Set(where.api ? await clusterRunIds(where.api, where.namespace) : []);
  const db = await openAuditReader(where.auditDb);
  if (db) {
    const { runIdsWithPrefix } = await import("../../lib/audit/reader.ts");
    try {
      for (const id of runIdsWithPrefix(db, "virtwork", idOrPrefix, where.namespace)) known.add(id);
    } finally {
      db.close();
    }
  }
  return resolveRunIdPrefix(idOrPrefix, known);
}
