/**
 * Writing foundry's records into a domain's metadata: the stored spec, the status record and the
 * volume record each live in their own XML namespace (virDomainSetMetadata with one prefix and
 * URI per record), in the persistent definition and, while the domain runs, in the live one too.
 *
 * @module
 */
import { type DomainRef, type Libvirt, MetadataType, ModificationImpact } from "../libvirt/mod.ts";
import { STATUS_NAMESPACE, STATUS_PREFIX } from "./lookup.ts";
import {
  METADATA_NAMESPACE,
  METADATA_PREFIX,
  VOLUMES_NAMESPACE,
  VOLUMES_PREFIX,
} from "./stored_metadata.ts";

/** Which record: the stored VM spec, its status (transition times), or its volumes. */
export type DomainRecord = "spec" | "status" | "volumes";

const NAMESPACES: Record<DomainRecord, readonly [prefix: string, uri: string]> = {
  spec: [METADATA_PREFIX, METADATA_NAMESPACE],
  status: [STATUS_PREFIX, STATUS_NAMESPACE],
  volumes: [VOLUMES_PREFIX, VOLUMES_NAMESPACE],
};

/**
 * Writes `record` of `domain` as `xml` (one element), or removes it when `xml` is null: in the
 * persistent definition always, and in the running domain as well when `live`.
 *
 * @throws {LibvirtError} from the daemon (no such domain, bad XML)
 */
export async function writeDomainRecord(
  lv: Libvirt,
  domain: DomainRef,
  record: DomainRecord,
  xml: string | null,
  live: boolean,
): Promise<void> {
  const [prefix, uri] = NAMESPACES[record];
  await lv.domainSetMetadata(
    domain,
    MetadataType.ELEMENT,
    xml,
    prefix,
    uri,
    ModificationImpact.CONFIG | (live ? ModificationImpact.LIVE : 0),
  );
}
