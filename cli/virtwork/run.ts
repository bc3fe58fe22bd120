/**
 * `virtwork run`: deploy workload VMs, wait until they are ready and print a summary.
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import { ConfigError } from "../../lib/config/layered.ts";
import {
  loadVirtworkConfig,
  SettingValidationError,
  type VirtworkSettings,
} from "../../lib/kubevirt/config.ts";
import { sshKeyProblem } from "../../lib/cloudinit/ssh_key.ts";
import { KubeApiError, ObjectCollisionError } from "../../lib/kubevirt/errors.ts";
import type { KubeObject } from "../../lib/kubevirt/manifests.ts";
import { buildRunPlan, planObjects, type RunPlan } from "../../lib/kubevirt/plan.ts";
import {
  type CreateOutcome,
  executeRun,
  type RunAuditContext,
  type RunEvent,
  RunFailedError,
  type RunResult,
} from "../../lib/kubevirt/run.ts";
import type { Auditor } from "../../lib/audit/mod.ts";
import { auditSubscriber } from "../../lib/virtwork/audit_subscriber.ts";
import { formatJson, formatTable, paint, useColor } from "../../lib/output/format.ts";
import { formatYamlDocuments } from "../../lib/output/yaml.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import {
  defaultRegistry,
  withDataDiskSize,
  withNamespace,
  withSshCredentials,
} from "../../lib/workloads/registry.ts";
import { givenAuditFlags, openAuditor } from "../_audit.ts";
import { ExitCode, type Io, processIo, setExitCode } from "../_program.ts";
import { openStatusLine } from "../_status.ts";
import {
  addClusterOptions,
  clusterClient,
  collect,
  csv,
  givenFlags,
  interruptSignal,
  type VirtworkDeps,
  withExitCode,
} from "./_shared.ts";
import { intArg, numberArg } from "../_args.ts";
import { VIRTWORK_SETTING_FLAGS as F, withVirtworkFlag } from "./_config_flags.ts";

/** Exit code after Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

const FLAG_KEYS: (keyof VirtworkSettings)[] = [
  "namespace",
  "workloads",
  "vmCount",
  "cpuCores",
  "memory",
  "diskSize",
  "containerDiskImage",
  "timeout",
  "pollInterval",
  "dryRun",
  "sshUser",
  "sshPassword",
  "kubeconfig",
  "context",
  "qps",
  "burst",
  "output",
];

/** Largest SSH key file read, in bytes. */
const KEY_FILE_MAX_BYTES = 1024 * 1024;

/**
 * Reads authorised keys from files: one key per line, blank lines and `#` comments skipped. Each
 * key is parsed strictly here so an error names the file and line.
 */
async function readKeyFiles(paths: readonly string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const p of paths) {
    let text: string;
    try {
      const st = await Deno.stat(p);
      if (!st.isFile) throw new Error("not a regular file");
      if (st.size > KEY_FILE_MAX_BYTES) throw new Error(`larger than ${KEY_FILE_MAX_BYTES} bytes`);
      text = await Deno.readTextFile(p);
    } catch (e) {
      throw new ConfigError(`cannot read SSH key file ${p}: ${(e as Error).message}`);
    }
    for (const [i, line] of text.split(/\r?\n/).entries()) {
      const k = line.trim();
      if (k === "" || k.startsWith("#")) continue;
      const problem = sshKeyProblem(k);
      if (problem !== undefined) {
        throw new SettingValidationError(
          "sshAuthorizedKeys",
          `${p}:${i + 1} --ssh-key-file`,
          problem,
        );
      }
      keys.push(k);
    }
  }
  return keys;
}

/** Gives validation errors the exit code 2 of the design; everything else as withExitCode does. */
function inputError(e: unknown): Error & { exitCode: number } {
  if (e instanceof SettingValidationError) {
    return Object.assign(withVirtworkFlag(e), { exitCode: ExitCode.VALIDATION });
  }
  return withExitCode(e);
}

/** A Secret with its data replaced by a note, so dry-run output does not reveal credentials. */
function redactSecret(o: KubeObject): KubeObject {
  if (o.kind !== "Secret") return o;
  const { data, ...rest } = o as KubeObject & { data?: Record<string, string> };
  const stringData = Object.fromEntries(
    Object.keys(data ?? {}).map((k) => [k, "<redacted: holds credentials, see --show-secrets>"]),
  );
  return { ...rest, stringData };
}

/** The `run` subcommand. */
export function runCommand(io: Io, deps: VirtworkDeps = {}): Command {
  const command = new Command("run")
    .description("Deploy workload VMs and wait until they are ready")
    .option(`${F.config} <file>`, "YAML configuration file (env VIRTWORK_CONFIG)")
    .option(`-n, ${F.namespace} <name>`, "namespace for the VMs (default virtwork)")
    .option(`${F.workloads} <list>`, "comma-separated workloads (default: all five)", csv)
    .option(
      `${F.vmCount} <n>`,
      "VMs per workload; network runs this many pairs (default 1)",
      intArg,
    )
    .option(`${F.cpuCores} <n>`, "vCPU cores per VM (default 2)", intArg)
    .option(`${F.memory} <quantity>`, "memory per VM (default 2Gi)")
    .option(`${F.diskSize} <quantity>`, "size of data disks (default 10Gi)")
    .option(`${F.containerDiskImage} <image>`, "OS container disk image")
    .option(F.noWait, "do not wait for the VMs to become ready")
    .option(`${F.timeout} <seconds>`, "readiness timeout (default 600)", intArg)
    .option(
      `${F.pollInterval} <seconds>`,
      "seconds between readiness polls (default 15)",
      numberArg,
    )
    .option(F.dryRun, "print every object as YAML and contact no cluster")
    .option("--show-secrets", "with --dry-run, print Secret data instead of redacting it")
    .option(`${F.sshUser} <name>`, "login user created in every VM (default virtwork)")
    .option(
      `${F.sshPassword} <password>`,
      "password for the login user (env VIRTWORK_SSH_PASSWORD)",
    )
    .option(`${F.sshAuthorizedKeys} <key>`, "authorised SSH public key (repeatable)", collect)
    .option("--ssh-key-file <path>", "file of authorised SSH public keys (repeatable)", collect);
  return addClusterOptions(command)
    .option(`-o, ${F.output} <format>`, "summary format: table or json (default table)")
    .action(async (_o: unknown, cmd: Command) => {
      const opts = cmd.opts() as Record<string, unknown>;
      const verbose = Boolean(cmd.optsWithGlobals().verbose);
      const env = deps.env ?? Deno.env.toObject();
      const flags = { ...givenFlags(cmd, FLAG_KEYS), ...givenAuditFlags(cmd) };
      if (cmd.getOptionValueSource("wait") === "cli") flags.noWait = opts.wait === false;
      const keyFlags = (opts.sshKey as string[] | undefined) ?? [];
      const keyFiles = (opts.sshKeyFile as string[] | undefined) ?? [];
      let cfg;
      try {
        if (keyFlags.length > 0 || keyFiles.length > 0) {
          flags.sshAuthorizedKeys = [...keyFlags, ...(await readKeyFiles(keyFiles))];
        }
        cfg = await loadVirtworkConfig({
          flags,
          env,
          ...(typeof opts.config === "string" ? { configPath: opts.config } : {}),
        });
      } catch (e) {
        throw inputError(e);
      }
      const registry = defaultRegistry();
      const ssh = {
        user: cfg.sshUser,
        ...(cfg.sshPassword ? { password: cfg.sshPassword } : {}),
        authorizedKeys: cfg.sshAuthorizedKeys,
      };
      const workloads = cfg.selected.map((w) =>
        registry.get(
          w.name,
          w.config,
          withNamespace(cfg.namespace),
          withSshCredentials(ssh),
          withDataDiskSize(cfg.diskSize),
        )
      );
      const plan = buildRunPlan(workloads, {
        namespace: cfg.namespace,
        runId: crypto.randomUUID(),
        containerDiskImage: cfg.containerDiskImage,
      });
      const auditor = deps.auditor ??
        await openAuditor({ enabled: cfg.audit, path: cfg.auditDb }, {
          secrets: [cfg.sshPassword, ...cfg.sshAuthorizedKeys],
        });
      const audit = {
        config: auditedSettings(cfg),
        workloads: Object.fromEntries(cfg.selected.map((w) => [w.name, { ...w.config }])),
        sshAuthConfigured: cfg.sshPassword !== "" || cfg.sshAuthorizedKeys.length > 0,
      };
      try {
        if (cfg.dryRun) {
          const objects = planObjects(plan).map((o) => opts.showSecrets ? o : redactSecret(o));
          io.out(
            cfg.output === "json"
              ? formatJson({ apiVersion: "v1", kind: "List", items: objects })
              : formatYamlDocuments(objects),
          );
          await recordDryRun(auditor, plan, audit, verbose ? io : undefined);
          return;
        }
        await deployPlan(cmd, io, deps, cfg, plan, auditor, audit, verbose, env);
      } finally {
        if (!deps.auditor) auditor.close();
      }
    });
}

/** The run's settings as recorded: everything but the credentials, which are only flagged. */
function auditedSettings(cfg: VirtworkSettings): Record<string, unknown> {
  const { sshPassword: _p, sshAuthorizedKeys: _k, verbose: _v, audit: _a, auditDb: _d, ...rest } =
    cfg;
  return { ...rest };
}

/** A dry run is recorded too (seed: every run gets a record), as a finished run with no objects. */
async function recordDryRun(
  auditor: Auditor,
  plan: RunPlan,
  audit: {
    config: Record<string, unknown>;
    workloads: Record<string, Record<string, unknown>>;
    sshAuthConfigured: boolean;
  },
  io: Io | undefined,
): Promise<void> {
  try {
    await auditor.runStarted({
      runId: plan.runId,
      namespace: plan.namespace.metadata.name,
      workloads: [...new Set(plan.vms.map((v) => v.workload))],
      vmCount: plan.vms.length,
      dryRun: true,
      sshAuthConfigured: audit.sshAuthConfigured,
      config: audit.config,
    });
    for (const [name, config] of Object.entries(audit.workloads)) {
      await auditor.workloadRecorded({
        runId: plan.runId,
        name,
        vmCount: plan.vms.filter((v) => v.workload === name).length,
        config,
      });
    }
    await auditor.runFinished({ runId: plan.runId, ok: true, interrupted: false });
  } catch (e) {
    io?.err(`audit: ${(e as Error).message}\n`);
  }
}

/** Creates the plan's objects, waits and reports. */
async function deployPlan(
  cmd: Command,
  io: Io,
  deps: VirtworkDeps,
  cfg: VirtworkSettings,
  plan: RunPlan,
  auditor: Auditor,
  audit: RunAuditContext,
  verbose: boolean,
  env: Record<string, string | undefined>,
): Promise<void> {
  const { signal, dispose } = interruptSignal(deps);
  const progress = (m: string) => {
    if (verbose) io.err(`${m}\n`);
  };
  try {
    const { client, source } = await (async () => {
      try {
        // The API server's warnings (a manifest field the cluster does not know and dropped) are
        // printed as kubectl prints them, without escape sequences or control characters.
        const onWarning = (op: string, w: string) =>
          io.err(`Warning: ${op}: ${sanitizeText(w, { singleLine: true })}\n`);
        return await clusterClient(
          cfg,
          { ...deps, client: { onWarning, ...deps.client } },
          signal,
          (op, attempt, delay, why) =>
            progress(`retry ${attempt} of ${op} in ${Math.round(delay)} ms: ${why}`),
        );
      } catch (e) {
        throw withExitCode(e);
      }
    })();
    progress(`cluster ${client.server} (${source}); run id ${plan.runId}`);
    const status = runStatus(io, deps, env, plan, cfg);
    let result: RunResult;
    try {
      result = await executeRun(client, plan, {
        wait: !cfg.noWait,
        timeoutSeconds: cfg.timeout,
        pollIntervalSeconds: cfg.pollInterval,
        signal,
        concurrency: cfg.burst,
        record: auditSubscriber(auditor, { onError: (e) => progress(`audit: ${e.message}`) }),
        audit: { ...audit, target: client.server },
        onProgress: progress,
        onEvent: status.onEvent,
      });
    } catch (e) {
      status.done();
      if (e instanceof RunFailedError) {
        io.err(existsReport(e.result, plan));
        const api = e.cause;
        if (api instanceof ObjectCollisionError && api.ownerRunId !== undefined) {
          io.err(
            `Hint: remove run ${api.ownerRunId} with: virtwork cleanup --namespace ${api.namespace} ` +
              `--run-id ${api.ownerRunId}\n`,
          );
        }
        if (
          api instanceof KubeApiError && api.status === 404 &&
          api.operation.startsWith("create VirtualMachine")
        ) {
          io.err("Hint: the kubevirt.io/v1 API was not found; is KubeVirt installed?\n");
        }
      }
      throw withExitCode(e);
    }
    status.done();
    const color = useColor({ isTerminal: deps.isTerminal ?? false, env });
    io.out(cfg.output === "json" ? formatJson(result) : summary(result, color));
    if (result.interrupted) {
      io.err(existsReport(result, plan));
      setExitCode(cmd, EXIT_INTERRUPTED);
    } else if (result.timedOut || result.failedVms > 0) {
      // The error may quote the cluster (a VMI's reason): no control sequences reach the terminal.
      for (const v of result.vms.filter((v) => v.error)) {
        io.err(`${v.name}: ${sanitizeText(v.error!, { singleLine: true })}\n`);
      }
      setExitCode(cmd, ExitCode.VM_OPERATION);
    }
  } finally {
    dispose();
  }
}

/** Whether virtwork's stderr is a terminal: as the test says, else the process's. */
function stderrIsTerminal(io: Io, deps: VirtworkDeps): boolean {
  if (io.isTerminal !== undefined) return io.isTerminal;
  if (deps.isTerminal !== undefined) return deps.isTerminal;
  if (io !== processIo) return false;
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/**
 * What a run shows on stderr while it works: when piped, one line per VM created, ready or
 * failed; on a terminal a live line (`ready 3/12, failed 0, elapsed 41s / timeout 600s`), and
 * failures as lines that stay.
 */
function runStatus(
  io: Io,
  deps: VirtworkDeps,
  env: Record<string, string | undefined>,
  plan: RunPlan,
  cfg: VirtworkSettings,
): { onEvent: (e: RunEvent) => void; done: () => void } {
  const isTerminal = stderrIsTerminal(io, deps);
  const line = openStatusLine({
    isTerminal,
    write: io.err,
    env: (n) => env[n],
    timeoutSeconds: cfg.noWait ? undefined : cfg.timeout,
  });
  const total = plan.vms.length;
  let created = 0;
  let ready = 0;
  let failed = 0;
  const show = () =>
    line.status(
      ready + failed === 0 && created < total
        ? `created ${created}/${total}`
        : `ready ${ready}/${total}, failed ${failed}`,
    );
  const name = (n: string) => sanitizeText(n, { singleLine: true });
  return {
    onEvent(e) {
      switch (e.type) {
        case "vmCreated":
          created++;
          if (!isTerminal) {
            line.line(`VM ${name(e.name)} ${e.outcome === "created" ? "created" : "exists"}`);
          }
          break;
        case "vmReady":
          ready++;
          if (!isTerminal) line.line(`VM ${name(e.name)} ready after ${e.seconds.toFixed(1)}s`);
          break;
        case "vmFailed":
          failed++;
          line.line(`VM ${name(e.name)} failed: ${sanitizeText(e.message, { singleLine: true })}`);
          break;
        case "waiting":
          ready = e.ready;
          failed = e.failed;
          break;
      }
      show();
    },
    done: () => line.done(),
  };
}

/** The summary table and a closing line. */
export function summary(r: RunResult, color: boolean): string {
  const rows = r.vms.map((v) => [
    v.workload,
    v.name,
    v.role,
    v.ready
      ? paint(v.phase, "green", color)
      : paint(v.phase, v.failed ? "red" : r.waited ? "yellow" : "dim", color),
    v.secondsToReady !== undefined ? `${v.secondsToReady.toFixed(1)}s` : "-",
  ]);
  const table = formatTable(["WORKLOAD", "VM", "ROLE", "PHASE", "READY IN"], rows);
  const ready = r.vms.filter((v) => v.ready).length;
  const failed = r.failedVms > 0 ? `, ${r.failedVms} failed` : "";
  const state = r.waited
    ? `${ready}/${r.vms.length} VMs ready${failed}`
    : `${r.vms.length} VMs created (not waited for)`;
  return `${table}\n${state} in namespace ${r.namespace}, run id ${r.runId}, ${
    r.elapsedSeconds.toFixed(1)
  }s\n`;
}

/**
 * Tells what exists after a failed or interrupted run and how to remove it: every object of the
 * run that exists, that was rolled back after the interrupt, or that may exist.
 */
function existsReport(r: RunResult, plan: RunPlan): string {
  const kept = (o: { outcome: CreateOutcome }) => o.outcome === "created" || o.outcome === "exists";
  const vms = r.vms.filter(kept);
  const services = r.services.filter(kept);
  const secrets = r.secrets.filter(kept);
  const objects = [
    ...r.services.map((o) => ({ kind: "Service", ...o })),
    ...r.secrets.map((o) => ({ kind: "Secret", ...o })),
    ...r.vms.map((o) => ({ kind: "VirtualMachine", ...o })),
  ];
  const named = (outcome: CreateOutcome) =>
    objects.filter((o) => o.outcome === outcome).map((o) => `${o.kind} ${o.name}`).join(", ");
  const rolledBack = named("rolled back");
  const unknown = named("unknown");
  const stopped = r.interrupted ? "Interrupted" : "Stopped";
  const lines: string[] = [];
  const nsUnknown = r.namespaceOutcome === "unknown"
    ? `Namespace ${r.namespace} exists; its create was in flight at the interrupt, so this run ` +
      `may have made it (virtwork cleanup --namespace ${r.namespace} --delete-namespace removes it)`
    : undefined;
  if (vms.length + services.length + secrets.length === 0 && unknown === "") {
    const ns = r.namespaceOutcome === "created"
      ? ` (it created namespace ${r.namespace}; virtwork cleanup --namespace ${r.namespace} --delete-namespace removes it)`
      : "";
    lines.push(
      `${stopped}: nothing of run ${r.runId} was created in namespace ${r.namespace}${ns}`,
    );
    if (nsUnknown) lines.push(nsUnknown);
    if (rolledBack) lines.push(`Rolled back (in flight at the interrupt): ${rolledBack}`);
    return `${lines.join("\n")}\n`;
  }
  lines.push(
    `${stopped}: in namespace ${r.namespace} there are now ` +
      `${vms.length} of ${plan.vms.length} VMs, ${services.length} Services and ${secrets.length} Secrets of run ${r.runId}`,
  );
  if (vms.length > 0) lines.push(`VMs: ${vms.map((v) => v.name).join(", ")}`);
  if (rolledBack) lines.push(`Rolled back (in flight at the interrupt): ${rolledBack}`);
  if (unknown) lines.push(`May exist (in flight at the interrupt, not confirmed): ${unknown}`);
  if (nsUnknown) lines.push(nsUnknown);
  lines.push(`Remove them with: virtwork cleanup --namespace ${r.namespace} --run-id ${r.runId}`);
  return `${lines.join("\n")}\n`;
}
