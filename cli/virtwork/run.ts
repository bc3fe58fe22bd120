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
} from "../../lib/virtwork/config.ts";
import { sshKeyProblem } from "../../lib/cloudinit/ssh_key.ts";
import { KubeApiError, ObjectCollisionError } from "../../lib/kubevirt/errors.ts";
import type { KubeObject } from "../../lib/kubevirt/manifests.ts";
import { auditSubscriber } from "../../lib/virtwork/audit_subscriber.ts";
import type { NeutralPlan } from "../../lib/virtwork/backend.ts";
import { type EventSink, fanOut, type VirtworkEvent } from "../../lib/virtwork/events.ts";
import { buildNeutralPlan } from "../../lib/virtwork/plan.ts";
import { PlanRunError, type PlanRunResult, runPlan } from "../../lib/virtwork/run.ts";
import { evaluateThresholds, parseThreshold, type Threshold } from "../../lib/virtwork/compare.ts";
import { phaseSamples, reportFromRun } from "../../lib/virtwork/report.ts";
import { latencyTable, thresholdLines } from "./_latency.ts";
import { formatJson, useColor } from "../../lib/output/format.ts";
import { formatYamlDocuments } from "../../lib/output/yaml.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import {
  defaultRegistry,
  withDataDiskSize,
  withNamespace,
  withSshCredentials,
} from "../../lib/workloads/registry.ts";
import { DEFAULT_GUEST_OS, type GuestOs, type Workload } from "../../lib/workloads/workload.ts";
import { givenAuditFlags, openAuditor } from "../_audit.ts";
import { ExitCode, type Io, processIo, setExitCode } from "../_program.ts";
import { openStatusLine } from "../_status.ts";
import {
  addClusterOptions,
  collect,
  csv,
  givenFlags,
  interruptSignal,
  type VirtworkDeps,
  withExitCode,
} from "./_shared.ts";
import { intArg, numberArg } from "../_args.ts";
import { VIRTWORK_SETTING_FLAGS as F, withVirtworkFlag } from "./_config_flags.ts";
import {
  kubeExistsReport,
  libvirtExistsReport,
  reportDocument,
  resultsTable,
  summary,
} from "./_run_report.ts";
import { checkLibvirtSettings, openRunBackend, type RunBackend } from "./_backends.ts";

export { summary } from "./_run_report.ts";

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
  "target",
  "connect",
  "image",
  "imagePool",
  "bridge",
  "subnet",
  "gateway",
  "os",
  "resultsAfter",
  "report",
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
    .description(
      "Deploy workload VMs on KubeVirt or a libvirt host, wait until they are ready, and " +
        "optionally collect the guests' figures",
    )
    .option(
      `${F.target} <target>`,
      "where the VMs go: kubevirt or libvirt (default kubevirt; env VIRTWORK_TARGET)",
    )
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
    .option("--ssh-key-file <path>", "file of authorised SSH public keys (repeatable)", collect)
    .option(
      `${F.resultsAfter} <seconds>`,
      "after the VMs are ready, read the guests' figures this long and print them",
      intArg,
    )
    .option(
      `${F.report} <file.json>`,
      "write the run's latency report (per VM phases in ms, per phase statistics, figures) as JSON",
    )
    .option(
      "--threshold <PHASE.STAT=VALUE>",
      "exit 6 when a latency statistic is over VALUE (ms, s or m), e.g. VMReady.p99=60s " +
        "(repeatable)",
      collect,
    )
    .option(`${F.os} <name>`, "guest distribution: fedora, centos, debian or ubuntu")
    .option(`${F.connect} <uri>`, "libvirt: connection URI (default qemu:///system)")
    .option(`${F.image} <volume>`, "libvirt: base image, a volume in foundry's image pool")
    .option(`${F.imagePool} <pool>`, "libvirt: pool of the base image (default foundry's)")
    .option(`${F.bridge} <name>`, "libvirt: host bridge the VMs' NICs attach to")
    .option(`${F.subnet} <cidr>`, "libvirt: subnet the VMs' static addresses come from")
    .option(`${F.gateway} <ip>`, "libvirt: gateway of the subnet (default its first host)");
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
        // Before anything is opened or contacted: a usage error leaves nothing behind.
        checkLibvirtSettings(cfg);
      } catch (e) {
        throw inputError(e);
      }
      let gates: Threshold[];
      try {
        gates = ((opts.threshold as string[] | undefined) ?? []).map(parseThreshold);
      } catch (e) {
        // lib names the gate; the user typed the flag.
        const err = e as Error;
        err.message = err.message.replace(/^threshold /, "--threshold ");
        throw Object.assign(err, { exitCode: ExitCode.VALIDATION });
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
      const context = {
        config: auditedSettings(cfg),
        workloads: Object.fromEntries(cfg.selected.map((w) => [w.name, { ...w.config }])),
        sshAuthConfigured: cfg.sshPassword !== "" || cfg.sshAuthorizedKeys.length > 0,
      };
      const progress = (m: string) => {
        if (verbose) io.err(`${m}\n`);
      };
      const auditor = deps.auditor ??
        await openAuditor({ enabled: cfg.audit, path: cfg.auditDb }, {
          secrets: [cfg.sshPassword, ...cfg.sshAuthorizedKeys],
        });
      // The audit trail is best effort: a failing write is progress, never the run's failure.
      const record = auditSubscriber(auditor, { onError: (e) => progress(`audit: ${e.message}`) });
      const { signal, dispose } = interruptSignal(deps);
      let backend: RunBackend;
      try {
        backend = await openRunBackend(cfg, deps, io, signal, progress);
      } catch (e) {
        dispose();
        if (!deps.auditor) auditor.close();
        throw inputError(e);
      }
      try {
        const runId = crypto.randomUUID();
        const os: GuestOs = (cfg.os || backend.os || DEFAULT_GUEST_OS) as GuestOs;
        let plan: NeutralPlan;
        try {
          plan = await buildNeutralPlan(workloads, { runId, os }, (s) => backend.peerAddresses(s));
        } catch (e) {
          throw withExitCode(e);
        }
        if (cfg.dryRun) {
          printDryRun(io, backend, plan, cfg, Boolean(opts.showSecrets));
          await recordDryRun(record, backend, plan, workloads, context);
          return;
        }
        await deployPlan(
          cmd,
          io,
          deps,
          cfg,
          backend,
          plan,
          record,
          context,
          signal,
          progress,
          env,
          {
            gates,
          },
        );
      } finally {
        dispose();
        await backend.close().catch(() => {});
        if (!deps.auditor) auditor.close();
      }
    });
}

/** Prints the backend's objects of the plan: YAML documents, or JSON. */
function printDryRun(
  io: Io,
  backend: RunBackend,
  plan: NeutralPlan,
  cfg: VirtworkSettings,
  showSecrets: boolean,
): void {
  const objects = backend.render(plan).map((o) =>
    showSecrets || backend.target !== "kubevirt" ? o : redactSecret(o as KubeObject)
  );
  // KubeVirt objects as a Kubernetes List, as kubectl prints them; foundry specs as an array.
  const json = backend.target === "kubevirt"
    ? { apiVersion: "v1", kind: "List", items: objects }
    : objects;
  io.out(cfg.output === "json" ? formatJson(json) : formatYamlDocuments(objects));
}

/** The run's settings as recorded: everything but the credentials, which are only flagged. */
function auditedSettings(cfg: VirtworkSettings): Record<string, unknown> {
  const { sshPassword: _p, sshAuthorizedKeys: _k, verbose: _v, audit: _a, auditDb: _d, ...rest } =
    cfg;
  return { ...rest };
}

/** A dry run is recorded too (seed: every run gets a record), as a finished run with no objects. */
async function recordDryRun(
  record: EventSink,
  backend: RunBackend,
  plan: NeutralPlan,
  workloads: readonly Workload[],
  context: {
    config: Record<string, unknown>;
    workloads: Record<string, Record<string, unknown>>;
    sshAuthConfigured: boolean;
  },
): Promise<void> {
  await record({
    type: "runStarted",
    runId: plan.runId,
    target: backend.target,
    scope: backend.scope,
    workloads: workloads.filter((w) => plan.vms.some((v) => v.workload === w.name)).map((w) => ({
      name: w.name,
      vmCount: plan.vms.filter((v) => v.workload === w.name).length,
      ...(context.workloads[w.name] ? { config: context.workloads[w.name] } : {}),
    })),
    vmCount: plan.vms.length,
    dryRun: true,
    sshAuthConfigured: context.sshAuthConfigured,
    config: context.config,
  });
  await record({ type: "runFinished", runId: plan.runId, ok: true, interrupted: false });
}

/** Creates the plan's objects, waits, collects results and reports. */
async function deployPlan(
  cmd: Command,
  io: Io,
  deps: VirtworkDeps,
  cfg: VirtworkSettings,
  backend: RunBackend,
  plan: NeutralPlan,
  record: EventSink,
  context: NonNullable<Parameters<typeof runPlan>[2]["context"]>,
  signal: AbortSignal,
  progress: (m: string) => void,
  env: Record<string, string | undefined>,
  latency: { gates: readonly Threshold[] },
): Promise<void> {
  progress(`${backend.describe}; run id ${plan.runId}`);
  const status = runStatus(io, deps, env, plan, cfg);
  let result: PlanRunResult;
  try {
    result = await runPlan(backend, plan, {
      scope: backend.scope,
      wait: !cfg.noWait,
      timeoutSeconds: cfg.timeout,
      ...(cfg.resultsAfter > 0 ? { resultsAfterMs: cfg.resultsAfter * 1000 } : {}),
      signal,
      onEvent: fanOut([record, status.onEvent]),
      onProgress: progress,
      context,
      // KubeVirt follows readiness by watches and libvirt by its events: receipt is timely.
      clientResolutionMs: 0,
    });
  } catch (e) {
    status.done();
    if (e instanceof PlanRunError) {
      if (backend.kubevirt?.runResult && backend.kubevirt.runPlan) {
        io.err(kubeExistsReport(backend.kubevirt.runResult, backend.kubevirt.runPlan));
      } else if (backend.target === "libvirt") io.err(libvirtExistsReport(e.result));
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
  const report = reportFromRun(result, result.latency, {
    clientResolutionMs: result.clientResolutionMs,
  });
  if (cfg.output === "json") io.out(formatJson(jsonResult(result, backend)));
  else {
    io.out(summary(result, color));
    if (result.waited) io.out(`\n${latencyTable(report)}`);
    if (result.resultsCollected) io.out(`\n${resultsTable(result)}`);
  }
  const gates = evaluateThresholds(latency.gates, phaseSamples(report), result.vms.length);
  if (gates.length > 0) {
    const lines = thresholdLines(gates, color && cfg.output !== "json");
    if (cfg.output === "json") io.err(lines);
    else io.out(`\n${lines}`);
  }
  if (cfg.report !== "") {
    try {
      await Deno.writeTextFile(cfg.report, formatJson(reportDocument(result, report)));
    } catch (e) {
      throw withExitCode(
        new ConfigError(`cannot write the report ${cfg.report}: ${(e as Error).message}`),
      );
    }
  }
  if (result.interrupted) {
    if (backend.kubevirt?.runResult && backend.kubevirt.runPlan) {
      io.err(kubeExistsReport(backend.kubevirt.runResult, backend.kubevirt.runPlan));
    } else io.err(libvirtExistsReport(result));
    setExitCode(cmd, EXIT_INTERRUPTED);
  } else {
    // The error may quote the platform (a VMI's reason): no control sequences reach the terminal.
    const notOk = result.timedOut || result.failedVms > 0;
    if (notOk) {
      for (const v of result.vms.filter((v) => v.error)) {
        io.err(`${v.name}: ${sanitizeText(v.error!, { singleLine: true })}\n`);
      }
    }
    // A workload its guest says cannot run (no packages, no network) fails the run too.
    const broken = result.vms.filter((v) => v.result?.error !== undefined);
    for (const v of broken) {
      io.err(
        `${v.name}: workload ${v.workload} cannot run: ${
          sanitizeText(v.result!.error!, { singleLine: true })
        }\n`,
      );
    }
    if (notOk || broken.length > 0) setExitCode(cmd, ExitCode.VM_OPERATION);
    else if (gates.some((g) => !g.ok)) setExitCode(cmd, ExitCode.THRESHOLD);
  }
}

/**
 * The `-o json` result: the core's, and on KubeVirt what became of the Namespace, Services and
 * Secrets as before.
 */
function jsonResult(r: PlanRunResult, backend: RunBackend): Record<string, unknown> {
  const k = backend.kubevirt?.runResult;
  return {
    ...r,
    ...(k
      ? {
        namespace: k.namespace,
        namespaceOutcome: k.namespaceOutcome,
        services: k.services,
        secrets: k.secrets,
      }
      : {}),
  };
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
  plan: NeutralPlan,
  cfg: VirtworkSettings,
): { onEvent: (e: VirtworkEvent) => void; done: () => void } {
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
        default:
          return;
      }
      show();
    },
    done: () => line.done(),
  };
}
