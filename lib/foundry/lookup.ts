/**
 * Finding one VM and reading what foundry stored with it, apart from `vm.ts` so that `list` and
 * `get` load neither create's nor destroy's code (domain XML builders, cloud-init, ISO writer,
 * pools): measured, that graph was most of `foundry list`'s start-up.
 * @module
 */
import { type DomainRef, type Libvirt, LibvirtError, MetadataType } from "../libvirt/mod.ts";
import { parseStoredDomainMetadata, type StoredVm } from "./metadata.ts";
import { VmNotFoundError } from "./vm_errors.ts";
import type { VirtualMachine, VirtualMachineStatus } from "./types.ts";

export { VmNotFoundError, VmOperationError } from "./vm_errors.ts";

/** Namespace of the status record foundry keeps beside the spec in the domain's metadata. */
export const STATUS_NAMESPACE = "https://foundry.cofront.xyz/v1alpha1/status";

/** Reads the status record foundry last wrote, if any. */
export async function readStoredStatus(
  lv: Libvirt,
  domain: DomainRef,
): Promise<VirtualMachineStatus | undefined> {
  try {
    const xml = await lv.domainGetMetadata(domain, MetadataType.ELEMENT, STATUS_NAMESPACE);
    const m = /<status[^>]*>([\s\S]*)<\/status>/.exec(xml);
    if (!m?.[1]) return undefined;
    const json = m[1].replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
    return JSON.parse(json) as VirtualMachineStatus;
  } catch {
    return undefined;
  }
}

/**
 * Looks a VM up by name; a missing VM is a {@linkcode VmNotFoundError}. The stored
 * spec is read leniently (see `parseStoredDomainMetadata`): a spec this version would refuse never
 * stops a lifecycle operation.
 */
export async function lookupVm(
  lv: Libvirt,
  name: string,
): Promise<
  { domain: DomainRef; xml: string; vm: VirtualMachine | undefined; stored: StoredVm | undefined }
> {
  let domain: DomainRef;
  try {
    domain = await lv.domainLookupByName(name);
  } catch (e) {
    if (e instanceof LibvirtError && e.isNoDomain()) throw new VmNotFoundError(name, { cause: e });
    throw e;
  }
  const xml = await lv.domainGetXmlDesc(domain);
  const stored = parseStoredDomainMetadata(xml);
  return { domain, xml, vm: stored?.vm, stored };
}
