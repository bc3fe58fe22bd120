/**
 * Builders of the Kubernetes objects a run creates: Namespace, user-data Secret, Service and
 * VirtualMachine. Plain JSON objects in the API's wire shape, so they print as YAML and post as-is.
 * @module
 */
import type { DataDisk, ServiceSpec } from "../workloads/workload.ts";
import { formatQuantity } from "../workloads/quantity.ts";
import { CDI_API, KUBEVIRT_API } from "./constants.ts";

/** Object metadata as sent on create. */
export interface ObjectMeta {
  /** Object name. */
  name: string;
  /** Namespace (absent for cluster-scoped objects). */
  namespace?: string;
  /** Labels. */
  labels?: Record<string, string>;
}

/** Any Kubernetes object: apiVersion, kind, metadata and the rest. */
export interface KubeObject {
  /** API group/version, e.g. `kubevirt.io/v1`. */
  apiVersion: string;
  /** Kind, e.g. `VirtualMachine`. */
  kind: string;
  /** Name, namespace and labels. */
  metadata: ObjectMeta;
  /** Kind-specific fields. */
  [key: string]: unknown;
}

/** Name of the volume and disk holding the OS container disk. */
export const VOLUME_ROOT = "rootdisk";
/** Name of the cloud-init volume and disk. */
export const VOLUME_CLOUD_INIT = "cloudinitdisk";
/** Name of the pod network and its interface. */
export const NETWORK_DEFAULT = "default";
/**
 * Largest inline `cloudInitNoCloud.userData` KubeVirt's admission webhook accepts, in bytes
 * (`cloudInitUserMaxLen`); larger user data must come from a Secret.
 */
export const USERDATA_INLINE_MAX = 2048;

/** Key of the user data in its Secret (KubeVirt reads `userdata` or `userData`). */
export const SECRET_USERDATA_KEY = "userdata";

/** What a VirtualMachine needs. */
export interface VirtualMachineOptions {
  /** VM name. */
  name: string;
  /** Namespace of the VM. */
  namespace: string;
  /** OS container disk image. */
  containerDiskImage: string;
  /** vCPU cores. */
  cpuCores: number;
  /** Guest memory as a quantity. */
  memory: string;
  /** Labels of the VM, its pod template and DataVolumes. */
  labels: Record<string, string>;
  /** Inline user data (no credentials in it). Exactly one of this and `userDataSecret`. */
  userData?: string;
  /** Name of the Secret holding the user data under {@linkcode SECRET_USERDATA_KEY}. */
  userDataSecret?: string;
  /** Blank data disks, each backed by a DataVolumeTemplate. */
  dataDisks?: readonly DataDisk[];
}

export { baseLabels } from "../virtwork/plan.ts";

/** The Namespace object. */
export function buildNamespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels: { ...labels } } };
}

/** Name of the DataVolume of `disk` on VM `vmName`. */
export function dataVolumeName(vmName: string, disk: DataDisk): string {
  return `${vmName}-${disk.name}`;
}

/**
 * A VirtualMachine: container disk OS, cloudInitNoCloud user data (inline or from a Secret),
 * masquerade pod networking, virtio disks and NIC, `runStrategy: Always`, and per data disk a
 * DataVolumeTemplate with `spec.storage` and a blank source plus a disk with its serial.
 *
 * @throws {TypeError} unless exactly one of `userData` and `userDataSecret` is given
 */
export function buildVirtualMachine(o: VirtualMachineOptions): KubeObject {
  if ((o.userData === undefined) === (o.userDataSecret === undefined)) {
    throw new TypeError("exactly one of userData and userDataSecret must be given");
  }
  const disks: Record<string, unknown>[] = [
    { name: VOLUME_ROOT, disk: { bus: "virtio" } },
    { name: VOLUME_CLOUD_INIT, disk: { bus: "virtio" } },
  ];
  const cloudInit = o.userDataSecret !== undefined
    ? { secretRef: { name: o.userDataSecret } }
    : { userData: o.userData };
  const volumes: Record<string, unknown>[] = [
    { name: VOLUME_ROOT, containerDisk: { image: o.containerDiskImage } },
    { name: VOLUME_CLOUD_INIT, cloudInitNoCloud: cloudInit },
  ];
  const dataVolumeTemplates: Record<string, unknown>[] = [];
  for (const d of o.dataDisks ?? []) {
    const dv = dataVolumeName(o.name, d);
    disks.push({ name: d.name, serial: d.serial, disk: { bus: "virtio" } });
    volumes.push({ name: d.name, dataVolume: { name: dv } });
    dataVolumeTemplates.push({
      apiVersion: `${CDI_API.GROUP}/${CDI_API.VERSION}`,
      kind: "DataVolume",
      metadata: { name: dv, labels: { ...o.labels } },
      spec: {
        source: { blank: {} },
        storage: { resources: { requests: { storage: formatQuantity(d.sizeBytes) } } },
      },
    });
  }
  const spec: Record<string, unknown> = {
    runStrategy: "Always",
    template: {
      metadata: { labels: { ...o.labels } },
      spec: {
        domain: {
          cpu: { cores: o.cpuCores },
          resources: { requests: { memory: o.memory } },
          devices: {
            disks,
            interfaces: [{ name: NETWORK_DEFAULT, masquerade: {}, model: "virtio" }],
            rng: {},
          },
        },
        networks: [{ name: NETWORK_DEFAULT, pod: {} }],
        volumes,
      },
    },
  };
  if (dataVolumeTemplates.length > 0) spec.dataVolumeTemplates = dataVolumeTemplates;
  return {
    apiVersion: `${KUBEVIRT_API.GROUP}/${KUBEVIRT_API.VERSION}`,
    kind: "VirtualMachine",
    metadata: { name: o.name, namespace: o.namespace, labels: { ...o.labels } },
    spec,
  };
}

/** An Opaque Secret holding user data under {@linkcode SECRET_USERDATA_KEY}, base64-encoded. */
export function buildUserDataSecret(
  name: string,
  namespace: string,
  userData: string,
  labels: Record<string, string>,
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, labels: { ...labels } },
    type: "Opaque",
    data: { [SECRET_USERDATA_KEY]: encodeBase64(userData) },
  };
}

/** A ClusterIP Service for a workload's ServiceSpec; `selector` adds to the spec's own selector. */
export function buildService(
  spec: ServiceSpec,
  namespace: string,
  labels: Record<string, string>,
  selector: Record<string, string>,
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: spec.name, namespace, labels: { ...labels } },
    spec: {
      type: "ClusterIP",
      selector: { ...selector, ...spec.selector },
      ports: spec.ports.map((p) => ({ ...p })),
    },
  };
}

/** Standard base64 of a string's UTF-8 bytes. */
export function encodeBase64(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Decodes standard base64 to a UTF-8 string. */
export function decodeBase64(b64: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
}
