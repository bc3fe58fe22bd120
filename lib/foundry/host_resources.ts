/**
 * What the host can give a VM, read from libvirt: logical CPUs and memory (capabilities
 * `<topology>`), the most vCPUs its QEMU accepts for a q35 machine (domain capabilities
 * `<vcpu max>`), and the capacity and free space of the VM's pool. The runtime checks
 * (preflight.ts) hold a VM against these before anything is created.
 *
 * {@linkcode HostSurvey} reads everything create's checks need once, each fact at most once per
 * file, with the independent calls sent together.
 *
 * @module
 */

import {
  type Libvirt,
  LibvirtError,
  MetadataType,
  StoragePoolState,
  type StorageVolRef,
} from "../libvirt/mod.ts";
import { type FoundryConfig, imageLocationFor, vmPoolFor } from "./config.ts";
import { chooseDomainType, kvmOffered } from "./domain_xml.ts";
import { METADATA_NAMESPACE, parseStoredMetadataXml, type StoredVm } from "./metadata.ts";
import type { HostFacts, HostResources } from "./preflight.ts";
import { specFacts } from "./spec_media.ts";
import type { DomainType, VirtualMachine } from "./types.ts";

/** Logical CPUs and memory in bytes from the host's capabilities `<topology>`. */
export function hostTopology(capabilitiesXml: string): { cpus?: number; memoryBytes?: number } {
  const cells = /<cells\b[^>]*>([\s\S]*?)<\/cells>/.exec(capabilitiesXml)?.[1];
  if (cells === undefined) return {};
  let cpus = 0;
  let kib = 0;
  for (const m of cells.matchAll(/<cpus\s+num=['"](\d+)['"]/g)) cpus += Number(m[1]);
  for (const m of cells.matchAll(/<memory\s+unit=['"]KiB['"]>(\d+)<\/memory>/g)) {
    kib += Number(m[1]);
  }
  const out: { cpus?: number; memoryBytes?: number } = {};
  if (cpus > 0) out.cpus = cpus;
  if (kib > 0) out.memoryBytes = kib * 1024;
  return out;
}

/** The most vCPUs the host's QEMU accepts for a q35 machine of `virtType`; undefined when unknown. */
export async function maxVcpusOf(lv: Libvirt, virtType: string): Promise<number | undefined> {
  try {
    const xml = await lv.getDomainCapabilities({ arch: "x86_64", machine: "q35", virtType });
    const n = Number(/<vcpu\s+max=['"](\d+)['"]/.exec(xml)?.[1]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Capacity and free space of pool `name`; undefined when it does not exist (yet) or is not running:
 * an inactive pool reports 0 bytes, which says nothing of its directory (create starts it).
 */
export async function poolSpaceOf(lv: Libvirt, name: string): Promise<HostResources["vmPool"]> {
  try {
    const info = await lv.storagePoolGetInfo(await lv.storagePoolLookupByName(name));
    // A concurrent create may have defined the pool and not started it yet.
    if (info.state !== StoragePoolState.RUNNING) return undefined;
    return { name, capacity: info.capacity, available: info.available };
  } catch (e) {
    // The configured VM pool does not exist yet: create makes it in its directory.
    if (e instanceof LibvirtError && e.isNoStoragePool()) return undefined;
    throw e;
  }
}

/** Everything {@linkcode HostResources} holds for `vm`, read from libvirt. */
export async function hostResources(
  lv: Libvirt,
  vm: VirtualMachine,
  config: FoundryConfig,
  poolFlag?: string,
): Promise<HostResources> {
  return (await new HostSurvey(lv).factsFor(vm, config, poolFlag)).facts.host ?? {};
}

/** A domain of the host as create's checks see it. */
export interface SurveyedDomain {
  /** Domain name. */
  name: string;
  /** Whether the domain carries foundry's metadata (readable or not). */
  foundry: boolean;
  /** The stored VM, when the metadata could be read. */
  stored?: StoredVm;
}

/** The facts create's checks hold one VM against, and the domain type it gets. */
export interface CreateFacts {
  /** Input of `preflightProblems`. */
  facts: HostFacts;
  /** `kvm` or `qemu`, as `chooseDomainType` decides with the host's capabilities. */
  domainType: DomainType;
  /** The boot image's volume, when it is a volume of a pool that exists. */
  imageVolume?: StorageVolRef;
}

/**
 * Reads the host for create's runtime checks, each fact once however many VMs ask for it: domains
 * (foundry's with their stored spec, from the metadata element rather than the whole domain XML),
 * bridges, capabilities, QEMU's vCPU maximum per domain type, pools' space and image volumes.
 * Everything one VM needs that does not depend on another answer is asked for at once, so the
 * facts of a VM cost two round trips.
 */
export class HostSurvey {
  readonly #lv: Libvirt;
  readonly #memo = new Map<string, Promise<unknown>>();

  /** A survey of the host `lv` is connected to; nothing is read until asked for. */
  constructor(lv: Libvirt) {
    this.#lv = lv;
  }

  #once<T>(key: string, read: () => Promise<T>): Promise<T> {
    let p = this.#memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = read();
      // Read once, awaited later: an early failure must not be reported as unhandled.
      p.catch(() => {});
      this.#memo.set(key, p);
    }
    return p;
  }

  /** The host's capabilities XML. */
  capabilities(): Promise<string> {
    return this.#once("caps", () => this.#lv.getCapabilities());
  }

  /** Every domain, with foundry's stored VM where there is one. */
  domains(): Promise<SurveyedDomain[]> {
    return this.#once("domains", async () => {
      const lv = this.#lv;
      const list = await lv.listAllDomains();
      return await Promise.all(list.map(async (d): Promise<SurveyedDomain> => {
        let xml: string;
        try {
          xml = await lv.domainGetMetadata(d, MetadataType.ELEMENT, METADATA_NAMESPACE);
        } catch {
          // No foundry metadata (or undefined since the listing): not foundry's.
          return { name: d.name, foundry: false };
        }
        try {
          const stored = parseStoredMetadataXml(xml, d.name);
          return stored ? { name: d.name, foundry: true, stored } : { name: d.name, foundry: true };
        } catch {
          return { name: d.name, foundry: true };
        }
      }));
    });
  }

  /** Names of the host's bridges (see {@linkcode hostBridges}). */
  bridges(): Promise<string[]> {
    return this.#once("bridges", () => hostBridges(this.#lv));
  }

  /** QEMU's vCPU maximum for a q35 machine of `virtType`. */
  maxVcpus(virtType: string): Promise<number | undefined> {
    return this.#once(`vcpus:${virtType}`, () => maxVcpusOf(this.#lv, virtType));
  }

  /** Capacity and free space of pool `name`; undefined when it does not exist. */
  poolSpace(name: string): Promise<HostResources["vmPool"]> {
    return this.#once(`space:${name}`, () => poolSpaceOf(this.#lv, name));
  }

  /** The volumes of pool `name`; undefined when it does not exist. */
  volumes(name: string): Promise<StorageVolRef[] | undefined> {
    return this.#once(`vols:${name}`, () =>
      this.#lv.storagePoolLookupByName(name).then(
        (p) => this.#lv.storagePoolListAllVolumes(p),
        (e) => {
          if (e instanceof LibvirtError && e.isNoStoragePool()) return undefined;
          throw e;
        },
      ));
  }

  /** Whether a volume with key or path `path` exists (a file-path image). */
  fileExists(path: string): Promise<boolean> {
    return this.#once(
      `file:${path}`,
      () => this.#lv.storageVolLookupByPath(path).then(() => true, () => false),
    );
  }

  /** The domain type `vm` gets; the capabilities are parsed only when the choice needs them. */
  async domainType(vm: VirtualMachine, config: FoundryConfig): Promise<DomainType> {
    if (vm.spec.domainType !== undefined || config.domainType !== "auto") {
      return chooseDomainType(vm, config.domainType, false);
    }
    return await this.#once(
      "kvm",
      async () => kvmOffered(await this.capabilities()),
    ).then((kvm) => chooseDomainType(vm, config.domainType, kvm));
  }

  /** The facts `vm` is checked against; `poolFlag` is create's `--pool`. */
  async factsFor(
    vm: VirtualMachine,
    config: FoundryConfig,
    poolFlag?: string,
  ): Promise<CreateFacts> {
    const loc = imageLocationFor(vm, config);
    const type = this.domainType(vm, config);
    const [domainType, max, domains, bridges, caps, pool, images, fileExists] = await Promise.all([
      type,
      // Asked as soon as the domain type is known: at once when it is configured.
      type.then((t) => this.maxVcpus(t)),
      this.domains(),
      this.bridges(),
      this.capabilities(),
      this.poolSpace(vmPoolFor(vm, config, poolFlag)),
      loc?.kind === "volume" ? this.volumes(loc.pool) : undefined,
      loc?.kind === "path" ? this.fileExists(loc.path) : undefined,
    ]);
    const host: HostResources = { ...hostTopology(caps) };
    if (max !== undefined) host.maxVcpus = max;
    if (pool !== undefined) host.vmPool = pool;
    const facts: HostFacts = {
      domains: domains.map((d) => d.name),
      bridges,
      foundryVms: domains.flatMap((d) => (d.stored ? [d.stored.vm] : [])),
      imageVolumes: images?.map((v) => v.name),
      imagesPool: config.imagesPool,
      host,
    };
    if (fileExists !== undefined) facts.imageFileExists = fileExists;
    // Install media, existing disks, a boot image file outside the pools, the console password.
    Object.assign(facts, await specFacts(this, vm, config));
    const out: CreateFacts = { facts, domainType };
    const volume = loc?.kind === "volume" ? images?.find((v) => v.name === loc.volume) : undefined;
    if (volume) out.imageVolume = volume;
    return out;
  }
}

/** Names of the host's bridges: interfaces of type bridge, and virtual networks' bridges. */
export async function hostBridges(lv: Libvirt): Promise<string[]> {
  const out = new Set<string>();
  const [ifaces, networks] = await Promise.all([
    lv.listAllInterfaces().catch((e) => {
      if (e instanceof LibvirtError && e.isNoSupport()) return [];
      throw e;
    }),
    lv.listAllNetworks(),
  ]);
  const [ifaceXmls, netXmls] = await Promise.all([
    Promise.all(ifaces.map((i) => lv.interfaceGetXmlDesc(i).catch(() => ""))),
    Promise.all(networks.map((n) => lv.networkGetXmlDesc(n))),
  ]);
  ifaces.forEach((i, k) => {
    if (/^<interface[^>]*type=['"]bridge['"]/.test(ifaceXmls[k] ?? "")) out.add(i.name);
  });
  for (const xml of netXmls) {
    const m = /<bridge\s[^>]*name=['"]([^'"]+)['"]/.exec(xml);
    if (m?.[1]) out.add(m[1]);
  }
  return [...out].sort();
}
