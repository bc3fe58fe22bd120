import type { Command } from "npm:commander@^15.1.0";
import type { Auditor } from "../../lib/audit/types.ts";
import { type ClientOptions, connect, type KubeClient } from "../../lib/kubevirt/client.ts";
import { ConnectionError, KubeApiError } from "../../lib/kubevirt/errors.ts";
import type { VirtworkSettings } from "../../lib/kubevirt/config.ts";
import { RunFailedError } from "../../lib/kubevirt/run.ts";
import { ExitCode } from "../_program.ts";
import { interruptSignal as processInterrupt } from "../_signals.ts";

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

/** Parses a CLI number argument. */
export function numberArg(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new TypeError(`expected a number, got "${v}"`);
  return n;
}

/** Collects a repeatable option. */
export function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** Splits a comma-separated option value. */
export function csv(v: string): string[] {
  return v.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Connects with the configured kubeconfig, context and rate limit. */
export function clusterClient(
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

/** An error carrying the exit code of the design for a failure from lib/kubevirt. */
export function withExitCode(err: unknown): Error & { exitCode: number } {
  const inner = err instanceof RunFailedError ? err.cause : err;
  const e = (err instanceof Error ? err : new Error(String(err))) as Error & { exitCode: number };
  if (inner instanceof Error && inner.name === "InterruptedError") {
    e.exitCode = ExitCode.INTERRUPTED;
  } else if (inner instanceof ConnectionError) e.exitCode = ExitCode.CONNECTION;
  else if (inner instanceof KubeApiError) e.exitCode = ExitCode.VM_OPERATION;
  else if (inner instanceof Error && inner.name === "ConfigError") e.exitCode = ExitCode.CONFIG;
  else e.exitCode = ExitCode.VM_OPERATION;
  return e;
}
