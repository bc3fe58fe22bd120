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
import { XMLBuilder } from "npm:fast-xml-parser@^5.12.1";
import type { OperationMarker } from "./status.ts";
import type { VirtualMachine } from "./types.ts";
import { noCloudFilesFromVm } from "./cloudinit.ts";
import {
  canonicalJson,
  CLOUD_INIT_SHA256_ATTRIBUTE,
  type CreatedVolume,
  METADATA_ELEMENT,
  METADATA_NAMESPACE,
  METADATA_PREFIX,
  OPERATION_ATTRIBUTE,
  PASSWORD_HASH_SHA256_ATTRIBUTE,
  SPEC_SHA256_ATTRIBUTE,
  specDocument,
  type StoredVm,
  VOLUMES_DOMAIN_ATTRIBUTE,
  VOLUMES_ELEMENT,
  VOLUMES_NAMESPACE,
  VOLUMES_PREFIX,
} from "./stored_metadata.ts";

export {
  canonicalJson,
  CLOUD_INIT_SHA256_ATTRIBUTE,
  METADATA_ELEMENT,
  METADATA_NAMESPACE,
  METADATA_PREFIX,
  OPERATION_ATTRIBUTE,
  parseDomainMetadata,
  parseMetadataXml,
  parseStoredDomainMetadata,
  parseStoredMetadataXml,
  PASSWORD_HASH_SHA256_ATTRIBUTE,
  SPEC_SHA256_ATTRIBUTE,
  specDocument,
  STORED_SPEC_ERROR_ANNOTATION,
  VOLUMES_DOMAIN_ATTRIBUTE,
  VOLUMES_ELEMENT,
  VOLUMES_NAMESPACE,
  VOLUMES_PREFIX,
} from "./stored_metadata.ts";
export type { CreatedVolume, StoredVm } from "./stored_metadata.ts";

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
const stored = specDocument;

const sha256Hex = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * The SHA-256 (lowercase hex) of the document foundry stores for `vm`, as canonical JSON (keys
 * sorted, no status, no password hash): written beside the stored spec, so that a stored spec
 * edited by hand shows (drift `where: "metadata"`).
 */
export function specSha256(vm: VirtualMachine): string {
  return sha256Hex(canonicalJson(stored(vm)));
}

/**
 * The SHA-256 (lowercase hex) of the cloud-init seed content `vm` gives: the NoCloud files
 * (`user-data`, `meta-data`, `network-config`) as foundry writes them, except that the root
 * password hash is replaced by its fingerprint ({@linkcode passwordHashSha256}), so that the digest
 * changes with the password without being a digest of it, and the instance ID (derived from the
 * whole spec, so it changes with any field) is left out: the digest changes only when what
 * cloud-init sets up does.
 *
 * @param passwordFingerprint for a stored spec (which has no password hash): the fingerprint
 *   stored with it; ignored when `vm` has a password hash
 */
export function cloudInitSha256(vm: VirtualMachine, passwordFingerprint?: string): string {
  const hash = vm.spec.cloudInit?.passwordHash;
  const fingerprint = hash === undefined ? passwordFingerprint : passwordHashSha256(hash);
  const { spec } = withoutPasswordHash(vm);
  const cloudInit = fingerprint === undefined
    ? spec.cloudInit
    : { ...spec.cloudInit, passwordHash: `sha256:${fingerprint}` };
  const files = noCloudFilesFromVm(
    { ...vm, spec: cloudInit === undefined ? spec : { ...spec, cloudInit } },
    { instanceId: "-" },
  );
  return sha256Hex(
    (["user-data", "meta-data", "network-config"] as const)
      .map((name) => `${name}\0${files[name]}`).join("\0"),
  );
}

/** The hash attributes of the metadata element for `vm` (cloud-init's left out when no seed can be made of a stored spec). */
function hashAttributes(vm: VirtualMachine, passwordFingerprint?: string): Record<string, string> {
  const attributes: Record<string, string> = { [`@_${SPEC_SHA256_ATTRIBUTE}`]: specSha256(vm) };
  try {
    attributes[`@_${CLOUD_INIT_SHA256_ATTRIBUTE}`] = cloudInitSha256(vm, passwordFingerprint);
  } catch {
    // A stored spec read leniently may lack what a seed needs; it then has no cloud-init hash.
  }
  return attributes;
}

/**
 * The metadata element as an object for fast-xml-parser's XMLBuilder (attributes prefixed `@_`), to be
 * placed under a domain's `<metadata>`. With `volumes`, the record of the volumes created for the VM
 * follows as a second element in its own namespace ({@linkcode VOLUMES_NAMESPACE}), bound to the
 * domain's UUID when `domainUuid` is given.
 */
export function metadataNode(
  vm: VirtualMachine,
  volumes?: readonly CreatedVolume[],
  domainUuid?: string,
  operation?: OperationMarker,
): Record<string, unknown> {
  const element: Record<string, string> = { [`@_xmlns:${METADATA_PREFIX}`]: METADATA_NAMESPACE };
  const hash = vm.spec.cloudInit?.passwordHash;
  if (hash !== undefined) {
    element[`@_${PASSWORD_HASH_SHA256_ATTRIBUTE}`] = passwordHashSha256(hash);
  }
  Object.assign(element, hashAttributes(vm));
  if (operation !== undefined) element[`@_${OPERATION_ATTRIBUTE}`] = JSON.stringify(operation);
  element["#text"] = JSON.stringify(stored(vm));
  const node: Record<string, unknown> = { [`${METADATA_PREFIX}:${METADATA_ELEMENT}`]: element };
  if (volumes !== undefined) {
    node[`${VOLUMES_PREFIX}:${VOLUMES_ELEMENT}`] = {
      [`@_xmlns:${VOLUMES_PREFIX}`]: VOLUMES_NAMESPACE,
      ...(domainUuid === undefined ? {} : { [`@_${VOLUMES_DOMAIN_ATTRIBUTE}`]: domainUuid }),
      "#text": JSON.stringify(
        volumes.map(({ role, pool, name, key }) => ({ role, pool, name, key })),
      ),
    };
  }
  return node;
}

/** The metadata element as XML text, `<foundry:vm xmlns:foundry="...">{json}</foundry:vm>`. */
export function buildMetadataXml(vm: VirtualMachine): string {
  return new XMLBuilder({ ignoreAttributes: false }).build(metadataNode(vm));
}

/**
 * The foundry element as `virDomainSetMetadata` takes it (no prefix or namespace: libvirt binds
 * them from its `key` and `uri` arguments), for rewriting a stored spec after a change (resize):
 * `vm` as stored, with the password fingerprint the domain already had, since the hash itself is
 * not in a stored spec. With `operation`, the element marks a create or destroy in progress
 * ({@linkcode OPERATION_ATTRIBUTE}); without, a marker the element had is gone. With `recorded`,
 * the hashes recorded when the spec was applied are kept as they were instead of computed afresh
 * (marking an operation must not make a hand-edited stored spec look as applied).
 */
export function storedMetadataXml(
  vm: VirtualMachine,
  passwordHashSha256?: string,
  operation?: OperationMarker,
  recorded?: Pick<StoredVm, "specSha256" | "cloudInitSha256">,
): string {
  const element: Record<string, string> = {};
  if (passwordHashSha256 !== undefined) {
    element[`@_${PASSWORD_HASH_SHA256_ATTRIBUTE}`] = passwordHashSha256;
  }
  if (recorded === undefined) Object.assign(element, hashAttributes(vm, passwordHashSha256));
  else {
    if (recorded.specSha256 !== undefined) {
      element[`@_${SPEC_SHA256_ATTRIBUTE}`] = recorded.specSha256;
    }
    if (recorded.cloudInitSha256 !== undefined) {
      element[`@_${CLOUD_INIT_SHA256_ATTRIBUTE}`] = recorded.cloudInitSha256;
    }
  }
  if (operation !== undefined) element[`@_${OPERATION_ATTRIBUTE}`] = JSON.stringify(operation);
  element["#text"] = JSON.stringify(stored(vm));
  return new XMLBuilder({ ignoreAttributes: false }).build({ [METADATA_ELEMENT]: element });
}
