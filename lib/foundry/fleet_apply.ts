/**
 * `foundry apply` and `foundry diff -f` on a fleet (issue 16), the planning part: every VM of the
 * files is looked up on every chosen host over the pooled connections. A VM that exists on one host
 * is planned there (`planVm`, as on one host); one that exists nowhere is placed and checked
 * against the fleet-wide address book by the fleet create path (`planFleetCreate`) and planned as a
 * create on its host; one found on several hosts, or not found while a host did not answer, cannot
 * be planned and is a {@linkcode VmProblem}. A `spec.placement.host` that names another host than
 * the VM's own is a refused change (a move is a separate step), never a silent recreate. A prune
 * selector removes, on each chosen host, the matching foundry VMs the files do not name.
 *
 * Only reads: the caller carries the plan out host by host (`applyVm` on each host's connection).
 *
 * @example
 * ```ts
 * import { HostPool } from "./fleet.ts";
 * import { planFleetApply } from "./fleet_apply.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const hosts = [{ name: "a", uri: "qemu:///system" }];
 * const pool = new HostPool();
 * try {
 *   const vms = await loadVirtualMachines("examples/simple-vm.yaml");
 *   const plan = await planFleetApply(pool, hosts, hosts, vms, DEFAULT_CONFIG, { parallel: 4 });
 *   for (const i of plan.items) console.log(i.host, i.plan.action, i.plan.name);
 * } finally {
 *   await pool.closeAll();
 * }
 * ```
 * @module
 */
import type { LabelSelector } from "../config/selector.ts";
import {
  type CurrentVm,
  planVm,
  pruneCandidates,
  pruneRequirements,
  readCurrentVm,
  VmNotManagedError,
} from "./apply.ts";
import type { FoundryConfig } from "./config.ts";
import { fanOut, type HostPool } from "./fleet.ts";
import { planFleetCreate } from "./fleet_create.ts";
import type { HostEntry } from "./fleet_types.ts";
import type { SpecChange, VmPlan } from "./plan_types.ts";
import type { VirtualMachine } from "./types.ts";

/** One VM's plan on the host it lives on (or is placed on, for a create; or is pruned from). */
export interface FleetPlanned {
  /** The host. */
  host: string;
  /** What happens to the VM there. */
  plan: VmPlan;
  /** The desired VM (absent for a prune). */
  vm?: VirtualMachine;
  /** What the VM is now (for an update or recreate). */
  current?: CurrentVm;
  /** A create whose boot image the host lacks: copied there first, from this host (`copyImage`). */
  copyImage?: { from: string; pool: string; volume: string };
}

/**
 * Why a VM of the files cannot be planned: it exists on several hosts (`severalHosts`), a
 * domain of its name exists that foundry did not make (`notManaged`), or it was not found on the
 * hosts that answered while others did not (`notLookedUp`: creating it could make a second one).
 */
export interface VmProblem {
  /** The VM. */
  vm: string;
  /** What is wrong. */
  kind: "severalHosts" | "notManaged" | "notLookedUp";
  /** The hosts concerned: those that have it, or those that did not answer. */
  hosts: string[];
  /** One line: `VM web exists on hosts a, b`. */
  message: string;
}

/** The fleet's plan: what happens where, what cannot be planned, which hosts did not answer. */
export interface FleetApplyPlan {
  /** The VMs of the files in file order (each on its host), then the prunes host by host. */
  items: FleetPlanned[];
  /** VMs that cannot be planned; nothing is done to them. */
  problems: VmProblem[];
  /** Chosen hosts that could not be read, with why. */
  failedHosts: { host: string; error: Error }[];
}

/** Options of {@linkcode planFleetApply}. */
export interface FleetApplyOptions {
  /** Plan recreate-class changes as a recreate (see `PlanOptions.recreate`). */
  recreate?: boolean;
  /** Prune: the foundry VMs matching it that the files do not name, on every chosen host. */
  prune?: LabelSelector;
  /** Hosts read at once. */
  parallel: number;
  /** Each VM's file and line (`VmPlan.source`), by name. */
  sources?: ReadonlyMap<string, string>;
  /**
   * `--copy-image`: a new VM may be placed on a host that lacks its boot image when another host
   * has it (the plan's `copyImage` says from where); without it, such a host is not a candidate.
   */
  copyImage?: boolean;
}

/** The words of a placement change's reason that say the VM has to be moved to another host. */
export const MOVE_NEEDED = "a move to another host is needed";

/**
 * The refused change of a VM on `host` whose `spec.placement.host` names another host: apply
 * never moves a VM (nor recreates it elsewhere); undefined when the placement agrees.
 */
export function placementChange(vm: VirtualMachine, host: string): SpecChange | undefined {
  const p = vm.spec.placement;
  if (p === undefined || !("host" in p) || p.host === host) return undefined;
  return {
    path: "spec.placement.host",
    from: host,
    to: p.host,
    class: "forbidden",
    reason: `the VM is on host ${host}: ${MOVE_NEEDED}`,
  };
}

/** What one host said of the VMs: each one's state (or why it is not foundry's), and prunes. */
interface HostLookup {
  found: Map<string, CurrentVm | VmNotManagedError>;
  prune: string[];
}

/**
 * Plans `vms` across the `chosen` hosts; creates nothing. New VMs go through the fleet create
 * path: placed among `chosen`, their names and addresses checked against every foundry VM of
 * `all` hosts (the fleet-wide address book) first.
 *
 * @param chosen the hosts to work on (`--host`/`--host-selector`)
 * @param all every configured host: the address book covers them all
 * @throws {AddressBookIncompleteError} a host did not answer the address check of new VMs
 * @throws {AddressConflictError} a new VM's name, IP or MAC is taken
 * @throws {PlacementError} a new VM fits no host, or lives on a host that was not chosen
 * @throws {TypeError} the prune selector has no positive requirement (see `pruneCandidates`)
 */
export async function planFleetApply(
  pool: HostPool,
  chosen: readonly HostEntry[],
  all: readonly HostEntry[],
  vms: readonly VirtualMachine[],
  config: FoundryConfig,
  opts: FleetApplyOptions,
): Promise<FleetApplyPlan> {
  const names = vms.map((v) => v.metadata.name);
  const keep = new Set(names);
  const prune = opts.prune;
  if (prune) pruneRequirements(prune); // a bad selector fails before any host is asked
  const looked = await fanOut(chosen, opts.parallel, pool, async (_h, lv): Promise<HostLookup> => {
    const found = new Map<string, CurrentVm | VmNotManagedError>();
    await Promise.all(names.map(async (n) => {
      try {
        const current = await readCurrentVm(lv, n);
        if (current) found.set(n, current);
      } catch (e) {
        if (!(e instanceof VmNotManagedError)) throw e;
        found.set(n, e);
      }
    }));
    return { found, prune: prune ? await pruneCandidates(lv, prune, keep) : [] };
  });
  const failedHosts = looked.flatMap((o) => o.ok ? [] : [{ host: o.host, error: o.error }]);
  const answered = looked.flatMap((o) => o.ok ? [{ host: o.host, ...o.value }] : []);
  const problems: VmProblem[] = [];
  const planned = new Map<string, FleetPlanned>();
  const fresh: VirtualMachine[] = [];
  for (const vm of vms) {
    const name = vm.metadata.name;
    const homes = answered.filter((a) => a.found.has(name));
    if (homes.length > 1) {
      const hosts = homes.map((h) => h.host);
      problems.push({
        vm: name,
        kind: "severalHosts",
        hosts,
        message: `VM ${name} exists on hosts ${hosts.join(", ")}`,
      });
    } else if (homes.length === 1) {
      const home = homes[0]!;
      const current = home.found.get(name)!;
      if (current instanceof VmNotManagedError) {
        problems.push({
          vm: name,
          kind: "notManaged",
          hosts: [home.host],
          message: `host ${home.host}: ${current.message}`,
        });
        continue;
      }
      const plan = planVm(vm, current, { recreate: opts.recreate === true });
      const move = placementChange(vm, home.host);
      if (move) {
        plan.changes.push(move);
        if (plan.action === "unchanged") plan.action = "update";
      }
      planned.set(name, { host: home.host, plan, vm, current });
    } else if (failedHosts.length > 0) {
      const hosts = failedHosts.map((f) => f.host);
      problems.push({
        vm: name,
        kind: "notLookedUp",
        hosts,
        message: `VM ${name} was not found on the hosts that answered; host${
          hosts.length > 1 ? "s" : ""
        } ${hosts.join(", ")} did not answer, so it is not created`,
      });
    } else fresh.push(vm);
  }
  if (fresh.length > 0) {
    const placed = await planFleetCreate(pool, chosen, all, fresh, config, {
      copyImage: opts.copyImage === true,
      ignoreUnreachable: false,
      parallel: opts.parallel,
    });
    for (const p of placed.placed) {
      const name = p.vm.metadata.name;
      planned.set(name, {
        host: p.host,
        plan: { name, action: "create", changes: [] },
        vm: p.vm,
        ...(p.copyImage ? { copyImage: p.copyImage } : {}),
      });
    }
  }
  const items: FleetPlanned[] = [];
  for (const name of names) {
    const p = planned.get(name);
    if (p === undefined) continue;
    const source = opts.sources?.get(name);
    if (source !== undefined) p.plan.source = source;
    items.push(p);
  }
  for (const a of answered) {
    for (const name of a.prune) {
      items.push({ host: a.host, plan: { name, action: "prune", changes: [] } });
    }
  }
  return { items, problems, failedHosts };
}
