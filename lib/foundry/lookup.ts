/**
 * Finding one VM, reading what foundry stored with it and waiting for its state, apart from
 * `vm.ts` so that `list`, `get` and `wait` load neither create's nor destroy's code (domain XML builders, cloud-init, ISO writer,
 * pools): measured, that graph was most of `foundry list`'s start-up.
 * @module
 */
import {
  type DomainRef,
  InterruptedError,
  type Libvirt,
  LibvirtError,
  MetadataType,
} from "../libvirt/mod.ts";
import { parseStoredDomainMetadata, type StoredVm } from "./stored_metadata.ts";
import { VmNotFoundError } from "./vm_errors.ts";
import type { StoredStatus } from "./status.ts";
import type { VirtualMachine } from "./types.ts";

export { VmNotFoundError, VmOperationError } from "./vm_errors.ts";

/** Namespace of the status record foundry keeps beside the spec in the domain's metadata. */
export const STATUS_NAMESPACE = "https://foundry.cofront.xyz/v1alpha1/status";

/** Prefix of the status record's element in the domain's metadata. */
export const STATUS_PREFIX = "foundrystatus";

/** The status record in `xml` (its metadata element), or undefined when there is none readable. */
export function parseStoredStatusXml(xml: string): StoredStatus | undefined {
  const m = /<(?:[\w-]+:)?status[^>]*>([\s\S]*)<\/(?:[\w-]+:)?status>/.exec(xml);
  if (!m?.[1]) return undefined;
  const json = m[1].replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
  try {
    return JSON.parse(json) as StoredStatus;
  } catch {
    return undefined;
  }
}

/** The text of the status record's element for `status` (escaped). */
export function storedStatusText(status: StoredStatus): string {
  const text = JSON.stringify(status).replaceAll("&", "&amp;").replaceAll("<", "&lt;");
  return `<status>${text}</status>`;
}

/** Reads the status record foundry last wrote, if any, with an operation in progress if any. */
export async function readStoredStatus(
  lv: Libvirt,
  domain: DomainRef,
): Promise<StoredStatus | undefined> {
  try {
    return parseStoredStatusXml(
      await lv.domainGetMetadata(domain, MetadataType.ELEMENT, STATUS_NAMESPACE),
    );
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

/**
 * Waits until `domain` reaches one of `states`, driven by lifecycle events (no polling), up to
 * `timeoutMs`. Returns whether it got there; throws {@linkcode InterruptedError} when `signal`
 * (by default the connection's interrupt signal) aborts first.
 */
export async function waitForState(
  lv: Libvirt,
  domain: DomainRef,
  states: readonly number[],
  timeoutMs: number,
  signal: AbortSignal | undefined = lv.signal,
): Promise<boolean> {
  const interrupted = () => InterruptedError.from(signal?.reason);
  if (signal?.aborted) throw interrupted();
  let wake: (() => void) | null = null;
  const sub = await lv.onDomainLifecycle(domain, () => wake?.());
  const deadline = performance.now() + timeoutMs;
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  try {
    while (true) {
      // Checked after subscribing, so an event between check and wait is never missed.
      if (states.includes((await lv.domainGetState(domain)).state)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (signal?.aborted) wake();
      });
      wake = null;
      if (signal?.aborted) throw interrupted();
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await sub.close().catch(() => {});
  }
}
