/**
 * A planned virtwork VM as a foundry `VirtualMachine`: labels with the run id, vCPUs, memory from
 * bytes, a boot disk over the base image, data disks found by serial, one NIC on the bridge with a
 * static address, and the workload's cloud-config as foundry's `spec.cloudInit.userData` extras.
 * Every spec is checked by foundry's own loader, so the limits of a spec file hold here too.
 * @module
 */
import type { CloudConfigOptions } from "../../cloudinit/cloud_config.ts";
import { parseVirtualMachines } from "../../foundry/loader.ts";
import type {
  CloudInit,
  DataDisk,
  DomainType,
  UserDataExtras,
  VirtualMachine,
} from "../../foundry/types.ts";
import { API_VERSION, KIND } from "../../foundry/types.ts";
import type { NeutralVm } from "../backend.ts";
import { ipv4Text, type Subnet } from "./addresses.ts";

/** Label virtwork marks everything it creates with (value {@linkcode MANAGED_BY_VALUE}). */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
/** Value of {@linkcode MANAGED_BY_LABEL}. */
export const MANAGED_BY_VALUE = "virtwork";
/** Label holding the run id. */
export const RUN_ID_LABEL = "virtwork/run-id";

/** Boot disk size of a workload VM in GiB unless told otherwise: the overlay is thin. */
export const DEFAULT_BOOT_DISK_GB = 10;

/** What every VM of a run shares. */
export interface SpecContext {
  /** Run id, put on every VM as {@linkcode RUN_ID_LABEL}. */
  runId: string;
  /** Base image volume (`volume` or `pool:volume`). */
  image: string;
  /** Pool of a bare image volume name. */
  imagePool?: string;
  /** Host bridge of every VM's NIC. */
  bridge: string;
  /** Subnet the addresses come from, with its gateway. */
  subnet: Subnet;
  /** Domain type; foundry's configuration decides when absent. */
  domainType?: DomainType;
  /** Boot disk size in GiB (default {@linkcode DEFAULT_BOOT_DISK_GB}). */
  bootDiskGB?: number;
}

/** Device names of data disks in order: vdb, vdc, ... (foundry's boot disk is vda). */
function dataDevice(i: number): string {
  return `vd${String.fromCharCode("b".charCodeAt(0) + i)}`;
}

/**
 * The workload's cloud-config as foundry's extras plus root's keys and password hash.
 * @throws {RangeError} for what a foundry VM cannot carry (a plain-text password, a file owner
 *   other than root, a top-level key other than `bootcmd`)
 */
export function cloudInitOf(vm: NeutralVm): CloudInit {
  const ud: CloudConfigOptions = vm.userData;
  const where = `VM ${vm.name} user data`;
  if (ud.sshPassword) {
    throw new RangeError(
      `${where}: the libvirt target cannot set a plain-text password (foundry stores only a crypt hash); use SSH keys`,
    );
  }
  const ci: CloudInit = {};
  // Foundry's user is root: the keys a workload's login user would get go to root.
  const keys = (ud.sshAuthorizedKeys ?? []).filter((k) => k.trim() !== "");
  if (keys.length) ci.sshAuthorizedKeys = [...keys];
  if (ud.passwordHash) ci.passwordHash = ud.passwordHash;
  if (ud.sshPwauth !== undefined) ci.sshPwauth = ud.sshPwauth;
  const extras: UserDataExtras = {};
  if (ud.packages?.length) extras.packages = [...ud.packages];
  if (ud.writeFiles?.length) {
    extras.writeFiles = ud.writeFiles.map((f) => {
      if (f.owner !== undefined && !/^root(:root)?$/.test(f.owner)) {
        throw new RangeError(
          `${where}: file ${f.path} has owner ${f.owner}; a libvirt VM's files belong to root`,
        );
      }
      return f.permissions === undefined
        ? { path: f.path, content: f.content }
        : { path: f.path, content: f.content, permissions: f.permissions };
    });
  }
  const argv = (c: string | readonly string[]): string[] =>
    typeof c === "string" ? ["sh", "-c", c] : [...c];
  if (ud.runcmd?.length) extras.runcmd = ud.runcmd.map(argv);
  for (const [key, value] of Object.entries(ud.extra ?? {})) {
    if (value === undefined || value === null) continue;
    if (key === "bootcmd" && Array.isArray(value)) {
      extras.bootcmd = value.map((c) => {
        if (typeof c === "string") return argv(c);
        if (Array.isArray(c) && c.every((a) => typeof a === "string")) return [...c] as string[];
        throw new RangeError(`${where}: bootcmd entries must be strings or lists of strings`);
      });
      continue;
    }
    throw new RangeError(`${where}: cloud-config key "${key}" cannot be carried to a libvirt VM`);
  }
  if (Object.keys(extras).length) ci.userData = extras;
  return ci;
}

/** The foundry spec of one planned VM with its address (dotted quad). */
export function foundryVmOf(vm: NeutralVm, address: string, ctx: SpecContext): VirtualMachine {
  const labels: Record<string, string> = {
    ...vm.labels,
    [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
    [RUN_ID_LABEL]: ctx.runId,
  };
  const mib = Math.ceil(vm.memoryBytes / 2 ** 20);
  const dataDisks: DataDisk[] = vm.dataDisks.map((d, i) => ({
    device: dataDevice(i),
    sizeGB: Math.max(1, Math.ceil(d.sizeBytes / 2 ** 30)),
    serial: d.serial,
  }));
  const bootDisk: VirtualMachine["spec"]["bootDisk"] = {
    sizeGB: ctx.bootDiskGB ?? DEFAULT_BOOT_DISK_GB,
    image: ctx.image,
  };
  if (ctx.imagePool !== undefined && !ctx.image.includes(":")) bootDisk.imagePool = ctx.imagePool;
  const spec: VirtualMachine["spec"] = {
    vcpus: vm.cpuCores,
    memoryGiB: mib / 1024,
    bootDisk,
    networkInterfaces: [{
      ip: `${address}/${ctx.subnet.prefix}`,
      gateway: ipv4Text(ctx.subnet.gateway),
      bridge: ctx.bridge,
    }],
    // Synthetic load does not come back by itself after the host restarts.
    autostart: false,
  };
  if (dataDisks.length) spec.dataDisks = dataDisks;
  const cloudInit = cloudInitOf(vm);
  if (Object.keys(cloudInit).length) spec.cloudInit = cloudInit;
  if (ctx.domainType !== undefined) spec.domainType = ctx.domainType;
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: vm.name, labels, generation: 1 },
    spec,
  };
}

/**
 * The specs as foundry's loader reads them back: every rule and limit of a spec file applies.
 * @throws {import("../../foundry/errors.ts").ValidationError} naming the VM and field
 */
export function checkedSpecs(vms: readonly VirtualMachine[]): VirtualMachine[] {
  if (vms.length === 0) return [];
  // JSON is YAML: one document per VM, so a problem's line points into that VM's document.
  return parseVirtualMachines(
    vms.map((v) => JSON.stringify(v, null, 1)).join("\n---\n"),
    "virtwork plan",
  );
}
