/**
 * The three documents of a cloud-init NoCloud seed (`user-data`, `meta-data`, `network-config`) for a
 * guest with static IPv4 interfaces matched by MAC address and root access by SSH key.
 *
 * The documents are written as YAML 1.1-safe text (strings such as `on` or `12:30` are quoted), since
 * cloud-init reads them with PyYAML, a YAML 1.1 parser.
 *
 * @example
 * ```ts
 * import { noCloudFiles } from "./nocloud.ts";
 * const files = noCloudFiles({
 *   instanceId: "web-01-1",
 *   hostname: "web-01",
 *   fqdn: "web-01.example.org",
 *   rootSshAuthorizedKeys: ["ssh-ed25519 AAAA... me@example.org"],
 *   interfaces: [{ macAddress: "be:ef:c0:00:02:0a", addresses: ["192.0.2.10/24"], gateway: "192.0.2.1" }],
 * });
 * console.log(files["user-data"]);
 * ```
 *
 * @module
 */

import { Scalar, stringify } from "npm:yaml@^2.9.1";
import {
  assertSafeDocument,
  buildCloudConfig,
  CLOUD_INIT_YAML,
  type CloudConfigOptions,
} from "./cloud_config.ts";

/** One guest network interface with static addresses. */
export interface NoCloudInterface {
  /** MAC address the interface is matched by, lowercase `aa:bb:cc:dd:ee:ff`. */
  macAddress: string;
  /** Addresses with prefix length, `192.0.2.10/24`. */
  addresses: string[];
  /** When set, the default route (`0.0.0.0/0`) goes through this gateway. */
  gateway?: string;
  /** DNS servers reached through this interface. */
  nameservers?: string[];
}

/** What the seed sets up in the guest. */
export interface NoCloudConfig {
  /** Instance ID; cloud-init runs its once-per-instance modules again when it changes. */
  instanceId: string;
  /** Short host name, one DNS label. */
  hostname: string;
  /** Fully qualified domain name. */
  fqdn?: string;
  /** OpenSSH public keys authorised for root. */
  rootSshAuthorizedKeys?: string[];
  /** Root's password as a crypt(3) hash. */
  rootPasswordHash?: string;
  /** Whether sshd accepts password authentication; false when absent. */
  sshPwauth?: boolean;
  /** Network interfaces, in guest order: the first is `eth0`. */
  interfaces: NoCloudInterface[];
  /**
   * Packages, files and commands added to the user data (a workload's); they never replace the
   * keys above. `bootcmd` entries run without a shell, like `runcmd` arrays.
   */
  extras?: Pick<CloudConfigOptions, "packages" | "writeFiles" | "runcmd"> & {
    bootcmd?: readonly (readonly string[])[];
  };
}

/** The three files of a NoCloud seed, by file name. */
export interface NoCloudFiles {
  /** `#cloud-config` document. */
  "user-data": string;
  /** Instance metadata. */
  "meta-data": string;
  /** Network configuration version 2. */
  "network-config": string;
}

/**
 * The `user-data` cloud-config: hostname and FQDN, root with its SSH keys, the root password hash and
 * whether sshd allows password logins, then the `extras` (packages, files, commands); written by
 * {@linkcode buildCloudConfig} for user `root`.
 */
export function userData(config: NoCloudConfig): string {
  const extra: Record<string, unknown> = { hostname: config.hostname };
  if (config.fqdn !== undefined) {
    extra.fqdn = config.fqdn;
    // Without an /etc/hosts entry `hostname -f` asks DNS, which an isolated guest may not have:
    // found by booting Debian 12 here ("Temporary failure in name resolution").
    extra.manage_etc_hosts = true;
  }
  const options: CloudConfigOptions = {
    sshUser: "root",
    sshPwauth: config.sshPwauth ?? false,
    extra,
  };
  if (config.rootSshAuthorizedKeys !== undefined) {
    options.sshAuthorizedKeys = config.rootSshAuthorizedKeys;
  }
  if (config.rootPasswordHash !== undefined) options.passwordHash = config.rootPasswordHash;
  const x = config.extras;
  if (x?.packages !== undefined) options.packages = x.packages;
  if (x?.writeFiles !== undefined) options.writeFiles = x.writeFiles;
  if (x?.runcmd !== undefined) options.runcmd = x.runcmd;
  if (x?.bootcmd !== undefined && x.bootcmd.length > 0) {
    extra.bootcmd = x.bootcmd.map((c) => [...c]);
  }
  return buildCloudConfig(options);
}

/** The `meta-data` document: instance ID and local hostname. */
export function metaData(config: NoCloudConfig): string {
  const doc = { "instance-id": config.instanceId, "local-hostname": config.hostname };
  assertSafeDocument(doc, "meta-data");
  return stringify(doc, CLOUD_INIT_YAML);
}

/**
 * The `network-config` document, version 2: interface `ethN` matched by MAC and named `ethN`
 * (`set-name`), with its static addresses,
 * the default route as `to: 0.0.0.0/0` (Debian 12's cloud-init 22.4 rejects `to: default`) and its DNS
 * servers.
 */
export function networkConfig(config: NoCloudConfig): string {
  const ethernets: Record<string, unknown> = {};
  config.interfaces.forEach((nic, i) => {
    const mac = new Scalar(nic.macAddress.toLowerCase());
    mac.type = "QUOTE_DOUBLE";
    // set-name: cloud-init only renames when asked, and both Debian renderers (eni, networkd)
    // configure the name `ethN`, so without it a NIC that the kernel probed in another order
    // would get the other NIC's addresses (found by booting Debian 12 with swapped MACs).
    const eth: Record<string, unknown> = {
      match: { macaddress: mac },
      "set-name": `eth${i}`,
      addresses: [...nic.addresses],
    };
    if (nic.gateway !== undefined) eth.routes = [{ to: "0.0.0.0/0", via: nic.gateway }];
    if (nic.nameservers !== undefined && nic.nameservers.length > 0) {
      eth.nameservers = { addresses: [...nic.nameservers] };
    }
    ethernets[`eth${i}`] = eth;
  });
  assertSafeDocument(config.interfaces, "network-config");
  return stringify({ version: 2, ethernets }, CLOUD_INIT_YAML);
}

/** All three documents of the seed. */
export function noCloudFiles(config: NoCloudConfig): NoCloudFiles {
  return {
    "user-data": userData(config),
    "meta-data": metaData(config),
    "network-config": networkConfig(config),
  };
}
