/**
 * virtwork's libvirt backend, on foundry: each planned VM becomes a foundry `VirtualMachine`
 * (visible in `foundry list`, labelled with the run id), created with foundry's create path,
 * followed with its wait logic, read through its console or guest agent, and removed with its
 * destroy rules (only the volumes foundry made for the VM, NVRAM too).
 * @module
 */
import { type DomainRef, Libvirt } from "../../libvirt/mod.ts";
import { type FoundryConfig, loadConfig } from "../../foundry/config.ts";
import { CreateIncompleteError, createVms } from "../../foundry/create_many.ts";
import { listVms } from "../../foundry/inventory.ts";
import { VmNotFoundError } from "../../foundry/lookup.ts";
import type { DomainType, VirtualMachine } from "../../foundry/types.ts";
import { destroyVm } from "../../foundry/vm.ts";
import { waitForVm, WaitTimeoutError } from "../../foundry/wait.ts";
import type { GuestOs } from "../../workloads/workload.ts";
import type {
  Backend,
  BackendCallOptions,
  BackendCleanup,
  CreatedObject,
  NeutralPlan,
  NeutralVm,
} from "../backend.ts";
import type { ResultSample } from "../results.ts";
import { allocateAddresses, inSubnet, parseSubnet, type Subnet } from "./addresses.ts";
import { readAgentSample, readConsoleSamples, type ResultSource } from "./results.ts";
import {
  checkedSpecs,
  foundryVmOf,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  RUN_ID_LABEL,
  type SpecContext,
} from "./spec.ts";

/** Options of {@linkcode openLibvirtBackend}. */
export interface LibvirtBackendOptions {
  /** libvirt URI (foundry's rules: `qemu:///system`, `qemu+ssh://host/system`, ...). */
  uri: string;
  /** Base image: a volume in the image pool (`debian-12.qcow2`) or `pool:volume`. */
  image: string;
  /** Pool of the image; foundry's configured image pool by default. */
  imagePool?: string;
  /** Host bridge every VM's NIC is attached to. */
  bridge: string;
  /** IPv4 subnet the VMs' static addresses come from, `10.77.0.0/24`. */
  subnet: string;
  /** Gateway of the subnet (never given to a VM); its first host by default. */
  gateway?: string;
  /** Guest distribution; guessed from the image name, else `debian`. */
  os?: GuestOs;
  /** Domain type; foundry's configuration (else the host's capabilities) by default. */
  domainType?: DomainType;
  /** foundry's configuration (pools, paths, destroy grace period); loaded as foundry does when absent. */
  config?: FoundryConfig;
  /** Boot disk size in GiB (default 10; thin). */
  bootDiskGB?: number;
}

/** The libvirt backend, with what it adds to the contract. */
export interface LibvirtBackend extends Backend {
  /** The guest distribution the user data is built for. */
  readonly os: GuestOs;
  /** The subnet and gateway in use. */
  readonly subnet: Subnet;
  /** Where each VM's sample of the last {@linkcode Backend.collectResults} came from. */
  readonly resultSources: ReadonlyMap<string, ResultSource>;
  /** The foundry specs of the plan, as foundry's loader accepts them. */
  render(plan: NeutralPlan): VirtualMachine[];
}

/**
 * The guest distribution an image name suggests (`fedora`, `centos` or `stream`, `ubuntu`,
 * `debian`), else `debian`: foundry's own test and demo images are Debian.
 */
export function guestOsOfImage(image: string): GuestOs {
  const s = image.toLowerCase();
  if (s.includes("fedora")) return "fedora";
  if (s.includes("centos") || s.includes("stream")) return "centos";
  if (s.includes("ubuntu")) return "ubuntu";
  return "debian";
}

/**
 * Connects to libvirt and returns the backend.
 *
 * @example
 * ```ts
 * import { openLibvirtBackend } from "./mod.ts";
 * const backend = await openLibvirtBackend({
 *   uri: "qemu:///system",
 *   image: "debian-12.qcow2",
 *   bridge: "br-work",
 *   subnet: "10.77.0.0/24",
 * });
 * console.log(backend.location, backend.os);
 * await backend.close();
 * ```
 * @throws {RangeError} a bad subnet or gateway (before connecting)
 */
export async function openLibvirtBackend(o: LibvirtBackendOptions): Promise<LibvirtBackend> {
  const subnet = parseSubnet(o.subnet, o.gateway);
  const config = o.config ?? await loadConfig({ flags: { uri: o.uri } });
  const lv = await Libvirt.connect(o.uri);
  return new FoundryBackend(lv, o, { ...config, uri: o.uri }, subnet);
}

class FoundryBackend implements LibvirtBackend {
  readonly target = "libvirt" as const;
  readonly location: string;
  readonly os: GuestOs;
  readonly subnet: Subnet;
  readonly resultSources = new Map<string, ResultSource>();
  readonly #lv: Libvirt;
  readonly #config: FoundryConfig;
  readonly #ctx: Omit<SpecContext, "runId">;
  /** Addresses given to VMs by name. */
  readonly #addresses = new Map<string, string>();
  /** VMs whose address was checked against the daemon (the rest are a dry run's). */
  readonly #checked = new Set<string>();

  constructor(lv: Libvirt, o: LibvirtBackendOptions, config: FoundryConfig, subnet: Subnet) {
    this.#lv = lv;
    this.#config = config;
    this.subnet = subnet;
    this.location = lv.uri.display;
    this.os = o.os ?? guestOsOfImage(o.image);
    const ctx: Omit<SpecContext, "runId"> = { image: o.image, bridge: o.bridge, subnet };
    const imagePool = o.imagePool ?? (o.image.includes(":") ? undefined : config.imagesPool);
    if (imagePool !== undefined) ctx.imagePool = imagePool;
    if (o.domainType !== undefined) ctx.domainType = o.domainType;
    if (o.bootDiskGB !== undefined) ctx.bootDiskGB = o.bootDiskGB;
    this.#ctx = ctx;
  }

  /**
   * Gives every VM of the plan an address of the subnet that no domain on the daemon has (its
   * foundry spec's addresses and its live ones, agent or DHCP lease) and no other VM of the plan
   * gets; returns those of the VMs others connect to. A plan without peers gets its addresses in
   * `create` (the core calls this only when there are peers).
   */
  async peerAddresses(
    plan: Omit<NeutralPlan, "vms"> & { vms: Omit<NeutralVm, "userData">[] },
  ): Promise<Map<string, string>> {
    await this.#allocate(plan.vms.map((v) => v.name));
    const out = new Map<string, string>();
    for (const p of plan.peers) {
      const ip = this.#addresses.get(p.to);
      if (ip !== undefined) out.set(p.to, ip);
    }
    return out;
  }

  /**
   * Gives `names` addresses checked against the daemon: none that a domain there has (its
   * foundry spec's, the agent's or a DHCP lease's), none given to another VM by this backend.
   */
  async #allocate(names: readonly string[]): Promise<void> {
    const taken = new Set<string>();
    for (const v of (await listVms(this.#lv, { all: true })).vms) {
      for (const a of v.addresses) taken.add(a.ip);
    }
    for (const [name, ip] of this.#addresses) {
      if (!names.includes(name) && this.#checked.has(name)) taken.add(ip);
    }
    const ips = allocateAddresses(this.subnet, names.length, taken);
    names.forEach((n, i) => {
      this.#addresses.set(n, ips[i]!);
      this.#checked.add(n);
    });
  }

  /** The foundry specs of the plan (for `--dry-run`), checked by foundry's loader. */
  render(plan: NeutralPlan): VirtualMachine[] {
    const missing = plan.vms.filter((v) => !this.#addresses.has(v.name));
    if (missing.length) {
      // Not allocated against the daemon (a dry run of a plan without peers): the subnet in
      // order; create() allocates such VMs again against the daemon.
      const taken = new Set(
        [...this.#addresses.values()].filter((ip) => inSubnet(this.subnet, ip)),
      );
      const ips = allocateAddresses(this.subnet, missing.length, taken);
      missing.forEach((v, i) => this.#addresses.set(v.name, ips[i]!));
    }
    const ctx: SpecContext = { ...this.#ctx, runId: plan.runId };
    return checkedSpecs(plan.vms.map((v) => foundryVmOf(v, this.#addresses.get(v.name)!, ctx)));
  }

  /**
   * Creates the plan's VMs with foundry's create path (checks against the host before anything
   * is made, then one VM after another). On a failure or an abort every VM this call created is
   * destroyed again (foundry rolls back the one in progress), so nothing is left behind; VMs of
   * the run that existed before the call with the same spec count as `exists` and are kept.
   */
  async create(plan: NeutralPlan, o: BackendCallOptions = {}): Promise<CreatedObject[]> {
    const unchecked = plan.vms.map((v) => v.name).filter((n) => !this.#checked.has(n));
    if (unchecked.length) await this.#allocate(unchecked);
    const specs = this.render(plan);
    const made: string[] = [];
    const objects: CreatedObject[] = [];
    try {
      await createVms(this.#lv, specs, {
        config: this.#config,
        ...(o.signal ? { signal: o.signal } : {}),
        onVm: (vm, what) => {
          if (what === "unchanged") {
            objects.push({ kind: "domain", name: vm.metadata.name, outcome: "exists" });
            o.onEvent?.({
              type: "created",
              vm: vm.metadata.name,
              outcome: "exists",
              at: performance.now(),
            });
          }
        },
        around: async (vm, create) => {
          const r = await create();
          made.push(vm.metadata.name);
          objects.push({ kind: "domain", name: vm.metadata.name, outcome: "created" });
          o.onEvent?.({
            type: "created",
            vm: vm.metadata.name,
            outcome: "created",
            at: performance.now(),
          });
          return r;
        },
      });
      return objects;
    } catch (e) {
      const left: string[] = [];
      for (const name of made.reverse()) {
        try {
          await destroyVm(this.#lv, name, { timeoutSeconds: 0 });
        } catch (err) {
          if (!(err instanceof VmNotFoundError)) left.push(`${name}: ${(err as Error).message}`);
        }
      }
      const why = e instanceof CreateIncompleteError && e.summary.failed
        ? (e.summary.failed.error as Error).message ?? String(e.summary.failed.error)
        : (e as Error).message;
      if (made.length) {
        o.onEvent?.({
          type: "note",
          level: "warning",
          reason: "RolledBack",
          message: `create stopped; destroyed again: ${made.join(", ")}` +
            (left.length ? `; left: ${left.join("; ")}` : ""),
          at: performance.now(),
        });
      }
      const rolled = made.length ? `; rolled back: ${made.join(", ")}` : "";
      const failed = left.length ? `; cleanup also failed: ${left.join("; ")}` : "";
      if (e instanceof Error) {
        e.message = `${why}${rolled}${failed}`;
        throw e;
      }
      throw new Error(`${String(e)}${rolled}${failed}`);
    }
  }

  /**
   * Follows each VM with foundry's wait logic: `DomainDefined`, `DomainRunning`,
   * `AgentConnected`, `CloudInitDone` (cloud-init's boot-finished, so the workload's units are
   * enabled), then `ready`. A VM that cannot come up (shut off, crashed, gone) is `failed`.
   */
  async waitReady(vms: string[], timeoutMs: number, o: BackendCallOptions = {}): Promise<string[]> {
    const pending: string[] = [];
    const emit = o.onEvent ?? (() => {});
    const phase = {
      running: "DomainRunning",
      agent: "AgentConnected",
      "cloud-init": "CloudInitDone",
    };
    await Promise.all(vms.map(async (name) => {
      try {
        await this.#lv.domainLookupByName(name);
        emit({ type: "phase", vm: name, phase: "DomainDefined", at: performance.now() });
        await waitForVm(this.#lv, name, {
          until: "cloud-init",
          timeoutMs,
          ...(o.signal ? { signal: o.signal } : {}),
          onStage: (stage) => {
            const p = (phase as Record<string, string>)[stage];
            if (p) emit({ type: "phase", vm: name, phase: p, at: performance.now() });
          },
        });
        emit({ type: "ready", vm: name, at: performance.now() });
      } catch (e) {
        if (e instanceof WaitTimeoutError) pending.push(name);
        else if (o.signal?.aborted) pending.push(name);
        else {emit({
            type: "failed",
            vm: name,
            message: (e as Error).message,
            at: performance.now(),
          });}
      }
    }));
    o.signal?.throwIfAborted();
    return vms.filter((v) => pending.includes(v));
  }

  /**
   * Reads each guest's serial console for `durationMs` (lib/libvirt's console stream) and keeps
   * the latest sample; a VM whose console gave none (not open-able, busy, or silent in that time)
   * is read through the guest agent instead: the last line of the results file.
   */
  async collectResults(
    vms: string[],
    durationMs: number,
    o: BackendCallOptions = {},
  ): Promise<Map<string, ResultSample>> {
    this.resultSources.clear();
    const out = new Map<string, ResultSample>();
    const take = (vm: string, s: ResultSample, source: ResultSource) => {
      out.set(vm, s);
      this.resultSources.set(vm, source);
      o.onEvent?.({ type: "result", vm, sample: s, at: performance.now() });
    };
    const domains = new Map<string, DomainRef>();
    for (const name of vms) {
      const d = await this.#lv.domainLookupByName(name).catch(() => undefined);
      if (d) domains.set(name, d);
    }
    const start = performance.now();
    await Promise.all([...domains].map(async ([name, d]) => {
      await readConsoleSamples(this.#lv, d, durationMs, (s) => take(name, s, "console"), o.signal);
      if (out.has(name) || o.signal?.aborted) return;
      // No console sample: the rest of the window passes, then the agent reads the file.
      await sleep(durationMs - (performance.now() - start), o.signal);
      const s = await readAgentSample(this.#lv, d, o.signal).catch(() => undefined);
      if (!s) return;
      o.onEvent?.({
        type: "note",
        level: "info",
        reason: "ResultsFromAgent",
        message: `VM ${name}: no result line on its console in ${
          Math.round(durationMs / 1000)
        } s; the latest line of its results file was read through the guest agent`,
        object: `domain/${name}`,
        at: performance.now(),
      });
      take(name, s, "agent");
    }));
    o.signal?.throwIfAborted();
    return out;
  }

  /**
   * Destroys every foundry VM labelled as virtwork's (of `runId` only, when given) with foundry's
   * destroy: forced off after its grace period, undefined with its NVRAM, and only the volumes
   * foundry created for it deleted. Nothing else is touched, whatever its name.
   */
  async cleanup(runId: string | undefined, o: BackendCallOptions = {}): Promise<BackendCleanup> {
    const labels: Record<string, string> = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
    if (runId !== undefined) labels[RUN_ID_LABEL] = runId;
    const found = (await listVms(this.#lv, { labels })).vms;
    const result: BackendCleanup = { deleted: {}, runIds: [], errors: [] };
    const count = (kind: string, n: number) => {
      result.deleted[kind] = (result.deleted[kind] ?? 0) + n;
    };
    for (const vm of found) {
      o.signal?.throwIfAborted();
      const id = vm.labels[RUN_ID_LABEL];
      try {
        const r = await destroyVm(this.#lv, vm.name, {
          timeoutSeconds: this.#config.destroyTimeoutSeconds,
        });
        count("domain", 1);
        count("volume", r.volumesDeleted.length);
        if (id !== undefined && !result.runIds.includes(id)) result.runIds.push(id);
      } catch (e) {
        if (e instanceof VmNotFoundError) continue;
        result.errors.push({ kind: "domain", name: vm.name, message: (e as Error).message });
      }
    }
    return result;
  }

  async close(): Promise<void> {
    await this.#lv.close();
  }
}

/** Waits `ms` (nothing when not positive), or until `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
