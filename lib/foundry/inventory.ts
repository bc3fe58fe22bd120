/**
 * Reading VMs back from libvirt: `list` (state of every domain in one bulk call) and `get`.
 * @module
 */
import {
  type DomainInterface,
  type DomainRef,
  DomainState,
  DomainStatsFlags,
  DomainStatsType,
  DomainXmlFlags,
  InterfaceAddressSource,
  type Libvirt,
  MetadataType,
  uuidToString,
} from "../libvirt/mod.ts";
import {
  type LabelSelector,
  matchesSelector,
  parseLabelSelector,
  selectorFromLabels,
  type SelectorOperator,
  type SelectorRequirement,
} from "../config/selector.ts";
import { METADATA_NAMESPACE, parseStoredMetadataXml, type StoredVm } from "./stored_metadata.ts";
import type { DomainXmls } from "./drift.ts";
import type { DriftReport } from "./plan_types.ts";
import { macOf } from "./naming.ts";
import { phaseFromDomainState, phaseOf, setCondition, statusFromDomainState } from "./status.ts";
import type { VirtualMachine } from "./types.ts";
import { lookupVm, readStoredStatus, VmOperationError } from "./lookup.ts";

/** Annotation `get` adds when the VM has a root password: the SHA-256 of its hash, never the hash. */
export const PASSWORD_FINGERPRINT_ANNOTATION = "foundry.cofront.xyz/root-password-hash-sha256";

/** One row of `foundry list`. */
export interface VmListEntry {
  /** Domain name. */
  name: string;
  /** libvirt state in virsh's words: running, shut off, paused, ... */
  state: string;
  /** Phase of the foundry API. */
  phase: string;
  /** Current vCPUs. */
  vcpus: number;
  /** Memory in MiB: a foundry VM's spec's, another domain's balloon size. */
  memoryMiB: number;
  /**
   * The live IPv4 address: the guest agent's, else the DHCP lease's; "" when neither knows one (the
   * spec's address is never put here: it is only what the VM was given, see `addresses`).
   */
  ip: string;
  /** Where `ip` came from; "" when there is no live address. */
  ipSource: "agent" | "lease" | "";
  /** Every IPv4 address known for the VM with where it comes from: live ones first, then the spec's. */
  addresses: VmAddress[];
  /** Domain UUID. */
  uuid: string;
  /** Whether the domain starts with the host; only read with `ListOptions.autostart`, else null. */
  autostart: boolean | null;
  /** Whether foundry created this domain (its spec is in the metadata). */
  managed: boolean;
  /** Labels from the stored spec. */
  labels: Record<string, string>;
}

/** One address of a VM and where it was learnt. */
export interface VmAddress {
  /** IPv4 address without prefix length. */
  ip: string;
  /** `agent` and `lease` are live (what the guest has now); `spec` is what the VM's spec gives it. */
  source: "agent" | "lease" | "spec";
}

/** Options of {@linkcode listVms}. */
export interface ListOptions {
  /** Include domains foundry did not create. */
  all?: boolean;
  /** Keep only VMs whose labels contain all of these (a shorthand for `key=value` requirements). */
  labels?: Record<string, string>;
  /**
   * Keep only VMs whose labels match (Kubernetes selector semantics; a domain foundry did not create
   * has no labels, and is considered only with `all`).
   */
  selector?: LabelSelector;
  /** Also read each domain's autostart flag (one more call per domain, sent in the same wave). */
  autostart?: boolean;
  /**
   * Domains per extra connection the metadata reads are spread over (default
   * {@linkcode DOMAINS_PER_HELPER}; at most {@linkcode MAX_HELPERS} extra connections).
   */
  domainsPerHelper?: number;
}

export { parseLabelSelector };
export type { LabelSelector, SelectorOperator, SelectorRequirement };

const STATE_NAMES: Record<number, string> = {
  [DomainState.NOSTATE]: "no state",
  [DomainState.RUNNING]: "running",
  [DomainState.BLOCKED]: "idle",
  [DomainState.PAUSED]: "paused",
  [DomainState.SHUTDOWN]: "in shutdown",
  [DomainState.SHUTOFF]: "shut off",
  [DomainState.CRASHED]: "crashed",
  [DomainState.PMSUSPENDED]: "pmsuspended",
};

/** virsh's word for a `DomainState`. */
export function stateName(state: number): string {
  return STATE_NAMES[state] ?? `state ${state}`;
}

/**
 * Lists VMs with state, vCPUs, memory and address. State, vCPUs and memory of every domain come
 * from one ConnectGetAllDomainStats call; the specs (and, for running VMs, the guest agent's
 * and DHCP-lease addresses) follow in a second wave of calls sent together, so the whole listing
 * costs two round trips whatever the number of domains.
 *
 * A spec is one call per domain, and libvirt has no bulk read of metadata. So that a host with
 * many stopped domains of other tools does not pay one call for each, the first wave also reads
 * the disks of every stopped domain (a second bulk stats call, sent together with the first),
 * and a stopped domain is asked for foundry's metadata only when it may be foundry's (see
 * {@linkcode mayBeFoundrys}): foundry attaches a VM's volumes as pool volumes, named after the VM.
 * A stopped domain without disks, or with only files not named after it, is another tool's. A
 * stopped foundry VM whose every disk was detached outside foundry therefore lists as not
 * foundry's; `get NAME` still reads its spec. Running domains are always asked.
 */
export async function listVms(
  lv: Libvirt,
  opts: ListOptions = {},
): Promise<{ vms: VmListEntry[]; rpcCalls: number; roundTrips: number }> {
  let rpcCalls = 2;
  const batchesBefore = lv.rpc.writeBatches;
  const [records, stoppedDisks] = await Promise.all([
    lv.getAllDomainStats(DomainStatsType.STATE | DomainStatsType.VCPU | DomainStatsType.BALLOON),
    lv.getAllDomainStats(DomainStatsType.BLOCK, DomainStatsFlags.INACTIVE).then(
      (rs) => new Map(rs.map((r) => [r.domain.name, r.params])),
      () => undefined, // unknown: every domain is asked
    ),
  ]);
  const base = records.map((r) => {
    const p = new Map(r.params.map((x) => [x.field, x.value]));
    const state = Number(p.get("state.state") ?? DomainState.NOSTATE);
    // The current size: with headroom for a live resize, the maximum is more than the VM has.
    const memKiB = Number(p.get("balloon.current") ?? p.get("balloon.maximum") ?? 0);
    return {
      domain: r.domain,
      state,
      vcpus: Number(p.get("vcpu.current") ?? p.get("vcpu.maximum") ?? 0),
      memoryMiB: Math.round(memKiB / 1024),
    };
  });
  const running = (s: number) => s === DomainState.RUNNING || s === DomainState.BLOCKED;
  const asked = base.filter((b) => mayBeFoundrys(b.domain.name, b.state, stoppedDisks)).length;
  const helpers = await helperConnections(lv, asked, opts.domainsPerHelper);
  const conns = [lv, ...helpers];
  const second = await Promise.all(base.map(async (b, i) => {
    let spec: Promise<StoredVm | undefined> = Promise.resolve(undefined);
    if (mayBeFoundrys(b.domain.name, b.state, stoppedDisks)) {
      rpcCalls++;
      const conn = conns[i % conns.length] ?? lv;
      // One call: the element also marks a create or destroy in progress, shown as its phase.
      spec = conn.domainGetMetadata(b.domain, MetadataType.ELEMENT, METADATA_NAMESPACE)
        .then((xml) => safeParse(xml, b.domain.name), () => undefined);
    }
    if (opts.autostart) rpcCalls++;
    const autostart = opts.autostart
      ? lv.domainGetAutostart(b.domain).catch(() => null)
      : Promise.resolve(null);
    let agent: Promise<DomainInterface[] | undefined> = Promise.resolve(undefined);
    let lease: Promise<DomainInterface[] | undefined> = Promise.resolve(undefined);
    if (running(b.state)) {
      // Agent and lease go out together: a missing agent must not cost another round trip.
      rpcCalls += 2;
      agent = lv.domainInterfaceAddresses(b.domain, InterfaceAddressSource.AGENT).catch(() =>
        undefined
      );
      lease = lv.domainInterfaceAddresses(b.domain, InterfaceAddressSource.LEASE).catch(() =>
        undefined
      );
    }
    const stored = await spec;
    return {
      ...b,
      vm: stored?.vm,
      status: stored?.operation ? { operation: stored.operation } : undefined,
      agent: await agent,
      lease: await lease,
      autostart: await autostart,
    };
  }));
  // Closed while the rows are built; the caller's own connection stays open.
  const closing = Promise.all(helpers.map((h) => h.close().catch(() => {})));
  const selectors = [
    ...(opts.labels ? selectorFromLabels(opts.labels).requirements : []),
    ...(opts.selector?.requirements ?? []),
  ];
  const selector = selectors.length ? { requirements: selectors } : undefined;
  const wanted = second.filter((x) => {
    if (!x.vm && opts.all !== true) return false;
    return !selector || matchesSelector(selector, x.vm?.metadata.labels ?? {});
  });
  const now = new Date();
  const vms = wanted.map((x): VmListEntry => {
    const addresses = addressesOf(x.agent, x.lease, x.vm);
    const live = addresses.find((a) => a.source !== "spec");
    return {
      name: x.domain.name,
      uuid: uuidToString(x.domain.uuid),
      autostart: x.autostart,
      state: stateName(x.state),
      phase: x.vm ? phaseOf(x.state, x.status, now) : phaseFromDomainState(x.state),
      vcpus: x.vcpus,
      // A foundry VM's memory is its spec's (resize keeps the spec current): the balloon of a
      // guest without a balloon driver reports the whole headroom, which the VM was not given.
      memoryMiB: x.vm ? Math.round(x.vm.spec.memoryGiB * 1024) : x.memoryMiB,
      ip: live?.ip ?? "",
      ipSource: live ? live.source as "agent" | "lease" : "",
      addresses,
      managed: x.vm !== undefined,
      labels: x.vm?.metadata.labels ?? {},
    };
  }).sort((a, b) => byName(a.name, b.name));
  await closing;
  return { vms, rpcCalls, roundTrips: lv.rpc.writeBatches - batchesBefore };
}

/**
 * Whether domain `name` may carry foundry's metadata. Always when it is not shut off or its disks
 * are unknown. When shut off (disks from a BLOCK stats record): when one of its disks is a file
 * whose name starts with `NAME_`, as every volume foundry makes for a VM does, or when a disk has
 * no path to look at (libvirt gives none for a stopped domain's `type="volume"` disks, which is
 * how foundry attaches its volumes). A stopped domain with no disks, or only with files named
 * otherwise, is not foundry's.
 */
export function mayBeFoundrys(
  name: string,
  state: number,
  stoppedDisks: Map<string, { field: string; value: unknown }[]> | undefined,
): boolean {
  if (state !== DomainState.SHUTOFF || !stoppedDisks) return true;
  const params = stoppedDisks.get(name);
  if (!params) return true; // stopped after the disk read: ask
  const prefix = `${name}_`;
  let disks = 0;
  let paths = 0;
  for (const p of params) {
    if (p.field === "block.count") disks = Number(p.value);
    if (!/^block\.\d+\.path$/.test(p.field) || typeof p.value !== "string") continue;
    paths++;
    if (p.value.slice(p.value.lastIndexOf("/") + 1).startsWith(prefix)) return true;
  }
  return paths < disks;
}

/** Domains per extra connection when a list reads many domains' metadata. */
export const DOMAINS_PER_HELPER = 100;
/** Most extra connections one list opens. */
export const MAX_HELPERS = 3;

/**
 * Extra connections for reading `domains` domains' metadata: the daemon works on at most five
 * calls of one connection at a time (`max_client_requests`), so a few hundred calls finish sooner
 * over a few connections. None for a short list, and none when opening one fails (the list then
 * uses the caller's connection alone).
 */
async function helperConnections(
  lv: Libvirt,
  domains: number,
  perHelper = DOMAINS_PER_HELPER,
): Promise<Libvirt[]> {
  const want = Math.min(MAX_HELPERS, Math.floor(domains / Math.max(1, perHelper)));
  if (want < 1) return [];
  const opened = await Promise.allSettled(
    Array.from({ length: want }, () => lv.connectAgain()),
  );
  return opened.flatMap((o) => o.status === "fulfilled" ? [o.value] : []);
}

/**
 * Name order, case-insensitive first, without ICU: localeCompare's first call loads a collator,
 * about 10 ms of every `list` process, more than sorting a thousand names takes.
 */
function byName(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (x !== y) return x < y ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function safeParse(xml: string, name: string): StoredVm | undefined {
  try {
    return parseStoredMetadataXml(xml, name);
  } catch {
    return undefined;
  }
}

/**
 * The VM's addresses: the guest agent's (else the DHCP leases') first, then each NIC's spec address
 * that no live source reported. Live addresses come first, so `addresses[0]` is the best known.
 */
function addressesOf(
  agent: DomainInterface[] | undefined,
  lease: DomainInterface[] | undefined,
  vm: VirtualMachine | undefined,
): VmAddress[] {
  const out: VmAddress[] = [];
  const liveFrom = allIpv4(agent, vm).length ? "agent" : "lease";
  for (const ip of allIpv4(liveFrom === "agent" ? agent : lease, vm)) {
    out.push({ ip, source: liveFrom });
  }
  for (const nic of vm?.spec.networkInterfaces ?? []) {
    const ip = nic.ip?.split("/")[0] ?? "";
    if (ip && !out.some((a) => a.ip === ip)) out.push({ ip, source: "spec" });
  }
  return out;
}

/** Every IPv4 address but loopback, the first NIC's (by the spec's MAC) first. */
function allIpv4(ifaces: DomainInterface[] | undefined, vm?: VirtualMachine): string[] {
  if (!ifaces) return [];
  const first = firstIpv4(ifaces, vm);
  const rest = ifaces.filter((i) => i.name !== "lo").flatMap((i) =>
    i.addrs.filter((x) => x.type === 0 && !x.addr.startsWith("127.")).map((x) => x.addr)
  );
  return first ? [first, ...rest.filter((a) => a !== first)] : rest;
}

/** The first IPv4 address, preferring the interface whose MAC is the spec's first NIC's. */
function firstIpv4(ifaces: DomainInterface[] | undefined, vm?: VirtualMachine): string {
  if (!ifaces) return "";
  const usable = ifaces.filter((i) => i.name !== "lo");
  const ordered = [...usable].sort((a, b) => {
    const first = vm?.spec.networkInterfaces[0];
    if (first === undefined || (first.ip === undefined && first.mac === undefined)) return 0;
    const mac = macOf(first);
    return (b.hwaddr?.toLowerCase() === mac ? 1 : 0) - (a.hwaddr?.toLowerCase() === mac ? 1 : 0);
  });
  for (const i of ordered) {
    const a = i.addrs.find((x) => x.type === 0 && !x.addr.startsWith("127."));
    if (a) return a.addr;
  }
  return "";
}

/**
 * The stored spec of a foundry VM with live status: phase from the domain's state now, and the
 * Ready condition whose transition time is kept from the last recorded change.
 */
export async function getVm(lv: Libvirt, name: string): Promise<{
  vm: VirtualMachine;
  domain: DomainRef;
  autostart: boolean;
  addresses: DomainInterface[];
  /** virsh's word for the domain's state now (`running`, `shut off`, ...). */
  state: string;
  /** Live addresses (agent, else lease) first, then the spec's, each with its source. */
  ips: VmAddress[];
  /** What changed behind foundry's back (the `Drifted` condition's details). */
  drift: DriftReport;
}> {
  // Drift is get's alone: loaded while the first call is out, so that list never loads it.
  const driftModule = import("./drift.ts");
  // lookupVm has read the stored spec from the domain XML already: no second parse.
  const { domain, xml, stored } = await lookupVm(lv, name);
  const { driftReport, driftSummary, isActiveDomainXml } = await driftModule;
  let vm = stored?.vm;
  if (vm && stored?.passwordHashSha256) {
    // The hash itself never leaves the spec file; its fingerprint tells that one is set and which.
    // A copy: the stored document itself stays as read, for the drift check of its hash.
    vm = {
      ...vm,
      metadata: {
        ...vm.metadata,
        annotations: {
          ...vm.metadata.annotations,
          [PASSWORD_FINGERPRINT_ANNOTATION]: `sha256:${stored.passwordHashSha256}`,
        },
      },
    };
  }
  if (!vm || !stored) {
    throw new VmOperationError(`VM ${name} was not created by foundry (no foundry metadata)`);
  }
  // A running domain's XML has an id: its definition (for drift) and its addresses (agent and
  // lease at once: a missing agent must not cost another round trip) go in the same round trip.
  const active = isActiveDomainXml(xml);
  const [state, storedStatus, autostart, inactive, agentNow, leaseNow] = await Promise.all([
    lv.domainGetState(domain),
    readStoredStatus(lv, domain),
    lv.domainGetAutostart(domain),
    active
      ? lv.domainGetXmlDesc(domain, DomainXmlFlags.INACTIVE).catch(() => undefined)
      : Promise.resolve(undefined),
    active
      ? lv.domainInterfaceAddresses(domain, InterfaceAddressSource.AGENT).catch(() => undefined)
      : Promise.resolve(undefined),
    active
      ? lv.domainInterfaceAddresses(domain, InterfaceAddressSource.LEASE).catch(() => undefined)
      : Promise.resolve(undefined),
  ]);
  const xmls: DomainXmls = { current: xml, autostart };
  if (inactive !== undefined) xmls.inactive = inactive;
  const drift = await driftReport(name, stored, xmls);
  // Addresses count while it runs, as list has them.
  const live = state.state === DomainState.RUNNING || state.state === DomainState.BLOCKED;
  const agent = live ? agentNow : undefined;
  const lease = live ? leaseNow : undefined;
  const addresses = agent ?? lease ?? [];
  const now = new Date();
  const status = statusFromDomainState(
    state.state,
    vm.metadata.generation ?? 1,
    now,
    storedStatus ?? {},
  );
  status.conditions = setCondition(status.conditions ?? [], {
    type: "Drifted",
    status: drift.changes.length > 0 ? "True" : "False",
    reason: drift.changes.length > 0 ? "ChangedOutsideFoundry" : "AsApplied",
    message: driftSummary(drift),
  }, now);
  return {
    drift,
    vm: { ...vm, status },
    domain,
    autostart,
    addresses,
    state: stateName(state.state),
    ips: addressesOf(agent, lease, vm),
  };
}
