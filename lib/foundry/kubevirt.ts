/**
 * The same `foundry.cofront.xyz/v1alpha1` `VirtualMachine` on KubeVirt (`foundry create --target
 * kubevirt`): the objects a spec becomes ({@linkcode kubevirtManifests}, pure) and the operations
 * on a cluster that create, read, list and remove them through an injected
 * {@linkcode KubevirtCluster} (the CLI passes `lib/kubevirt/client.ts`'s client).
 *
 * What a spec becomes:
 * - a `kubevirt.io/v1` `VirtualMachine` named as the VM, labelled with the spec's labels and
 *   `foundry.cofront.xyz/managed: "true"`, the stored document (without the password hash) in the
 *   annotation `foundry.cofront.xyz/spec`;
 * - the boot disk a DataVolume template (`{name}-boot`) imported from an `http(s)` URL or cloned
 *   from a PVC (`pvc:NAMESPACE/NAME`), sized `bootDisk.sizeGB` GiB; data disks blank DataVolume
 *   templates (`{name}-data-{device}`);
 * - each NIC a `bridge` interface with the spec's MAC on a Multus network whose
 *   NetworkAttachmentDefinition is named after the host bridge (CNI `bridge`, no IPAM);
 * - cloud-init through `cloudInitNoCloud`: the same `user-data` and `network-config` as the
 *   libvirt path's seed ISO (`noCloudFilesFromVm`); user data holding a password hash (or too large
 *   to be inline) goes into the Secret `{name}-userdata`, so the VirtualMachine holds no secret.
 *
 * @example
 * ```ts
 * import { kubevirtManifests } from "./kubevirt.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/simple-vm.yaml");
 * if (vm) {
 *   const m = kubevirtManifests(vm, { namespace: "lab", imageUrl: "https://example.org/debian-12.qcow2" });
 *   console.log(m.vm.metadata.name, m.networks.map((n) => n.metadata.name));
 * }
 * ```
 * @module
 */

import type { ApiObject } from "../kubevirt/client.ts";
import { labelKeyProblem, labelValueProblem } from "../config/selector.ts";
import { isStatus, KubeApiError } from "../kubevirt/errors.ts";
import { encodeBase64, SECRET_USERDATA_KEY, USERDATA_INLINE_MAX } from "../kubevirt/manifests.ts";
import { formatQuantity } from "../workloads/quantity.ts";
import { hostnameOf, noCloudFilesFromVm } from "./cloudinit.ts";
import { macOf, resolveImage } from "./naming.ts";
import { canonicalJson, specDocument } from "./stored_metadata.ts";
import { API_VERSION, type Condition, KIND, type Phase, type VirtualMachine } from "./types.ts";
import { VmNotFoundError, VmOperationError } from "./vm_errors.ts";

export type { ApiObject };

/** Metadata of an object foundry sends to the cluster. */
export interface ClusterObjectMeta {
  /** Object name. */
  name: string;
  /** Namespace. */
  namespace?: string;
  /** Labels. */
  labels?: Record<string, string>;
  /** Annotations. */
  annotations?: Record<string, string>;
}

/** An object foundry sends to the cluster, in the API's wire shape (prints as YAML, posts as-is). */
export interface ClusterObject {
  /** API group/version, e.g. `kubevirt.io/v1`. */
  apiVersion: string;
  /** Kind, e.g. `VirtualMachine`. */
  kind: string;
  /** Name, namespace, labels, annotations. */
  metadata: ClusterObjectMeta;
  /** Kind-specific fields. */
  [key: string]: unknown;
}

/** Label every object foundry makes on a cluster carries. */
export const MANAGED_LABEL = "foundry.cofront.xyz/managed";
/** Label naming the foundry VM an object belongs to (pod template, Secret, DataVolumes). */
export const VM_LABEL = "foundry.cofront.xyz/vm";
/** Annotation holding the stored `v1alpha1` document (JSON, without the password hash). */
export const SPEC_ANNOTATION = "foundry.cofront.xyz/spec";
/** API version of Multus NetworkAttachmentDefinitions. */
export const NAD_API_VERSION = "k8s.cni.cncf.io/v1";
/** Plural resource name of NetworkAttachmentDefinitions. */
export const NAD_RESOURCE = "network-attachment-definitions";
/** Key of the network data in the user-data Secret, when it is too large to be inline. */
export const SECRET_NETWORKDATA_KEY = "networkdata";
/** Largest inline `cloudInitNoCloud.networkData` KubeVirt's webhook accepts, in bytes. */
export const NETWORKDATA_INLINE_MAX = 2048;
/** Most bytes of all annotations of an object (the API server's limit). */
export const ANNOTATIONS_MAX_BYTES = 256 * 1024;

/** Name of the disk and volume of the boot disk. */
export const BOOT_VOLUME = "boot";
/** Name of the CD-ROM and volume of the installation media. */
export const INSTALL_VOLUME = "install";
/** Size of the DataVolume an installation ISO is imported into from a URL, GiB (a DVD fits). */
export const INSTALL_MEDIA_SIZE_GB = 8;
/** Name of the disk and volume of the cloud-init data. */
export const CLOUDINIT_VOLUME = "cloudinit";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Where a boot disk's content comes from. */
export type ImageSource =
  | { kind: "http"; url: string }
  | { kind: "pvc"; namespace: string; name: string };

/** How a spec becomes KubeVirt objects. */
export interface KubevirtOptions {
  /** Namespace of every object. */
  namespace: string;
  /** Boot image of every VM: an `http(s)` URL or `pvc:NAMESPACE/NAME`. */
  imageUrl?: string;
  /**
   * Boot images by the spec's `bootDisk.image`, as written (`foundry-images:debian-12.qcow2`) or
   * by its volume name (`debian-12.qcow2`): each an `http(s)` URL or `pvc:NAMESPACE/NAME`
   * (`--image NAME=SOURCE`). `imageUrl` wins over this.
   */
  images?: Readonly<Record<string, string>>;
  /**
   * Installation media (`spec.installMedia`) of every VM: an `http(s)` URL or `pvc:NAMESPACE/NAME`
   * (`--install-media-url`); else `images` by the ISO's name, as for the boot image.
   */
  installMediaUrl?: string;
  /** Storage class of every DataVolume; the cluster's default when absent. */
  storageClass?: string;
  /** `runStrategy: Halted` instead of `Always` (the VM is defined, not started). */
  noStart?: boolean;
}

/** The objects one VM becomes, in the order they are created. */
export interface KubevirtManifests {
  /** The NetworkAttachmentDefinitions the VM's NICs use, one per bridge (shared by VMs). */
  networks: ClusterObject[];
  /** The user-data Secret, when the user data holds a password hash or is too large inline. */
  secret?: ClusterObject;
  /** The VirtualMachine. */
  vm: ClusterObject;
  /** Fields with no KubeVirt meaning that were left out, one line each (`spec.autostart: ...`). */
  notes: string[];
  /**
   * Fields KubeVirt carries over only in part or not at all (a VNC password, SPICE, NUMA cells):
   * never silent, the CLI warns of each and a real create needs the user's consent.
   */
  lossy: LossyField[];
}

/** A field of the spec that the KubeVirt objects carry over only in part. */
export interface LossyField {
  /** Field path, `spec.numa`. */
  path: string;
  /** What is lost and why, without the field's value (it may be a secret's path). */
  detail: string;
}

/**
 * A field of the spec that KubeVirt cannot honour, or a boot image with no source: `path` is the
 * field (`spec.numa`), `vmName` the VM.
 */
export class KubevirtMappingError extends Error {
  /** The VM whose spec has the field. */
  readonly vmName: string;
  /** Field path, `spec.networkInterfaces[0].bridge`. */
  readonly path: string;
  /** The spec's boot image, when the error is that no source was given for it (option `images`). */
  readonly unsourcedImage: string | undefined;
  /** Creates the error; the message is `path: detail`. */
  constructor(vmName: string, path: string, detail: string, unsourcedImage?: string) {
    super(`${path}: ${detail}`);
    this.name = "KubevirtMappingError";
    this.vmName = vmName;
    this.path = path;
    this.unsourcedImage = unsourcedImage;
  }
}

/**
 * Parses a boot image source: `http://...`/`https://...` (imported by CDI) or
 * `pvc:NAMESPACE/NAME` (cloned by CDI).
 *
 * @throws {RangeError} for anything else
 */
export function parseImageSource(text: string): ImageSource {
  if (text.startsWith("pvc:")) {
    const [ns, name, ...rest] = text.slice(4).split("/");
    if (
      ns === undefined || name === undefined || rest.length > 0 || !DNS1123_LABEL.test(ns) ||
      ns.length > 63 || !DNS1123_SUBDOMAIN.test(name) || name.length > 253
    ) {
      throw new RangeError(
        `expected pvc:NAMESPACE/NAME with a namespace and a PVC name as Kubernetes names them, got ${
          JSON.stringify(text)
        }`,
      );
    }
    return { kind: "pvc", namespace: ns, name };
  }
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || !url.host) {
    throw new RangeError(
      `expected an http(s) URL or pvc:NAMESPACE/NAME, got ${JSON.stringify(text.slice(0, 200))}`,
    );
  }
  return { kind: "http", url: text };
}

/**
 * The source of an image of `vm` (its boot disk's, or with `media` its installation ISO's) under
 * `o`, or undefined when none is configured.
 */
function imageSource(
  vm: VirtualMachine,
  o: KubevirtOptions,
  media = false,
): ImageSource | undefined {
  const { image, imagePool } = media
    ? (vm.spec.installMedia ?? { image: undefined, imagePool: undefined })
    : vm.spec.bootDisk;
  let text = media ? o.installMediaUrl : o.imageUrl;
  if (text === undefined && image !== undefined && o.images) {
    text = o.images[image];
    if (text === undefined) {
      const loc = resolveImage(image, imagePool);
      if (loc.kind === "volume") text = o.images[loc.volume];
    }
  }
  if (text === undefined) return undefined;
  try {
    return parseImageSource(text);
  } catch (e) {
    const path = media ? "spec.installMedia.image" : "spec.bootDisk.image";
    throw new KubevirtMappingError(vm.metadata.name, path, (e as Error).message);
  }
}

/** A DataVolume source from an image source. */
function dataVolumeSource(src: ImageSource): Record<string, unknown> {
  return src.kind === "http"
    ? { http: { url: src.url } }
    : { pvc: { namespace: src.namespace, name: src.name } };
}

/** Name of the DataVolume of `vmName`'s boot disk. */
export function bootDataVolumeName(vmName: string): string {
  return `${vmName}-boot`;
}

/** Name of the DataVolume of `vmName`'s data disk `device`. */
export function dataDataVolumeName(vmName: string, device: string): string {
  return `${vmName}-data-${device}`;
}

/** Name of the DataVolume of `vmName`'s installation media. */
export function installDataVolumeName(vmName: string): string {
  return `${vmName}-install`;
}

/** Name of `vmName`'s user-data Secret. */
export function userDataSecretName(vmName: string): string {
  return `${vmName}-userdata`;
}

/** The Multus network (and interface) name of NIC `index`. */
export function nicName(index: number): string {
  return `nic${index}`;
}

/**
 * The NetworkAttachmentDefinition of host bridge `bridge`: CNI `bridge` on that bridge, no IPAM
 * (the guest's addresses come from cloud-init), named after the bridge.
 */
export function networkAttachmentDefinition(bridge: string, namespace: string): ClusterObject {
  return {
    apiVersion: NAD_API_VERSION,
    kind: "NetworkAttachmentDefinition",
    metadata: { name: bridge, namespace, labels: { [MANAGED_LABEL]: "true" } },
    spec: {
      config: JSON.stringify({ cniVersion: "0.3.1", name: bridge, type: "bridge", bridge }),
    },
  };
}

/** `sizeGB` GiB as a Kubernetes quantity. */
function gib(sizeGB: number): string {
  return formatQuantity(Math.round(sizeGB * 1024) * 1024 * 1024);
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** The stored document of `vm`: no status, no password hash, as JSON with sorted keys. */
export function storedSpecJson(vm: VirtualMachine): string {
  return canonicalJson(specDocument(vm));
}

/** The `spec.template.spec.domain.cpu` of `vm`, or a mapping error. */
function cpuOf(vm: VirtualMachine): Record<string, unknown> {
  const s = vm.spec;
  const mode = s.cpu?.mode ?? s.cpuMode;
  const cpu: Record<string, unknown> = {};
  const t = s.cpu;
  if (t && (t.sockets !== undefined || t.cores !== undefined || t.threads !== undefined)) {
    // foundry's topology covers the vCPU maximum (resize headroom); KubeVirt's covers the vCPUs
    // in use, with the headroom as more sockets (maxSockets).
    const threads = t.threads ?? 1;
    const cores = t.cores ?? Math.max(1, Math.floor(s.vcpus / ((t.sockets ?? 1) * threads)));
    const perSocket = cores * threads;
    if (s.vcpus % perSocket !== 0) {
      throw new KubevirtMappingError(
        vm.metadata.name,
        "spec.cpu",
        `KubeVirt needs the vCPUs as whole sockets: ${s.vcpus} vCPUs are not a multiple of ${cores} cores x ${threads} threads`,
      );
    }
    cpu.sockets = s.vcpus / perSocket;
    cpu.cores = cores;
    cpu.threads = threads;
    if (t.sockets !== undefined && t.sockets > (cpu.sockets as number)) cpu.maxSockets = t.sockets;
  } else {
    cpu.cores = s.vcpus;
  }
  if (mode !== undefined) cpu.model = mode;
  return cpu;
}

/**
 * The KubeVirt objects of `vm`: see the module's description. Fields without a KubeVirt meaning
 * (`domainType`, `storagePool`, `autostart`, `resources`, `graphics.listen`) are left out and named
 * in `notes`. Fields carried over in part are named in `lossy`:
 * - `graphics`: the VM keeps KubeVirt's graphics device (`autoattachGraphicsDevice: true`; false
 *   without `graphics`, serial console only as on libvirt), reached with `virtctl vnc` through the
 *   API server and the cluster's authentication; a `passwordSecret` has no KubeVirt field and is
 *   dropped (the file is never read), and `spice` becomes VNC, KubeVirt's only protocol;
 * - `numa`: KubeVirt takes no explicit guest NUMA cells (only `guestMappingPassthrough`, which needs
 *   dedicated CPUs and hugepages, which a spec cannot ask for), so the cells are dropped and the CPU
 *   topology kept.
 *
 * `installMedia` becomes a SATA CD-ROM backed by a DataVolume (`{name}-install`, imported from
 * `installMediaUrl` or `images`, {@linkcode INSTALL_MEDIA_SIZE_GB} GiB; a PVC clone takes its
 * source's size) with boot order 2 after the blank boot disk: the firmware passes over the empty
 * disk to the installer on the first boot, and boots the installed system from then on.
 *
 * @throws {KubevirtMappingError} for a field that cannot be honoured: a name KubeVirt refuses,
 *   no source for the boot image or the installation media, an existing libvirt disk, a bridge
 *   that cannot name a NetworkAttachmentDefinition
 */
export function kubevirtManifests(vm: VirtualMachine, o: KubevirtOptions): KubevirtManifests {
  const name = vm.metadata.name;
  const s = vm.spec;
  const fail = (path: string, detail: string): never => {
    throw new KubevirtMappingError(name, path, detail);
  };
  if (!DNS1123_SUBDOMAIN.test(name) || name.length > 63) {
    fail(
      "metadata.name",
      `KubeVirt needs a lowercase RFC 1123 name of at most 63 characters (no '_'), got ${
        JSON.stringify(name)
      }`,
    );
  }
  const notes: string[] = [];
  const ignore = (path: string, why: string) => notes.push(`${path}: ignored on KubeVirt (${why})`);
  if (s.domainType !== undefined) ignore("spec.domainType", "KubeVirt chooses KVM or emulation");
  if (s.storagePool !== undefined) {
    ignore("spec.storagePool", "DataVolumes use the storage class");
  }
  if (s.autostart !== undefined) ignore("spec.autostart", "runStrategy Always restarts the VM");
  if (s.resources !== undefined) ignore("spec.resources", "no live-resize headroom is reserved");
  if (s.bootDisk.imagePool !== undefined) {
    ignore("spec.bootDisk.imagePool", "the image's source is given apart from the spec");
  }
  const lossy: LossyField[] = [];
  if (s.numa !== undefined && s.numa.length > 0) {
    lossy.push({
      path: "spec.numa",
      detail: `the ${s.numa.length} NUMA cells are not carried over: KubeVirt takes no explicit ` +
        "guest NUMA cells (only guestMappingPassthrough, which needs dedicated CPUs and " +
        "hugepages); the CPU topology is kept",
    });
  }
  if (s.graphics !== undefined) {
    if (s.graphics.type !== "vnc") {
      lossy.push({
        path: "spec.graphics.type",
        detail: `${s.graphics.type} becomes VNC, the only console protocol KubeVirt offers ` +
          "(virtctl vnc)",
      });
    }
    if (s.graphics.passwordSecret !== undefined) {
      lossy.push({
        path: "spec.graphics.passwordSecret",
        detail: "the console password is not carried over: KubeVirt's VNC has no password, it " +
          "is reached through the API server (virtctl vnc) with the cluster's authentication",
      });
    }
    if (s.graphics.listen !== undefined) {
      ignore("spec.graphics.listen", "the console is reached through the API server");
    }
  }
  if (s.bootDisk.volume !== undefined) {
    fail("spec.bootDisk.volume", "an existing libvirt disk cannot be used on KubeVirt");
  }
  for (const [i, d] of (s.dataDisks ?? []).entries()) {
    if (d.volume !== undefined) {
      fail(`spec.dataDisks[${i}].volume`, "an existing libvirt disk cannot be used on KubeVirt");
    }
  }
  for (const k of Object.keys(vm.metadata.annotations ?? {})) {
    if (k === SPEC_ANNOTATION) fail("metadata.annotations", `${k} is foundry's own annotation`);
    const problem = labelKeyProblem(k);
    if (problem) fail("metadata.annotations", `Kubernetes refuses the annotation ${problem}`);
  }
  for (const [k, v] of Object.entries(vm.metadata.labels ?? {})) {
    const problem = labelKeyProblem(k) ?? labelValueProblem(v);
    if (problem) fail("metadata.labels", `Kubernetes refuses the label ${problem}`);
  }
  const labels: Record<string, string> = { ...vm.metadata.labels, [MANAGED_LABEL]: "true" };
  const podLabels = { ...labels, [VM_LABEL]: name };
  const storage = (sizeGB: number) => ({
    resources: { requests: { storage: gib(sizeGB) } },
    ...(o.storageClass !== undefined ? { storageClassName: o.storageClass } : {}),
  });
  const dvTemplate = (dvName: string, source: Record<string, unknown>, sizeGB: number) => ({
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name: dvName, labels: { ...podLabels } },
    spec: { source, storage: storage(sizeGB) },
  });

  let bootSourceSpec: Record<string, unknown>;
  if (s.bootDisk.empty === true) {
    bootSourceSpec = { blank: {} };
  } else {
    const src = imageSource(vm, o);
    if (src === undefined) {
      const image = s.bootDisk.image ?? "";
      throw new KubevirtMappingError(
        name,
        "spec.bootDisk.image",
        `no KubeVirt source (http(s) URL or PVC) for image ${JSON.stringify(image)}`,
        image,
      );
    }
    bootSourceSpec = dataVolumeSource(src);
  }
  const dataVolumeTemplates: Record<string, unknown>[] = [
    dvTemplate(bootDataVolumeName(name), bootSourceSpec, s.bootDisk.sizeGB),
  ];
  const disks: Record<string, unknown>[] = [
    { name: BOOT_VOLUME, disk: { bus: "virtio" }, bootOrder: 1 },
  ];
  const volumes: Record<string, unknown>[] = [
    { name: BOOT_VOLUME, dataVolume: { name: bootDataVolumeName(name) } },
  ];
  if (s.installMedia !== undefined) {
    const src = imageSource(vm, o, true);
    if (src === undefined) {
      throw new KubevirtMappingError(
        name,
        "spec.installMedia.image",
        `no KubeVirt source (http(s) URL or PVC) for installation media ${
          JSON.stringify(s.installMedia.image)
        }`,
        s.installMedia.image,
      );
    }
    const dv = installDataVolumeName(name);
    dataVolumeTemplates.push({
      ...dvTemplate(dv, dataVolumeSource(src), INSTALL_MEDIA_SIZE_GB),
      // A clone takes its source's size; an import needs one.
      ...(src.kind === "pvc"
        ? {
          spec: {
            source: dataVolumeSource(src),
            storage: o.storageClass !== undefined ? { storageClassName: o.storageClass } : {},
          },
        }
        : {}),
    });
    disks.push({ name: INSTALL_VOLUME, cdrom: { bus: "sata", readonly: true }, bootOrder: 2 });
    volumes.push({ name: INSTALL_VOLUME, dataVolume: { name: dv } });
  }
  for (const d of s.dataDisks ?? []) {
    const dv = dataDataVolumeName(name, d.device);
    dataVolumeTemplates.push(dvTemplate(dv, { blank: {} }, d.sizeGB));
    const volume = `data-${d.device}`;
    disks.push({
      name: volume,
      disk: { bus: "virtio" },
      ...(d.serial !== undefined ? { serial: d.serial } : {}),
    });
    volumes.push({ name: volume, dataVolume: { name: dv } });
  }

  const networks: ClusterObject[] = [];
  const interfaces: Record<string, unknown>[] = [];
  const multus: Record<string, unknown>[] = [];
  for (const [i, nic] of s.networkInterfaces.entries()) {
    if (!DNS1123_LABEL.test(nic.bridge) || nic.bridge.length > 63) {
      fail(
        `spec.networkInterfaces[${i}].bridge`,
        `bridge ${
          JSON.stringify(nic.bridge)
        } cannot name a NetworkAttachmentDefinition (a lowercase RFC 1123 label)`,
      );
    }
    if (!networks.some((n) => n.metadata.name === nic.bridge)) {
      networks.push(networkAttachmentDefinition(nic.bridge, o.namespace));
    }
    interfaces.push({ name: nicName(i), bridge: {}, macAddress: macOf(nic), model: "virtio" });
    multus.push({ name: nicName(i), multus: { networkName: nic.bridge } });
  }

  // The libvirt path's seed content: meta-data is KubeVirt's own (instance ID from the VMI).
  const files = noCloudFilesFromVm(vm);
  const userData = files["user-data"];
  const networkData = files["network-config"];
  const secretData: Record<string, string> = {};
  const noCloud: Record<string, unknown> = {};
  if (s.cloudInit?.passwordHash !== undefined || utf8Length(userData) > USERDATA_INLINE_MAX) {
    secretData[SECRET_USERDATA_KEY] = userData;
    noCloud.secretRef = { name: userDataSecretName(name) };
  } else noCloud.userData = userData;
  if (utf8Length(networkData) > NETWORKDATA_INLINE_MAX) {
    secretData[SECRET_NETWORKDATA_KEY] = networkData;
    noCloud.networkDataSecretRef = { name: userDataSecretName(name) };
  } else noCloud.networkData = networkData;
  let secret: ClusterObject | undefined;
  if (Object.keys(secretData).length > 0) {
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(secretData)) data[k] = encodeBase64(v);
    secret = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: userDataSecretName(name), namespace: o.namespace, labels: podLabels },
      type: "Opaque",
      data,
    };
  }
  disks.push({ name: CLOUDINIT_VOLUME, disk: { bus: "virtio" } });
  volumes.push({ name: CLOUDINIT_VOLUME, cloudInitNoCloud: noCloud });

  const memory = formatQuantity(Math.round(s.memoryGiB * 1024) * 1024 * 1024);
  const annotations: Record<string, string> = {
    ...vm.metadata.annotations,
    [SPEC_ANNOTATION]: storedSpecJson(vm),
  };
  let annotationBytes = 0;
  for (const [k, v] of Object.entries(annotations)) annotationBytes += utf8Length(k + v);
  if (annotationBytes > ANNOTATIONS_MAX_BYTES) {
    fail(
      "spec",
      `the stored spec makes the annotations ${annotationBytes} bytes, more than Kubernetes' ${ANNOTATIONS_MAX_BYTES}`,
    );
  }
  const vmObject: ClusterObject = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace: o.namespace, labels, annotations },
    spec: {
      runStrategy: o.noStart === true ? "Halted" : "Always",
      dataVolumeTemplates,
      template: {
        metadata: { labels: podLabels },
        spec: {
          hostname: hostnameOf(vm),
          domain: {
            cpu: cpuOf(vm),
            memory: { guest: memory },
            resources: { requests: { memory } },
            devices: {
              disks,
              interfaces,
              rng: {},
              autoattachGraphicsDevice: s.graphics !== undefined,
            },
          },
          networks: multus,
          volumes,
        },
      },
    },
  };
  return { networks, ...(secret ? { secret } : {}), vm: vmObject, notes, lossy };
}

/**
 * `m`'s objects for printing: the Secret's data values replaced by `(redacted, N bytes)`, so a
 * password hash never reaches the output.
 */
export function redactedObjects(m: KubevirtManifests, withNetworks: boolean): ClusterObject[] {
  const out: ClusterObject[] = withNetworks ? [...m.networks] : [];
  if (m.secret) {
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.secret.data as Record<string, string>)) {
      data[k] = `(redacted, ${atob(v).length} bytes)`;
    }
    out.push({ ...m.secret, data });
  }
  out.push(m.vm);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Operations on a cluster.

/** The resources these operations use. */
export type KubevirtResource =
  | "secrets"
  | "virtualmachines"
  | "virtualmachineinstances"
  | typeof NAD_RESOURCE;

/** What the operations need of a cluster client; errors are `KubeApiError`s and `ConnectionError`s. */
export interface KubevirtCluster {
  /** Creates an object in `namespace`. */
  create(resource: KubevirtResource, namespace: string, obj: ClusterObject): Promise<ApiObject>;
  /** Reads one object. */
  get(resource: KubevirtResource, namespace: string, name: string): Promise<ApiObject>;
  /** Lists objects matching a label selector. */
  list(resource: KubevirtResource, namespace: string, labelSelector?: string): Promise<ApiObject[]>;
  /** Deletes one object. */
  delete(resource: KubevirtResource, namespace: string, name: string): Promise<void>;
  /**
   * Resolves once every request sent so far has ended, those given up on (an interrupt) included,
   * so that a rollback sees what the server did with them.
   */
  settle?(): Promise<boolean>;
}

/** NetworkAttachmentDefinitions missing in the namespace, refused before anything was created. */
export class MissingNetworkError extends Error {
  /** Namespace looked in. */
  readonly namespace: string;
  /** The missing bridges' NetworkAttachmentDefinition names. */
  readonly networks: readonly string[];
  /** Creates the error. */
  constructor(namespace: string, networks: readonly string[]) {
    super(
      `NetworkAttachmentDefinition ${
        networks.map((n) => `${namespace}/${n}`).join(", ")
      } not found (one per bridge, CNI type bridge)`,
    );
    this.name = "MissingNetworkError";
    this.namespace = namespace;
    this.networks = networks;
  }
}

/** One step of {@linkcode createOnCluster}, for progress output. */
export type KubevirtCreateStep = "network" | "secret" | "vm";

/** What {@linkcode createOnCluster} did. */
export interface KubevirtCreateResult {
  /** `created`, or `unchanged` when the VM exists with the same stored spec. */
  outcome: "created" | "unchanged";
  /** `Kind/name` of each object it created, in order. */
  created: string[];
}

/** Options of {@linkcode createOnCluster}. */
export interface KubevirtCreateOptions {
  /** Create missing NetworkAttachmentDefinitions instead of refusing. */
  createNetworks?: boolean;
  /** Told of each object as it is created. */
  onStep?: (step: KubevirtCreateStep, detail: string) => void;
  /** The client used to remove what was made when the create fails (default: `api`). */
  rollbackApi?: KubevirtCluster;
}

const KIND_OF_RESOURCE: Record<KubevirtResource, string> = {
  secrets: "Secret",
  virtualmachines: "VirtualMachine",
  virtualmachineinstances: "VirtualMachineInstance",
  [NAD_RESOURCE]: "NetworkAttachmentDefinition",
};

/** Object metadata with the fields these operations read beyond `ApiObject`'s. */
type Meta = ApiObject["metadata"] & {
  annotations?: Record<string, string>;
  creationTimestamp?: string;
};

function metaOf(o: ApiObject): Meta {
  return o.metadata as Meta;
}

/** Object `name`, or undefined when the cluster says it does not exist (404). */
export async function getOrUndefined(
  api: KubevirtCluster,
  resource: KubevirtResource,
  namespace: string,
  name: string,
): Promise<ApiObject | undefined> {
  try {
    return await api.get(resource, namespace, name);
  } catch (e) {
    if (isStatus(e, 404)) return undefined;
    throw e;
  }
}

/**
 * Creates `m` on the cluster: checks first (the VM and its Secret do not exist, or the VM exists
 * with the same stored spec: `unchanged`; each NetworkAttachmentDefinition exists, or is created
 * with `createNetworks`), then creates the missing networks, the Secret and the VirtualMachine. A
 * failure part-way deletes what this call created, never anything else.
 *
 * @throws {MissingNetworkError} before anything is created, when a network is missing
 * @throws {VmOperationError} before anything is created, when the VM or Secret exists otherwise
 */
export async function createOnCluster(
  api: KubevirtCluster,
  m: KubevirtManifests,
  o: KubevirtCreateOptions = {},
): Promise<KubevirtCreateResult> {
  const ns = m.vm.metadata.namespace!;
  const name = m.vm.metadata.name;
  const existing = await getOrUndefined(api, "virtualmachines", ns, name);
  if (existing) {
    const stored = metaOf(existing).annotations?.[SPEC_ANNOTATION];
    const wanted = m.vm.metadata.annotations?.[SPEC_ANNOTATION];
    if (existing.metadata.labels?.[MANAGED_LABEL] === "true" && stored === wanted) {
      return { outcome: "unchanged", created: [] };
    }
    throw new VmOperationError(
      existing.metadata.labels?.[MANAGED_LABEL] === "true"
        ? `VirtualMachine ${ns}/${name} already exists with another spec; destroy it first`
        : `VirtualMachine ${ns}/${name} already exists and was not created by foundry`,
    );
  }
  if (m.secret && await getOrUndefined(api, "secrets", ns, m.secret.metadata.name)) {
    throw new VmOperationError(
      `Secret ${ns}/${m.secret.metadata.name} already exists; foundry keeps VM ${name}'s user data there: remove it first`,
    );
  }
  const missing: ClusterObject[] = [];
  for (const nad of m.networks) {
    if (!await getOrUndefined(api, NAD_RESOURCE, ns, nad.metadata.name)) missing.push(nad);
  }
  if (missing.length > 0 && o.createNetworks !== true) {
    throw new MissingNetworkError(ns, missing.map((n) => n.metadata.name));
  }
  const made: { resource: KubevirtResource; name: string }[] = [];
  const create = async (
    resource: KubevirtResource,
    obj: ClusterObject,
    step: KubevirtCreateStep,
  ) => {
    try {
      await api.create(resource, ns, obj);
    } catch (e) {
      // Another create made the same network meanwhile: it is there, and not ours to remove.
      if (resource === NAD_RESOURCE && isStatus(e, 409)) return;
      // No answer (connection lost, interrupted): the server may have made it. It did not exist
      // when this create looked, so if it exists now it is this create's.
      if (!(e instanceof KubeApiError)) made.push({ resource, name: obj.metadata.name });
      throw e;
    }
    made.push({ resource, name: obj.metadata.name });
    o.onStep?.(step, `${KIND_OF_RESOURCE[resource]} ${ns}/${obj.metadata.name}`);
  };
  try {
    for (const nad of missing) await create(NAD_RESOURCE, nad, "network");
    if (m.secret) await create("secrets", m.secret, "secret");
    await create("virtualmachines", m.vm, "vm");
  } catch (e) {
    const undo = o.rollbackApi ?? api;
    await api.settle?.();
    for (const x of made.reverse()) {
      try {
        await undo.delete(x.resource, ns, x.name);
      } catch (u) {
        if (!isStatus(u, 404)) {
          (e as { rollbackErrors?: unknown[] }).rollbackErrors ??= [];
          (e as { rollbackErrors: unknown[] }).rollbackErrors.push(u);
        }
      }
    }
    throw e;
  }
  return {
    outcome: "created",
    created: made.map((x) => `${KIND_OF_RESOURCE[x.resource]}/${x.name}`),
  };
}

/** A foundry VM on the cluster, as get and list read it. */
export interface KubevirtVmEntry {
  /** VM name. */
  name: string;
  /** foundry's phase (see {@linkcode phaseOf}). */
  phase: Phase;
  /** vCPUs of the stored spec. */
  vcpus: number;
  /** Memory of the stored spec, MiB. */
  memoryMiB: number;
  /** The guest's address the VMI reports, else the spec's marked `(spec)`, else `-`. */
  ip: string;
  /** `metadata.creationTimestamp` of the VirtualMachine. */
  createdAt: string;
  /** Labels of the VirtualMachine. */
  labels: Record<string, string>;
  /** The stored document with its status. */
  vm: VirtualMachine;
}

/**
 * foundry's phase of a KubeVirt VM: being deleted → Destroying; no VMI → Stopped when it is not
 * meant to run (`runStrategy` Halted, `printableStatus` Stopped), Failed when KubeVirt reports an
 * error (`printableStatus` starting `Err`, or `CrashLoopBackOff`, `DataVolumeError`), Creating
 * while provisioning or starting, else Pending; with a VMI, its phase: Pending → Pending,
 * Scheduling/Scheduled → Creating, Running → Running, Succeeded → Stopped, Failed → Failed,
 * anything else → Pending.
 */
export function phaseOf(vm: ApiObject, vmi: ApiObject | undefined): Phase {
  if (vm.metadata.deletionTimestamp) return "Destroying";
  const printable = String(vm.status?.printableStatus ?? "");
  if (
    printable.startsWith("Err") || printable === "CrashLoopBackOff" ||
    printable === "DataVolumeError"
  ) return "Failed";
  if (!vmi) {
    if (vm.spec?.runStrategy === "Halted" || printable === "Stopped") return "Stopped";
    if (["Provisioning", "Starting", "WaitingForVolumeBinding"].includes(printable)) {
      return "Creating";
    }
    return "Pending";
  }
  switch (vmi.status?.phase) {
    case "Scheduling":
    case "Scheduled":
      return "Creating";
    case "Running":
      return "Running";
    case "Succeeded":
      return "Stopped";
    case "Failed":
      return "Failed";
    default:
      return "Pending";
  }
}

function conditionsOf(vmi: ApiObject | undefined): Condition[] {
  const out: Condition[] = [];
  for (const c of (vmi?.status?.conditions ?? []) as Record<string, unknown>[]) {
    if (typeof c.type !== "string") continue;
    const status = c.status === "True" || c.status === "False" ? c.status : "Unknown";
    out.push({
      type: c.type,
      status,
      lastTransitionTime: typeof c.lastTransitionTime === "string" ? c.lastTransitionTime : "",
      reason: typeof c.reason === "string" ? c.reason : status === "True" ? c.type : "",
      message: typeof c.message === "string" ? c.message : "",
    });
  }
  return out;
}

/** The stored document of a cluster VM, or undefined when foundry did not make it. */
export function storedVmOf(obj: ApiObject): VirtualMachine | undefined {
  if (obj.metadata.labels?.[MANAGED_LABEL] !== "true") return undefined;
  const text = metaOf(obj).annotations?.[SPEC_ANNOTATION];
  if (typeof text !== "string" || text.length > ANNOTATIONS_MAX_BYTES) return undefined;
  try {
    const doc = JSON.parse(text) as VirtualMachine;
    if (doc.apiVersion !== API_VERSION || doc.kind !== KIND || !doc.spec) return undefined;
    return doc;
  } catch {
    return undefined;
  }
}

/** The VMI's address for the spec's first NIC (by MAC, else the first reported), if any. */
function liveIp(vm: VirtualMachine, vmi: ApiObject | undefined): string | undefined {
  const ifaces = (vmi?.status?.interfaces ?? []) as { mac?: string; ipAddress?: string }[];
  const first = vm.spec.networkInterfaces[0];
  const mac = first ? macOf(first) : undefined;
  const hit = ifaces.find((i) => i.mac?.toLowerCase() === mac && i.ipAddress) ??
    ifaces.find((i) => i.ipAddress);
  return hit?.ipAddress?.split("/")[0];
}

/** An entry from a VirtualMachine and its VMI; undefined when foundry did not make the VM. */
export function entryOf(obj: ApiObject, vmi: ApiObject | undefined): KubevirtVmEntry | undefined {
  const stored = storedVmOf(obj);
  if (!stored) return undefined;
  const phase = phaseOf(obj, vmi);
  const vm: VirtualMachine = {
    ...stored,
    status: {
      phase,
      conditions: conditionsOf(vmi),
      observedGeneration: stored.metadata.generation ?? 1,
    },
  };
  const live = liveIp(stored, vmi);
  const specIp = stored.spec.networkInterfaces.find((n) => n.ip !== undefined)?.ip?.split("/")[0];
  return {
    name: obj.metadata.name,
    phase,
    vcpus: stored.spec.vcpus,
    memoryMiB: Math.round(stored.spec.memoryGiB * 1024),
    ip: live ?? (specIp !== undefined ? `${specIp} (spec)` : "-"),
    createdAt: metaOf(obj).creationTimestamp ?? "",
    labels: { ...obj.metadata.labels },
    vm,
  };
}

/**
 * Reads foundry VM `name` in `namespace` with its status from the VMI.
 *
 * @throws {VmNotFoundError} when there is no such VirtualMachine
 * @throws {VmOperationError} when foundry did not create it
 */
export async function getFromCluster(
  api: KubevirtCluster,
  namespace: string,
  name: string,
): Promise<KubevirtVmEntry> {
  const obj = await getOrUndefined(api, "virtualmachines", namespace, name);
  if (!obj) throw new VmNotFoundError(`${namespace}/${name}`);
  const vmi = await getOrUndefined(api, "virtualmachineinstances", namespace, name);
  const entry = entryOf(obj, vmi);
  if (!entry) {
    throw new VmOperationError(
      `VirtualMachine ${namespace}/${name} was not created by foundry (no ${SPEC_ANNOTATION} annotation)`,
    );
  }
  return entry;
}

/** The label selector of foundry's VMs, narrowed by `selector` (Kubernetes syntax) when given. */
export function managedSelector(selector?: string): string {
  return selector ? `${MANAGED_LABEL}=true,${selector}` : `${MANAGED_LABEL}=true`;
}

/** foundry's VMs in `namespace` matching `selector`, sorted by name. */
export async function listFromCluster(
  api: KubevirtCluster,
  namespace: string,
  selector?: string,
): Promise<KubevirtVmEntry[]> {
  const sel = managedSelector(selector);
  const [vms, vmis] = await Promise.all([
    api.list("virtualmachines", namespace, sel),
    api.list("virtualmachineinstances", namespace, `${MANAGED_LABEL}=true`),
  ]);
  const byName = new Map(vmis.map((v) => [v.metadata.name, v]));
  return vms.flatMap((o) => entryOf(o, byName.get(o.metadata.name)) ?? [])
    .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** What {@linkcode destroyOnCluster} deleted. */
export interface KubevirtDestroyResult {
  /** `Kind/name` of each object deleted. */
  deleted: string[];
}

/**
 * Deletes foundry VM `name`: the VirtualMachine (KubeVirt deletes its VMI and DataVolumes with it)
 * and its user-data Secret when it has one labelled for it; never a NetworkAttachmentDefinition
 * (other VMs share them).
 *
 * @throws {VmNotFoundError} when there is no such VirtualMachine
 * @throws {VmOperationError} when foundry did not create it
 */
export async function destroyOnCluster(
  api: KubevirtCluster,
  namespace: string,
  name: string,
): Promise<KubevirtDestroyResult> {
  const obj = await getOrUndefined(api, "virtualmachines", namespace, name);
  if (!obj) throw new VmNotFoundError(`${namespace}/${name}`);
  if (obj.metadata.labels?.[MANAGED_LABEL] !== "true") {
    throw new VmOperationError(
      `VirtualMachine ${namespace}/${name} was not created by foundry; it is left alone`,
    );
  }
  const deleted: string[] = [];
  // Gone meanwhile (another destroy) is no error: what was asked for holds.
  const remove = async (resource: KubevirtResource, objName: string) => {
    try {
      await api.delete(resource, namespace, objName);
      deleted.push(`${KIND_OF_RESOURCE[resource]}/${objName}`);
    } catch (e) {
      if (!isStatus(e, 404)) throw e;
    }
  };
  await remove("virtualmachines", name);
  const secretName = userDataSecretName(name);
  const secret = await getOrUndefined(api, "secrets", namespace, secretName);
  if (
    secret && secret.metadata.labels?.[MANAGED_LABEL] === "true" &&
    secret.metadata.labels?.[VM_LABEL] === name
  ) {
    await remove("secrets", secretName);
  }
  return { deleted };
}
