/**
 * Reading VMs back from libvirt: `list` (state of every domain in one bulk call) and `get`.
 * @module
 */
import {
  type DomainInterface,
  type DomainRef,
  DomainState,
  DomainStatsType,
  InterfaceAddressSource,
  type Libvirt,
  MetadataType,
} from "../libvirt/mod.ts";
import { METADATA_NAMESPACE, parseMetadataXml, parseStoredDomainMetadata } from "./metadata.ts";
import { macFromIp } from "./naming.ts";
import { phaseFromDomainState, statusFromDomainState } from "./status.ts";
import type { VirtualMachine } from "./types.ts";
import { lookupVm, readStoredStatus, VmOperationError } from "./vm.ts";

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
  /** Memory in MiB (balloon maximum). */
  memoryMiB: number;
  /** Best known IPv4 address: guest agent, else DHCP lease, else the spec's; "" when none. */
  ip: string;
  /** Where `ip` came from. */
  ipSource: "agent" | "lease" | "spec" | "";
  /** Whether foundry created this domain (its spec is in the metadata). */
  managed: boolean;
  /** Labels from the stored spec. */
  labels: Record<string, string>;
}

/** Options of {@linkcode listVms}. */
export interface ListOptions {
  /** Include domains foundry did not create. */
  all?: boolean;
  /** Keep only VMs whose labels contain all of these. */
  labels?: Record<string, string>;
}

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
 */
export async function listVms(
  lv: Libvirt,
  opts: ListOptions = {},
): Promise<{ vms: VmListEntry[]; rpcCalls: number; roundTrips: number }> {
  let rpcCalls = 1;
  const batchesBefore = lv.rpc.writeBatches;
  const records = await lv.getAllDomainStats(
    DomainStatsType.STATE | DomainStatsType.VCPU | DomainStatsType.BALLOON,
  );
  const base = records.map((r) => {
    const p = new Map(r.params.map((x) => [x.field, x.value]));
    const state = Number(p.get("state.state") ?? DomainState.NOSTATE);
    const memKiB = Number(p.get("balloon.maximum") ?? p.get("balloon.current") ?? 0);
    return {
      domain: r.domain,
      state,
      vcpus: Number(p.get("vcpu.current") ?? p.get("vcpu.maximum") ?? 0),
      memoryMiB: Math.round(memKiB / 1024),
    };
  });
  const running = (s: number) => s === DomainState.RUNNING || s === DomainState.BLOCKED;
  const second = await Promise.all(base.map(async (b) => {
    rpcCalls++;
    const spec = lv.domainGetMetadata(b.domain, MetadataType.ELEMENT, METADATA_NAMESPACE)
      .then((xml) => safeParse(xml, b.domain.name), () => undefined);
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
    return { ...b, vm: await spec, agent: await agent, lease: await lease };
  }));
  const wanted = second.filter((x) => {
    if (!x.vm) return opts.all === true && !opts.labels;
    return matches(x.vm.metadata.labels ?? {}, opts.labels);
  });
  const vms = wanted.map((x): VmListEntry => {
    let ip = firstIpv4(x.agent, x.vm);
    let ipSource: VmListEntry["ipSource"] = ip ? "agent" : "";
    if (!ip) {
      ip = firstIpv4(x.lease, x.vm);
      if (ip) ipSource = "lease";
    }
    if (!ip && x.vm) {
      ip = x.vm.spec.networkInterfaces[0]?.ip.split("/")[0] ?? "";
      if (ip) ipSource = "spec";
    }
    return {
      name: x.domain.name,
      state: stateName(x.state),
      phase: phaseFromDomainState(x.state),
      vcpus: x.vcpus,
      memoryMiB: x.memoryMiB,
      ip,
      ipSource,
      managed: x.vm !== undefined,
      labels: x.vm?.metadata.labels ?? {},
    };
  }).sort((a, b) => a.name.localeCompare(b.name));
  return { vms, rpcCalls, roundTrips: lv.rpc.writeBatches - batchesBefore };
}

function safeParse(xml: string, name: string): VirtualMachine | undefined {
  try {
    return parseMetadataXml(xml, `domain ${name} metadata`);
  } catch {
    return undefined;
  }
}

function matches(labels: Record<string, string>, want?: Record<string, string>): boolean {
  if (!want) return true;
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

/** The first IPv4 address, preferring the interface whose MAC is the spec's first NIC's. */
function firstIpv4(ifaces: DomainInterface[] | undefined, vm?: VirtualMachine): string {
  if (!ifaces) return "";
  const usable = ifaces.filter((i) => i.name !== "lo");
  const ordered = [...usable].sort((a, b) => {
    const first = vm?.spec.networkInterfaces[0]?.ip;
    if (!first) return 0;
    const mac = macFromIp(first);
    return (b.hwaddr?.toLowerCase() === mac ? 1 : 0) - (a.hwaddr?.toLowerCase() === mac ? 1 : 0);
  });
  for (const i of ordered) {
    const a = i.addrs.find((x) => x.type === 0 && !x.addr.startsWith("127."));
    if (a) return a.addr;
  }
  return "";
}

/** Parses `key=value` label selectors (`-l a=b -l c=d` or `a=b,c=d`). */
export function parseLabelSelector(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items.flatMap((s) => s.split(","))) {
    const t = item.trim();
    if (!t) continue;
    const eq = t.indexOf("=");
    if (eq <= 0) throw new TypeError(`Invalid label selector '${t}': expected key=value`);
    out[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return out;
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
}> {
  const { domain, xml } = await lookupVm(lv, name);
  const stored = parseStoredDomainMetadata(xml);
  const vm = stored?.vm;
  if (vm && stored.passwordHashSha256) {
    // The hash itself never leaves the spec file; its fingerprint tells that one is set and which.
    vm.metadata.annotations = {
      ...vm.metadata.annotations,
      [PASSWORD_FINGERPRINT_ANNOTATION]: `sha256:${stored.passwordHashSha256}`,
    };
  }
  if (!vm) {
    throw new VmOperationError(`VM ${name} was not created by foundry (no foundry metadata)`);
  }
  const [state, storedStatus, autostart] = await Promise.all([
    lv.domainGetState(domain),
    readStoredStatus(lv, domain),
    lv.domainGetAutostart(domain),
  ]);
  let addresses: DomainInterface[] = [];
  if (state.state === DomainState.RUNNING) {
    addresses = await lv.domainInterfaceAddresses(domain, InterfaceAddressSource.AGENT)
      .catch(() => lv.domainInterfaceAddresses(domain, InterfaceAddressSource.LEASE))
      .catch(() => []);
  }
  const status = statusFromDomainState(
    state.state,
    vm.metadata.generation ?? 1,
    new Date(),
    storedStatus ?? {},
  );
  return { vm: { ...vm, status }, domain, autostart, addresses };
}
