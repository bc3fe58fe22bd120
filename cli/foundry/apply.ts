import { Command } from "npm:commander@^15.1.0";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import type { SpecChange, VmPlan } from "../../lib/foundry/plan_types.ts";
import type { CurrentVm } from "../../lib/foundry/apply.ts";
import type { FleetPlanned } from "../../lib/foundry/fleet_apply.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import { formatJson, paint, sanitizeText } from "../../lib/output/mod.ts";
import { ExitCode, exitCodeFor, type Io, setExitCode } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, colorFor, configFor, globals, progress, withLibvirt } from "./_context.ts";
import { timeoutMs, waitWithProgress } from "./wait.ts";
import { wantsKubevirt, withKubevirtOptions } from "./_kubevirt_flags.ts";

/** Options apply and diff share. */
interface PlanFlags {
  filename: string[];
  recreate?: boolean;
  prune?: boolean;
  selector?: string[];
  output: string;
  /** `--no-start` (apply): created VMs are defined, not started. */
  start?: boolean;
  /** `--copy-image` (fleet): a new VM's boot image may be copied to its host first. */
  copyImage?: boolean;
}

interface Planned {
  plan: VmPlan;
  vm?: VirtualMachine;
  current?: CurrentVm;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

const SIGN: Record<VmPlan["action"], string> = {
  create: "+",
  update: "~",
  unchanged: "=",
  recreate: "-/+",
  prune: "-",
};
const COLOR = {
  create: "green",
  update: "yellow",
  unchanged: "dim",
  recreate: "red",
  prune: "red",
} as const;

function usage(message: string): Error {
  return Object.assign(new Error(message), { exitCode: ExitCode.VALIDATION });
}

function show(v: unknown): string {
  if (v === undefined) return "(none)";
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** One line per change: `    spec.memoryGiB: 1 -> 1.5 (live)`, with the reason of non-live ones. */
export function changeLine(c: SpecChange): string {
  const values = c.from === undefined && c.to === undefined
    ? ""
    : c.from === undefined
    ? ` + ${show(c.to)}`
    : c.to === undefined
    ? ` - ${show(c.from)}`
    : ` ${show(c.from)} -> ${show(c.to)}`;
  return sanitizeText(
    `    ${c.path}:${values} (${c.class}${c.reason ? `: ${c.reason}` : ""})`,
    { singleLine: true },
  );
}

/** The plan as text: one line per VM, one indented line per change. */
export function planText(plans: readonly VmPlan[], color = false): string {
  return plans.map((p) => {
    const head = `${SIGN[p.action]} ${p.action} ${p.name}${p.source ? ` (${p.source})` : ""}`;
    return [
      paint(sanitizeText(head, { singleLine: true }), COLOR[p.action], color),
      ...p.changes.map(changeLine),
    ]
      .join("\n") + "\n";
  }).join("");
}

/**
 * The fleet's plan as text: a HOST column, then each VM's plan line and its change lines, and for
 * a create whose boot image is copied first (`--copy-image`), the line that says from where.
 */
export function fleetPlanText(
  plans: readonly (VmPlan & { host: string; copyImage?: FleetPlanned["copyImage"] })[],
  color = false,
): string {
  const width = Math.max(4, ...plans.map((p) => p.host.length)) + 2;
  const copyLine = (c: NonNullable<FleetPlanned["copyImage"]>) =>
    sanitizeText(`    image ${c.pool}/${c.volume}: copied from host ${c.from} first`, {
      singleLine: true,
    }) + "\n";
  return `${"HOST".padEnd(width)}PLAN\n` +
    plans.map((p) =>
      (planText([p], color) + (p.copyImage ? copyLine(p.copyImage) : "")).split("\n").map((
        l,
        i,
      ) =>
        l === ""
          ? l
          : `${(i === 0 ? sanitizeText(p.host, { singleLine: true }) : "").padEnd(width)}${l}`
      ).join("\n")
    ).join("");
}

/** Loads the files, reads every VM's state and plans it (only reads). */
async function makePlans(
  lv: Libvirt,
  flags: PlanFlags,
  docs: { vms: VirtualMachine[]; sources: Map<string, string> },
): Promise<Planned[]> {
  const { planVm, pruneCandidates, readCurrentVm, VmNotManagedError } = await import(
    "../../lib/foundry/apply.ts"
  );
  const out: Planned[] = [];
  for (const vm of docs.vms) {
    const current = await readCurrentVm(lv, vm.metadata.name).catch((e) => {
      // lib says to adopt it; the user reads the command that does.
      if (e instanceof VmNotManagedError) e.message += ` (foundry adopt ${e.vmName} --apply)`;
      throw e;
    });
    const plan = planVm(vm, current, { recreate: flags.recreate === true });
    const source = docs.sources.get(vm.metadata.name);
    if (source !== undefined) plan.source = source;
    out.push({ plan, vm, ...(current ? { current } : {}) });
  }
  if (flags.prune) {
    const names = await pruneErrors(async () =>
      pruneCandidates(
        lv,
        await pruneSelector(flags),
        new Set(docs.vms.map((v) => v.metadata.name)),
      )
    );
    for (const name of names) out.push({ plan: { name, action: "prune", changes: [] } });
  }
  return out;
}

async function pruneSelector(flags: PlanFlags) {
  const { parseLabelSelector } = await import("../../lib/config/selector.ts");
  return parseLabelSelector(flags.selector ?? []);
}

/** Runs `fn` with lib's refusal of a prune selector worded with the flag the user typed. */
async function pruneErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof TypeError) throw usage(e.message.replace(/^Pruning /, "--prune "));
    throw e;
  }
}

function checkFlags(flags: PlanFlags): void {
  checkChoice(flags.output, ["text", "json", "yaml"], "output format");
  if (flags.filename.length === 0) throw usage("No files given: use -f FILE|DIR");
  if (flags.prune && !(flags.selector?.length)) throw usage("--prune needs -l SELECTOR");
  if (!flags.prune && flags.selector?.length) throw usage("-l SELECTOR goes with --prune");
}

async function printPlans(io: Io, flags: PlanFlags, plans: readonly VmPlan[]): Promise<void> {
  if (flags.output === "json") io.out(formatJson(plans));
  else if (flags.output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    io.out(formatYamlDocuments(plans));
  } else if (plans.every((p): p is VmPlan & { host: string } => "host" in p)) {
    io.out(plans.length ? fleetPlanText(plans, colorFor(io)) : "");
  } else io.out(planText(plans, colorFor(io)));
}

/** Runs `fn` with a configuration error (exit 1 elsewhere) turned into exit 2: diff's 1 means "differs". */
async function diffErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (exitCodeFor(e) !== ExitCode.CONFIG) throw e;
    throw Object.assign(new Error((e as Error).message, { cause: e }), {
      exitCode: ExitCode.VALIDATION,
    });
  }
}

async function loadDocs(files: readonly string[]) {
  const { loadFoundryDocuments } = await import("../../lib/foundry/loader.ts");
  return await loadFoundryDocuments(files);
}

/** The plans for diff / --dry-run; exit 1 when something would change. */
async function runDiff(
  io: Io,
  flags: PlanFlags,
  config: FoundryConfig,
  cmd: Command,
): Promise<void> {
  const docs = await loadDocs(flags.filename);
  const plans = await withLibvirt(config, (lv) => makePlans(lv, flags, docs));
  await printPlans(io, flags, plans.map((p) => p.plan));
  if (plans.some((p) => p.plan.action !== "unchanged")) setExitCode(cmd, 1);
}

const HELP = `
apply creates the VMs of the files that do not exist, and changes the others to match their
files with the least disruption; each difference is classified:
  live       now, on the running VM and its definition: labels, annotations, memory and vCPUs
             within the reserved maximum (TCG domains: a vCPU increase waits for the next boot),
             a new data disk or NIC attached, a NIC detached, a disk grown, autostart
  reboot     written into the definition, in effect at the next boot (foundry restart): vCPUs or
             memory above the maximum, resources, cpu, numa, graphics, installMedia, a NIC's bridge
  recreate   only with --recreate (destroy, then create): boot image, a data disk removed or
             renamed, a NIC's address, cloud-init, domainType, storagePool
  forbidden  never: shrinking a disk; recreating an adopted VM
The plan is printed first (+ create, ~ update, = unchanged, -/+ recreate, - prune); a refused
change stops apply before anything is changed. Running the same files again changes nothing.

Exit codes: 0 done, 2 a file or flag is wrong, 3 connection, 4 a change refused (recreate without
--recreate, forbidden) or a libvirt step failed (the error lists the changes made and not made;
the stored spec records exactly those made), 5 storage, 130 interrupted.
`;

/** `foundry apply -f FILE|DIR`. */
export function applyCommand(io: Io): Command {
  return withKubevirtOptions(new Command("apply"))
    .description("Create or change VMs to match YAML files (kubectl apply semantics)")
    .option("-f, --filename <path>", "YAML file or directory (repeatable)", collect, [])
    .option("--dry-run", "print the plan and change nothing (exit 1 when something would change)")
    .option("--recreate", "carry out recreate-class changes (destroy, then create the VM)")
    .option("--prune", "delete foundry VMs matching -l that are not in the files")
    .option(
      "-l, --selector <selector>",
      "label selector for --prune (k=v, 'k in (a,b)', k)",
      collect,
    )
    .option("--no-start", "define created VMs without starting them")
    .option("--copy-image", "fleet: copy a new VM's boot image to its host from one that has it")
    .option("--wait [stage]", "then wait for created VMs: agent, ip or cloud-init (default)")
    .option("--timeout <seconds>", "with --wait: give up after this long", "600")
    .option("-o, --output <format>", "text, json or yaml", "text")
    .addHelpText(
      "after",
      `${HELP}\nExamples:\n  foundry apply -f vms/\n  foundry apply -f web.yaml --dry-run\n` +
        "  foundry apply -f web.yaml --recreate\n  foundry apply -f vms/ --prune -l app=shop\n",
    )
    .action(async (
      flags: PlanFlags & { dryRun?: boolean; wait?: string | boolean; timeout: string },
      cmd: Command,
    ) => {
      // issue 16: the KubeVirt target, its module loaded only then
      if (wantsKubevirt(cmd)) return (await import("./_kubevirt_target.ts")).kubevirtApply(io, cmd);
      checkFlags(flags);
      const until = typeof flags.wait === "string"
        ? flags.wait
        : flags.wait === true
        ? "cloud-init"
        : undefined;
      if (until !== undefined) checkChoice(until, ["agent", "ip", "cloud-init"], "--wait stage");
      const waitMs = timeoutMs(flags.timeout);
      const config = await configFor(cmd);
      if (isFleet(cmd)) {
        const run = () =>
          runFleet(io, flags, config, cmd, flags.dryRun ? undefined : { until, waitMs });
        return flags.dryRun ? await diffErrors(run) : await run();
      }
      if (flags.dryRun) return await diffErrors(() => runDiff(io, flags, config, cmd));
      const docs = await loadDocs(flags.filename);
      const text = flags.output === "text";
      await withLibvirt(config, async (lv) => {
        const planned = await makePlans(lv, flags, docs);
        await printPlans(io, flags, planned.map((p) => p.plan));
        const failed = await carryOut(io, lv, cmd, config, planned, flags);
        if (failed !== undefined) setExitCode(cmd, failed);
        await waitCreated(io, lv, planned, until, waitMs, !text);
      });
    });
}

/** `--wait`: waits for each created VM of `planned` to reach `until`. */
async function waitCreated(
  io: Io,
  lv: Libvirt,
  planned: readonly Planned[],
  until: string | undefined,
  waitMs: number,
  quiet: boolean,
): Promise<void> {
  if (until === undefined) return;
  for (const p of planned) {
    if (p.plan.action !== "create" && p.plan.action !== "recreate") continue;
    await waitWithProgress(
      lv,
      io,
      p.plan.name,
      until as "agent" | "ip" | "cloud-init",
      waitMs,
      quiet,
    );
  }
}

/** Whether the command works on a fleet (`--host`/`--host-selector`): then fleet code loads. */
function isFleet(cmd: Command): boolean {
  const g = globals(cmd) as { host?: string; hostSelector?: string };
  return g.host !== undefined || g.hostSelector !== undefined;
}

/**
 * apply or diff -f on the chosen hosts: each VM planned on the host that has it, a new one placed
 * by the fleet create path, then (`apply` given) each host's plans carried out there, at most
 * `--parallel` hosts at once. A VM that cannot be planned and a host that failed get their own
 * line; exit 7 when some hosts failed and others did not.
 */
async function runFleet(
  io: Io,
  flags: PlanFlags,
  config: FoundryConfig,
  cmd: Command,
  apply: { until: string | undefined; waitMs: number } | undefined,
): Promise<void> {
  const { fanOut } = await import("../../lib/foundry/fleet.ts");
  const { planFleetApply, MOVE_NEEDED } = await import("../../lib/foundry/fleet_apply.ts");
  const { fleetGlobals, finishOutcomes, hostIo, openFleet } = await import("./_fleet.ts");
  const { placementRefusal, withImageCopies } = await import("./_fleet_create.ts");
  const docs = await loadDocs(flags.filename);
  const prune = flags.prune ? await pruneSelector(flags) : undefined;
  const fleet = openFleet(config, fleetGlobals(cmd));
  try {
    const plan = await pruneErrors(() =>
      planFleetApply(fleet.pool, fleet.hosts, config.hosts ?? [], docs.vms, config, {
        recreate: flags.recreate === true,
        parallel: fleet.parallel,
        sources: docs.sources,
        copyImage: flags.copyImage === true,
        ...(prune ? { prune } : {}),
      })
    ).catch(async (e) => {
      const fileOf = (vm: string) => (docs.sources.get(vm) ?? "").replace(/:\d+$/, "");
      throw await placementRefusal(fileOf, e, { copyImage: true, ignoreUnreachable: false });
    });
    for (const i of plan.items) {
      for (const c of i.plan.changes) {
        if (c.reason?.endsWith(MOVE_NEEDED)) {
          c.reason += ` (foundry move ${i.plan.name} --to ${c.to})`;
        }
      }
    }
    await printPlans(
      io,
      flags,
      plan.items.map((i) => ({
        host: i.host,
        ...i.plan,
        ...(i.copyImage ? { copyImage: i.copyImage } : {}),
      })),
    );
    let worst = ExitCode.OK as number;
    for (const p of plan.problems) {
      const uri = config.hosts?.find((h) => h.name === p.hosts[0])?.uri;
      const hint = p.kind === "notManaged"
        ? ` (foundry --connect ${uri} adopt ${p.vm} --apply)`
        : "";
      io.err(`Error: ${sanitizeText(p.message + hint, { singleLine: true })}\n`);
      worst = Math.max(
        worst,
        p.kind === "severalHosts"
          ? ExitCode.VALIDATION
          : p.kind === "notManaged"
          ? ExitCode.VM_OPERATION
          : ExitCode.OK,
      );
    }
    const lookups = fleet.hosts.map((h) => {
      const f = plan.failedHosts.find((x) => x.host === h.name);
      return f
        ? { host: h.name, ok: false as const, error: f.error }
        : { host: h.name, ok: true as const, value: undefined };
    });
    if (apply === undefined) {
      if (plan.items.some((i) => i.plan.action !== "unchanged")) worst = Math.max(worst, 1);
      if (worst !== ExitCode.OK) setExitCode(cmd, worst);
      return finishOutcomes(io, lookups);
    }
    if (await reportRefusals(io, plan.items)) return setExitCode(cmd, ExitCode.VM_OPERATION);
    const busy = fleet.hosts.filter((h) =>
      plan.items.some((i) => i.host === h.name && i.plan.action !== "unchanged")
    );
    const acted = await fanOut(busy, fleet.parallel, fleet.pool, async (h, lv) => {
      const hio = hostIo(io, h.name);
      const mine = plan.items.filter((i) => i.host === h.name);
      // --copy-image: each boot image this host lacks comes first, once.
      const wanted = mine.flatMap((i) =>
        i.copyImage && i.plan.action === "create" ? [{ vm: i.plan.name, image: i.copyImage }] : []
      );
      const source = (name: string) => {
        const from = fleet.hosts.find((x) => x.name === name) ??
          config.hosts?.find((x) => x.name === name);
        if (from === undefined) throw new Error(`host ${name} is not configured`);
        return fleet.pool.get(from);
      };
      const failed = await withImageCopies(
        hio,
        flags.output === "text",
        source,
        lv,
        h.name,
        wanted,
        () => carryOut(hio, lv, cmd, config, mine, flags),
      );
      if (failed !== undefined) {
        throw Object.assign(new Error("apply stopped (see above)"), { exitCode: failed });
      }
      await waitCreated(hio, lv, mine, apply.until, apply.waitMs, flags.output !== "text");
    });
    if (flags.output === "text" && busy.length === 0) io.out("nothing to apply\n");
    if (worst !== ExitCode.OK) setExitCode(cmd, worst);
    finishOutcomes(io, [
      ...lookups.filter((o) => !o.ok || !acted.some((a) => a.host === o.host)),
      ...acted,
    ]);
  } finally {
    await fleet.pool.closeAll();
  }
}

/** Prints every refused plan of `planned`; whether there was one. */
async function reportRefusals(io: Io, planned: readonly Planned[]): Promise<boolean> {
  const { applyRefusalText, refusedChanges } = await import("../../lib/foundry/apply.ts");
  const refused = planned.filter((p) => refusedChanges(p.plan).length > 0);
  for (const p of refused) {
    io.err(
      `Error: ${
        sanitizeText(applyRefusalText(p.plan.name, refusedChanges(p.plan), "pass --recreate"))
      }\n`,
    );
  }
  return refused.length > 0;
}

/**
 * Carries the plans out in order; stops at the first failure, saying what was done. Returns the
 * exit code of a refusal or failure, undefined when all went well.
 */
async function carryOut(
  io: Io,
  lv: Libvirt,
  cmd: Command,
  config: FoundryConfig,
  planned: readonly Planned[],
  flags: PlanFlags,
): Promise<number | undefined> {
  const { applyVm } = await import("../../lib/foundry/apply.ts");
  const text = flags.output === "text";
  const say = text ? progress(io) : () => {};
  // Every refusal is known before anything changes: none of the VMs is touched then.
  if (await reportRefusals(io, planned)) return ExitCode.VM_OPERATION;
  const signal = interruptSignal();
  const finished: string[] = [];
  for (const [i, p] of planned.entries()) {
    if (p.plan.action === "unchanged") continue;
    const vm = p.vm;
    const secrets = [
      ...(vm?.spec.cloudInit?.passwordHash ? [vm.spec.cloudInit.passwordHash] : []),
      ...(vm?.spec.cloudInit?.sshAuthorizedKeys ?? []),
    ];
    try {
      const r = await withFoundryAudit(cmd, {
        resourceType: "vm",
        name: p.plan.name,
        uri: lv.uri.display,
        operation: "apply",
        details: {
          action: p.plan.action,
          changes: p.plan.changes.map((c) => `${c.path} (${c.class})`),
        },
      }, async (op) => {
        say(`${p.plan.action} VM '${p.plan.name}'`);
        const result = await applyVm(
          lv,
          vm ?? ({ metadata: { name: p.plan.name } } as VirtualMachine),
          p.plan,
          p.current,
          {
            config,
            onStep: (line) => say(sanitizeText(line, { singleLine: true })),
            create: {
              ...(signal ? { signal } : {}),
              ...(flags.start === false ? { noStart: true } : {}),
              onStep: (step, detail) => say(`${step}: ${detail}`),
            },
          },
        );
        if (p.plan.action === "create" || p.plan.action === "recreate") {
          op.object({ kind: "domain", name: p.plan.name, outcome: "created" });
        }
        return result;
      }, { secrets, ...(signal ? { signal } : {}) });
      for (const n of r.notes) if (text) io.out(`  ${sanitizeText(n, { singleLine: true })}\n`);
      finished.push(p.plan.name);
    } catch (e) {
      io.err(`Error: ${sanitizeText((e as Error).message)}\n`);
      const rest = planned.slice(i + 1).filter((q) => q.plan.action !== "unchanged").map((q) =>
        q.plan.name
      );
      io.err(
        `Applied: ${finished.join(", ") || "none"}; failed: ${p.plan.name}; not attempted: ${
          rest.join(", ") || "none"
        }\n`,
      );
      const cause = (e as { name?: string }).name === "ApplyIncompleteError"
        ? (e as Error).cause
        : e;
      return exitCodeFor(cause, ExitCode.VM_OPERATION);
    }
  }
  if (text) {
    const counts = new Map<string, number>();
    for (const p of planned) counts.set(p.plan.action, (counts.get(p.plan.action) ?? 0) + 1);
    io.out(`${[...counts].map(([a, n]) => `${n} ${a}`).join(", ") || "nothing to apply"}\n`);
  }
  return undefined;
}

/** `foundry diff -f FILE` (the plan, exit 1 when something would change) and `foundry diff NAME`. */
export function diffCommand(io: Io): Command {
  return withKubevirtOptions(new Command("diff"))
    .description("Show what apply would change (exit 0 none, 1 some, >1 error), or a VM's drift")
    .argument("[name]", "VM name: report changes made behind foundry's back (drift)")
    .option("-f, --filename <path>", "YAML file or directory (repeatable)", collect, [])
    .option("--recreate", "plan recreate-class changes as apply --recreate would")
    .option("--prune", "also list foundry VMs matching -l that are not in the files")
    .option("--copy-image", "fleet: plan as apply --copy-image would")
    .option("-l, --selector <selector>", "label selector for --prune", collect)
    .option("-o, --output <format>", "text, json or yaml", "text")
    .addHelpText(
      "after",
      `
diff -f prints apply's plan and changes nothing. Exit codes as kubectl diff: 0 nothing would
change, 1 something would, more than 1 an error: 2 a file or flag is wrong (a configuration error,
1 elsewhere, is 2 here), 3 connection, 4 a VM operation failed.
diff NAME reports changes made to the VM outside foundry (virsh setmem, virsh edit): exit 0 none,
1 drifted.

Examples:
  foundry diff -f web.yaml
  foundry diff -f vms/ -o json
  foundry diff web-01
`,
    )
    .action(async (name: string | undefined, flags: PlanFlags, cmd: Command) => {
      if (wantsKubevirt(cmd)) {
        return (await import("./_kubevirt_target.ts")).kubevirtApply(io, cmd, name);
      }
      checkChoice(flags.output, ["text", "json", "yaml"], "output format");
      await diffErrors(async () => {
        const config = await configFor(cmd);
        if (name !== undefined) {
          if (flags.filename.length) throw usage("Give either NAME or -f FILE, not both");
          return await runDrift(io, name.toLowerCase(), flags, config, cmd);
        }
        checkFlags(flags);
        if (isFleet(cmd)) await runFleet(io, flags, config, cmd, undefined);
        else await runDiff(io, flags, config, cmd);
      });
    });
}

/** `diff NAME`: the drift report (exit 1 when drifted). */
async function runDrift(
  io: Io,
  name: string,
  flags: PlanFlags,
  config: FoundryConfig,
  cmd: Command,
): Promise<void> {
  const drift = await import("../../lib/foundry/drift.ts");
  const report = await withLibvirt(config, (lv) => drift.driftOf(lv, name));
  if (flags.output === "json") io.out(formatJson(report));
  else if (flags.output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    io.out(formatYamlDocuments([report]));
  } else io.out(drift.formatDrift(report));
  if (report.changes.length > 0 || report.specHashMatches === false) setExitCode(cmd, 1);
}
