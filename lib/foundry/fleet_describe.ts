/**
 * `foundry describe NAME... --host ...` (issue 16): each named VM looked for on every chosen host
 * of a fleet, over the host's pooled connection. A host describes the names it has
 * ({@linkcode describeHere}, run per host by the fan-out); {@linkcode gatherDescriptions} then says
 * which names were found where, which no answering host has, and which several hosts have (each
 * is shown, and the caller says so).
 *
 * @example
 * ```ts
 * import { fanOut, HostPool } from "./fleet.ts";
 * import { describeHere, gatherDescriptions } from "./fleet_describe.ts";
 * const hosts = [{ name: "a", uri: "qemu:///system" }];
 * const pool = new HostPool();
 * try {
 *   const outcomes = await fanOut(hosts, 4, pool, (h, lv) => describeHere(lv, h.name, ["web"]));
 *   const { found, missing } = gatherDescriptions(["web"], outcomes);
 *   for (const f of found) console.log(f.host, f.description.live.state);
 *   if (missing.length) console.log("not found:", missing.join(", "));
 * } finally {
 *   await pool.closeAll();
 * }
 * ```
 * @module
 */
import type { Libvirt } from "../libvirt/client.ts";
import { type DescribeOptions, describeVm, type VmDescription } from "./describe.ts";
import type { HostOutcome } from "./fleet_types.ts";
import { VmNotFoundError } from "./vm_errors.ts";

/** A VM found on one host of the fleet. */
export interface HostVmDescription {
  /** The host's name (`hosts:`). */
  host: string;
  /** The connection's URI as audit records name their target (`Libvirt.uri.display`). */
  uri: string;
  /** The VM as `describeVm` sees it there. */
  description: VmDescription;
}

/** What a fleet's hosts said about the names asked for. */
export interface FleetDescription {
  /** Each VM found, in the order of the names asked for, then of the hosts. */
  found: HostVmDescription[];
  /** Names no answering host has (a host that failed may still have them). */
  missing: string[];
  /** Names more than one host has, with those hosts (each is in `found`). */
  onSeveralHosts: { name: string; hosts: string[] }[];
  /** The hosts that failed, with why, in the order of the hosts. */
  failed: { host: string; error: Error }[];
}

/**
 * Describes each of `names` (lower-case VM names) that exists on the host `lv` is connected to;
 * a name the host lacks is left out. Any other failure fails the host.
 */
export async function describeHere(
  lv: Libvirt,
  host: string,
  names: readonly string[],
  opts: DescribeOptions = {},
): Promise<HostVmDescription[]> {
  const got = await Promise.all(names.map(async (name) => {
    try {
      return await describeVm(lv, name, opts);
    } catch (e) {
      if (e instanceof VmNotFoundError) return undefined;
      throw e;
    }
  }));
  return got.flatMap((d) => d ? [{ host, uri: lv.uri.display, description: d }] : []);
}

/**
 * Sorts the hosts' answers (one outcome per host, from `fanOut` of {@linkcode describeHere}) by
 * the names asked for: found (name order, then host order), missing and on several hosts.
 */
export function gatherDescriptions(
  names: readonly string[],
  outcomes: readonly HostOutcome<HostVmDescription[]>[],
): FleetDescription {
  const answered = outcomes.flatMap((o) => o.ok ? o.value : []);
  const found: HostVmDescription[] = [];
  const missing: string[] = [];
  const onSeveralHosts: FleetDescription["onSeveralHosts"] = [];
  for (const name of new Set(names.map((n) => n.toLowerCase()))) {
    const here = answered.filter((f) => f.description.name.toLowerCase() === name);
    if (here.length === 0) missing.push(name);
    if (here.length > 1) onSeveralHosts.push({ name, hosts: here.map((f) => f.host) });
    found.push(...here);
  }
  const failed = outcomes.flatMap((o) => o.ok ? [] : [{ host: o.host, error: o.error }]);
  return { found, missing, onSeveralHosts, failed };
}
