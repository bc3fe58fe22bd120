/**
 * Turns a `VirtualMachine` into its cloud-init NoCloud seed: the configuration for
 * `lib/cloudinit/nocloud.ts` and the three files that go on the `cidata` ISO.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type NoCloudConfig, type NoCloudFiles, noCloudFiles } from "../cloudinit/nocloud.ts";
import { buildIso } from "../iso9660/mod.ts";
import { macOf } from "./naming.ts";
import type { VirtualMachine } from "./types.ts";

export type { NoCloudConfig, NoCloudFiles, NoCloudInterface } from "../cloudinit/nocloud.ts";

/** Options of {@link noCloudConfigFromVm}. */
export interface NoCloudOptions {
  /** Instance ID to use instead of the one derived from the VM. */
  instanceId?: string;
}

/**
 * The guest's short hostname: the first label of `spec.cloudInit.fqdn`, else the VM name with `_` turned
 * into `-` (underscores are not allowed in host names).
 */
export function hostnameOf(vm: VirtualMachine): string {
  const fqdn = vm.spec.cloudInit?.fqdn;
  if (fqdn !== undefined) {
    return fqdn.slice(0, fqdn.indexOf(".") < 0 ? undefined : fqdn.indexOf("."));
  }
  return vm.metadata.name.replaceAll("_", "-");
}

/**
 * The default instance ID: `{name}-{12 hex digits of the SHA-256 of name and spec}`. It is the same for
 * the same spec, so the seed (and the ISO) is deterministic, and it changes whenever the spec does.
 */
export function instanceIdOf(vm: VirtualMachine): string {
  const digest = createHash("sha256").update(canonicalJson([vm.metadata.name, vm.spec])).digest(
    "hex",
  );
  return `${vm.metadata.name}-${digest.slice(0, 12)}`;
}

/**
 * The NoCloud seed configuration of a VM: one interface per `spec.networkInterfaces` entry, matched by
 * the MAC derived from its address; the default route on the interface whose `defaultRoute` is true
 * (the first one unless the spec says otherwise); `spec.cloudInit.userData` as the seed's extras,
 * after foundry's own keys, which it cannot replace.
 */
export function noCloudConfigFromVm(
  vm: VirtualMachine,
  options: NoCloudOptions = {},
): NoCloudConfig {
  const ci = vm.spec.cloudInit;
  const config: NoCloudConfig = {
    instanceId: options.instanceId ?? instanceIdOf(vm),
    hostname: hostnameOf(vm),
    // An interface without `ip` (an adopted VM's) is addressed by the guest itself.
    interfaces: vm.spec.networkInterfaces.flatMap((nic, i) => {
      if (nic.ip === undefined) return [];
      const out: NoCloudConfig["interfaces"][number] = {
        macAddress: macOf(nic),
        addresses: [nic.ip],
      };
      if ((nic.defaultRoute ?? i === 0) && nic.gateway !== undefined) out.gateway = nic.gateway;
      if (nic.dnsServers !== undefined) out.nameservers = [...nic.dnsServers];
      return out;
    }),
  };
  if (ci?.fqdn !== undefined) config.fqdn = ci.fqdn;
  if (ci?.sshAuthorizedKeys !== undefined) config.rootSshAuthorizedKeys = [...ci.sshAuthorizedKeys];
  if (ci?.passwordHash !== undefined) config.rootPasswordHash = ci.passwordHash;
  config.sshPwauth = ci?.sshPwauth ?? false;
  const x = ci?.userData;
  if (x !== undefined) {
    const extras: NonNullable<NoCloudConfig["extras"]> = {};
    if (x.packages?.length) extras.packages = [...x.packages];
    if (x.writeFiles?.length) {
      extras.writeFiles = x.writeFiles.map((f) =>
        f.permissions === undefined
          ? { path: f.path, content: f.content }
          : { path: f.path, content: f.content, permissions: f.permissions }
      );
    }
    if (x.bootcmd?.length) extras.bootcmd = x.bootcmd.map((c) => [...c]);
    if (x.runcmd?.length) extras.runcmd = x.runcmd.map((c) => [...c]);
    config.extras = extras;
  }
  return config;
}

/** The three seed files of a VM, ready to be written to the `cidata` ISO. */
export function noCloudFilesFromVm(vm: VirtualMachine, options: NoCloudOptions = {}): NoCloudFiles {
  return noCloudFiles(noCloudConfigFromVm(vm, options));
}

/** Volume ID cloud-init's NoCloud data source looks for. */
export const CIDATA_VOLUME_ID = "cidata";

/**
 * The VM's cloud-init seed as an ISO 9660 image (volume `cidata`, Joliet and Rock Ridge), ready to be
 * uploaded into the `{vm}_cloudinit` volume. The same VM gives the same bytes.
 *
 * @example
 * ```ts
 * import { cidataIsoFromVm } from "./cloudinit.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/simple-vm.yaml");
 * if (vm) await Deno.writeFile("seed.iso", cidataIsoFromVm(vm));
 * ```
 */
export function cidataIsoFromVm(vm: VirtualMachine, options: NoCloudOptions = {}): Uint8Array {
  const files = noCloudFilesFromVm(vm, options);
  return buildIso(
    (["user-data", "meta-data", "network-config"] as const).map((name) => ({
      name,
      data: files[name],
    })),
    { volumeId: CIDATA_VOLUME_ID },
  );
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
  });
}
