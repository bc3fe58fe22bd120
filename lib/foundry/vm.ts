/**
 * VM lifecycle on libvirt: create (with full rollback), destroy, start, stop, restart.
 * Every step goes through the libvirt RPC client; nothing shells out.
 * @module
 */
import {
  type DomainRef,
  DomainState,
  DomainXmlFlags,
  InterruptedError,
  type Libvirt,
  LibvirtError,
  type StoragePoolRef,
  type StorageVolRef,
  UndefineFlags,
} from "../libvirt/mod.ts";
import { writeDomainRecord } from "./domain_records.ts";
import { cidataIsoFromVm } from "./cloudinit.ts";
import { type FoundryConfig, imageLocationFor, vmPoolFor } from "./config.ts";
import { buildDomainXml } from "./domain_xml.ts";
import { domainDisks, type KeptDisk, planVolumeDeletion } from "./disks.ts";
import {
  type CreatedVolume,
  passwordHashSha256,
  storedMetadataXml,
  type StoredVm,
} from "./metadata.ts";
import { ensureDirPool, StorageError } from "./pools.ts";
import { type CreateFacts, HostSurvey } from "./host_resources.ts";
import { type HostFacts, type PreflightProblem, preflightProblems } from "./preflight.ts";
import { removeSnapshotsForDestroy } from "./snapshot.ts";
import {
  type OperationMarker,
  operationMarker,
  type OperationPhase,
  statusFromDomainState,
  type StoredStatus,
} from "./status.ts";
import { existingDiskFormats, readGraphicsPassword, resolveInstallMedia } from "./spec_media.ts";
import { buildVolumeXml, BYTES_PER_GB, volumePlan, type VolumeSpec } from "./storage_xml.ts";
import type { DomainType, VirtualMachine, VirtualMachineStatus } from "./types.ts";
import {
  lookupVm,
  readStoredStatus,
  STATUS_NAMESPACE,
  STATUS_PREFIX,
  storedStatusText,
  VmOperationError,
  waitForState,
} from "./lookup.ts";

export {
  lookupVm,
  readStoredStatus,
  STATUS_NAMESPACE,
  VmNotFoundError,
  VmOperationError,
  waitForState,
} from "./lookup.ts";

/** Create's runtime checks failed (name taken, image or bridge missing): nothing was created. */
export class RuntimeCheckError extends Error {
  /** Every problem found. */
  readonly problems: readonly PreflightProblem[];
  /** Creates the error; the message has one line per problem. */
  constructor(vmName: string, problems: readonly PreflightProblem[]) {
    super(problems.map((p) => `VM ${vmName} ${p.path}: ${p.message}`).join("\n"));
    this.name = "RuntimeCheckError";
    this.problems = problems;
  }
}

/** The steps of `create`, in order. */
export const CREATE_STEPS = [
  "validate",
  "storage",
  "cloudinit",
  "define",
  "autostart",
  "start",
] as const;
/** One step of `create`. */
export type CreateStep = typeof CREATE_STEPS[number];

/** Options of {@linkcode createVm}. */
export interface CreateOptions {
  /** Effective configuration (pools, paths, domain type). */
  config: FoundryConfig;
  /** `--pool`: overrides the spec's and the configured VM pool. */
  pool?: string;
  /** Reports each finished step with a short detail, for progress lines. */
  onStep?: (step: CreateStep, detail: string, ms: number) => void;
  /**
   * Called before each step; throwing aborts the create and rolls back. Tests use it to inject a
   * failure at every step; the CLI uses `signal` instead.
   */
  beforeStep?: (step: CreateStep) => void | Promise<void>;
  /** Aborts between steps (Ctrl-C); everything made so far is removed. */
  signal?: AbortSignal;
  /** Do not start the domain (define only). */
  noStart?: boolean;
  /**
   * The host as the caller read it for this VM (`createVms` reads it once per file, see
   * `HostSurvey`); read from the daemon when absent. The runtime checks run against it.
   */
  facts?: CreateFacts;
}

/** What `create` made. */
export interface CreateResult {
  /** The VM as stored. */
  vm: VirtualMachine;
  /** The defined domain. */
  domain: DomainRef;
  /** Domain type used (`kvm` or `qemu`). */
  domainType: DomainType;
  /** Volumes created, in pool order. */
  volumes: StorageVolRef[];
  /** Milliseconds per step. */
  timings: Partial<Record<CreateStep, number>>;
}

/**
 * How long a create's `Creating` marker holds at most: from the domain's definition to its start
 * takes seconds; a marker older than this was left by a create that died (killed between define
 * and start: a failing create removes the domain itself).
 */
const CREATE_MARKER_MS = 2 * 60_000;
/** How long a destroy's `Destroying` marker holds beyond its graceful-shutdown timeout. */
const DESTROY_MARKER_MS = 2 * 60_000;

/**
 * Collects what create's runtime checks need from the daemon: domain names, host bridges (interface
 * driver and virtual networks), foundry VMs (for address clashes), the image pool's volumes, and the
 * host's CPUs, memory and VM pool space (`poolFlag` is create's `--pool`).
 */
export async function hostFacts(
  lv: Libvirt,
  vm: VirtualMachine,
  config: FoundryConfig,
  poolFlag?: string,
): Promise<HostFacts> {
  return (await new HostSurvey(lv).factsFor(vm, config, poolFlag)).facts;
}

export { hostBridges } from "./host_resources.ts";

/**
 * Creates `vm`: runtime checks, pool, boot overlay and data disks, the cidata ISO uploaded through a
 * volume stream, the domain (spec in its metadata), autostart, start. On any failure or abort
 * everything this call made is removed, and nothing it did not make is touched: two concurrent
 * creates of one name leave the winner's VM intact.
 *
 * @throws {RuntimeCheckError} runtime checks failed (name taken, image or bridge missing)
 * @throws {StorageError} a pool or volume could not be made
 * @throws {VmOperationError} define, autostart or start failed
 */
export async function createVm(
  lv: Libvirt,
  vm: VirtualMachine,
  opts: CreateOptions,
): Promise<CreateResult> {
  const undo: (() => Promise<void>)[] = [];
  /** What a call sent before an interrupt may have made: the daemon did not say in time. */
  const mayBeLeft: string[] = [];
  const timings: Partial<Record<CreateStep, number>> = {};
  const volumes: StorageVolRef[] = [];
  const name = vm.metadata.name;
  let t = performance.now();
  const step = async (s: CreateStep) => {
    opts.signal?.throwIfAborted();
    // The connection's own interrupt (the CLI's Ctrl-C) stops the create as well.
    lv.signal?.throwIfAborted();
    await opts.beforeStep?.(s);
    t = performance.now();
  };
  const done = (s: CreateStep, detail: string) => {
    const ms = performance.now() - t;
    timings[s] = ms;
    opts.onStep?.(s, detail, ms);
  };
  try {
    await step("validate");
    const checked = opts.facts ??
      await new HostSurvey(lv).factsFor(vm, opts.config, opts.pool);
    const problems = preflightProblems(vm, checked.facts);
    // Read here, not kept from the checks: the password lives only as long as this create.
    let graphicsPassword: string | undefined;
    const graphics = vm.spec.graphics;
    if (graphics?.passwordSecret !== undefined && problems.length === 0) {
      const read = await readGraphicsPassword(graphics.passwordSecret, graphics.type);
      if ("problem" in read) {
        problems.push({ path: "spec.graphics.passwordSecret", message: read.problem });
      } else graphicsPassword = read.password;
    }
    if (problems.length) {
      throw new RuntimeCheckError(name, problems);
    }
    const domainType = checked.domainType;
    done("validate", `runtime checks passed (domain type ${domainType})`);

    await step("storage");
    // The ISO is found and checked (ISO 9660) before anything is made; it is never the VM's.
    const [installMedia, diskFormats] = await Promise.all([
      resolveInstallMedia(lv, vm, opts.config),
      existingDiskFormats(lv, vm),
    ]);
    const poolName = vmPoolFor(vm, opts.config, opts.pool);
    // The pool and the base image are independent: both are looked up at once. Both are
    // awaited before a failure is thrown, so nothing is still being made during a rollback.
    const [pool, backing] = await allOrFirstFailure([
      poolName === opts.config.vmsPool
        ? ensureDirPool(lv, poolName, opts.config.vmsPath)
        : lv.storagePoolLookupByName(poolName).catch((e) => {
          throw new StorageError(
            `Storage pool ${poolName} does not exist: ${(e as Error).message}`,
            { cause: e },
          );
        }),
      backingStoreOf(lv, vm, opts.config, checked.imageVolume, undo, opts.signal),
    ]);
    const iso = cidataIsoFromVm(vm);
    // Existing disks (`volume`) are used as they are: create neither makes nor records them.
    const existingData = new Set(
      (vm.spec.dataDisks ?? []).filter((d) => d.volume !== undefined).map((d) => d.device),
    );
    const plan = volumePlan(vm, poolName, iso.length).filter((v) =>
      !(v.role === "boot" && vm.spec.bootDisk.volume !== undefined) &&
      !(v.role === "data" && existingData.has(v.device))
    );
    const isoSpec = plan.find((v) => v.role === "cloudinit")!;
    // The small cidata volume goes first, alone: it claims the name. Of two creates of one name
    // that both passed the checks, the one libvirt gives it goes on and the other stops having made
    // nothing; were all volumes created at once, each could get some and both fail.
    const [isoVol] = await createVolumes(
      lv,
      pool,
      [{ spec: isoSpec, backing: undefined }],
      undo,
      mayBeLeft,
    );
    if (!isoVol) throw new StorageError(`Cannot create volume ${isoSpec.name}`);
    // The disks are created together: libvirtd builds each (qemu-img for qcow2) in its own worker.
    volumes.push(
      ...await createVolumes(
        lv,
        pool,
        plan.filter((v) => v.role !== "cloudinit").map((spec) => ({
          spec,
          backing: spec.overlay ? backing : undefined,
        })),
        undo,
        mayBeLeft,
      ),
    );
    const gb = (vm.spec.dataDisks ?? []).filter((d) => d.volume === undefined)
      .reduce((n, d) => n + d.sizeGB, 0);
    const boot = vm.spec.bootDisk.volume !== undefined
      ? `existing boot disk ${vm.spec.bootDisk.volume}`
      : `${vm.spec.bootDisk.sizeGB} GB boot${vm.spec.bootDisk.empty === true ? " (empty)" : ""}`;
    done("storage", `${boot}${gb ? ` + ${gb} GB data` : ""} in pool ${poolName}`);

    await step("cloudinit");
    volumes.push(isoVol);
    try {
      await lv.storageVolUpload(isoVol, once(iso), { length: iso.length });
    } catch (e) {
      throw new StorageError(`Cannot upload the cloud-init ISO: ${(e as Error).message}`, {
        cause: e,
      });
    }
    done("cloudinit", `cidata ISO of ${iso.length} bytes uploaded`);

    await step("define");
    const uuid = crypto.randomUUID();
    // The record of what this run created is what destroy will delete, and nothing else.
    const created: CreatedVolume[] = volumes.map((v) => ({
      role: plan.find((p) => p.name === v.name)?.role ?? "data",
      pool: v.pool,
      name: v.name,
      key: v.key,
    }));
    // Default resize headroom stops at what the host has (when the survey learnt it).
    const hostRes = checked.facts.host;
    const host = {
      ...(hostRes?.cpus ? { cpus: hostRes.cpus } : {}),
      ...(hostRes?.memoryBytes ? { memoryMiB: Math.floor(hostRes.memoryBytes / 2 ** 20) } : {}),
    };
    // Defined as `Creating`: another process's get/list says so until the status below. The
    // metadata element carries the marker for list (one call per domain), the status record for get.
    const creating = operationMarker("Creating", new Date(), CREATE_MARKER_MS);
    const xml = withStatusRecord(
      buildDomainXml(vm, {
        domainType,
        pool: poolName,
        uuid,
        volumes: created,
        host,
        operation: creating,
        ...(graphicsPassword !== undefined ? { graphicsPassword } : {}),
        ...(installMedia !== undefined ? { installMedia } : {}),
        ...(Object.keys(diskFormats).length ? { existingDiskFormats: diskFormats } : {}),
        defaultImagePool: opts.config.imagesPool,
      }),
      {
        phase: "Creating",
        observedGeneration: vm.metadata.generation ?? 1,
        operation: creating,
      },
    );
    let domain: DomainRef;
    try {
      // A fresh UUID makes libvirt refuse (not overwrite) a domain of the same name defined by a
      // concurrent create after our checks.
      domain = await lv.domainDefineXml(xml);
    } catch (e) {
      if (outcomeUnknown(e)) {
        // Only a domain with our fresh UUID is ours; a same-name one is another create's. Checked
        // last: it was never started, so its volumes can go first (a hung daemon then hangs the
        // rollback on a delete, not on this lookup).
        undo.unshift(async () => {
          const ours = await lv.domainLookupByUuid(uuid).catch(() => undefined);
          if (ours === undefined) {
            mayBeLeft.push(`domain ${name}`);
            return;
          }
          await lv.domainUndefine(
            ours,
            UndefineFlags.NVRAM | UndefineFlags.MANAGED_SAVE | UndefineFlags.SNAPSHOTS_METADATA,
          );
        });
      }
      throw new VmOperationError(`Cannot define domain ${name}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    undo.push(() =>
      lv.domainUndefine(
        domain,
        UndefineFlags.NVRAM | UndefineFlags.MANAGED_SAVE | UndefineFlags.SNAPSHOTS_METADATA,
      )
    );
    done("define", `domain ${name} defined (${domainType}, q35, UEFI)`);

    await step("autostart");
    const autostart = vm.spec.autostart ?? true;
    await lv.domainSetAutostart(domain, autostart).catch((e) => {
      throw new VmOperationError(`Cannot set autostart: ${(e as Error).message}`, { cause: e });
    });
    done("autostart", autostart ? "autostart on" : "autostart off");

    await step("start");
    if (!opts.noStart) {
      try {
        domain = await lv.domainCreate(domain);
      } catch (e) {
        if (outcomeUnknown(e)) {
          // It may be running: stop it before the undefine, which would leave it running.
          const defined = domain;
          undo.push(async () => {
            await lv.domainDestroy(defined).catch(() => {});
          });
        }
        throw new VmOperationError(`Cannot start domain ${name}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      undo.push(async () => {
        await lv.domainDestroy(domain).catch(() => {});
      });
    }
    const state = opts.noStart ? DomainState.SHUTOFF : DomainState.RUNNING;
    // Both records lose the create's marker in one round trip.
    await Promise.all([
      writeStatus(lv, domain, vm, state),
      writeSpecRecord(lv, domain, vm, undefined, state === DomainState.RUNNING),
    ]);
    done("start", opts.noStart ? "not started, as asked" : "VM started");
    return { vm, domain, domainType, volumes, timings };
  } catch (err) {
    const leftovers = await rollback(undo);
    // An interrupt ends the create whatever call it cut short: report it as the interrupt.
    const signal = opts.signal?.aborted ? opts.signal : lv.signal?.aborted ? lv.signal : undefined;
    let out = err;
    if (signal && !(err instanceof InterruptedError)) {
      const why = InterruptedError.from(signal.reason);
      out = new InterruptedError(`${why.message}: ${(err as Error).message}`, {
        cause: err,
        ...(why.signalName !== undefined ? { signalName: why.signalName } : {}),
      });
    }
    if (out instanceof Error) {
      if (leftovers.length) out.message += `; cleanup also failed: ${leftovers.join("; ")}`;
      if (mayBeLeft.length) out.message += `; may be left: ${mayBeLeft.join(", ")}`;
    }
    throw out;
  }
}

/** Whether `e` says a mutating call was cut short by an interrupt with its outcome unknown. */
function outcomeUnknown(e: unknown): boolean {
  return e instanceof InterruptedError && e.outcomeUnknown;
}

/** Like `Promise.all`, but throws the first failure only once every promise has settled. */
async function allOrFirstFailure<A, B>(ps: [Promise<A>, Promise<B>]): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled(ps);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return [a.value, b.value];
}

async function rollback(undo: (() => Promise<void>)[]): Promise<string[]> {
  const failures: string[] = [];
  for (const fn of undo.reverse()) {
    try {
      await fn();
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  return failures;
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

type Backing = { path: string; format: "qcow2" | "raw" };

/**
 * Creates the volumes at once. Each one made gets its undo entry, in `specs` order, whether or not
 * another failed; the first failure (in `specs` order) is thrown once all have answered.
 */
async function createVolumes(
  lv: Libvirt,
  pool: StoragePoolRef,
  specs: readonly { spec: VolumeSpec; backing: Backing | undefined }[],
  undo: (() => Promise<void>)[],
  mayBeLeft: string[],
): Promise<StorageVolRef[]> {
  const settled = await Promise.allSettled(
    specs.map(({ spec, backing }) => lv.storageVolCreateXml(pool, buildVolumeXml(spec, backing))),
  );
  const made: StorageVolRef[] = [];
  let failure: StorageError | undefined;
  settled.forEach((r, k) => {
    const spec = specs[k]!.spec;
    if (r.status === "fulfilled") {
      const vol = r.value;
      made.push(vol);
      undo.push(() => lv.storageVolDelete(vol));
      return;
    }
    const e = r.reason;
    // Interrupted before the daemon said: the volume may be ours, or a racing create's.
    if (outcomeUnknown(e)) mayBeLeft.push(`${spec.pool}/${spec.name}`);
    const exists = e instanceof LibvirtError && e.isStorageVolExists();
    failure ??= new StorageError(
      exists
        ? `Volume ${spec.name} already exists in pool ${spec.pool} (another VM or a create in progress)`
        : `Cannot create volume ${spec.name} in pool ${spec.pool}: ${(e as Error).message}`,
      { cause: e },
    );
  });
  if (failure) throw failure;
  return made;
}

/**
 * The base image of `vm`'s boot overlay. A volume reference is looked up in its pool. A file path
 * that is a volume of a pool is that volume; any other file is copied into the image pool first
 * (`imageFromFile`: reused when an image of its name has the same SHA-256, refused when it differs),
 * so the overlay never rests on a file that could change under the VM. A copy this create made is
 * removed again by its rollback unless another disk uses it by then.
 */
async function backingStoreOf(
  lv: Libvirt,
  vm: VirtualMachine,
  config: FoundryConfig,
  known: StorageVolRef | undefined,
  undo: (() => Promise<void>)[],
  signal: AbortSignal | undefined,
): Promise<Backing | undefined> {
  const loc = imageLocationFor(vm, config);
  if (!loc || vm.spec.bootDisk.empty === true || vm.spec.bootDisk.volume !== undefined) {
    return undefined;
  }
  try {
    const vol = known ??
      (loc.kind === "volume"
        ? await lv.storageVolLookupByName(await lv.storagePoolLookupByName(loc.pool), loc.volume)
        : await lv.storageVolLookupByPath(loc.path).catch(() => undefined) ??
          await importedCopy(lv, loc.path, config, undo, signal));
    const [xml, info, path] = await Promise.all([
      lv.storageVolGetXmlDesc(vol),
      lv.storageVolGetInfo(vol),
      lv.storageVolGetPath(vol),
    ]);
    const format = /<format\s+type=['"](qcow2|raw)['"]/.exec(xml)?.[1] as
      | "qcow2"
      | "raw"
      | undefined;
    if (!format) throw new Error("the image is neither qcow2 nor raw");
    if (info.capacity > vm.spec.bootDisk.sizeGB * BYTES_PER_GB) {
      throw new Error(
        `the image's virtual size (${info.capacity} bytes) exceeds bootDisk.sizeGB ${vm.spec.bootDisk.sizeGB}`,
      );
    }
    return { path, format };
  } catch (e) {
    throw new StorageError(`Base image ${vm.spec.bootDisk.image}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** The image pool's copy of the boot image file `path` (see `imageFromFile` in images.ts). */
async function importedCopy(
  lv: Libvirt,
  path: string,
  config: FoundryConfig,
  undo: (() => Promise<void>)[],
  signal: AbortSignal | undefined,
): Promise<StorageVolRef> {
  const { deleteImage, imageFromFile } = await import("./images.ts");
  await ensureDirPool(lv, config.imagesPool, config.imagesPath);
  const got = await imageFromFile(lv, config.imagesPool, path, signal ? { signal } : {});
  if (got.imported) {
    const name = got.volume.name;
    undo.push(async () => {
      try {
        await deleteImage(lv, config.imagesPool, name);
      } catch (e) {
        // Another create's overlay rests on it by now: it stays, as theirs.
        if (!(e instanceof StorageError && / is in use by /.test(e.message))) throw e;
      }
    });
  }
  return got.volume;
}

/** `xml` (a domain definition) with the status record `status` in its `<metadata>`. */
function withStatusRecord(xml: string, status: StoredStatus): string {
  const at = xml.indexOf("</metadata>");
  if (at < 0) throw new TypeError("The domain XML has no <metadata> element");
  const text = storedStatusText(status).replace(
    "<status>",
    `<${STATUS_PREFIX}:status xmlns:${STATUS_PREFIX}="${STATUS_NAMESPACE}">`,
  ).replace(/<\/status>$/, `</${STATUS_PREFIX}:status>`);
  return xml.slice(0, at) + text + xml.slice(at);
}

/**
 * Rewrites the VM's metadata element (its stored spec) with `operation` marked, or without a
 * marker; `vm` is the whole spec (its password hash only gives the fingerprint) or a stored one
 * with `passwordFingerprint`.
 */
async function writeSpecRecord(
  lv: Libvirt,
  domain: DomainRef,
  vm: VirtualMachine,
  operation: OperationMarker | undefined,
  live: boolean,
  passwordFingerprint?: string,
): Promise<void> {
  const hash = vm.spec.cloudInit?.passwordHash;
  const fingerprint = hash === undefined ? passwordFingerprint : passwordHashSha256(hash);
  await writeDomainRecord(lv, domain, "spec", storedMetadataXml(vm, fingerprint, operation), live);
}

/** Writes the status record `status` into the domain's metadata (and the live domain's). */
async function writeStatusRecord(
  lv: Libvirt,
  domain: DomainRef,
  status: StoredStatus,
  live: boolean,
): Promise<void> {
  await writeDomainRecord(lv, domain, "status", storedStatusText(status), live);
}

/**
 * Records the VM's status in its metadata (own namespace), so `get` keeps transition times. An
 * operation marker in `previous` is dropped: what is written is the domain's own phase.
 */
async function writeStatus(
  lv: Libvirt,
  domain: DomainRef,
  vm: VirtualMachine,
  state: number,
  previous?: StoredStatus,
): Promise<VirtualMachineStatus> {
  const { operation: _, ...before } = previous ?? {};
  const status = statusFromDomainState(state, vm.metadata.generation ?? 1, new Date(), before);
  await writeStatusRecord(lv, domain, status, state === DomainState.RUNNING);
  return status;
}

/**
 * Marks a destroy in progress in the status record and on the metadata element (see
 * `OperationMarker` in status.ts); returns the status record as it was, to put back if the destroy
 * stops before the undefine.
 */
async function markOperation(
  lv: Libvirt,
  domain: DomainRef,
  stored: StoredVm,
  phase: OperationPhase,
  active: boolean,
  ttlMs: number,
): Promise<StoredStatus | undefined> {
  const previous = await readStoredStatus(lv, domain);
  const { operation: _, ...before } = previous ?? {};
  const marker = operationMarker(phase, new Date(), ttlMs);
  await Promise.all([
    writeStatusRecord(lv, domain, { ...before, phase, operation: marker }, active),
    writeSpecMarker(lv, domain, stored, marker, active),
  ]);
  return previous;
}

/**
 * Rewrites a stored spec's metadata element with `operation` marked (or no marker), keeping its
 * document, password fingerprint and recorded hashes as they are.
 */
async function writeSpecMarker(
  lv: Libvirt,
  domain: DomainRef,
  stored: StoredVm,
  operation: OperationMarker | undefined,
  live: boolean,
): Promise<void> {
  await writeDomainRecord(
    lv,
    domain,
    "spec",
    storedMetadataXml(stored.vm, stored.passwordHashSha256, operation, stored),
    live,
  );
}

/** The steps of `destroy` before which a failure can be injected, in order. */
export const DESTROY_STEPS = ["shutdown", "forceOff", "undefine", "delete"] as const;
/** One step of `destroy`; `delete` comes once per volume. */
export type DestroyStep = typeof DESTROY_STEPS[number];

/** Options of {@linkcode destroyVm}. */
export interface DestroyOptions {
  /** Seconds to wait for a graceful shutdown before forcing the VM off (design: 5). */
  timeoutSeconds: number;
  /** Also destroy a domain foundry did not create (its disks are then left alone). */
  force?: boolean;
  /**
   * Progress: `shutdown` when the guest was asked to shut down and the grace period of
   * `timeoutSeconds` begins, then `stopped`, `undefined` and `storage` as each is done.
   */
  onStep?: (step: "shutdown" | "stopped" | "undefined" | "storage", detail: string) => void;
  /**
   * Called before each step (`delete` once per volume, with `pool/name` as detail); throwing stops
   * the destroy there, as a failure of that step would. Tests use it to inject failures.
   */
  beforeStep?: (step: DestroyStep, detail?: string) => void | Promise<void>;
}

/** What `destroy` did. */
export interface DestroyResult {
  /** Whether the guest shut down by itself (true as well when it was already off). */
  graceful: boolean;
  /** The volumes deleted, `pool/name`. */
  volumesDeleted: string[];
  /** Every disk of the VM that was not deleted, and recorded volumes no longer attached to it. */
  disksKept: KeptDisk[];
}

/**
 * `destroy` stopped half-way. The VM is in a consistent state, which the message and the fields
 * name: unchanged, stopped but still defined, or undefined with some of its volumes left.
 */
export class DestroyIncompleteError extends Error {
  /** The VM's name. */
  readonly vmName: string;
  /** Whether the domain was undefined. */
  readonly domainUndefined: boolean;
  /** The volumes deleted before the failure, `pool/name`. */
  readonly volumesDeleted: readonly string[];
  /** The volumes destroy meant to delete and did not, `pool/name`. */
  readonly volumesLeft: readonly string[];
  /** Creates the error. */
  constructor(
    message: string,
    fields: {
      vmName: string;
      domainUndefined: boolean;
      volumesDeleted: readonly string[];
      volumesLeft: readonly string[];
    },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DestroyIncompleteError";
    this.vmName = fields.vmName;
    this.domainUndefined = fields.domainUndefined;
    this.volumesDeleted = fields.volumesDeleted;
    this.volumesLeft = fields.volumesLeft;
  }
}

/**
 * Destroys a foundry VM: graceful shutdown, forced off after the timeout, undefine with NVRAM, then
 * delete the volumes foundry created for it, and nothing else.
 *
 * Which volumes: those recorded in the domain's metadata at create time ({@linkcode CreatedVolume}),
 * each only while it is still the recorded volume (same key), still attached to this VM, and used by
 * no other domain (by pool and name, by path, or as a running domain's backing file). A VM made by a
 * foundry that kept no record falls back to the naming convention within one pool: `{name}_boot` at
 * `vda`, `{name}_cloudinit` at `sda` and `{name}_data-{dev}` at a data device of the stored spec, all
 * in the pool of that boot disk; nothing else is ever deleted. Every other disk is left alone and
 * named in {@linkcode DestroyResult.disksKept}. What is deleted is decided before anything changes.
 *
 * @throws {VmOperationError} no such VM, or not foundry's without `force`
 * @throws {DestroyIncompleteError} a step failed; the message says what state the VM is left in
 */
export async function destroyVm(
  lv: Libvirt,
  name: string,
  opts: DestroyOptions,
): Promise<DestroyResult> {
  const found = await lookupVm(lv, name);
  const { domain, stored } = found;
  let xml = found.xml;
  if (!stored && !opts.force) {
    throw new VmOperationError(
      `VM ${name} was not created by foundry (no foundry metadata)`,
      { hint: { option: "force", effect: "remove the domain anyway" } },
    );
  }
  // Another process's get/list reports `Destroying` from here; put back if the destroy stops with
  // the domain still defined. Best effort: a record that cannot be written does not stop a destroy.
  let unmark = async () => {};
  if (stored) {
    const active = (await lv.domainGetState(domain)).state !== DomainState.SHUTOFF;
    const marked = await markOperation(
      lv,
      domain,
      stored,
      "Destroying",
      active,
      opts.timeoutSeconds * 1000 + DESTROY_MARKER_MS,
    ).then((previous) => ({ previous }), () => undefined);
    if (marked && found.vm) {
      const vm = found.vm;
      unmark = async () => {
        const now = (await lv.domainGetState(domain)).state;
        await Promise.all([
          writeStatus(lv, domain, vm, now, marked.previous),
          writeSpecMarker(lv, domain, stored, undefined, now === DomainState.RUNNING),
        ]);
      };
    }
  }
  if (stored) {
    // Snapshots first (issue 14): merged back and their overlays and memory files removed, so the
    // disks are the VM's own volumes again and the rules below apply to them unchanged. Another
    // domain's disks are never touched: only a foundry VM's snapshots are merged.
    const removed: string[] = [];
    try {
      await removeSnapshotsForDestroy(lv, domain, removed);
    } catch (e) {
      await unmark().catch(() => {});
      throw new DestroyIncompleteError(
        `Cannot remove the snapshots of VM ${name}: ${(e as Error).message}; VM ${name} is ` +
          `still defined` + (removed.length ? `; snapshots removed: ${removed.join(", ")}` : ""),
        { vmName: name, domainUndefined: false, volumesDeleted: [], volumesLeft: [] },
        { cause: e },
      );
    }
    if (removed.length) xml = await lv.domainGetXmlDesc(domain);
  }
  const state0 = (await lv.domainGetState(domain)).state;
  const configXml = state0 === DomainState.SHUTOFF
    ? xml
    : await lv.domainGetXmlDesc(domain, DomainXmlFlags.INACTIVE);
  const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1]?.trim().toLowerCase();
  const plan = await planVolumeDeletion(lv, domain, uuid, stored, [
    ...domainDisks(xml),
    ...domainDisks(configXml),
  ]);

  let graceful = true;
  let shutdownRequested = false;
  try {
    if (state0 !== DomainState.SHUTOFF) {
      await opts.beforeStep?.("shutdown");
      shutdownRequested = true;
      try {
        await lv.domainShutdown(domain);
      } catch { /* a paused or crashed guest cannot shut down: forced below */ }
      opts.onStep?.("shutdown", `waiting up to ${opts.timeoutSeconds} s for a graceful shutdown`);
      const off = await waitForState(lv, domain, [DomainState.SHUTOFF], opts.timeoutSeconds * 1000);
      if (!off) {
        graceful = false;
        await opts.beforeStep?.("forceOff");
        try {
          await lv.domainDestroy(domain);
        } catch (e) {
          if ((await lv.domainGetState(domain)).state !== DomainState.SHUTOFF) throw e;
        }
      }
      opts.onStep?.(
        "stopped",
        graceful ? "VM shut down" : `VM forced off after ${opts.timeoutSeconds} s`,
      );
    }
    await opts.beforeStep?.("undefine");
    await lv.domainUndefine(
      domain,
      UndefineFlags.NVRAM | UndefineFlags.MANAGED_SAVE | UndefineFlags.SNAPSHOTS_METADATA,
    );
  } catch (e) {
    await unmark().catch(() => {});
    const now = await lv.domainGetState(domain).then((s) => s.state, () => undefined);
    const where = now === state0 && !shutdownRequested
      ? `VM ${name} is unchanged`
      : now === DomainState.SHUTOFF
      ? `VM ${name} is stopped but still defined; no volume deleted`
      : `VM ${name} is ${stateWord(now)} and still defined; no volume deleted`;
    throw new DestroyIncompleteError(
      `Cannot destroy VM ${name}: ${(e as Error).message}; ${where}`,
      { vmName: name, domainUndefined: false, volumesDeleted: [], volumesLeft: [] },
      { cause: e },
    );
  }
  opts.onStep?.("undefined", "domain undefined, NVRAM removed");

  const deleted: string[] = [];
  const left: string[] = [];
  const failures: string[] = [];
  for (const v of plan.delete) {
    const id = `${v.pool}/${v.name}`;
    try {
      await opts.beforeStep?.("delete", id);
      await lv.storageVolDelete(v);
      deleted.push(id);
    } catch (e) {
      if (e instanceof LibvirtError && e.isNoStorageVol()) continue;
      left.push(id);
      failures.push(`${id}: ${(e as Error).message}`);
    }
  }
  if (left.length) {
    throw new DestroyIncompleteError(
      `Cannot delete every volume of VM ${name}: ${failures.join("; ")}; domain undefined; ` +
        `volumes left: ${left.join(", ")}` +
        (deleted.length ? `; volumes deleted: ${deleted.join(", ")}` : ""),
      { vmName: name, domainUndefined: true, volumesDeleted: deleted, volumesLeft: left },
    );
  }
  opts.onStep?.("storage", `${deleted.length} volumes deleted`);
  return { graceful, volumesDeleted: deleted, disksKept: plan.kept };
}

const STATE_WORDS: Record<number, string> = {
  [DomainState.NOSTATE]: "in no state",
  [DomainState.RUNNING]: "running",
  [DomainState.BLOCKED]: "idle",
  [DomainState.PAUSED]: "paused",
  [DomainState.SHUTDOWN]: "shutting down",
  [DomainState.SHUTOFF]: "shut off",
  [DomainState.CRASHED]: "crashed",
  [DomainState.PMSUSPENDED]: "suspended",
};

function stateWord(state: number | undefined): string {
  return state === undefined ? "in an unknown state" : STATE_WORDS[state] ?? `in state ${state}`;
}

async function currentStateWord(lv: Libvirt, domain: DomainRef): Promise<string> {
  return stateWord(await lv.domainGetState(domain).then((s) => s.state, () => undefined));
}

/** The steps of `start` before which a failure can be injected. */
export type StartStep = "start" | "status";
/** The steps of `stop` before which a failure can be injected. */
export type StopStep = "shutdown" | "forceOff" | "status";

/** Options of {@linkcode startVm}. */
export interface StartOptions {
  /** Called before each step; throwing stops there, as a failure of that step would (tests). */
  beforeStep?: (step: StartStep) => void | Promise<void>;
}

/** Options of {@linkcode stopVm} and {@linkcode restartVm}. */
export interface StopOptions {
  /** Seconds to wait for a graceful shutdown before forcing the VM off. */
  timeoutSeconds: number;
  /** Power off at once, without asking the guest. */
  force?: boolean;
  /** Told when the guest was asked to shut down and the grace period of `timeoutSeconds` begins. */
  onShutdown?: (detail: string) => void;
  /** Called before each step; throwing stops there, as a failure of that step would (tests). */
  beforeStep?: (step: StopStep | StartStep) => void | Promise<void>;
}

/**
 * Starts a stopped VM and records its status. A VM that is already running is left alone and
 * reported with `alreadyRunning`.
 *
 * @throws {VmOperationError} naming the state the VM is in: not started (still shut off), or
 *   running but with its status record not updated
 */
export async function startVm(
  lv: Libvirt,
  name: string,
  opts: StartOptions = {},
): Promise<{ alreadyRunning: boolean }> {
  const { domain, vm } = await lookupVm(lv, name);
  if ((await lv.domainGetState(domain)).state === DomainState.RUNNING) {
    return { alreadyRunning: true };
  }
  const previous = await readStoredStatus(lv, domain);
  try {
    await opts.beforeStep?.("start");
    await lv.domainCreate(domain);
  } catch (e) {
    throw new VmOperationError(
      `VM ${name} not started (still ${await currentStateWord(lv, domain)}): ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  if (!vm) return { alreadyRunning: false };
  try {
    await opts.beforeStep?.("status");
    await writeStatus(lv, domain, vm, DomainState.RUNNING, previous);
  } catch (e) {
    throw new VmOperationError(
      `VM ${name} is running, but its status was not recorded: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return { alreadyRunning: false };
}

/**
 * Stops a VM: graceful shutdown, forced off after `timeoutSeconds` (or at once with `force`). A VM
 * that is already shut off is left alone and reported with `alreadyStopped`.
 *
 * @throws {VmOperationError} naming the state the VM is in: not stopped (still running), or shut
 *   off but with its status record not updated
 */
export async function stopVm(
  lv: Libvirt,
  name: string,
  opts: StopOptions,
): Promise<{ graceful: boolean; alreadyStopped: boolean }> {
  const { domain, vm } = await lookupVm(lv, name);
  if ((await lv.domainGetState(domain)).state === DomainState.SHUTOFF) {
    return { graceful: true, alreadyStopped: true };
  }
  const previous = await readStoredStatus(lv, domain);
  let graceful = !opts.force;
  try {
    if (!opts.force) {
      await opts.beforeStep?.("shutdown");
      await lv.domainShutdown(domain).catch(() => {});
      opts.onShutdown?.(`waiting up to ${opts.timeoutSeconds} s for a graceful shutdown`);
      graceful = await waitForState(lv, domain, [DomainState.SHUTOFF], opts.timeoutSeconds * 1000);
    }
    if (!graceful) {
      await opts.beforeStep?.("forceOff");
      await lv.domainDestroy(domain).catch(async (e) => {
        if ((await lv.domainGetState(domain)).state !== DomainState.SHUTOFF) throw e;
      });
    }
  } catch (e) {
    throw new VmOperationError(
      `VM ${name} not stopped (still ${await currentStateWord(lv, domain)}): ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  if (vm) {
    try {
      await opts.beforeStep?.("status");
      await writeStatus(lv, domain, vm, DomainState.SHUTOFF, previous);
    } catch (e) {
      throw new VmOperationError(
        `VM ${name} is shut off, but its status was not recorded: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return { graceful, alreadyStopped: false };
}

/**
 * Restarts a VM (stop as {@linkcode stopVm}, then start).
 *
 * @throws {VmOperationError} as stop and start do; a start that fails after the stop says that
 *   the VM was stopped but not started again
 */
export async function restartVm(
  lv: Libvirt,
  name: string,
  opts: StopOptions,
): Promise<{ graceful: boolean; alreadyStopped: boolean }> {
  const r = await stopVm(lv, name, opts);
  try {
    await startVm(lv, name, opts.beforeStep ? { beforeStep: opts.beforeStep } : {});
  } catch (e) {
    const domain = await lv.domainLookupByName(name).catch(() => undefined);
    const state = domain
      ? await lv.domainGetState(domain).then((s) => s.state, () => undefined)
      : undefined;
    if (state === DomainState.RUNNING) throw e;
    throw new VmOperationError(
      `VM ${name} was stopped but not started again: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return r;
}
