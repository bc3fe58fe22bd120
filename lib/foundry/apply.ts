/**
 * `foundry apply` and `foundry diff`: the desired spec of a VM (its file, templates merged) compared
 * with what foundry applied (the stored spec) and with the domain where the domain can differ
 * (vCPUs, memory and their maxima, autostart, domain type, pool), every difference classified
 * (`live`, `reboot`, `recreate`, `forbidden`: see plan_types.ts), then carried out with the least
 * disruption.
 *
 * The planner ({@linkcode planVm}) is pure. The executor ({@linkcode applyVm}) does the live
 * changes first (new data disks and NICs attached, NICs detached, vCPUs/memory/disk growth through
 * `resize`), then the definition (maxima, a redefined persistent XML for the other reboot changes),
 * autostart, and last the stored spec, which records exactly the changes that were made, also when
 * a step failed half-way ({@linkcode ApplyIncompleteError} says which were and which were not).
 *
 * Comparisons: vCPUs and memory against the persistent definition (a change waiting for the next
 * boot is not planned again), disks, NICs, cloud-init and the other fields against the stored spec;
 * `resources`, `domainType` and `storagePool` only when the file gives them (a VM keeps the headroom
 * and the type it was created with otherwise).
 *
 * @example
 * ```ts ignore
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * import { applyVm, planVm, readCurrentVm } from "./apply.ts";
 * const lv = await Libvirt.connect();
 * for (const vm of await loadVirtualMachines("vm.yaml")) {
 *   const current = await readCurrentVm(lv, vm.metadata.name);
 *   const plan = planVm(vm, current);
 *   console.log(plan.action, plan.changes.map((c) => `${c.path} ${c.class}`));
 *   await applyVm(lv, vm, plan, current, { config: DEFAULT_CONFIG });
 * }
 * await lv.close();
 * ```
 *
 * @module
 */
import { XMLBuilder } from "npm:fast-xml-parser@^5.12.1";
import { type LabelSelector, matchesSelector } from "../config/selector.ts";
import {
  type DomainRef,
  DomainState,
  DomainXmlFlags,
  type Libvirt,
  LibvirtError,
  ModificationImpact,
} from "../libvirt/mod.ts";
import {
  domainSetMemoryFlags,
  domainSetVcpusFlags,
  MemoryFlags,
  VcpuFlags,
} from "../libvirt/resize.ts";
import { writeDomainRecord } from "./domain_records.ts";
import type { VmPlan } from "./plan_types.ts";
import type { ChangeClass, SpecChange } from "./plan_types.ts";
import { type FoundryConfig, vmPoolFor } from "./config.ts";
import { buildDomainXml } from "./domain_xml.ts";
import {
  cloudInitSha256,
  parseStoredDomainMetadata,
  passwordHashSha256,
  storedMetadataXml,
  type StoredVm,
} from "./metadata.ts";
import { macOf, volumeNameData } from "./naming.ts";
import { mapChanges, nicChanges, sameValue, specChange } from "./plan_changes.ts";
import { StorageError } from "./pools.ts";
import { readGraphicsPassword } from "./spec_media.ts";
import { type DomainSizes, domainSizes, resizeVm } from "./resize.ts";
import { buildVolumeXml, BYTES_PER_GB } from "./storage_xml.ts";
import type { DataDisk, NetworkInterface, VirtualMachine } from "./types.ts";
import {
  type CreateOptions,
  createVm,
  destroyVm,
  lookupVm,
  VmNotFoundError,
  VmOperationError,
} from "./vm.ts";

export type { ChangeClass, PlanAction, SpecChange, VmPlan } from "./plan_types.ts";

/** The annotation `foundry adopt` gives a VM foundry did not create. */
export const ADOPTED_ANNOTATION = "foundry.cofront.xyz/adopted";

/** What a VM is now, as {@linkcode planVm} compares it. */
export interface CurrentVm {
  /** The domain. */
  domain: DomainRef;
  /** foundry's record: the stored spec, its fingerprints and volume record. */
  stored: StoredVm;
  /** Sizes of the running domain (the same as `config` when it is not running). */
  live: DomainSizes;
  /** Sizes of the persistent definition. */
  config: DomainSizes;
  /** Whether the domain runs (or is paused). */
  running: boolean;
  /** Whether it starts with the host. */
  autostart: boolean;
  /** The domain's UUID, lowercase with dashes. */
  uuid: string;
}

/** Options of {@linkcode planVm}. */
export interface PlanOptions {
  /** `--recreate`: a VM with recreate-class changes is destroyed and created again. */
  recreate?: boolean;
}

const REASON = {
  stopped: "the VM is not running: in effect when it starts",
  tcgVcpus: "not hot-plugged into a TCG (domain type qemu) VM, whose QEMU 7.2 can abort when a " +
    "vCPU is added (as foundry resize): in effect at the next boot",
  definition: "written into the domain definition: in effect at the next boot (foundry restart)",
  recordOnly: "recorded in the stored spec only",
  image: "the boot disk is made from its image when the VM is created",
  shrink: "shrinking a disk loses data",
  cloudInit: "cloud-init runs only at first boot",
  nicIdentity: "a NIC's address and MAC are its identity, set up by cloud-init at first boot",
  newNic: "attached now; the guest addresses it itself (cloud-init ran at first boot)",
  adopted: "foundry did not create this VM's disks: recreating it is refused",
  adoptedDefinition: "foundry patches an adopted VM's own definition only for NIC bridges, " +
    "vCPUs, memory and their maxima",
} as const;

/** Whether the stored spec says `foundry adopt` took the VM over. */
export function isAdopted(vm: VirtualMachine): boolean {
  return vm.metadata.annotations?.[ADOPTED_ANNOTATION] === "true";
}

/**
 * The plan for `desired` given what the VM is now (`undefined`: it does not exist, `create`).
 * Every difference becomes one {@linkcode SpecChange} with the class issue 15's table gives; an
 * adopted VM's recreate-class changes are `forbidden`. Pure.
 */
export function planVm(
  desired: VirtualMachine,
  current: Omit<CurrentVm, "domain" | "uuid"> | undefined,
  opts: PlanOptions = {},
): VmPlan {
  const name = desired.metadata.name;
  if (current === undefined) return { name, action: "create", changes: [] };
  const stored = current.stored.vm;
  const adopted = isAdopted(stored) || isAdopted(desired);
  const { live, config, running } = current;
  const d = desired.spec;
  const s = stored.spec;
  const out: SpecChange[] = [];

  mapChanges("metadata.labels", stored.metadata.labels, desired.metadata.labels, out);
  mapChanges(
    "metadata.annotations",
    stored.metadata.annotations,
    desired.metadata.annotations,
    out,
  );
  if ((desired.metadata.generation ?? 1) !== (stored.metadata.generation ?? 1)) {
    out.push(
      specChange(
        "metadata.generation",
        stored.metadata.generation,
        desired.metadata.generation,
        "live",
        REASON.recordOnly,
      ),
    );
  }

  // vCPUs and memory: against the persistent definition (and the stored spec).
  if (d.vcpus !== config.vcpus || d.vcpus !== s.vcpus) {
    const max = running ? Math.min(live.maxVcpus, config.maxVcpus) : config.maxVcpus;
    const cls: [ChangeClass, string?] = d.vcpus > max
      ? ["reboot", `more than the reserved maximum of ${max} vCPUs: ${REASON.definition}`]
      : !running
      ? ["live", REASON.stopped]
      : d.vcpus > live.vcpus && config.type === "qemu"
      ? ["reboot", REASON.tcgVcpus]
      : ["live"];
    const from = config.vcpus !== d.vcpus ? config.vcpus : s.vcpus;
    out.push(specChange("spec.vcpus", from, d.vcpus, cls[0], cls[1]));
  }
  const toMiB = Math.round(d.memoryGiB * 1024);
  if (toMiB !== config.memoryMiB || d.memoryGiB !== s.memoryGiB) {
    const max = running ? Math.min(live.maxMemoryMiB, config.maxMemoryMiB) : config.maxMemoryMiB;
    const cls: [ChangeClass, string?] = toMiB > max
      ? ["reboot", `more than the reserved maximum of ${max / 1024} GiB: ${REASON.definition}`]
      : running
      ? ["live"]
      : ["live", REASON.stopped];
    const from = toMiB !== config.memoryMiB ? config.memoryMiB / 1024 : s.memoryGiB;
    out.push(specChange("spec.memoryGiB", from, d.memoryGiB, cls[0], cls[1]));
  }
  const maxVcpus = d.resources?.maxVcpus;
  if (maxVcpus !== undefined && maxVcpus !== config.maxVcpus) {
    out.push(
      specChange("spec.resources.maxVcpus", config.maxVcpus, maxVcpus, "reboot", REASON.definition),
    );
  }
  const maxMemoryGiB = d.resources?.maxMemoryGiB;
  if (maxMemoryGiB !== undefined && Math.round(maxMemoryGiB * 1024) !== config.maxMemoryMiB) {
    out.push(
      specChange(
        "spec.resources.maxMemoryGiB",
        config.maxMemoryMiB / 1024,
        maxMemoryGiB,
        "reboot",
        REASON.definition,
      ),
    );
  }

  // The boot disk.
  for (const key of ["image", "imagePool", "empty", "volume"] as const) {
    if (!sameValue(s.bootDisk?.[key], d.bootDisk[key])) {
      out.push(
        specChange(
          `spec.bootDisk.${key}`,
          s.bootDisk?.[key],
          d.bootDisk[key],
          "recreate",
          REASON.image,
        ),
      );
    }
  }
  sizeChange("spec.bootDisk.sizeGB", s.bootDisk?.sizeGB, d.bootDisk.sizeGB, out);

  // Data disks, by device.
  const storedDisks = new Map((s.dataDisks ?? []).map((x) => [x.device, x]));
  const desiredDisks = new Map((d.dataDisks ?? []).map((x) => [x.device, x]));
  for (const [dev, want] of desiredDisks) {
    const had = storedDisks.get(dev);
    const path = `spec.dataDisks[${dev}]`;
    if (had === undefined) {
      out.push(
        specChange(
          path,
          undefined,
          want,
          "live",
          want.volume === undefined
            ? `a new volume ${volumeNameData(name, dev)}, attached${running ? " now" : ""}`
            : `volume ${want.volume} attached${running ? " now" : ""}`,
        ),
      );
      continue;
    }
    sizeChange(`${path}.sizeGB`, had.sizeGB, want.sizeGB, out);
    if (!sameValue(had.volume, want.volume)) {
      out.push(
        specChange(
          `${path}.volume`,
          had.volume,
          want.volume,
          "recreate",
          `replacing ${dev}'s disk loses its data`,
        ),
      );
    }
    if (!sameValue(had.serial, want.serial)) {
      out.push(specChange(`${path}.serial`, had.serial, want.serial, "reboot", REASON.definition));
    }
  }
  for (const [dev, had] of storedDisks) {
    if (!desiredDisks.has(dev)) {
      out.push(
        specChange(
          `spec.dataDisks[${dev}]`,
          had,
          undefined,
          "recreate",
          `removing ${dev} deletes its data`,
        ),
      );
    }
  }

  // Network interfaces, by MAC (derived from the address unless given).
  nicChanges(s.networkInterfaces ?? [], d.networkInterfaces, out, {
    bridge: ["reboot", REASON.definition],
    added: ["live", REASON.newNic],
    removed: ["live", "detached now"],
    cloudInit: REASON.cloudInit,
    identity: REASON.nicIdentity,
  });

  // Cloud-init: only at first boot.
  cloudInitChanges(current.stored, desired, out);

  for (const key of ["cpuMode", "cpu", "numa", "graphics", "installMedia"] as const) {
    if (!sameValue(s[key], d[key])) {
      out.push(specChange(`spec.${key}`, s[key], d[key], "reboot", REASON.definition));
    }
  }
  if (!sameValue(s.templateRef, d.templateRef)) {
    out.push(
      specChange("spec.templateRef", s.templateRef, d.templateRef, "live", REASON.recordOnly),
    );
  }
  const autostart = d.autostart ?? true;
  if (autostart !== current.autostart) {
    out.push(specChange("spec.autostart", current.autostart, autostart, "live"));
  }
  const pool = config.disks.get("vda")?.pool ?? s.storagePool;
  if (d.storagePool !== undefined && d.storagePool !== pool) {
    out.push(
      specChange(
        "spec.storagePool",
        pool,
        d.storagePool,
        "recreate",
        "a VM's disks stay in the pool they were made in",
      ),
    );
  }
  if (d.domainType !== undefined && d.domainType !== config.type) {
    out.push(
      specChange(
        "spec.domainType",
        config.type,
        d.domainType,
        "recreate",
        "the domain type is fixed when the domain is defined",
      ),
    );
  }

  if (adopted) {
    for (const c of out) {
      if (c.class === "recreate") {
        c.class = "forbidden";
        c.reason = `${c.reason}; ${REASON.adopted}`;
      } else if (c.class === "reboot" && !adoptedPatchable(c.path)) {
        c.class = "forbidden";
        c.reason = REASON.adoptedDefinition;
      }
    }
  }
  const action = out.length === 0
    ? "unchanged"
    : opts.recreate && out.some((c) => c.class === "recreate")
    ? "recreate"
    : "update";
  return { name, action, changes: out };
}

/** The reboot-class paths an adopted VM's own definition is patched for. */
function adoptedPatchable(path: string): boolean {
  return path === "spec.vcpus" || path === "spec.memoryGiB" || path.startsWith("spec.resources.") ||
    /^spec\.networkInterfaces\[[^\]]+\]\.bridge$/.test(path);
}

function sizeChange(path: string, from: number | undefined, to: number, out: SpecChange[]): void {
  if (from === undefined || from === to) return;
  out.push(
    to > from
      ? specChange(path, from, to, "live", "grown now (as foundry resize)")
      : specChange(path, from, to, "forbidden", REASON.shrink),
  );
}

/**
 * Cloud-init differences. With the stored `cloudInitSha256`, the seed the desired spec gives (with
 * the stored NICs, whose changes are classified on their own) is compared with it; without, the
 * stored `cloudInit` fields and the password fingerprint. The password hash never appears in a
 * change: only that it changed.
 */
function cloudInitChanges(stored: StoredVm, desired: VirtualMachine, out: SpecChange[]): void {
  const had = stored.vm.spec.cloudInit ?? {};
  const want = desired.spec.cloudInit ?? {};
  const hash = want.passwordHash;
  const passwordChanged = stored.passwordHashSha256 !==
    (hash === undefined ? undefined : passwordHashSha256(hash));
  if (stored.cloudInitSha256 !== undefined) {
    let seed: string | undefined;
    try {
      seed = cloudInitSha256({
        ...desired,
        spec: { ...desired.spec, networkInterfaces: stored.vm.spec.networkInterfaces ?? [] },
      });
    } catch {
      seed = undefined;
    }
    if (seed === stored.cloudInitSha256) return;
  }
  const before = out.length;
  for (const f of ["fqdn", "sshAuthorizedKeys", "sshPwauth", "userData"] as const) {
    if (!sameValue(had[f], want[f])) {
      out.push(specChange(`spec.cloudInit.${f}`, had[f], want[f], "recreate", REASON.cloudInit));
    }
  }
  if (passwordChanged) {
    out.push(
      specChange(
        "spec.cloudInit.passwordHash",
        "(set before)",
        hash === undefined ? undefined : "(changed)",
        "recreate",
        REASON.cloudInit,
      ),
    );
  }
  if (out.length === before && stored.cloudInitSha256 !== undefined) {
    out.push(
      specChange(
        "spec.cloudInit",
        undefined,
        undefined,
        "recreate",
        `the seed content differs from what was written; ${REASON.cloudInit}`,
      ),
    );
  }
}

/** A domain of the VM's name exists and foundry did not create or adopt it (see `adoptVm`). */
export class VmNotManagedError extends VmOperationError {
  /** The VM. */
  readonly vmName: string;
  /** Creates the error. */
  constructor(vmName: string) {
    super(
      `VM ${vmName} exists and foundry did not create it (no foundry metadata): adopt it first`,
    );
    this.name = "VmNotManagedError";
    this.vmName = vmName;
  }
}

/**
 * Reads what {@linkcode planVm} compares for VM `name`: only reads (lookup, XML live and
 * inactive, state, autostart). `undefined` when there is no such domain.
 *
 * @throws {VmNotManagedError} the domain exists but foundry did not create or adopt it
 */
export async function readCurrentVm(lv: Libvirt, name: string): Promise<CurrentVm | undefined> {
  let found: Awaited<ReturnType<typeof lookupVm>>;
  try {
    found = await lookupVm(lv, name);
  } catch (e) {
    if (e instanceof VmNotFoundError) return undefined;
    throw e;
  }
  if (found.stored === undefined) throw new VmNotManagedError(name);
  const state = (await lv.domainGetState(found.domain)).state;
  const running = state === DomainState.RUNNING || state === DomainState.PAUSED;
  const live = domainSizes(found.xml);
  const config = running
    ? domainSizes(await lv.domainGetXmlDesc(found.domain, DomainXmlFlags.INACTIVE))
    : live;
  const autostart = await lv.domainGetAutostart(found.domain);
  const uuid = /<uuid>([^<]+)<\/uuid>/.exec(found.xml)?.[1]?.trim().toLowerCase() ?? "";
  return { domain: found.domain, stored: found.stored, live, config, running, autostart, uuid };
}

/** Changes of a plan apply refuses: forbidden ones, and recreate ones without option `recreate`. */
export function refusedChanges(plan: VmPlan): SpecChange[] {
  return plan.changes.filter((c) =>
    c.class === "forbidden" || (c.class === "recreate" && plan.action !== "recreate")
  );
}

/**
 * What apply refused of VM `vmName`'s plan: each refused change and why, saying `recreate` (how
 * the caller asks for a recreate: option `recreate` by default) after each recreate change.
 */
export function applyRefusalText(
  vmName: string,
  refused: readonly SpecChange[],
  recreate = "needs option recreate",
): string {
  return `VM ${vmName}: ${
    refused.map((c) =>
      `${c.path} is ${
        c.class === "forbidden" ? "forbidden" : `a recreate change (${recreate})`
      }: ${c.reason}`
    ).join("; ")
  }; nothing was changed`;
}

/** apply refused a VM's plan before changing anything. */
export class ApplyRefusedError extends Error {
  /** The VM. */
  readonly vmName: string;
  /** The changes refused. */
  readonly refused: readonly SpecChange[];
  /** Creates the error; the message names each refused change and why. */
  constructor(vmName: string, refused: readonly SpecChange[]) {
    super(applyRefusalText(vmName, refused));
    this.name = "ApplyRefusedError";
    this.vmName = vmName;
    this.refused = refused;
  }
}

/** apply stopped half-way through a VM's changes; the stored spec records exactly `done`. */
export class ApplyIncompleteError extends Error {
  /** The VM. */
  readonly vmName: string;
  /** The changes made (and recorded in the stored spec). */
  readonly done: readonly SpecChange[];
  /** The changes not made. */
  readonly notDone: readonly SpecChange[];
  /** Creates the error. */
  constructor(
    vmName: string,
    done: readonly SpecChange[],
    notDone: readonly SpecChange[],
    options: ErrorOptions,
  ) {
    const cause = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(
      `VM ${vmName}: apply stopped: ${cause}; made: ${
        done.map((c) => c.path).join(", ") || "nothing"
      }; not made: ${notDone.map((c) => c.path).join(", ") || "nothing"}`,
      options,
    );
    this.name = "ApplyIncompleteError";
    this.vmName = vmName;
    this.done = done;
    this.notDone = notDone;
  }
}

/** Options of {@linkcode applyVm}. */
export interface ApplyOptions {
  /** Effective configuration (pools, domain type, destroy timeout). */
  config: FoundryConfig;
  /** Progress lines. */
  onStep?: (line: string) => void;
  /** Create's options for a missing or recreated VM (signal, step reports, no start). */
  create?: Omit<CreateOptions, "config">;
  /** Hot-plug vCPUs into TCG domains anyway (see `ResizeOptions.hotplugOnTcg`; tests). */
  hotplugOnTcg?: boolean;
  /** How long resize waits for the guest to see a change (default 30 s). */
  guestWaitMs?: number;
  /**
   * Called before each change is carried out (by its path); throwing stops the apply there, as a
   * failure of that change would. Tests use it to inject a half-way failure.
   */
  beforeChange?: (change: SpecChange) => void | Promise<void>;
}

/** What {@linkcode applyVm} did. */
export interface ApplyResult {
  /** The VM. */
  name: string;
  /** The plan's action. */
  action: VmPlan["action"];
  /** The changes made. */
  done: SpecChange[];
  /** Sentences for the user (a change waiting for the next boot, a guest that did not follow). */
  notes: string[];
}

const isPath = (prefix: string) => (c: SpecChange) => c.path.startsWith(prefix);

/**
 * Carries out `plan` for `desired` (see the module's description). `current` is what the plan was
 * made from ({@linkcode readCurrentVm}); `undefined` for `create`.
 *
 * @throws {ApplyRefusedError} forbidden changes, or recreate ones without option `recreate`: nothing made
 * @throws {ApplyIncompleteError} a step failed; its `cause` is the step's error
 */
export async function applyVm(
  lv: Libvirt,
  desired: VirtualMachine,
  plan: VmPlan,
  current: CurrentVm | undefined,
  opts: ApplyOptions,
): Promise<ApplyResult> {
  const name = desired.metadata.name;
  const onStep = opts.onStep ?? (() => {});
  const result: ApplyResult = { name, action: plan.action, done: [], notes: [] };
  if (plan.action === "unchanged") return result;
  if (plan.action === "create") {
    await createVm(lv, desired, { ...opts.create, config: opts.config });
    return result;
  }
  if (plan.action === "prune") {
    await destroyVm(lv, name, { timeoutSeconds: opts.config.destroyTimeoutSeconds });
    return result;
  }
  const refused = refusedChanges(plan);
  if (refused.length) throw new ApplyRefusedError(name, refused);
  if (plan.action === "recreate") {
    onStep(`destroying VM ${name} to create it again`);
    await destroyVm(lv, name, { timeoutSeconds: opts.config.destroyTimeoutSeconds });
    onStep(`creating VM ${name}`);
    await createVm(lv, desired, { ...opts.create, config: opts.config });
    result.done.push(...plan.changes);
    return result;
  }
  if (current === undefined) {
    throw new TypeError(`applyVm: an update of ${name} needs its current state`);
  }
  return await new Updater(lv, desired, plan, current, opts, result).run();
}

/** One VM's update: live changes, definition, autostart, then the stored spec. */
class Updater {
  readonly #working: VirtualMachine;
  readonly #volumes: StoredVm["volumes"];
  #volumesChanged = false;
  #pending: SpecChange[];

  constructor(
    readonly lv: Libvirt,
    readonly desired: VirtualMachine,
    readonly plan: VmPlan,
    readonly current: CurrentVm,
    readonly opts: ApplyOptions,
    readonly result: ApplyResult,
  ) {
    this.#working = structuredClone(current.stored.vm);
    this.#volumes = current.stored.volumes === undefined ? undefined : [...current.stored.volumes];
    this.#pending = [...plan.changes];
  }

  get #impact(): number {
    return ModificationImpact.CONFIG | (this.current.running ? ModificationImpact.LIVE : 0);
  }

  #say(line: string): void {
    this.opts.onStep?.(line);
  }

  /** Marks `c` made: its value goes into the working copy of the stored spec. */
  #made(c: SpecChange): void {
    setPath(this.#working, this.desired, c.path);
    this.result.done.push(c);
    this.#pending = this.#pending.filter((p) => p !== c);
  }

  async #step(c: SpecChange, fn: () => Promise<void>): Promise<void> {
    await this.opts.beforeChange?.(c);
    await fn();
    this.#made(c);
  }

  async run(): Promise<ApplyResult> {
    let failure: unknown;
    try {
      await this.#liveDevices();
      await this.#sizes();
      await this.#definition();
      for (const c of this.#pending.filter((c) => c.path === "spec.autostart")) {
        await this.#step(c, async () => {
          this.#say(`autostart ${c.to ? "on" : "off"}`);
          await this.lv.domainSetAutostart(this.current.domain, c.to === true);
        });
      }
      // What is left is recorded only (labels, annotations, templateRef, generation).
      for (const c of [...this.#pending]) {
        await this.opts.beforeChange?.(c);
        this.#made(c);
      }
    } catch (e) {
      failure = e;
    }
    try {
      await this.#record();
    } catch (e) {
      // Nothing of the record-only changes holds without the record.
      const recordOnly = this.result.done.filter((c) =>
        c.path.startsWith("metadata.") || c.path === "spec.templateRef"
      );
      this.result.done = this.result.done.filter((c) => !recordOnly.includes(c));
      this.#pending.push(...recordOnly);
      failure ??= e;
    }
    if (failure !== undefined) {
      throw new ApplyIncompleteError(this.desired.metadata.name, this.result.done, this.#pending, {
        cause: failure,
      });
    }
    return this.result;
  }

  /**
   * Attaches a device live and to the definition. A running q35 domain hot-plugs into a free PCIe
   * root port only, and libvirt reserves few spare ones: with none left ("No more available PCI
   * slots") the device goes into the definition alone (libvirt adds a port there), in effect at
   * the next boot, and a note says so.
   */
  async #attach(element: string, what: string): Promise<void> {
    try {
      await this.lv.domainAttachDevice(this.current.domain, element, this.#impact);
    } catch (e) {
      if (
        !this.current.running || !(e instanceof LibvirtError) ||
        !/no more available PCI slots/i.test(e.message)
      ) throw e;
      await this.lv.domainAttachDevice(this.current.domain, element, ModificationImpact.CONFIG);
      this.result.notes.push(
        `${what}: the running VM has no free PCIe slot to hot-plug into: attached to the ` +
          `definition, in effect at the next boot (foundry restart ${this.desired.metadata.name})`,
      );
    }
  }

  /** New data disks and NICs attached, removed NICs detached. */
  async #liveDevices(): Promise<void> {
    const { lv, current } = this;
    const domain = current.domain;
    const pool = current.config.disks.get("vda")?.pool ??
      vmPoolFor(this.desired, this.opts.config);
    // The devices as create would write them, built only when a device is added.
    let built: string | undefined;
    const xml = () =>
      built ??= buildDomainXml(this.desired, {
        domainType: current.config.type === "kvm" ? "kvm" : "qemu",
        pool,
        defaultImagePool: this.opts.config.imagesPool,
      });
    for (
      const c of this.#pending.filter((c) =>
        /^spec\.dataDisks\[[^\]]+\]$/.test(c.path) && c.from === undefined
      )
    ) {
      const disk = c.to as DataDisk;
      await this.#step(c, async () => {
        const element = deviceElement(xml(), "disk", `dev="${disk.device}"`);
        let made: Awaited<ReturnType<Libvirt["storageVolCreateXml"]>> | undefined;
        if (disk.volume === undefined) {
          const volName = volumeNameData(this.desired.metadata.name, disk.device);
          this.#say(`creating volume ${pool}/${volName} (${disk.sizeGB} GB)`);
          const p = await lv.storagePoolLookupByName(pool);
          try {
            made = await lv.storageVolCreateXml(
              p,
              buildVolumeXml({
                role: "data",
                name: volName,
                pool,
                capacityBytes: disk.sizeGB * BYTES_PER_GB,
                format: "qcow2",
                device: disk.device,
              }),
            );
          } catch (e) {
            throw new StorageError(
              e instanceof LibvirtError && e.isStorageVolExists()
                ? `Volume ${volName} already exists in pool ${pool}`
                : `Cannot create volume ${volName} in pool ${pool}: ${(e as Error).message}`,
              { cause: e },
            );
          }
        }
        this.#say(`attaching disk ${disk.device}${current.running ? " (live)" : ""}`);
        try {
          await this.#attach(element, `disk ${disk.device}`);
        } catch (e) {
          if (made !== undefined) await lv.storageVolDelete(made).catch(() => {});
          throw new VmOperationError(`Cannot attach disk ${disk.device}: ${(e as Error).message}`, {
            cause: e,
          });
        }
        if (made !== undefined && this.#volumes !== undefined) {
          this.#volumes.push({ role: "data", pool: made.pool, name: made.name, key: made.key });
          this.#volumesChanged = true;
        }
      });
    }
    for (
      const c of this.#pending.filter((c) =>
        /^spec\.networkInterfaces\[[^\]]+\]$/.test(c.path) && c.class === "live"
      )
    ) {
      if (c.from === undefined) {
        const nic = c.to as NetworkInterface;
        await this.#step(c, async () => {
          this.#say(
            `attaching NIC ${macOf(nic)} on bridge ${nic.bridge}${
              current.running ? " (live)" : ""
            }`,
          );
          await this.#attach(
            deviceElement(xml(), "interface", `address="${macOf(nic)}"`),
            `NIC ${macOf(nic)}`,
          )
            .catch((e) => {
              throw new VmOperationError(
                `Cannot attach NIC ${macOf(nic)}: ${(e as Error).message}`,
                { cause: e },
              );
            });
        });
        this.result.notes.push(`NIC ${macOf(nic)} attached: ${REASON.newNic}`);
      } else {
        const nic = c.from as NetworkInterface;
        await this.#step(c, async () => {
          this.#say(`detaching NIC ${macOf(nic)}${current.running ? " (live)" : ""}`);
          const element = new XMLBuilder({ ignoreAttributes: false }).build({
            interface: {
              "@_type": "bridge",
              mac: { "@_address": macOf(nic) },
              source: { "@_bridge": nic.bridge },
            },
          });
          await lv.domainDetachDevice(domain, element, this.#impact).catch(async (e) => {
            // Only in the definition (attached for the next boot): detached from there.
            if (
              current.running && e instanceof LibvirtError &&
              /no device (found|matching)/i.test(e.message)
            ) return await lv.domainDetachDevice(domain, element, ModificationImpact.CONFIG);
            throw e;
          }).catch((e) => {
            throw new VmOperationError(`Cannot detach NIC ${macOf(nic)}: ${(e as Error).message}`, {
              cause: e,
            });
          });
        });
      }
    }
  }

  /** vCPUs, memory, their maxima and disk growth (resize's rules). */
  async #sizes(): Promise<void> {
    const { lv, current } = this;
    const domain = current.domain;
    const name = this.desired.metadata.name;
    const resizeOpts = {
      onStep: (l: string) => this.#say(l),
      ...(this.opts.hotplugOnTcg ? { hotplugOnTcg: true } : {}),
      ...(this.opts.guestWaitMs !== undefined ? { guestWaitMs: this.opts.guestWaitMs } : {}),
    };
    const maxima = this.#pending.filter(isPath("spec.resources."));
    const raise = maxima.filter((c) => (c.to as number) > (c.from as number));
    const lower = maxima.filter((c) => !raise.includes(c));
    const setMax = (c: SpecChange) =>
      this.#step(c, async () => {
        this.#say(`${c.path} ${c.from} -> ${c.to} (next boot)`);
        if (c.path.endsWith("maxVcpus")) {
          await domainSetVcpusFlags(
            lv,
            domain,
            c.to as number,
            VcpuFlags.CONFIG | VcpuFlags.MAXIMUM,
          );
        } else {
          await domainSetMemoryFlags(
            lv,
            domain,
            Math.round((c.to as number) * 1024) * 1024,
            MemoryFlags.CONFIG | MemoryFlags.MAXIMUM,
          );
        }
      });
    for (const c of raise) await setMax(c);
    for (
      const c of this.#pending.filter((c) => c.path === "spec.vcpus" || c.path === "spec.memoryGiB")
    ) {
      await this.#step(c, async () => {
        const r = await resizeVm(
          lv,
          name,
          c.path === "spec.vcpus" ? { vcpus: c.to as number } : { memoryGiB: c.to as number },
          resizeOpts,
        );
        for (const x of r.changes) if (x.message) this.result.notes.push(x.message);
      });
      // resize raises a maximum the value passes: the stored spec says so, as resize's does.
      const res = this.#working.spec.resources ?? {};
      if (c.path === "spec.vcpus" && (c.to as number) > current.config.maxVcpus) {
        this.#working.spec.resources = { ...res, maxVcpus: c.to as number };
      }
      if (
        c.path === "spec.memoryGiB" &&
        Math.round((c.to as number) * 1024) > current.config.maxMemoryMiB
      ) {
        this.#working.spec.resources = { ...res, maxMemoryGiB: c.to as number };
      }
    }
    for (const c of lower) await setMax(c);
    for (const c of this.#pending.filter((c) => /sizeGB$/.test(c.path))) {
      const device = c.path === "spec.bootDisk.sizeGB"
        ? "vda"
        : /^spec\.dataDisks\[([^\]]+)\]/.exec(c.path)![1]!;
      await this.#step(c, async () => {
        const r = await resizeVm(
          lv,
          name,
          { disks: [{ device, sizeGB: c.to as number }] },
          resizeOpts,
        );
        for (const x of r.changes) if (x.message) this.result.notes.push(x.message);
      });
    }
  }

  /** The remaining reboot changes: a redefined (foundry's VM) or patched (adopted) definition. */
  async #definition(): Promise<void> {
    const changes = this.#pending.filter((c) => c.class === "reboot");
    if (changes.length === 0) return;
    const { lv, current } = this;
    for (const c of changes) await this.opts.beforeChange?.(c);
    const inactive = await lv.domainGetXmlDesc(current.domain, DomainXmlFlags.INACTIVE);
    let xml: string;
    if (isAdopted(current.stored.vm)) {
      xml = inactive;
      for (const c of changes) {
        const mac = /^spec\.networkInterfaces\[([^\]]+)\]\.bridge$/.exec(c.path)?.[1];
        if (mac === undefined) continue;
        xml = patchInterfaceBridge(xml, mac, c.to as string);
      }
    } else {
      const sizes = domainSizes(inactive);
      // The new spec with the headroom the definition has now (resize may have raised it).
      const spec = structuredClone(this.desired);
      spec.spec.resources = {
        maxVcpus: Math.max(sizes.maxVcpus, spec.spec.vcpus),
        maxMemoryGiB: Math.max(sizes.maxMemoryMiB, Math.round(spec.spec.memoryGiB * 1024)) / 1024,
        ...this.desired.spec.resources,
      };
      const pool = sizes.disks.get("vda")?.pool ?? vmPoolFor(this.desired, this.opts.config);
      // What create resolved and the spec does not hold: the console password (read again from
      // its file), existing disks' formats (as the definition has them), the image pool.
      const graphics = spec.spec.graphics;
      let graphicsPassword: string | undefined;
      if (graphics?.passwordSecret !== undefined) {
        const read = await readGraphicsPassword(graphics.passwordSecret, graphics.type);
        if ("problem" in read) {
          throw new VmOperationError(`spec.graphics.passwordSecret: ${read.problem}`);
        }
        graphicsPassword = read.password;
      }
      const formats: Record<string, string> = {};
      for (const m of inactive.matchAll(/<disk\b[\s\S]*?<\/disk>/g)) {
        const dev = /<target dev='([^']+)'/.exec(m[0])?.[1];
        const type = /<driver [^>]*type='([^']+)'/.exec(m[0])?.[1];
        if (dev !== undefined && type !== undefined) formats[dev] = type;
      }
      const built = buildDomainXml(spec, {
        domainType: sizes.type === "kvm" ? "kvm" : "qemu",
        pool,
        uuid: current.uuid,
        defaultImagePool: this.opts.config.imagesPool,
        existingDiskFormats: formats,
        ...(graphicsPassword !== undefined ? { graphicsPassword } : {}),
      });
      // The domain's own metadata (the spec, the volume record, the status) stays as it is; the
      // stored spec is rewritten last.
      const own = /<metadata>[\s\S]*?<\/metadata>/.exec(inactive)?.[0];
      xml = own === undefined ? built : built.replace(/<metadata>[\s\S]*?<\/metadata>/, () => own);
    }
    this.#say(
      `redefining VM ${this.desired.metadata.name} for ${
        changes.map((c) => c.path).join(", ")
      } (next boot)`,
    );
    await lv.domainDefineXml(xml).catch((e) => {
      throw new VmOperationError(`Cannot redefine the domain: ${(e as Error).message}`, {
        cause: e,
      });
    });
    for (const c of changes) this.#made(c);
    if (current.running) {
      this.result.notes.push(
        `${
          changes.map((c) => c.path).join(", ")
        }: in effect at the next boot (foundry restart ${this.desired.metadata.name})`,
      );
    }
  }

  /** Writes the stored spec (and the volume record when a disk was added) as made. */
  async #record(): Promise<void> {
    if (this.result.done.length === 0) return;
    const { lv, current } = this;
    if (this.#volumesChanged && this.#volumes !== undefined) {
      const text = new XMLBuilder({ ignoreAttributes: false }).build({
        volumes: {
          ...(current.stored.volumesDomainUuid === undefined
            ? {}
            : { "@_domainUuid": current.stored.volumesDomainUuid }),
          "#text": JSON.stringify(this.#volumes),
        },
      });
      await writeDomainRecord(lv, current.domain, "volumes", text, current.running);
    }
    await writeDomainRecord(
      lv,
      current.domain,
      "spec",
      storedMetadataXml(this.#working, current.stored.passwordHashSha256),
      current.running,
    );
  }
}

/** The first `<NAME ...>...</NAME>` element of `xml` that contains `marker`. */
function deviceElement(xml: string, element: string, marker: string): string {
  for (const m of xml.matchAll(new RegExp(`<${element}\\b[\\s\\S]*?</${element}>`, "g"))) {
    if (m[0].includes(marker)) return m[0];
  }
  throw new TypeError(`no <${element}> with ${marker} in the domain XML`);
}

/** `xml` with the `<source bridge>` of the interface whose MAC is `mac` set to `bridge`. */
export function patchInterfaceBridge(xml: string, mac: string, bridge: string): string {
  let found = false;
  const out = xml.replace(/<interface\b[\s\S]*?<\/interface>/g, (el) => {
    if (!new RegExp(`<mac address=['"]${mac}['"]`, "i").test(el)) return el;
    found = true;
    const esc = bridge.replaceAll("&", "&amp;").replaceAll("'", "&apos;").replaceAll('"', "&quot;")
      .replaceAll("<", "&lt;");
    return el.replace(/(<source\b[^>]*\bbridge=)(['"])[^'"]*\2/, `$1'${esc}'`);
  });
  if (!found) throw new VmOperationError(`the domain has no interface with MAC ${mac}`);
  return out;
}

/**
 * Sets the value at `path` (a {@linkcode SpecChange} path) in `target` to the one in `source`, or
 * removes it when `source` has none: how a change made reaches the stored spec.
 */
export function setPath(target: VirtualMachine, source: VirtualMachine, path: string): void {
  const meta = /^metadata\.(labels|annotations)\.(.+)$/.exec(path);
  if (meta) {
    const field = meta[1] as "labels" | "annotations";
    const key = meta[2]!;
    const value = source.metadata[field]?.[key];
    const map = { ...target.metadata[field] };
    if (value === undefined) delete map[key];
    else map[key] = value;
    if (Object.keys(map).length) target.metadata[field] = map;
    else delete target.metadata[field];
    return;
  }
  if (path === "metadata.generation") {
    if (source.metadata.generation === undefined) delete target.metadata.generation;
    else target.metadata.generation = source.metadata.generation;
    return;
  }
  const list = /^spec\.(dataDisks|networkInterfaces)\[([^\]]+)\](?:\.(.+))?$/.exec(path);
  if (list) {
    const field = list[1] as "dataDisks" | "networkInterfaces";
    const keyOf = (x: DataDisk | NetworkInterface) =>
      field === "dataDisks" ? (x as DataDisk).device : macOf(x as NetworkInterface);
    const src = (source.spec[field] ?? []) as (DataDisk | NetworkInterface)[];
    const dst = [...(target.spec[field] ?? [])] as (DataDisk | NetworkInterface)[];
    const want = src.find((x) => keyOf(x) === list[2]);
    const at = dst.findIndex((x) => keyOf(x) === list[2]);
    if (list[3] === undefined) {
      if (want === undefined && at >= 0) dst.splice(at, 1);
      else if (want !== undefined && at >= 0) dst[at] = structuredClone(want);
      else if (want !== undefined) dst.push(structuredClone(want));
    } else if (at >= 0 && want !== undefined) {
      const f = list[3] as keyof (DataDisk | NetworkInterface);
      dst[at] = { ...dst[at]!, [f]: structuredClone(want[f]) } as DataDisk & NetworkInterface;
    }
    (target.spec as unknown as Record<string, unknown>)[field] = dst;
    return;
  }
  const parts = path.split(".");
  if (parts[0] !== "spec" || parts.length < 2) return;
  let t = target.spec as unknown as Record<string, unknown>;
  let s: unknown = source.spec;
  for (const p of parts.slice(1, -1)) {
    s = (s as Record<string, unknown> | undefined)?.[p];
    if (typeof t[p] !== "object" || t[p] === null) t[p] = {};
    t = t[p] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1]!;
  const v = (s as Record<string, unknown> | undefined)?.[last];
  if (v === undefined) delete t[last];
  else t[last] = structuredClone(v);
}

/**
 * The foundry VMs a prune by `selector` removes: those whose stored labels match `selector` and
 * whose names are not in `keep`. Never a domain without foundry's metadata, and never a VM that
 * lacks a label the selector names positively (`k=v`, `k in (...)`, `k`); a selector without
 * such a requirement (`!k`, `k!=v` alone) is refused, since it would match VMs without the label.
 * Only reads.
 *
 * @throws {TypeError} the selector has no positive requirement
 */
export async function pruneCandidates(
  lv: Libvirt,
  selector: LabelSelector,
  keep: ReadonlySet<string>,
): Promise<string[]> {
  const positive = pruneRequirements(selector);
  const out: string[] = [];
  for (const d of await lv.listAllDomains()) {
    if (keep.has(d.name)) continue;
    const xml = await lv.domainGetXmlDesc(d).catch(() => undefined);
    const stored = xml === undefined ? undefined : parseStoredDomainMetadata(xml);
    if (stored === undefined) continue;
    const labels = stored.vm.metadata.labels ?? {};
    if (!positive.every((r) => Object.hasOwn(labels, r.key))) continue;
    if (matchesSelector(selector, labels)) out.push(d.name);
  }
  return out.sort();
}

/**
 * The requirements of a prune selector that need a label (`k=v`, `k in (...)`, `k`).
 *
 * @throws {TypeError} there is none: the selector would match VMs without the label
 */
export function pruneRequirements(selector: LabelSelector): LabelSelector["requirements"] {
  const positive = selector.requirements.filter((r) =>
    r.operator === "=" || r.operator === "in" || r.operator === "exists"
  );
  if (positive.length === 0) {
    throw new TypeError(
      "Pruning needs a selector that requires a label (k=v, 'k in (a,b)' or k): one that only " +
        "excludes would match VMs without the label",
    );
  }
  return positive;
}
