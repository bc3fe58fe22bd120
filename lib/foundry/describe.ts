/**
 * `foundry describe`: everything known about one VM in one record: its stored spec, the domain's
 * live state, its addresses by where they were learnt, its disks with their size on the host, and
 * conditions (`Ready`, `AgentConnected`, `CloudInitDone`) with the time each last changed. The
 * caller adds the VM's recent operations from the audit trail (lib never reads audit).
 * @module
 */
import {
  type DomainInterface,
  type DomainRef,
  DomainState,
  InterfaceAddressSource,
  type Libvirt,
  type StorageVolInfo,
  uuidToString,
} from "../libvirt/mod.ts";
import { clip, GuestAgentError, guestPing, guestReadFile } from "./agent.ts";
import { domainDisks } from "./disks.ts";
import { stateName } from "./inventory.ts";
import { lookupVm, readStoredStatus } from "./lookup.ts";
import { phaseFromDomainState, statusFromDomainState } from "./status.ts";
import type { Phase, VirtualMachine, VirtualMachineStatus } from "./types.ts";

/** A condition as describe reports it: like the spec's, but the time may be unknown. */
export interface DescribedCondition {
  /** `Ready`, `AgentConnected` or `CloudInitDone`. */
  type: string;
  /** Whether it holds. */
  status: "True" | "False" | "Unknown";
  /** RFC 3339 time of the last change of `status`; null when nothing tells it. */
  lastTransitionTime: string | null;
  /** CamelCase reason. */
  reason: string;
  /** In words. */
  message: string;
}

/** One address of the VM and where it was learnt. */
export interface DescribedAddress {
  /** `agent` (the guest agent: what the guest has), `lease` (the DHCP server), `spec` (configured). */
  source: "agent" | "lease" | "spec";
  /** The address without prefix length. */
  ip: string;
  /** Prefix length, when the source tells it. */
  prefix: number | null;
  /** IPv4 or IPv6. */
  family: "ipv4" | "ipv6";
  /** The interface's name as the source names it (`eth0`, `vnet3`); null for the spec. */
  interface: string | null;
  /** Its MAC address, when known. */
  mac: string | null;
}

/** One disk of the domain with its volume's size on the host. */
export interface DescribedDisk {
  /** Target device (`vda`). */
  target: string;
  /** `disk` or `cdrom`. */
  device: string;
  /** `pool/volume` of a volume disk, else the path. */
  source: string;
  /** Bytes the guest sees; null when the volume could not be read. */
  capacity: number | null;
  /** Bytes it takes on the host; null when the volume could not be read. */
  allocation: number | null;
  /** Why the sizes are missing, when they are. */
  error?: string;
}

/** An operation foundry recorded on the VM (from the audit trail; the caller supplies them). */
export interface DescribedOperation {
  /** RFC 3339 start time. */
  startedAt: string;
  /** `create`, `start`, `stop`, `destroy`, ... */
  operation: string;
  /** `succeeded`, `failed`, `running`, ... */
  status: string;
  /** Milliseconds, when it finished. */
  durationMs: number | null;
  /** Why it failed, when it did. */
  error: string | null;
}

/** What `foundry describe` shows. */
export interface VmDescription {
  /** The domain's name. */
  name: string;
  /** The domain's UUID. */
  uuid: string;
  /** Whether foundry created the domain (it carries a foundry spec). */
  managed: boolean;
  /** Labels of the stored spec. */
  labels: Record<string, string>;
  /** Annotations of the stored spec. */
  annotations: Record<string, string>;
  /** The stored spec; null for a domain foundry did not create. */
  spec: VirtualMachine["spec"] | null;
  /** The spec's generation. */
  generation: number | null;
  /** What the daemon reports now. */
  live: {
    /** virsh's word for the state (`running`, `shut off`). */
    state: string;
    phase: Phase;
    vcpus: number;
    memoryMiB: number;
    maxMemoryMiB: number;
    /** CPU time used, in seconds. */
    cpuTimeSeconds: number;
    autostart: boolean;
  };
  /** Every address known, labelled by its source (agent, then lease, then spec). */
  addresses: DescribedAddress[];
  /** The domain's disks in XML order. */
  disks: DescribedDisk[];
  /** `Ready`, `AgentConnected`, `CloudInitDone`. */
  conditions: DescribedCondition[];
  /** Recent operations on the VM, newest first (empty unless the caller adds them). */
  events: DescribedOperation[];
}

/** Options of {@linkcode describeVm}. */
export interface DescribeOptions {
  /** Aborts the guest agent calls (Ctrl-C). */
  signal?: AbortSignal;
  /** Time the guest agent calls may take in all (default 15000 ms). */
  agentTimeoutMs?: number;
}

/** Where cloud-init says it finished this boot (written on every boot, under /run). */
export const CLOUD_INIT_RESULT = "/run/cloud-init/result.json";
/** cloud-init's per-stage progress, with the time each stage finished. */
export const CLOUD_INIT_STATUS = "/run/cloud-init/status.json";
/** The kernel's clock ticks per second as /proc reports times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;
const MAX_ERRORS = 5;

const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/**
 * When a process started, from its `/proc/PID/stat` text and the guest's `/proc/stat` (whose
 * `btime` is the boot time): boot time plus field 22 (`starttime`, in clock ticks). Null when
 * either text is not what Linux writes.
 */
export function processStartTime(procPidStat: string, procStat: string): string | null {
  const btime = /^btime\s+(\d+)\s*$/m.exec(procStat);
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const end = procPidStat.lastIndexOf(")");
  if (!btime || end < 0) return null;
  const fields = procPidStat.slice(end + 1).trim().split(/\s+/);
  // Field 3 (state) is fields[0], so field 22 is fields[19].
  const ticks = Number(fields[19]);
  if (!Number.isSafeInteger(ticks) || ticks < 0) return null;
  return rfc3339(Number(btime[1]) * 1000 + (ticks / USER_HZ) * 1000);
}

/**
 * When cloud-init's last stage (`modules-final`) finished, from status.json; null when it has not
 * or the text does not say.
 */
export function cloudInitFinishedTime(statusJson: string): string | null {
  try {
    const finished = JSON.parse(statusJson)?.v1?.["modules-final"]?.finished;
    return typeof finished === "number" && Number.isFinite(finished) && finished > 0
      ? rfc3339(finished * 1000)
      : null;
  } catch {
    return null;
  }
}

/** cloud-init's errors from result.json (at most 5, each cut to 200 characters); null if unreadable. */
export function cloudInitErrors(resultJson: string): string[] | null {
  try {
    const errors: unknown = JSON.parse(resultJson)?.v1?.errors;
    if (!Array.isArray(errors)) return null;
    return errors.slice(0, MAX_ERRORS).map((e) =>
      clip(typeof e === "string" ? e : JSON.stringify(e), 200)
    );
  } catch {
    return null;
  }
}

/** The guest agent channel's state in a live domain XML (`connected`, `disconnected`), if any. */
export function agentChannelState(domainXml: string): string | null {
  const m = /<target\b[^>]*name=['"]org\.qemu\.guest_agent\.0['"][^>]*>/.exec(domainXml);
  const state = m ? /\bstate=['"]([a-z]+)['"]/.exec(m[0]) : null;
  return state?.[1] ?? null;
}

/** Each address of `ifaces` (loopback left out) labelled with `source`. */
export function addressesFrom(
  source: "agent" | "lease",
  ifaces: readonly DomainInterface[] | undefined,
): DescribedAddress[] {
  return (ifaces ?? []).filter((i) => i.name !== "lo").flatMap((i) =>
    i.addrs.filter((a) => !a.addr.startsWith("127.") && a.addr !== "::1").map((a) => ({
      source,
      ip: a.addr,
      prefix: a.prefix,
      family: a.type === 0 ? "ipv4" as const : "ipv6" as const,
      interface: i.name,
      mac: i.hwaddr,
    }))
  );
}

/** The spec's address of each interface, labelled `spec`. */
export function specAddresses(vm: VirtualMachine | undefined): DescribedAddress[] {
  return (vm?.spec.networkInterfaces ?? []).flatMap((n) => n.ip === undefined ? [] : [n.ip]).map((
    cidr,
  ) => {
    const [ip = "", prefix] = cidr.split("/");
    return {
      source: "spec" as const,
      ip,
      prefix: prefix === undefined ? null : Number(prefix),
      family: ip.includes(":") ? "ipv6" as const : "ipv4" as const,
      interface: null,
      mac: null,
    };
  });
}

/** What the guest agent told about the agent and cloud-init. */
interface GuestFacts {
  agent: DescribedCondition;
  cloudInit: DescribedCondition;
  /** When the guest booted (`btime` of /proc/stat), when the agent could tell. */
  bootTime: string | null;
}

/**
 * The `AgentConnected` and `CloudInitDone` conditions of a domain. Agent: it answers guest-ping;
 * its time is when the agent process started in the guest (it connects as it starts), read from
 * /proc through the agent itself. Cloud-init: /run/cloud-init/result.json exists (cloud-init
 * writes it at the end of every boot); its time is when `modules-final` finished in status.json.
 */
async function guestFacts(
  lv: Libvirt,
  domain: DomainRef,
  running: boolean,
  xml: string,
  opts: DescribeOptions,
): Promise<GuestFacts> {
  const cond = (
    type: string,
    status: DescribedCondition["status"],
    reason: string,
    message: string,
    lastTransitionTime: string | null = null,
  ): DescribedCondition => ({ type, status, lastTransitionTime, reason, message });
  if (!running) {
    return {
      agent: cond("AgentConnected", "False", "VMNotRunning", "the VM is not running"),
      cloudInit: cond("CloudInitDone", "Unknown", "VMNotRunning", "the VM is not running"),
      bootTime: null,
    };
  }
  const calls = opts.signal ? { signal: opts.signal } : {};
  const channel = agentChannelState(xml);
  if (!(await guestPing(lv, domain, 3, calls))) {
    return {
      agent: cond(
        "AgentConnected",
        "False",
        channel === "connected" ? "AgentNotAnswering" : "AgentNotConnected",
        channel === "connected"
          ? "the agent channel is connected but guest-ping gets no answer"
          : `the guest agent channel is ${channel ?? "absent"}`,
      ),
      cloudInit: cond(
        "CloudInitDone",
        "Unknown",
        "AgentNotConnected",
        "cloud-init's state is read through the guest agent",
      ),
      bootTime: null,
    };
  }
  const deadline = performance.now() + (opts.agentTimeoutMs ?? 15_000);
  const read = async (path: string, maxBytes: number): Promise<string | undefined> => {
    const left = deadline - performance.now();
    if (left <= 0) return undefined;
    try {
      return await guestReadFile(lv, domain, path, { maxBytes, timeoutMs: left, ...calls });
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      if (e instanceof GuestAgentError) return undefined;
      throw e;
    }
  };
  // qemu-ga opens the file itself, so /proc/self is the agent's own process.
  const [selfStat, procStat] = await Promise.all([
    read("/proc/self/stat", 4096),
    read("/proc/stat", 256 * 1024),
  ]);
  const agentSince = selfStat && procStat ? processStartTime(selfStat, procStat) : null;
  const btime = procStat ? /^btime\s+(\d+)\s*$/m.exec(procStat) : null;
  const bootTime = btime ? rfc3339(Number(btime[1]) * 1000) : null;
  const agent = cond(
    "AgentConnected",
    "True",
    "AgentAnswering",
    "the guest agent answers guest-ping",
    agentSince,
  );
  const result = await read(CLOUD_INIT_RESULT, 1024 * 1024);
  if (result === undefined) {
    const status = await read(CLOUD_INIT_STATUS, 1024 * 1024);
    return {
      agent,
      bootTime,
      cloudInit: cond(
        "CloudInitDone",
        "False",
        status === undefined ? "CloudInitNotStarted" : "CloudInitRunning",
        status === undefined
          ? `neither ${CLOUD_INIT_RESULT} nor ${CLOUD_INIT_STATUS} exists in the guest`
          : `cloud-init is running (no ${CLOUD_INIT_RESULT} yet)`,
      ),
    };
  }
  const status = await read(CLOUD_INIT_STATUS, 1024 * 1024);
  const finished = status === undefined ? null : cloudInitFinishedTime(status);
  const errors = cloudInitErrors(result);
  return {
    agent,
    bootTime,
    cloudInit: errors?.length
      ? cond(
        "CloudInitDone",
        "True",
        "CloudInitFinishedWithErrors",
        `cloud-init finished with errors: ${errors.join("; ")}`,
        finished,
      )
      : cond("CloudInitDone", "True", "CloudInitFinished", "cloud-init finished", finished),
  };
}

/**
 * How much later than foundry's record the guest's boot may be and still be that start: the
 * kernel starts a while after the domain (firmware, boot loader; minutes on a loaded TCG host).
 */
const BOOT_AFTER_START_MS = 5 * 60_000;

/**
 * The `Ready` condition of a domain in state `state`. Its time is the one foundry recorded while
 * the status is still the recorded one and the guest has not booted well after it; otherwise (the
 * VM was started or stopped by another client, virsh) the guest's boot time for a running VM,
 * else unknown.
 */
export function readyCondition(
  state: number,
  stored: VirtualMachineStatus | undefined,
  bootTime: string | null,
): DescribedCondition {
  const now = statusFromDomainState(state, 1, new Date(0), {}).conditions![0]!;
  const old = stored?.conditions?.find((c) => c.type === "Ready");
  const recorded = old && old.status === now.status && old.lastTransitionTime
    ? old.lastTransitionTime
    : null;
  const bootedSince = now.status === "True" && bootTime !== null &&
    (recorded === null || Date.parse(bootTime) > Date.parse(recorded) + BOOT_AFTER_START_MS);
  return { ...now, lastTransitionTime: bootedSince ? bootTime : recorded };
}

async function volumeInfo(
  lv: Libvirt,
  d: { pool?: string; volume?: string; path?: string },
): Promise<StorageVolInfo> {
  if (d.pool && d.volume) {
    const pool = await lv.storagePoolLookupByName(d.pool);
    return lv.storageVolGetInfo(await lv.storageVolLookupByName(pool, d.volume));
  }
  if (!d.path) throw new Error("the disk has no source");
  return lv.storageVolGetInfo(await lv.storageVolLookupByPath(d.path));
}

/**
 * Describes VM `name` (any domain; one foundry did not create has no spec). A missing VM is a
 * `VmNotFoundError`. The guest agent is asked only while the VM runs, within
 * `opts.agentTimeoutMs`; a disk whose volume cannot be read is listed with its reason.
 */
export async function describeVm(
  lv: Libvirt,
  name: string,
  opts: DescribeOptions = {},
): Promise<VmDescription> {
  const { domain, vm } = await lookupVm(lv, name);
  const [info, state, stored, autostart] = await Promise.all([
    lv.domainGetInfo(domain),
    lv.domainGetState(domain),
    readStoredStatus(lv, domain),
    lv.domainGetAutostart(domain).catch(() => false),
  ]);
  // The live XML (lookupVm's is too, but it is read again after the state for the agent channel).
  const xml = await lv.domainGetXmlDesc(domain);
  const running = state.state === DomainState.RUNNING || state.state === DomainState.BLOCKED;
  let agentIfaces: DomainInterface[] | undefined;
  let leaseIfaces: DomainInterface[] | undefined;
  if (running) {
    [agentIfaces, leaseIfaces] = await Promise.all([
      lv.domainInterfaceAddresses(domain, InterfaceAddressSource.AGENT).catch(() => undefined),
      lv.domainInterfaceAddresses(domain, InterfaceAddressSource.LEASE).catch(() => undefined),
    ]);
  }
  const disks = await Promise.all(
    domainDisks(xml).map(async (d): Promise<DescribedDisk> => {
      const source = d.pool && d.volume ? `${d.pool}/${d.volume}` : d.path ?? "-";
      const base = { target: d.target, device: d.device, source };
      try {
        const v = await volumeInfo(lv, d);
        return { ...base, capacity: v.capacity, allocation: v.allocation };
      } catch (e) {
        return {
          ...base,
          capacity: null,
          allocation: null,
          error: clip((e as Error).message, 200),
        };
      }
    }),
  );
  const facts = await guestFacts(lv, domain, running, xml, opts);
  const conditions: DescribedCondition[] = [
    readyCondition(state.state, stored, facts.bootTime),
    facts.agent,
    facts.cloudInit,
  ];
  return {
    name: domain.name,
    uuid: uuidToString(domain.uuid),
    managed: vm !== undefined,
    labels: vm?.metadata.labels ?? {},
    annotations: vm?.metadata.annotations ?? {},
    spec: vm?.spec ?? null,
    generation: vm?.metadata.generation ?? null,
    live: {
      state: stateName(state.state),
      phase: phaseFromDomainState(state.state),
      vcpus: info.vcpus,
      memoryMiB: Math.round(info.memoryKiB / 1024),
      maxMemoryMiB: Math.round(info.maxMemKiB / 1024),
      cpuTimeSeconds: Number(info.cpuTimeNs) / 1e9,
      autostart,
    },
    addresses: [
      ...addressesFrom("agent", agentIfaces),
      ...addressesFrom("lease", leaseIfaces),
      ...specAddresses(vm),
    ],
    disks,
    conditions,
    events: [],
  };
}
