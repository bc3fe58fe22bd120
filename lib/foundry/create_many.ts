/**
 * `foundry create` for a whole file: every VM is checked against the host before any is created,
 * VMs that already exist with the same spec are left alone ("unchanged"), and the rest are created
 * one after another. A failure while creating stops the run: the VM being created is rolled back,
 * the ones created before it stay, and the error says exactly which exist. Running the file again
 * converges: what exists is unchanged, the rest is created. This is what `kubectl apply` and
 * `terraform apply` users expect: no rollback of finished work, and a rerun that picks up.
 *
 * @example
 * ```ts
 * import { createVms } from "./create_many.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * import { Libvirt } from "../libvirt/mod.ts";
 * const lv = await Libvirt.connect();
 * const summary = await createVms(lv, await loadVirtualMachines("vms.yaml"), { config: DEFAULT_CONFIG });
 * console.log(summary.created.length, summary.unchanged.length);
 * ```
 *
 * @module
 */

import type { Libvirt } from "../libvirt/mod.ts";
import { passwordHashChanged, type StoredVm, withoutPasswordHash } from "./metadata.ts";
import { type PreflightProblem, preflightProblems } from "./preflight.ts";
import type { VirtualMachine } from "./types.ts";
import { type CreateFacts, HostSurvey } from "./host_resources.ts";

export { hostTopology } from "./host_resources.ts";
import { type CreateOptions, type CreateResult, type CreateStep, createVm } from "./vm.ts";

/** The runtime checks of one or more VMs of a file failed: nothing was created. */
export class CreateCheckError extends Error {
  /** The problems, by VM name, in file order. */
  readonly problems: ReadonlyMap<string, readonly PreflightProblem[]>;
  /** Creates the error; the message has one line per problem, `VM name path: message`. */
  constructor(problems: ReadonlyMap<string, readonly PreflightProblem[]>) {
    const lines: string[] = [];
    for (const [name, list] of problems) {
      for (const p of list) lines.push(`VM ${name} ${p.path}: ${p.message}`);
    }
    super(`${lines.join("\n")}\nNothing was created`);
    this.name = "CreateCheckError";
    this.problems = problems;
  }
}

/** What a run over a file did. */
export interface CreateSummary {
  /** VMs created by this run, in file order. */
  created: CreateResult[];
  /** VMs that existed already with the same spec; left alone. */
  unchanged: VirtualMachine[];
  /** The VM whose creation failed (it was rolled back), with the error. */
  failed?: { vm: VirtualMachine; error: unknown };
  /** VMs after the failed one, not attempted. */
  notAttempted: VirtualMachine[];
  /** Number of VMs in the file. */
  total: number;
}

/** One line saying exactly what a run did: `1 of 2 created: a; b failed: ...; not attempted: c`. */
export function summaryLine(s: CreateSummary): string {
  const parts = [
    `${s.created.length} of ${s.total} created${
      s.created.length ? `: ${s.created.map((r) => r.vm.metadata.name).join(", ")}` : ""
    }`,
  ];
  if (s.unchanged.length) {
    parts.push(
      `${s.unchanged.length} unchanged: ${s.unchanged.map((v) => v.metadata.name).join(", ")}`,
    );
  }
  if (s.failed) {
    const reason = s.failed.error instanceof Error
      ? s.failed.error.message
      : String(s.failed.error);
    parts.push(`${s.failed.vm.metadata.name} failed and was rolled back: ${reason}`);
  }
  if (s.notAttempted.length) {
    parts.push(`not attempted: ${s.notAttempted.map((v) => v.metadata.name).join(", ")}`);
  }
  return parts.join("; ");
}

/** Creating stopped at a VM that failed; the VMs created before it exist. `cause` is its error. */
export class CreateIncompleteError extends Error {
  /** What exists now. */
  readonly summary: CreateSummary;
  /** Creates the error from the summary of the run. */
  constructor(summary: CreateSummary) {
    super(summaryLine(summary), { cause: summary.failed?.error });
    this.name = "CreateIncompleteError";
    this.summary = summary;
  }
}

/** Options of {@linkcode createVms}. */
export interface CreateManyOptions
  extends Pick<CreateOptions, "config" | "pool" | "signal" | "noStart"> {
  /** Progress of one VM's steps. */
  onStep?: (vm: VirtualMachine, step: CreateStep, detail: string, ms: number) => void;
  /** Called before each step of each VM; throwing fails that VM (tests inject failures). */
  beforeStep?: (vm: VirtualMachine, step: CreateStep) => void | Promise<void>;
  /** Runs around each VM's creation (the CLI records it in the audit trail). */
  around?: (vm: VirtualMachine, create: () => Promise<CreateResult>) => Promise<CreateResult>;
  /** Told when a VM is about to be created, or found unchanged. */
  onVm?: (vm: VirtualMachine, what: "creating" | "unchanged") => void;
}

/** Which VMs of a file to create and which exist already with the same spec. */
export interface CreatePlan {
  /** VMs to create, in file order. */
  create: VirtualMachine[];
  /** VMs that exist with the same spec. */
  unchanged: VirtualMachine[];
  /** The facts each VM to create was checked against, by name (`createVm` reuses them). */
  facts: Map<string, CreateFacts>;
}

/** Whether `vm` is what the domain's stored spec says (password hash by fingerprint). */
function sameSpec(stored: StoredVm, vm: VirtualMachine): boolean {
  if (passwordHashChanged(stored, vm)) return false;
  const mine = withoutPasswordHash(vm);
  return canonicalJson([stored.vm.metadata, stored.vm.spec]) ===
    canonicalJson([mine.metadata, mine.spec]);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
  });
}

/**
 * Checks every VM of a file against the host before any is created: names, bridges, images,
 * addresses, vCPUs, memory and VM pool space. A VM that exists with foundry metadata and the same
 * spec is planned as unchanged; one that exists otherwise is a problem naming it.
 *
 * @throws {CreateCheckError} with every problem of every VM
 */
export async function planCreate(
  lv: Libvirt,
  vms: readonly VirtualMachine[],
  opts: Pick<CreateOptions, "config" | "pool">,
): Promise<CreatePlan> {
  // Each fact is read once for the whole file, the independent ones together.
  const survey = new HostSurvey(lv);
  const all = await Promise.all(vms.map((vm) => survey.factsFor(vm, opts.config, opts.pool)));
  const domains = new Map((await survey.domains()).map((d) => [d.name, d]));
  const plan: CreatePlan = { create: [], unchanged: [], facts: new Map() };
  const problems = new Map<string, PreflightProblem[]>();
  for (const [k, vm] of vms.entries()) {
    const name = vm.metadata.name;
    const existing = domains.get(name);
    if (existing?.stored && sameSpec(existing.stored, vm)) {
      plan.unchanged.push(vm);
      continue;
    }
    const own: PreflightProblem[] = [];
    const checked = all[k]!;
    let facts = checked.facts;
    if (existing?.foundry) {
      own.push({
        path: "metadata.name",
        message:
          `VM "${name}" already exists with a different spec; destroy it first, or put its spec back in the file`,
      });
      facts = { ...facts, domains: facts.domains.filter((n) => n !== name) };
    }
    own.push(...preflightProblems(vm, facts));
    if (own.length) problems.set(name, own);
    else {
      plan.create.push(vm);
      plan.facts.set(name, checked);
    }
  }
  if (problems.size) throw new CreateCheckError(problems);
  return plan;
}

/**
 * Creates the VMs of a file (see the module documentation): {@linkcode planCreate}, then each VM with
 * `createVm`, stopping at the first failure.
 *
 * @throws {CreateCheckError} a runtime check failed; nothing was created
 * @throws {CreateIncompleteError} a VM failed while being created; its `summary` says what exists
 */
export async function createVms(
  lv: Libvirt,
  vms: readonly VirtualMachine[],
  opts: CreateManyOptions,
): Promise<CreateSummary> {
  opts.signal?.throwIfAborted();
  const plan = await planCreate(lv, vms, opts);
  const summary: CreateSummary = {
    created: [],
    unchanged: plan.unchanged,
    notAttempted: [],
    total: vms.length,
  };
  for (const vm of plan.unchanged) opts.onVm?.(vm, "unchanged");
  const around = opts.around ?? ((_vm, create) => create());
  // VMs created by this run join the facts the later ones are checked against.
  const madeNames: string[] = [];
  const madeVms: VirtualMachine[] = [];
  for (const [i, vm] of plan.create.entries()) {
    opts.onVm?.(vm, "creating");
    try {
      const create: CreateOptions = { config: opts.config };
      if (opts.pool !== undefined) create.pool = opts.pool;
      if (opts.signal !== undefined) create.signal = opts.signal;
      if (opts.noStart !== undefined) create.noStart = opts.noStart;
      if (opts.onStep) create.onStep = (s, d, ms) => opts.onStep?.(vm, s, d, ms);
      if (opts.beforeStep) create.beforeStep = (s) => opts.beforeStep?.(vm, s);
      const checked = plan.facts.get(vm.metadata.name);
      if (checked) {
        create.facts = {
          ...checked,
          facts: {
            ...checked.facts,
            domains: [...checked.facts.domains, ...madeNames],
            foundryVms: [...checked.facts.foundryVms, ...madeVms],
          },
        };
      }
      summary.created.push(await around(vm, () => createVm(lv, vm, create)));
      madeNames.push(vm.metadata.name);
      madeVms.push(vm);
    } catch (error) {
      summary.failed = { vm, error };
      summary.notAttempted = plan.create.slice(i + 1);
      throw new CreateIncompleteError(summary);
    }
  }
  return summary;
}
