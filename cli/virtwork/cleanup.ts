/**
 * `virtwork cleanup`: delete what virtwork created, and only that.
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import { cleanup, type CleanupResult } from "../../lib/kubevirt/cleanup.ts";
import { FLAG_SOURCE } from "../../lib/config/layered.ts";
import {
  loadVirtworkConfig,
  runIdProblem,
  SettingValidationError,
  VIRTWORK_LIMITS,
  type VirtworkSettings,
} from "../../lib/virtwork/config.ts";
import { cleanupRun, type CleanupRunResult } from "../../lib/virtwork/run.ts";
import { DEFAULT_LIBVIRT_URI, openCleanupBackend } from "./_backends.ts";
import { formatJson } from "../../lib/output/format.ts";
import { auditSubscriber } from "../../lib/virtwork/audit_subscriber.ts";
import { givenAuditFlags, openAuditor } from "../_audit.ts";
import { ExitCode, type Io, setExitCode } from "../_program.ts";
import {
  addClusterOptions,
  clusterClient,
  givenFlags,
  interruptSignal,
  resolveRunId,
  type VirtworkDeps,
  withExitCode,
} from "./_shared.ts";
import { intArg, numberArg } from "../_args.ts";
import { VIRTWORK_SETTING_FLAGS as F } from "./_config_flags.ts";

const FLAG_KEYS: (keyof VirtworkSettings)[] = [
  "namespace",
  "kubeconfig",
  "context",
  "qps",
  "burst",
  "output",
  "timeout",
  "target",
  "connect",
];

/** The `cleanup` subcommand. */
export function cleanupCommand(io: Io, deps: VirtworkDeps = {}): Command {
  const command = new Command("cleanup")
    .description(
      "Delete the VMs, Services and Secrets virtwork created (label managed-by=virtwork); with " +
        "--target libvirt, the foundry VMs of virtwork and their volumes",
    )
    .option(`${F.target} <target>`, "kubevirt or libvirt (default kubevirt; env VIRTWORK_TARGET)")
    .option(`${F.connect} <uri>`, "libvirt: connection URI (default qemu:///system)")
    .option(`${F.config} <file>`, "YAML configuration file (env VIRTWORK_CONFIG)")
    .option(`-n, ${F.namespace} <name>`, "namespace to clean (default virtwork)")
    .option(
      `${F.runId} <id>`,
      "only objects of this run (label virtwork/run-id); a unique prefix will do, as in audit show",
    )
    .option("--delete-namespace", "delete the namespace last (only if virtwork created it)")
    .option("--wait", "wait until the deleted objects are gone")
    .option(`${F.timeout} <seconds>`, "how long --wait waits (default 600)", intArg)
    .option(
      `${F.pollInterval} <seconds>`,
      "seconds between polls with --wait (default 2)",
      numberArg,
    );
  return addClusterOptions(command)
    .option(`-o, ${F.output} <format>`, "table or json (default table)")
    .action(async (_o: unknown, cmd: Command) => {
      const opts = cmd.opts() as Record<string, unknown>;
      const verbose = Boolean(cmd.optsWithGlobals().verbose);
      const env = deps.env ?? Deno.env.toObject();
      const flags = { ...givenFlags(cmd, FLAG_KEYS), ...givenAuditFlags(cmd) };
      let cfg;
      try {
        // The run id goes into a label selector: a comma would widen what is deleted.
        const runIdTrouble = typeof opts.runId === "string" ? runIdProblem(opts.runId) : undefined;
        if (runIdTrouble) throw new SettingValidationError("runId", FLAG_SOURCE, runIdTrouble);
        const poll = opts.pollInterval;
        const b = VIRTWORK_LIMITS.pollIntervalSeconds;
        if (typeof poll === "number" && (poll < b.min || poll > b.max)) {
          throw new SettingValidationError(
            "pollInterval",
            FLAG_SOURCE,
            `must be from ${b.min} to ${b.max}, got ${poll}`,
          );
        }
        cfg = await loadVirtworkConfig({
          flags,
          env,
          ...(typeof opts.config === "string" ? { configPath: opts.config } : {}),
        });
      } catch (e) {
        // A SettingValidationError maps to 2; one about a flag is named by it.
        throw withExitCode(e);
      }
      const auditor = deps.auditor ??
        await openAuditor({ enabled: cfg.audit, path: cfg.auditDb });
      const { signal, dispose } = interruptSignal(deps);
      const progress = (m: string) => {
        if (verbose) io.err(`${m}\n`);
      };
      const record = auditSubscriber(auditor, { onError: (e) => progress(`audit: ${e.message}`) });
      if (cfg.target === "libvirt") {
        try {
          const result = await cleanupLibvirt(cfg, opts, record, signal, progress);
          io.out(cfg.output === "json" ? formatJson(result) : libvirtCleanupSummary(result));
          for (const e of result.errors) io.err(`error: ${e.kind} ${e.name}: ${e.message}\n`);
          if (result.errors.length > 0) setExitCode(cmd, ExitCode.VM_OPERATION);
        } finally {
          dispose();
          if (!deps.auditor) auditor.close();
        }
        return;
      }
      try {
        let client;
        try {
          client = (await clusterClient(cfg, deps, signal)).client;
        } catch (e) {
          throw withExitCode(e);
        }
        const runId = typeof opts.runId === "string"
          ? await resolveRunId(opts.runId, {
            auditDb: cfg.auditDb,
            namespace: cfg.namespace,
            api: client,
          }).catch((e) => {
            throw withExitCode(e);
          })
          : undefined;
        if (runId !== undefined && runId !== opts.runId) progress(`run id ${runId}`);
        const result = await cleanup(client, {
          namespace: cfg.namespace,
          ...(runId !== undefined ? { runId } : {}),
          deleteNamespace: Boolean(opts.deleteNamespace),
          wait: Boolean(opts.wait),
          timeoutSeconds: cfg.timeout,
          ...(typeof opts.pollInterval === "number"
            ? { pollIntervalSeconds: opts.pollInterval }
            : {}),
          signal,
          record,
          auditTarget: client.server,
          onProgress: progress,
        });
        io.out(
          cfg.output === "json" ? formatJson(result) : cleanupSummary(result, runId),
        );
        for (const e of result.errors) io.err(`error: ${e.kind} ${e.name}: ${e.message}\n`);
        if (result.errors.length > 0) setExitCode(cmd, ExitCode.VM_OPERATION);
      } finally {
        dispose();
        if (!deps.auditor) auditor.close();
      }
    });
}

/** Removes virtwork's foundry VMs on the libvirt host (of one run, with `--run-id`). */
async function cleanupLibvirt(
  cfg: VirtworkSettings,
  opts: Record<string, unknown>,
  record: ReturnType<typeof auditSubscriber>,
  signal: AbortSignal,
  progress: (m: string) => void,
): Promise<CleanupRunResult> {
  const uri = cfg.connect || DEFAULT_LIBVIRT_URI;
  const runId = typeof opts.runId === "string"
    ? await resolveRunId(opts.runId, { auditDb: cfg.auditDb, namespace: uri }).catch((e) => {
      throw withExitCode(e);
    })
    : undefined;
  if (runId !== undefined && runId !== opts.runId) progress(`run id ${runId}`);
  const backend = await openCleanupBackend(cfg);
  try {
    return await cleanupRun(backend, {
      scope: uri,
      ...(runId !== undefined ? { runId } : {}),
      signal,
      onEvent: record,
    });
  } finally {
    await backend.close().catch(() => {});
  }
}

/** One line per kind removed, the runs and the error count. */
export function libvirtCleanupSummary(r: CleanupRunResult): string {
  const kinds = Object.keys(r.deleted).sort();
  const lines = [
    `Cleanup of ${r.scope}:`,
    ...(kinds.length === 0
      ? ["  deleted nothing"]
      : kinds.map((k) => `  deleted ${plural(r.deleted[k]!, k)}`)),
  ];
  if (r.runId !== undefined && kinds.length === 0) lines.push(`  no VMs of run ${r.runId} found`);
  if (r.runIds.length > 0) lines.push(`  runs: ${r.runIds.join(", ")}`);
  lines.push(`  ${plural(r.errors.length, "error")}`);
  return `${lines.join("\n")}\n`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

const NAMESPACE_STATE: Record<CleanupResult["namespaceState"], string> = {
  kept: "kept",
  deleted: "deleted",
  terminating: "already being deleted",
  absent: "not found",
};

/** One line per kind, then the namespace and errors count; says so when a run had no objects. */
export function cleanupSummary(r: CleanupResult, runId?: string): string {
  const lines = [
    `Cleanup of namespace ${r.namespace}:`,
    `  deleted ${plural(r.deleted.virtualmachines, "VirtualMachine")}`,
    `  deleted ${plural(r.deleted.services, "Service")}`,
    `  deleted ${plural(r.deleted.secrets, "Secret")}`,
  ];
  if (r.alreadyTerminating > 0) {
    lines.push(`  ${plural(r.alreadyTerminating, "object")} already being deleted`);
  }
  const total = r.deleted.virtualmachines + r.deleted.services + r.deleted.secrets +
    r.alreadyTerminating;
  if (runId !== undefined && total === 0) {
    lines.push(`  no objects of run ${runId} found`);
  }
  lines.push(`  namespace ${NAMESPACE_STATE[r.namespaceState]}`);
  if (r.runIds.length > 0) lines.push(`  runs: ${r.runIds.join(", ")}`);
  lines.push(`  ${plural(r.errors.length, "error")}`);
  return `${lines.join("\n")}\n`;
}
