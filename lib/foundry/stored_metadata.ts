/**
 * Reading back foundry's record of a VM from its libvirt domain (see `metadata.ts`, which writes
 * it): the constants of the metadata elements and the lenient readers of the stored VM, on our own
 * small XML reader. Apart from `metadata.ts` so that `foundry list` and `get` load neither an XML
 * library nor `node:crypto` (each starts Deno's Node compatibility layer, measured ~20 ms).
 *
 * @example
 * ```ts
 * import { parseStoredMetadataXml } from "./stored_metadata.ts";
 * const xml = '<vm>{"metadata":{"name":"web-01"},"spec":{}}</vm>';
 * console.log(parseStoredMetadataXml(xml)?.vm.metadata.name); // web-01
 * ```
 *
 * @module
 */

import type { OperationMarker } from "./status.ts";
import { API_VERSION, KIND, type VirtualMachine } from "./types.ts";
import { childElements, ownText, readXml, type XmlElement } from "./xml_reader.ts";

/** XML namespace of foundry's domain metadata (the `uri` of virDomainSetMetadata). */
export const METADATA_NAMESPACE = "https://foundry.cofront.xyz/v1alpha1";

/** Namespace prefix of foundry's domain metadata (the `key` of virDomainSetMetadata). */
export const METADATA_PREFIX = "foundry";

/** Local name of the metadata element. */
export const METADATA_ELEMENT = "vm";

/** Attribute of the metadata element holding {@linkcode passwordHashSha256} of the root password hash. */
export const PASSWORD_HASH_SHA256_ATTRIBUTE = "passwordHashSha256";

/**
 * Attribute of the metadata element holding the SHA-256 of the stored document's canonical JSON
 * (see {@linkcode canonicalJson} and {@linkcode specDocument}): a stored spec edited by hand no
 * longer matches it.
 */
export const SPEC_SHA256_ATTRIBUTE = "specSha256";

/**
 * Attribute of the metadata element holding the SHA-256 of the cloud-init seed content the spec
 * gives (see `cloudInitSha256` in `metadata.ts`): a changed password hash shows only here.
 */
export const CLOUD_INIT_SHA256_ATTRIBUTE = "cloudInitSha256";

/**
 * Namespace of foundry's record of the volumes it created for a VM, a second element beside the
 * spec in the domain's `<metadata>`, written with the domain's definition.
 */
export const VOLUMES_NAMESPACE = "https://foundry.cofront.xyz/v1alpha1/volumes";

/** Namespace prefix of the volume record. */
export const VOLUMES_PREFIX = "foundryvolumes";

/** Local name of the volume record element. */
export const VOLUMES_ELEMENT = "volumes";

/**
 * Attribute of the volume record holding the UUID of the domain it was written for: a definition
 * copied to another domain (`virsh dumpxml`, edit, `define`) carries the record but not the UUID.
 */
export const VOLUMES_DOMAIN_ATTRIBUTE = "domainUuid";

/**
 * Attribute of the metadata element holding a create or destroy in progress (JSON of an
 * `OperationMarker`, status.ts): `list` reads it with the spec, in the one call per domain it makes.
 */
export const OPERATION_ATTRIBUTE = "operation";

/**
 * Annotation a stored spec gets when its JSON could not be read at all: the domain is still
 * foundry's (destroy, start and stop work), but its spec is unknown.
 */
export const STORED_SPEC_ERROR_ANNOTATION = "foundry.cofront.xyz/stored-spec-error";

/** One volume foundry created for a VM, as recorded at create time. */
export interface CreatedVolume {
  /** What the volume is for. */
  role: "boot" | "data" | "cloudinit";
  /** Pool the volume was created in. */
  pool: string;
  /** Volume name. */
  name: string;
  /** libvirt's key of the volume (its path in a directory pool). */
  key: string;
}

/** A VM as foundry reads it back from a domain. */
export interface StoredVm {
  /**
   * The stored document, read leniently: fields this version does not know are kept and values
   * its rules would refuse are read as stored. `spec.cloudInit.passwordHash` is never there.
   */
  vm: VirtualMachine;
  /** {@linkcode passwordHashSha256} of the root password hash, when the spec set one. */
  passwordHashSha256?: string;
  /** {@linkcode SPEC_SHA256_ATTRIBUTE} as written; absent for a VM stored before hashes were. */
  specSha256?: string;
  /** {@linkcode CLOUD_INIT_SHA256_ATTRIBUTE} as written; absent for a VM stored before hashes were. */
  cloudInitSha256?: string;
  /**
   * The volumes foundry created for the VM, when the domain has that record (foundry before the
   * record did not write one).
   */
  volumes?: CreatedVolume[];
  /** UUID of the domain the volume record was written for, when it names one. */
  volumesDomainUuid?: string;
  /** A create or destroy in progress ({@linkcode OPERATION_ATTRIBUTE}), when one is marked. */
  operation?: OperationMarker;
}

/** The text and the attributes of a foundry element. */
interface FoundryElement {
  text: string;
  passwordHashSha256: string | undefined;
  attributes: Record<string, string>;
}

/**
 * The foundry element among `elements` (any prefix bound to the foundry namespace on the element
 * itself). With `bare`, an unprefixed `vm` element without any namespace declaration counts too:
 * that is how virDomainGetMetadata returns the element it found by our namespace URI.
 */
function findFoundryElement(
  elements: readonly XmlElement[],
  bare = false,
  element = METADATA_ELEMENT,
  namespace = METADATA_NAMESPACE,
): FoundryElement | undefined {
  for (const el of elements) {
    const colon = el.name.indexOf(":");
    const prefix = colon < 0 ? undefined : el.name.slice(0, colon);
    const local = colon < 0 ? el.name : el.name.slice(colon + 1);
    if (local !== element) continue;
    const ns = el.attributes[prefix === undefined ? "xmlns" : `xmlns:${prefix}`];
    const undeclared = bare && prefix === undefined &&
      !Object.keys(el.attributes).some((k) => k === "xmlns" || k.startsWith("xmlns:"));
    if (ns !== namespace && !undeclared) continue;
    return {
      text: ownText(el).trim(),
      passwordHashSha256: el.attributes[PASSWORD_HASH_SHA256_ATTRIBUTE],
      attributes: el.attributes,
    };
  }
  return undefined;
}

function storedVm(element: FoundryElement | undefined, domainName = ""): StoredVm | undefined {
  if (element === undefined) return undefined;
  const vm = lenientVirtualMachine(element.text, domainName);
  const found: StoredVm = element.passwordHashSha256 === undefined
    ? { vm }
    : { vm, passwordHashSha256: element.passwordHashSha256 };
  const specHash = element.attributes[SPEC_SHA256_ATTRIBUTE];
  if (specHash !== undefined) found.specSha256 = specHash;
  const cloudInitHash = element.attributes[CLOUD_INIT_SHA256_ATTRIBUTE];
  if (cloudInitHash !== undefined) found.cloudInitSha256 = cloudInitHash;
  const operation = operationMarkerFrom(element.attributes[OPERATION_ATTRIBUTE]);
  if (operation !== undefined) found.operation = operation;
  return found;
}

/** The operation marker in `text` (the attribute's JSON), or undefined when there is none to read. */
function operationMarkerFrom(text: string | undefined): OperationMarker | undefined {
  if (text === undefined || text.length > 4096) return undefined;
  try {
    const m = JSON.parse(text);
    if (
      isObject(m) && (m.phase === "Creating" || m.phase === "Destroying") &&
      typeof m.expiresAt === "string" && typeof m.startedAt === "string"
    ) {
      return {
        phase: m.phase,
        pid: typeof m.pid === "number" ? m.pid : 0,
        host: typeof m.host === "string" ? m.host : "",
        startedAt: m.startedAt,
        expiresAt: m.expiresAt,
      };
    }
  } catch { /* not a marker */ }
  return undefined;
}

/**
 * The document foundry stores for `vm` (and hashes): apiVersion, kind, metadata and spec, without
 * status and without `spec.cloudInit.passwordHash`.
 */
export function specDocument(vm: VirtualMachine): Omit<VirtualMachine, "status"> {
  let spec = vm.spec;
  if (spec.cloudInit?.passwordHash !== undefined) {
    const { passwordHash: _secret, ...cloudInit } = spec.cloudInit;
    spec = { ...spec, cloudInit };
  }
  return { apiVersion: vm.apiVersion, kind: vm.kind, metadata: vm.metadata, spec };
}

/**
 * `value` as JSON with every object's keys sorted (recursively), so that equal documents give equal
 * text whatever order their keys were written in; undefined properties are left out, as
 * `JSON.stringify` does.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
  });
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** `value` when it is an object of strings only (labels, annotations); other entries dropped. */
function stringMap(value: unknown): Record<string, string> | undefined {
  if (!isObject(value)) return undefined;
  return Object.fromEntries(
    Object.entries(value).filter((e): e is [string, string] => typeof e[1] === "string"),
  );
}

/**
 * Reads a stored document the way lifecycle operations need it: whatever this version's rules say
 * about it (a field it does not know, a limit it did not have), the fields foundry itself reads
 * back (name, labels, annotations, generation, the NICs' addresses, the data disks' devices) have
 * their types or are left out, and everything else is kept as stored. Only what a user hands in is
 * validated strictly (loader.ts); a domain foundry created must stay manageable by later versions.
 */
function lenientVirtualMachine(text: string, domainName: string): VirtualMachine {
  let doc: unknown;
  let error: string | undefined;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    error = `the stored spec is not JSON: ${(e as Error).message}`;
  }
  if (error === undefined && !isObject(doc)) error = "the stored spec is not an object";
  const d = isObject(doc) ? doc : {};
  const meta = isObject(d.metadata) ? d.metadata : {};
  const spec = isObject(d.spec) ? d.spec : {};
  const metadata: Json = {
    ...meta,
    name: typeof meta.name === "string" && meta.name !== "" ? meta.name : domainName,
  };
  for (const key of ["labels", "annotations"]) {
    const map = stringMap(meta[key]);
    if (map === undefined) delete metadata[key];
    else metadata[key] = map;
  }
  if (error !== undefined) {
    metadata.annotations = {
      ...stringMap(meta.annotations),
      [STORED_SPEC_ERROR_ANNOTATION]: error,
    };
  }
  if (!(Number.isSafeInteger(meta.generation) && (meta.generation as number) > 0)) {
    delete metadata.generation;
  }
  const lenientSpec: Json = {
    ...spec,
    bootDisk: isObject(spec.bootDisk) ? spec.bootDisk : {},
    networkInterfaces: Array.isArray(spec.networkInterfaces)
      ? spec.networkInterfaces.filter((n) =>
        isObject(n) && (typeof n.ip === "string" || typeof n.mac === "string")
      )
      : [],
  };
  if (spec.dataDisks !== undefined) {
    lenientSpec.dataDisks = Array.isArray(spec.dataDisks)
      ? spec.dataDisks.filter((x) => isObject(x) && typeof x.device === "string")
      : [];
  }
  if (spec.cloudInit !== undefined && !isObject(spec.cloudInit)) delete lenientSpec.cloudInit;
  return {
    ...d,
    apiVersion: typeof d.apiVersion === "string" ? d.apiVersion : API_VERSION,
    kind: typeof d.kind === "string" ? d.kind : KIND,
    metadata,
    spec: lenientSpec,
  } as unknown as VirtualMachine;
}

/** The volume record's entries that have every field; anything else in it is ignored. */
function createdVolumes(element: FoundryElement | undefined): CreatedVolume[] | undefined {
  if (element === undefined) return undefined;
  let list: unknown;
  try {
    list = JSON.parse(element.text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(list)) return undefined;
  return list.filter((v): v is CreatedVolume =>
    isObject(v) && ["boot", "data", "cloudinit"].includes(v.role as string) &&
    typeof v.pool === "string" && typeof v.name === "string" && typeof v.key === "string" &&
    v.pool !== "" && v.name !== "" && v.key !== ""
  ).map(({ role, pool, name, key }) => ({ role, pool, name, key }));
}

/**
 * Reads the VM back from the metadata element as virDomainGetMetadata returns it for our namespace URI
 * (libvirt drops the prefix and the namespace declaration there, so a bare `<vm>` is accepted; an element
 * that declares another namespace is not), with the fingerprint of its password hash. The document is
 * read leniently, never refused (see {@linkcode StoredVm}).
 *
 * @param xml the element's XML
 * @param domainName the domain's name, used when the stored document has none
 * @returns the stored VM, or undefined when the XML holds no foundry element
 */
export function parseStoredMetadataXml(xml: string, domainName = ""): StoredVm | undefined {
  return storedVm(findFoundryElement([readXml(xml)], true), domainName);
}

/**
 * Reads foundry's VM, with the fingerprint of its password hash and the record of the volumes it
 * created, from a whole domain XML (`virDomainGetXMLDesc`). Read leniently, never refused.
 *
 * @returns the stored VM, or undefined for a domain foundry did not create
 */
export function parseStoredDomainMetadata(domainXml: string): StoredVm | undefined {
  const domain = readXml(domainXml);
  if (domain.name !== "domain") return undefined;
  const children = childElements(domain);
  const nameElement = children.find((c) => c.name === "name");
  const name = nameElement === undefined ? "" : ownText(nameElement).trim();
  for (const metadata of children.filter((c) => c.name === "metadata")) {
    const elements = childElements(metadata);
    const found = storedVm(findFoundryElement(elements), name);
    if (found === undefined) continue;
    const record = findFoundryElement(elements, false, VOLUMES_ELEMENT, VOLUMES_NAMESPACE);
    const volumes = createdVolumes(record);
    if (volumes === undefined) return found;
    const uuid = record?.attributes[VOLUMES_DOMAIN_ATTRIBUTE];
    return typeof uuid === "string"
      ? { ...found, volumes, volumesDomainUuid: uuid }
      : { ...found, volumes };
  }
  return undefined;
}

/**
 * Reads the VM back from the metadata element; see {@linkcode parseStoredMetadataXml}. The VM has no
 * password hash.
 *
 * @param xml the element's XML
 * @param _source formerly named the origin in validation problems; stored documents are no longer
 *   validated, so it is unused
 * @returns the VM, or undefined when the XML holds no foundry element
 */
export function parseMetadataXml(xml: string, _source?: string): VirtualMachine | undefined {
  return parseStoredMetadataXml(xml)?.vm;
}

/**
 * Reads foundry's VM from a whole domain XML; see {@linkcode parseStoredDomainMetadata}. The VM has no
 * password hash.
 *
 * @returns the VM, or undefined for a domain foundry did not create
 */
export function parseDomainMetadata(domainXml: string): VirtualMachine | undefined {
  return parseStoredDomainMetadata(domainXml)?.vm;
}
