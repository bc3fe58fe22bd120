/**
 * `foundry create` on a fleet (issue 16), the part before anything is created: every configured
 * host is read once over its pooled connection (its foundry VMs' stored specs, and for the chosen
 * hosts what placement needs), the fleet-wide address book is checked, and each VM is placed.
 * Then {@linkcode copyImageTo} brings a boot image to a host that lacks it (`--copy-image`), and
 * each host's VMs are created there by `createVms` (its own checks and rollback).
 *
 * @module
 */
import type { Libvirt } from "../libvirt/mod.ts";
import {
  AddressBookIncompleteError,
  AddressConflictError,
  addressConflicts,
  homesOf,
  type HostBook,
} from "./address_book.ts";
import type { FoundryConfig } from "./config.ts";
import { fanOut, type HostPool } from "./fleet.ts";
import type { HostEntry } from "./fleet_types.ts";
import { HostSurvey } from "./host_resources.ts";
import {
  type Placed,
  PlacementError,
  type PlacementHost,
  placementHostFacts,
  placeVms,
  unreachableHost,
} from "./placement.ts";
import { lookupPool } from "./pools.ts";
import type { VirtualMachine } from "./types.ts";
import { type CopiedVolume, copyVolume } from "./volume_copy.ts";

/** Options of {@linkcode planFleetCreate}. */
export interface FleetCreateOptions {
  /** `--copy-image`. */
  copyImage: boolean;
  /** `--ignore-unreachable`: check the address book against the hosts that answered. */
  ignoreUnreachable: boolean;
  /** `--pool`. */
  pool?: string;
  /** Hosts read at once. */
  parallel: number;
}

/** Where each VM goes, and what the hosts said. */
export interface FleetCreatePlan {
  /** Each VM with its host, in file order. */
  placed: Placed[];
  /** The placement facts of the chosen hosts. */
  hosts: PlacementHost[];
  /** Configured hosts that did not answer (only with `ignoreUnreachable`). */
  unreachable: { host: string; error: Error }[];
}

/**
 * Reads the fleet, checks the address book and places every VM; creates nothing.
 *
 * @param chosen the hosts VMs may go to (`--host`/`--host-selector`, else all)
 * @param all every configured host: the address book covers them all
 * @throws {AddressBookIncompleteError} a host did not answer (without `ignoreUnreachable`)
 * @throws {AddressConflictError} a name, IP or MAC is taken
 * @throws {PlacementError} a VM fits no host
 */
export async function planFleetCreate(
  pool: HostPool,
  chosen: readonly HostEntry[],
  all: readonly HostEntry[],
  vms: readonly VirtualMachine[],
  config: FoundryConfig,
  opts: FleetCreateOptions,
): Promise<FleetCreatePlan> {
  const isChosen = (h: HostEntry) => chosen.some((c) => c.name === h.name);
  const outcomes = await fanOut(all, opts.parallel, pool, async (h, lv) => {
    const survey = new HostSurvey(lv);
    const [domains, facts] = await Promise.all([
      survey.domains(),
      isChosen(h) ? placementHostFacts(h, lv, survey, vms, config, opts.pool) : undefined,
    ]);
    const book: HostBook = {
      host: h.name,
      vms: domains.flatMap((d) => d.stored ? [d.stored.vm] : []),
    };
    return { book, facts };
  });
  const unreachable = outcomes.flatMap((o) => o.ok ? [] : [{ host: o.host, error: o.error }]);
  if (unreachable.length > 0 && !opts.ignoreUnreachable) {
    throw new AddressBookIncompleteError(unreachable);
  }
  const books = outcomes.flatMap((o) => o.ok ? [o.value.book] : []);
  const conflicts = addressConflicts(vms, books);
  if (conflicts.length > 0) throw new AddressConflictError(conflicts);
  const hosts = chosen.map((h, _i) => {
    const o = outcomes.find((x) => x.host === h.name)!;
    return o.ok ? o.value.facts! : unreachableHost(h, o.error);
  });
  const homes = homesOf(vms, books);
  for (const [name, host] of homes) {
    if (!chosen.some((c) => c.name === host)) {
      throw new PlacementError(
        name,
        "metadata.name",
        `VM ${name} exists on host ${host}, which is not among the chosen hosts`,
        [],
      );
    }
  }
  const placeOpts = opts.pool === undefined
    ? { copyImage: opts.copyImage }
    : { copyImage: opts.copyImage, pool: opts.pool };
  return { placed: placeVms(vms, hosts, config, placeOpts, homes), hosts, unreachable };
}

/**
 * Copies boot image `volume` of pool `poolName` from `src` to the same pool of `dst` (which must
 * exist there), verified by SHA-256; see `copyVolume`.
 */
export async function copyImageTo(
  src: Libvirt,
  dst: Libvirt,
  poolName: string,
  volume: string,
  opts: { onProgress?: (bytes: number) => void; signal?: AbortSignal } = {},
): Promise<CopiedVolume> {
  const vol = await src.storageVolLookupByName(await lookupPool(src, poolName), volume);
  return await copyVolume(src, vol, dst, await lookupPool(dst, poolName), opts);
}
