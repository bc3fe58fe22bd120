/**
 * Placement of VMs on a fleet of libvirt hosts (issue 16): which host a VM of `foundry create`
 * goes to. The choice is a pure function of facts read from each host ({@linkcode PlacementHost}):
 * the spec's `placement.host` when it names one, else, among the hosts its `placement.selector`
 * matches (or all), those with every bridge its NICs name, enough free space in its VM pool for
 * its disks, its boot image (or `--copy-image` with another host that has it), fewer foundry VMs
 * than `limits.maxVms` and its memory free beyond `limits.reserveMemoryGiB`: the one with the most
 * memory left for VMs (free memory less the reserve); ties go to the first name. Each host that
 * does not fit gets its reason, and a VM that fits nowhere is a {@linkcode PlacementError} listing
 * them all.
 *
 * @example
 * ```ts
 * import { placeVms } from "./placement.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const vms = await loadVirtualMachines("examples/simple-vm.yaml");
 * const placed = placeVms(vms, [{
 *   name: "a", labels: {}, freeMemoryBytes: 8 * 2 ** 30, bridges: ["br0"],
 *   poolsAvailable: {}, volumes: {}, foundryVms: 0,
 * }], DEFAULT_CONFIG, { copyImage: false });
 * for (const p of placed) console.log(`${p.vm.metadata.name} -> ${p.host}`);
 * ```
 * @module
 */
import { type Libvirt, LibvirtError } from "../libvirt/mod.ts";
import { type FoundryConfig, imageLocationFor, vmPoolFor } from "./config.ts";
import type { HostEntry } from "./fleet_types.ts";
import type { HostSurvey } from "./host_resources.ts";
import type { VirtualMachine } from "./types.ts";

const GIB = 2 ** 30;

/** `remote_protocol.x`: REMOTE_PROC_NODE_GET_FREE_MEMORY = 102 (no arguments, `unsigned hyper`). */
const PROC_NODE_GET_FREE_MEMORY = 102;

/** What placement knows of one host. */
export interface PlacementHost {
  /** Host name (`hosts:`). */
  name: string;
  /** Its labels. */
  labels: Readonly<Record<string, string>>;
  /** Its limits. */
  limits?: HostEntry["limits"];
  /** Why it could not be read (unreachable); the other facts are then empty. */
  unreachable?: string;
  /** Free memory in bytes (virNodeGetFreeMemory); null when not reported. */
  freeMemoryBytes: number | null;
  /** Its bridges (interfaces of type bridge, networks' bridges). */
  bridges: readonly string[];
  /** Free bytes of each running pool that was asked about; a pool absent here does not exist. */
  poolsAvailable: Readonly<Record<string, number>>;
  /** Volume names of each pool that was asked about and exists. */
  volumes: Readonly<Record<string, readonly string[]>>;
  /** How many foundry VMs it has. */
  foundryVms: number;
}

/** One host's verdict for a VM. */
export interface HostVerdict {
  /** The host. */
  host: string;
  /** Why the VM does not fit there; undefined when it fits. */
  reason?: string;
  /** Memory in bytes left for VMs after this one (free less reserve less the VM), when it fits. */
  headroom?: number;
}

/** Where a VM goes. */
export interface Placed {
  /** The VM. */
  vm: VirtualMachine;
  /** The chosen host. */
  host: string;
  /** When the boot image has to be copied there first: from which host, which pool and volume. */
  copyImage?: { from: string; pool: string; volume: string };
  /** Every host's verdict (for `-o json` and messages). */
  verdicts: HostVerdict[];
}

/** A VM fits no host; nothing was created. */
export class PlacementError extends Error {
  /** The VM's name. */
  readonly vmName: string;
  /** The field the refusal concerns (`spec.placement.host`, `spec.placement.selector`, `spec`). */
  readonly path: string;
  /** Each host's reason. */
  readonly verdicts: readonly HostVerdict[];
  /** Creates the error; the message names every host with its reason. */
  constructor(vmName: string, path: string, summary: string, verdicts: readonly HostVerdict[]) {
    const reasons = verdicts.filter((v) => v.reason !== undefined)
      .map((v) => `${v.host}: ${v.reason}`).join("; ");
    super(`VM ${vmName} ${path}: ${summary}${reasons ? ` (${reasons})` : ""}`);
    this.name = "PlacementError";
    this.vmName = vmName;
    this.path = path;
    this.verdicts = verdicts;
  }
}

/**
 * The words a host's reason ends with when the boot image it lacks is on another host, so that
 * copying it (`PlaceOptions.copyImage`) would help; the CLI adds its flag after them.
 */
export const IMAGE_ELSEWHERE = "another host has it";

/** Options of {@linkcode placeVms}. */
export interface PlaceOptions {
  /** `--copy-image`: a host without the boot image may get it from a host that has it. */
  copyImage: boolean;
  /** `--pool`: the VM pool of every VM. */
  pool?: string;
}

/** What a VM needs of a host. */
interface Needs {
  bridges: string[];
  pool: string;
  diskBytes: number;
  memoryBytes: number;
  image?: { pool: string; volume: string };
}

function needsOf(vm: VirtualMachine, config: FoundryConfig, poolFlag?: string): Needs {
  const disks = vm.spec.bootDisk.volume !== undefined ? 0 : vm.spec.bootDisk.sizeGB;
  const data = (vm.spec.dataDisks ?? []).reduce((n, d) => n + (d.volume ? 0 : d.sizeGB), 0);
  const loc = vm.spec.bootDisk.empty === true ? undefined : imageLocationFor(vm, config);
  const needs: Needs = {
    bridges: [...new Set(vm.spec.networkInterfaces.map((n) => n.bridge))],
    pool: vmPoolFor(vm, config, poolFlag),
    diskBytes: (disks + data) * GIB,
    memoryBytes: vm.spec.memoryGiB * GIB,
  };
  if (loc?.kind === "volume") needs.image = { pool: loc.pool, volume: loc.volume };
  return needs;
}

/** Whether `h` has the image, or gets it from a copy of this run. */
function hasImage(
  h: PlacementHost,
  image: { pool: string; volume: string },
  copied: ReadonlySet<string>,
): boolean {
  return (h.volumes[image.pool]?.includes(image.volume) ?? false) ||
    copied.has(`${image.pool}/${image.volume}`);
}

const gib = (bytes: number) => `${Math.floor(bytes / GIB * 100) / 100} GiB`;

/** Why `vm` does not fit on `h` (undefined: it fits), given what this run placed there already. */
function reasonAgainst(
  h: PlacementHost,
  needs: Needs,
  used: { vms: number; memory: number; disk: Map<string, number>; images: Set<string> },
  imageElsewhere: boolean,
  opts: PlaceOptions,
): string | undefined {
  if (h.unreachable !== undefined) return `unreachable: ${h.unreachable}`;
  const missing = needs.bridges.filter((b) => !h.bridges.includes(b));
  if (missing.length) return `no bridge ${missing.join(", ")}`;
  const max = h.limits?.maxVms;
  if (max !== undefined && h.foundryVms + used.vms + 1 > max) {
    return `has ${h.foundryVms + used.vms} foundry VMs, its limit is ${max}`;
  }
  const available = h.poolsAvailable[needs.pool];
  // A VM pool that does not exist yet is made by create in its directory: its space is unknown.
  if (available !== undefined) {
    const left = available - (used.disk.get(needs.pool) ?? 0);
    if (left < needs.diskBytes) {
      return `pool ${needs.pool} has ${gib(left)} free, the disks need ${gib(needs.diskBytes)}`;
    }
  }
  if (needs.image !== undefined) {
    if (!hasImage(h, needs.image, used.images)) {
      const where = `image ${needs.image.pool}/${needs.image.volume} is not there`;
      if (!opts.copyImage) return imageElsewhere ? `${where} (${IMAGE_ELSEWHERE})` : where;
      if (!imageElsewhere) return `${where} nor on any other reachable host`;
    }
  }
  if (h.freeMemoryBytes === null) return "does not report its free memory";
  const reserve = (h.limits?.reserveMemoryGiB ?? 0) * GIB;
  const left = h.freeMemoryBytes - reserve - used.memory;
  if (left < needs.memoryBytes) {
    return `${gib(Math.max(0, left))} free${reserve ? ` beyond its reserve` : ""}, the VM needs ${
      gib(needs.memoryBytes)
    }`;
  }
  return undefined;
}

/**
 * Places every VM of a file, in file order: the ones placed earlier count against a host's memory,
 * VM count and pool space for the later ones. `pinned` gives VMs that already exist on a host
 * (by name): they stay there (create then finds them unchanged, or refuses a different spec).
 *
 * @throws {PlacementError} for the first VM that fits no host
 */
export function placeVms(
  vms: readonly VirtualMachine[],
  hosts: readonly PlacementHost[],
  config: FoundryConfig,
  opts: PlaceOptions,
  pinned: ReadonlyMap<string, string> = new Map(),
): Placed[] {
  const used = new Map(
    hosts.map((h) => [h.name, {
      vms: 0,
      memory: 0,
      disk: new Map<string, number>(),
      images: new Set<string>(),
    }]),
  );
  const out: Placed[] = [];
  for (const vm of vms) {
    const name = vm.metadata.name;
    const needs = needsOf(vm, config, opts.pool);
    const at = pinned.get(name);
    if (at !== undefined) {
      out.push({ vm, host: at, verdicts: [{ host: at }] });
      continue;
    }
    const placement = vm.spec.placement;
    let candidates = [...hosts];
    let path = "spec";
    if (placement !== undefined && "host" in placement) {
      path = "spec.placement.host";
      candidates = hosts.filter((h) => h.name === placement.host);
      if (candidates.length === 0) {
        throw new PlacementError(
          name,
          path,
          `host ${placement.host} is not ${
            config.hosts?.some((h) => h.name === placement.host)
              ? "among the hosts chosen for this command"
              : "a configured host"
          }`,
          [],
        );
      }
    } else if (placement !== undefined) {
      path = "spec.placement.selector";
      const sel = Object.entries(placement.selector);
      candidates = hosts.filter((h) => sel.every(([k, v]) => h.labels[k] === v));
      if (candidates.length === 0) {
        throw new PlacementError(
          name,
          path,
          `no host has the labels ${sel.map(([k, v]) => `${k}=${v}`).join(",")}`,
          [],
        );
      }
    }
    const image = needs.image;
    const source = image === undefined
      ? undefined
      : hosts.find((h) =>
        h.unreachable === undefined && (h.volumes[image.pool]?.includes(image.volume) ?? false)
      );
    const verdicts = candidates.map((h): HostVerdict => {
      const u = used.get(h.name)!;
      const reason = reasonAgainst(h, needs, u, source !== undefined && source !== h, opts);
      if (reason !== undefined) return { host: h.name, reason };
      const reserve = (h.limits?.reserveMemoryGiB ?? 0) * GIB;
      return {
        host: h.name,
        headroom: h.freeMemoryBytes! - reserve - u.memory - needs.memoryBytes,
      };
    });
    const fits = verdicts.filter((v) => v.reason === undefined)
      .sort((a, b) =>
        b.headroom! - a.headroom! || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0)
      );
    const best = fits[0];
    if (best === undefined) {
      throw new PlacementError(
        name,
        path,
        candidates.length === 1 ? `host ${candidates[0]!.name} cannot take it` : "no host fits",
        verdicts,
      );
    }
    const chosen = hosts.find((h) => h.name === best.host)!;
    const u = used.get(best.host)!;
    u.vms++;
    u.memory += needs.memoryBytes;
    u.disk.set(needs.pool, (u.disk.get(needs.pool) ?? 0) + needs.diskBytes);
    const placed: Placed = { vm, host: best.host, verdicts };
    if (image !== undefined && !hasImage(chosen, image, u.images) && source) {
      placed.copyImage = { from: source.name, ...image };
      // The copy serves the later VMs of this run too.
      u.images.add(`${image.pool}/${image.volume}`);
    }
    out.push(placed);
  }
  return out;
}

/**
 * Reads what placement needs of one host over its connection: free memory, bridges, foundry VMs,
 * and the free space and volumes of the pools `vms` use. `survey` is reused (the address book
 * reads the same host's domains through it).
 */
export async function placementHostFacts(
  entry: HostEntry,
  lv: Libvirt,
  survey: HostSurvey,
  vms: readonly VirtualMachine[],
  config: FoundryConfig,
  poolFlag?: string,
): Promise<PlacementHost> {
  const needs = vms.map((vm) => needsOf(vm, config, poolFlag));
  const vmPools = [...new Set(needs.map((n) => n.pool))];
  const imagePools = [...new Set(needs.flatMap((n) => n.image ? [n.image.pool] : []))];
  const [free, bridges, domains, spaces, volumes] = await Promise.all([
    lv.callRemote(PROC_NODE_GET_FREE_MEMORY, undefined, (r) => r.readUhyperNumber()).catch(
      (e) => {
        if (e instanceof LibvirtError) return null;
        throw e;
      },
    ),
    survey.bridges(),
    survey.domains(),
    Promise.all(vmPools.map((p) => survey.poolSpace(p))),
    Promise.all(imagePools.map((p) => survey.volumes(p))),
  ]);
  const poolsAvailable: Record<string, number> = {};
  for (const s of spaces) if (s) poolsAvailable[s.name] = s.available;
  const vols: Record<string, readonly string[]> = {};
  imagePools.forEach((p, i) => {
    const v = volumes[i];
    if (v) vols[p] = v.map((x) => x.name);
  });
  const out: PlacementHost = {
    name: entry.name,
    labels: entry.labels ?? {},
    freeMemoryBytes: free,
    bridges,
    poolsAvailable,
    volumes: vols,
    foundryVms: domains.filter((d) => d.foundry).length,
  };
  if (entry.limits) out.limits = entry.limits;
  return out;
}

/** An unreachable host as placement sees it. */
export function unreachableHost(entry: HostEntry, error: Error): PlacementHost {
  return {
    name: entry.name,
    labels: entry.labels ?? {},
    unreachable: error.message.slice(0, 300),
    freeMemoryBytes: null,
    bridges: [],
    poolsAvailable: {},
    volumes: {},
    foundryVms: 0,
  };
}
