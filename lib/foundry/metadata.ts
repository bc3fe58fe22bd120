/**
 * Foundry's record of a VM inside its libvirt domain: the full `VirtualMachine` (metadata and spec) as
 * JSON in a `<foundry:vm>` element of the domain's `<metadata>`, in the foundry namespace. Reading it
 * back tells foundry which domains it created and with what spec, even after a restart.
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

import { XMLBuilder, XMLParser } from "npm:fast-xml-parser@^5.12.1";
import { parseVirtualMachine } from "./loader.ts";
import type { VirtualMachine } from "./types.ts";

/** XML namespace of foundry's domain metadata (the `uri` of virDomainSetMetadata). */
export const METADATA_NAMESPACE = "https://foundry.cofront.xyz/v1alpha1";

/** Namespace prefix of foundry's domain metadata (the `key` of virDomainSetMetadata). */
export const METADATA_PREFIX = "foundry";

/** Local name of the metadata element. */
export const METADATA_ELEMENT = "vm";

/** What foundry stores: the document without status, which is always computed afresh. */
function stored(vm: VirtualMachine): Omit<VirtualMachine, "status"> {
  return { apiVersion: vm.apiVersion, kind: vm.kind, metadata: vm.metadata, spec: vm.spec };
}

/**
 * The metadata element as an object for fast-xml-parser's XMLBuilder (attributes prefixed `@_`), to be
 * placed under a domain's `<metadata>`.
 */
export function metadataNode(vm: VirtualMachine): Record<string, unknown> {
  return {
    [`${METADATA_PREFIX}:${METADATA_ELEMENT}`]: {
      [`@_xmlns:${METADATA_PREFIX}`]: METADATA_NAMESPACE,
      "#text": JSON.stringify(stored(vm)),
    },
  };
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

/**
 * The text of the foundry element among `children` (any prefix bound to the foundry namespace). With
 * `bare`, an unprefixed `vm` element without any namespace declaration counts too: that is how
 * virDomainGetMetadata returns the element it found by our namespace URI.
 */
function findFoundryElement(children: XmlNode, bare = false): string | undefined {
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
      return Array.isArray(text) ? text.join("") : typeof text === "string" ? text : "";
    }
  }
  return undefined;
}

/**
 * Reads the VM back from the metadata element as virDomainGetMetadata returns it for our namespace URI
 * (libvirt drops the prefix and the namespace declaration there, so a bare `<vm>` is accepted; an element
 * that declares another namespace is not).
 *
 * @param xml the element's XML
 * @param source names the origin in problems, e.g. `domain web-01 metadata`
 * @returns the VM, or undefined when the XML holds no foundry element
 * @throws {import("./errors.ts").ValidationError} when the stored document is not a valid VM
 */
export function parseMetadataXml(
  xml: string,
  source = "foundry metadata",
): VirtualMachine | undefined {
  const text = findFoundryElement(parser.parse(xml) as XmlNode, true);
  return text === undefined ? undefined : parseVirtualMachine(text, source);
}

/**
 * Reads foundry's VM from a whole domain XML (`virDomainGetXMLDesc`).
 *
 * @returns the VM, or undefined for a domain foundry did not create
 * @throws {import("./errors.ts").ValidationError} when the stored document is not a valid VM
 */
export function parseDomainMetadata(domainXml: string): VirtualMachine | undefined {
  const doc = parser.parse(domainXml) as XmlNode;
  const domain = (doc.domain as XmlNode[] | undefined)?.[0];
  const name = (domain?.name as string[] | undefined)?.[0] ?? "unnamed";
  for (const metadata of (domain?.metadata as XmlNode[] | undefined) ?? []) {
    const text = findFoundryElement(metadata);
    if (text !== undefined) return parseVirtualMachine(text, `domain ${name} metadata`);
  }
  return undefined;
}
