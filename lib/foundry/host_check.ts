/**
 * What a libvirt host offers foundry (`foundry host list|info`) and the runtime checks of
 * `foundry host check` (issue 16): versions, CPUs, free memory, pools and their free space,
 * bridges, foundry's VMs; then whether the bridges and pools foundry's VMs and configuration name
 * exist and run, whether UEFI firmware is there, KVM or TCG only, and the security labels of the
 * pool directories where the host uses SELinux or AppArmor. Each failed check says what to fix.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { loadConfig } from "./config.ts";
 * import { checkHost, surveyHost } from "./host_check.ts";
 * const lv = await Libvirt.connect("qemu:///system");
 * try {
 *   const survey = await surveyHost(lv);
 *   for (const c of checkHost(survey, await loadConfig())) console.log(c.ok, c.check, c.message);
 * } finally {
 *   await lv.close();
 * }
 * ```
 * @module
 */
import { type Libvirt, LibvirtError, StoragePoolState } from "../libvirt/mod.ts";
import type { FoundryConfig } from "./config.ts";
import { hostBridges, hostTopology } from "./host_resources.ts";
import { kvmOffered } from "./domain_xml.ts";
import { METADATA_NAMESPACE } from "./stored_metadata.ts";

/** `remote_protocol.x`: REMOTE_PROC_NODE_GET_FREE_MEMORY = 102 (no arguments, `unsigned hyper`). */
const PROC_NODE_GET_FREE_MEMORY = 102;

/** One storage pool of a host. */
export interface HostPoolFacts {
  /** Pool name. */
  name: string;
  /** `active`, `inactive`, ... */
  state: string;
  /** Capacity in bytes (0 when not active). */
  capacityBytes: number;
  /** Free space in bytes (0 when not active). */
  availableBytes: number;
  /** Target directory (dir pools), else "". */
  path: string;
  /** The directory's security label as the pool reports it (SELinux), else "". */
  label: string;
}

/** A foundry VM's use of bridges and pools, read from its domain definition. */
export interface HostVmUse {
  /** VM name. */
  name: string;
  /** Bridges its interfaces name. */
  bridges: string[];
  /** Pools its disks name. */
  pools: string[];
}

/** What a host offers foundry. */
export interface HostSurvey {
  /** The host's own name. */
  hostname: string;
  /** libvirt version of the daemon, `9.0.0`. */
  libvirtVersion: string;
  /** Hypervisor (QEMU) version, `7.2.22`. */
  hypervisorVersion: string;
  /** Logical CPUs (capabilities topology); null when not reported. */
  cpus: number | null;
  /** Memory in bytes (capabilities topology); null when not reported. */
  memoryBytes: number | null;
  /** Free memory in bytes (virNodeGetFreeMemory); null when not reported. */
  freeMemoryBytes: number | null;
  /** Whether the host offers KVM domains (else TCG only). */
  kvm: boolean;
  /** Host security driver: `selinux`, `apparmor`, `none`. */
  securityModel: string;
  /** UEFI firmware files the host's domain capabilities list (empty: none). */
  uefiFirmware: string[];
  /** Every storage pool, by name. */
  pools: HostPoolFacts[];
  /** Bridges: interfaces of type bridge and virtual networks' bridges. */
  bridges: string[];
  /** Every domain. */
  domains: number;
  /** foundry's VMs with the bridges and pools they use. */
  foundryVms: HostVmUse[];
}

/** `major*1e6 + minor*1e3 + release` as `major.minor.release`. */
export function versionText(n: number): string {
  return `${Math.floor(n / 1_000_000)}.${Math.floor(n / 1000) % 1000}.${n % 1000}`;
}

const POOL_STATES: Record<number, string> = {
  [StoragePoolState.INACTIVE]: "inactive",
  [StoragePoolState.BUILDING]: "building",
  [StoragePoolState.RUNNING]: "active",
  [StoragePoolState.DEGRADED]: "degraded",
  [StoragePoolState.INACCESSIBLE]: "inaccessible",
};

const attr = (xml: string, re: RegExp) => [...xml.matchAll(re)].map((m) => m[1]!);

/** The bridges and pools a domain definition names. */
export function domainUse(xml: string): { bridges: string[]; pools: string[] } {
  const bridges = attr(xml, /<source\b[^>]*\bbridge=['"]([^'"]+)['"]/g);
  const pools = attr(xml, /<source\b[^>]*\bpool=['"]([^'"]+)['"]/g);
  return { bridges: [...new Set(bridges)].sort(), pools: [...new Set(pools)].sort() };
}

/** Reads everything `host list|info|check` shows of one host, the independent calls together. */
export async function surveyHost(lv: Libvirt): Promise<HostSurvey> {
  const [hostname, lib, hyp, caps, free, pools, bridges, domains] = await Promise.all([
    lv.getHostname(),
    lv.getLibVersion(),
    lv.getVersion(),
    lv.getCapabilities(),
    lv.callRemote(PROC_NODE_GET_FREE_MEMORY, undefined, (r) => r.readUhyperNumber())
      .catch(() => null),
    lv.listAllStoragePools(),
    hostBridges(lv),
    lv.listAllDomains(),
  ]);
  const kvm = kvmOffered(caps);
  const [domCaps, poolFacts, xmls] = await Promise.all([
    lv.getDomainCapabilities({ arch: "x86_64", machine: "q35", virtType: kvm ? "kvm" : "qemu" })
      .catch(() => ""),
    Promise.all(pools.map(async (p): Promise<HostPoolFacts> => {
      const [info, xml] = await Promise.all([
        lv.storagePoolGetInfo(p),
        lv.storagePoolGetXmlDesc(p).catch(() => ""),
      ]);
      const target = /<target>([\s\S]*?)<\/target>/.exec(xml)?.[1] ?? "";
      return {
        name: p.name,
        state: POOL_STATES[info.state] ?? `state ${info.state}`,
        capacityBytes: Number(info.capacity),
        availableBytes: Number(info.available),
        path: /<path>([^<]*)<\/path>/.exec(target)?.[1] ?? "",
        label: /<label>([^<]*)<\/label>/.exec(target)?.[1] ?? "",
      };
    })),
    Promise.all(
      domains.map((d) =>
        lv.domainGetXmlDesc(d).then((x) => ({ name: d.name, xml: x }), (e) => {
          if (e instanceof LibvirtError && e.isNoDomain()) return undefined; // gone meanwhile
          throw e;
        })
      ),
    ),
  ]);
  const loader = /<loader supported=['"]yes['"]>([\s\S]*?)<\/loader>/.exec(domCaps)?.[1] ?? "";
  const topology = hostTopology(caps);
  const foundryVms = xmls.flatMap((d) =>
    d && d.xml.includes(METADATA_NAMESPACE) ? [{ name: d.name, ...domainUse(d.xml) }] : []
  ).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return {
    hostname,
    libvirtVersion: versionText(lib),
    hypervisorVersion: versionText(hyp),
    cpus: topology.cpus ?? null,
    memoryBytes: topology.memoryBytes ?? null,
    freeMemoryBytes: free,
    kvm,
    securityModel: /<secmodel>\s*<model>([^<]+)<\/model>/.exec(caps)?.[1] ?? "none",
    uefiFirmware: attr(loader, /<value>([^<]+)<\/value>/g).filter((v) => /\//.test(v)),
    pools: poolFacts.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    bridges,
    domains: domains.length,
    foundryVms,
  };
}

/** One runtime check of a host. */
export interface HostCheck {
  /** What was checked: `bridge br0`, `pool foundry-vms`, `uefi`, `kvm`, `labels foundry-vms`. */
  check: string;
  /** `ok`, `warn` (works, but see the message) or `fail`. */
  status: "ok" | "warn" | "fail";
  /** What was found. */
  message: string;
  /** What to do about a `warn` or `fail`. */
  fix?: string;
}

/** SELinux type a pool directory needs for QEMU to open its images. */
const SELINUX_IMAGE_TYPE = "virt_image_t";

/**
 * The runtime checks of `survey` against what foundry needs: the bridges and pools its VMs use,
 * the configured pools, UEFI firmware, KVM, and the pools' security labels.
 */
export function checkHost(survey: HostSurvey, config: FoundryConfig): HostCheck[] {
  const out: HostCheck[] = [];
  const users = (what: "bridges" | "pools", name: string) =>
    survey.foundryVms.filter((v) => v[what].includes(name)).map((v) => v.name);
  const bridges = [...new Set(survey.foundryVms.flatMap((v) => v.bridges))].sort();
  for (const b of bridges) {
    const by = users("bridges", b);
    out.push(
      survey.bridges.includes(b)
        ? { check: `bridge ${b}`, status: "ok", message: `exists (used by ${by.join(", ")})` }
        : {
          check: `bridge ${b}`,
          status: "fail",
          message: `missing; used by ${by.join(", ")}`,
          fix:
            `create bridge ${b} on the host (ip link add ${b} type bridge && ip link set ${b} up, or in its network configuration)`,
        },
    );
  }
  const pools = [
    ...new Set([
      config.imagesPool,
      config.vmsPool,
      ...survey.foundryVms.flatMap((v) => v.pools),
    ]),
  ];
  for (const name of pools) {
    const pool = survey.pools.find((p) => p.name === name);
    const by = users("pools", name);
    const why = by.length ? `used by ${by.join(", ")}` : "configured";
    if (!pool) {
      out.push({
        check: `pool ${name}`,
        status: by.length ? "fail" : "warn",
        message: `does not exist (${why})`,
        fix: by.length
          ? `define and start pool ${name} again (virsh pool-define-as ${name} dir --target DIR; virsh pool-start ${name})`
          : `foundry pool add ${name} dir DIR, or let the first foundry create make it`,
      });
    } else if (pool.state !== "active") {
      out.push({
        check: `pool ${name}`,
        status: "fail",
        message: `is ${pool.state} (${why})`,
        fix: `virsh pool-start ${name} && virsh pool-autostart ${name}`,
      });
    } else {
      out.push({
        check: `pool ${name}`,
        status: "ok",
        message: `active, ${gib(pool.availableBytes)} free of ${gib(pool.capacityBytes)}`,
      });
    }
  }
  out.push(
    survey.uefiFirmware.length > 0
      ? { check: "uefi", status: "ok", message: survey.uefiFirmware.join(", ") }
      : {
        check: "uefi",
        status: "fail",
        message: "no UEFI firmware in the host's domain capabilities",
        fix:
          "install OVMF on the host (Debian/Ubuntu: apt install ovmf; Fedora/RHEL: dnf install edk2-ovmf)",
      },
  );
  out.push(
    survey.kvm ? { check: "kvm", status: "ok", message: "KVM available" } : {
      check: "kvm",
      status: "warn",
      message: "TCG only: VMs run emulated (domain type qemu), much slower",
      fix:
        "enable virtualization in the firmware (or nested virtualization) and load kvm_intel/kvm_amd so /dev/kvm exists",
    },
  );
  const model = survey.securityModel;
  for (const name of pools) {
    const pool = survey.pools.find((p) => p.name === name);
    if (!pool?.path) continue;
    if (model === "selinux") {
      out.push(
        pool.label.includes(`:${SELINUX_IMAGE_TYPE}:`)
          ? { check: `labels ${name}`, status: "ok", message: `${pool.path}: ${pool.label}` }
          : {
            check: `labels ${name}`,
            status: "fail",
            message: `${pool.path} is labelled ${
              pool.label || "(none)"
            }, not ${SELINUX_IMAGE_TYPE}`,
            fix:
              `semanage fcontext -a -t ${SELINUX_IMAGE_TYPE} '${pool.path}(/.*)?' && restorecon -R ${pool.path}`,
          },
      );
    } else if (model === "apparmor") {
      const usual = pool.path.startsWith("/var/lib/libvirt/");
      out.push(
        usual
          ? { check: `labels ${name}`, status: "ok", message: `${pool.path}: AppArmor allows it` }
          : {
            check: `labels ${name}`,
            status: "warn",
            message: `${pool.path} is outside /var/lib/libvirt; AppArmor may deny QEMU its files`,
            fix:
              `add '${pool.path}/** rwk,' to /etc/apparmor.d/local/abstractions/libvirt-qemu and reload apparmor`,
          },
      );
    }
  }
  if (model !== "selinux" && model !== "apparmor") {
    out.push({ check: "labels", status: "ok", message: "no SELinux or AppArmor on the host" });
  }
  return out;
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}
