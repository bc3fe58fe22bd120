/**
 * Foundry's record of a VM inside its libvirt domain: the `VirtualMachine` (metadata and spec) as JSON
 * in a `<foundry:vm>` element of the domain's `<metadata>`, in the foundry namespace. Reading it back
 * tells foundry which domains it created and with what spec, even after a restart.
 *
 * The root password hash is never stored: any client that may read the domain XML, read-only ones
 * included, would see it. In its place the element carries a `passwordHashSha256` attribute, the
 * SHA-256 of the hash, which tells that a password is set and whether it changed.
 *
 * @example
 * ```ts
 * import { buildMetadataXml, parseMetadataXml } from "./metadata.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const [vm] = await loadVirtualMachines("examples/simple-vm.yaml");
 * if (vm) {
 *   const xml = buildMetadataXml(vm); // for virDomainSetMetadata or the domain XML
 *   console.log(parseMetadataXml(xml)?.metadata.name);
 * }
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { XMLBuilder, XMLParser } from "npm:fast-xml-parser@^5.12.1";
import { parseVirtualMachine } from "./loader.ts";
import type { VirtualMachine } from "./types.ts";

/** XML namespace of foundry's domain metadata (the `uri` of virDomainSetMetadata). */
export const METADATA_NAMESPACE = "https://foundry.cofront.xyz/v1alpha1";

/** Namespace prefix of foundry's domain metadata (the `key` of virDomainSetMetadata). */
export const METADATA_PREFIX = "foundry";

/** Local name of the metadata element. */
export const METADATA_ELEMENT = "vm";

/** Attribute of the metadata element holding {@linkcode passwordHashSha256} of the root password hash. */
export const PASSWORD_HASH_SHA256_ATTRIBUTE = "passwordHashSha256";

/** A VM as foundry reads it back from a domain. */
export interface StoredVm {
  /** The stored document; `spec.cloudInit.passwordHash` is never there. */
  vm: VirtualMachine;
  /** {@linkcode passwordHashSha256} of the root password hash, when the spec set one. */
  passwordHashSha256?: string;
}

/** The fingerprint foundry stores instead of a password hash: its SHA-256, lowercase hex. */
export function passwordHashSha256(hash: string): string {
  return createHash("sha256").update(hash).digest("hex");
}

/** True when `vm`'s root password hash is not the one whose fingerprint `stored` holds. */
export function passwordHashChanged(stored: StoredVm, vm: VirtualMachine): boolean {
  const hash = vm.spec.cloudInit?.passwordHash;
  return stored.passwordHashSha256 !== (hash === undefined ? undefined : passwordHashSha256(hash));
}

/**
 * `vm` as foundry stores it and reads it back: without `spec.cloudInit.passwordHash` (a copy when there
 * is one to drop; `vm` itself is not changed).
 */
export function withoutPasswordHash(vm: VirtualMachine): VirtualMachine {
  if (vm.spec.cloudInit?.passwordHash === undefined) return vm;
  const { passwordHash: _secret, ...cloudInit } = vm.spec.cloudInit;
  return { ...vm, spec: { ...vm.spec, cloudInit } };
}

/** What foundry stores: the document without status (always computed afresh) and password hash. */
function stored(vm: VirtualMachine): Omit<VirtualMachine, "status"> {
  const { spec } = withoutPasswordHash(vm);
  return { apiVersion: vm.apiVersion, kind: vm.kind, metadata: vm.metadata, spec };
}

/**
 * The metadata element as an object for fast-xml-parser's XMLBuilder (attributes prefixed `@_`), to be
 * placed under a domain's `<metadata>`.
 */
export function metadataNode(vm: VirtualMachine): Record<string, unknown> {
  const element: Record<string, string> = { [`@_xmlns:${METADATA_PREFIX}`]: METADATA_NAMESPACE };
  const hash = vm.spec.cloudInit?.passwordHash;
  if (hash !== undefined) {
    element[`@_${PASSWORD_HASH_SHA256_ATTRIBUTE}`] = passwordHashSha256(hash);
  }
  element["#text"] = JSON.stringify(stored(vm));
  return { [`${METADATA_PREFIX}:${METADATA_ELEMENT}`]: element };
}

/** The metadata element as XML text, `<foundry:vm xmlns:foundry="...">{json}</foundry:vm>`. */
export function buildMetadataXml(vm: VirtualMachine): string {
  return new XMLBuilder({ ignoreAttributes: false }).build(metadataNode(vm));
}

const parser = new XMLParser({
  ignoreAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (_name: string, _path: unknown, _leaf: boolean, isAttribute: boolean) => !isAttribute,
});

type XmlNode = Record<string, unknown>;

/** The text and fingerprint attribute of the foundry element. */
interface FoundryElement {
  text: string;
  passwordHashSha256: string | undefined;
}

/**
 * The foundry element among `children` (any prefix bound to the foundry namespace). With `bare`, an
 * unprefixed `vm` element without any namespace declaration counts too: that is how
 * virDomainGetMetadata returns the element it found by our namespace URI.
 */
function findFoundryElement(children: XmlNode, bare = false): FoundryElement | undefined {
  for (const [tag, value] of Object.entries(children)) {
    const colon = tag.indexOf(":");
    const prefix = colon < 0 ? undefined : tag.slice(0, colon);
    const local = colon < 0 ? tag : tag.slice(colon + 1);
    if (local !== METADATA_ELEMENT) continue;
    for (const item of value as (XmlNode | string)[]) {
      // An element with text only and no attributes parses to a bare string.
      const el: XmlNode = typeof item === "string" ? { "#text": item } : item;
      const ns = el[prefix === undefined ? "@_xmlns" : `@_xmlns:${prefix}`];
      const undeclared = bare && prefix === undefined &&
        !Object.keys(el).some((k) => k === "@_xmlns" || k.startsWith("@_xmlns:"));
      if (ns !== METADATA_NAMESPACE && !undeclared) continue;
      const text = el["#text"];
      const fingerprint = el[`@_${PASSWORD_HASH_SHA256_ATTRIBUTE}`];
      return {
        text: Array.isArray(text) ? text.join("") : typeof text === "string" ? text : "",
        passwordHashSha256: typeof fingerprint === "string" ? fingerprint : undefined,
      };
    }
  }
  return undefined;
}

function storedVm(element: FoundryElement | undefined, source: string): StoredVm | undefined {
  if (element === undefined) return undefined;
  const vm = parseVirtualMachine(element.text, source);
  return element.passwordHashSha256 === undefined
    ? { vm }
    : { vm, passwordHashSha256: element.passwordHashSha256 };
}

/**
 * Reads the VM back from the metadata element as virDomainGetMetadata returns it for our namespace URI
 * (libvirt drops the prefix and the namespace declaration there, so a bare `<vm>` is accepted; an element
 * that declares another namespace is not), with the fingerprint of its password hash.
 *
 * @param xml the element's XML
 * @param source names the origin in problems, e.g. `domain web-01 metadata`
 * @returns the stored VM, or undefined when the XML holds no foundry element
 * @throws {import("./errors.ts").ValidationError} when the stored document is not a valid VM
 */
export function parseStoredMetadataXml(
  xml: string,
  source = "foundry metadata",
): StoredVm | undefined {
  return storedVm(findFoundryElement(parser.parse(xml) as XmlNode, true), source);
}

/**
 * Reads foundry's VM, with the fingerprint of its password hash, from a whole domain XML
 * (`virDomainGetXMLDesc`).
 *
 * @returns the stored VM, or undefined for a domain foundry did not create
 * @throws {import("./errors.ts").ValidationError} when the stored document is not a valid VM
 */
export function parseStoredDomainMetadata(domainXml: string): StoredVm | undefined {
  const doc = parser.parse(domainXml) as XmlNode;
  const domain = (doc.domain as XmlNode[] | undefined)?.[0];
  const name = (domain?.name as string[] | undefined)?.[0] ?? "unnamed";
  for (const metadata of (domain?.metadata as XmlNode[] | undefined) ?? []) {
    const found = storedVm(findFoundryElement(metadata), `domain ${name} metadata`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Reads the VM back from the metadata element; see {@linkcode parseStoredMetadataXml}. The VM has no
 * password hash.
 *
 * @returns the VM, or undefined when the XML holds no foundry element
 * @throws {import("./errors.ts").ValidationError} when the stored document is not a valid VM
 */
export function parseMetadataXml(
  xml: string,
  source = "foundry metadata",
): VirtualMachine | undefined {
  return parseStoredMetadataXml(xml, source)?.vm;
}

/**
 * Reads foundry's VM from a whole domain XML; see {@linkcode parseStoredDomainMetadata}. The VM has no
 * password hash.
 *
 * @returns the VM, or undefined for a domain foundry did not create
 * @throws {import("./errors.ts").ValidationError} when the stored document is not a valid VM
 */
export function parseDomainMetadata(domainXml: string): VirtualMachine | undefined {
  return parseStoredDomainMetadata(domainXml)?.vm;
}
