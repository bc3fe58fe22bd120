/**
 * Where to reach a VM over its network: the live address the guest agent reports, else the one
 * in its spec.
 * @module
 */
import { type DomainRef, type Libvirt, LibvirtError } from "../libvirt/mod.ts";
import { GuestAgentError, guestInterfaces } from "./agent.ts";
import { VmOperationError } from "./vm_errors.ts";
import type { VirtualMachine } from "./types.ts";

/**
 * The VM's address to connect to: among the IPv4 addresses its agent reports (loopback and
 * link-local left out), the first that is in the spec, else the first; when the agent does not
 * answer, the spec's first address.
 *
 * @throws {VmOperationError} neither the agent nor the spec gives one
 */
export async function vmAddress(
  lv: Libvirt,
  domain: DomainRef,
  vm: VirtualMachine | undefined,
): Promise<string> {
  const wanted = (vm?.spec.networkInterfaces ?? []).flatMap((n) =>
    n.ip === undefined ? [] : [n.ip.split("/")[0]!]
  );
  let live: string[] = [];
  try {
    live = (await guestInterfaces(lv, domain))
      .flatMap((i) => i.addresses)
      .filter((a) => a.type === "ipv4" && !/^127\.|^169\.254\./.test(a.address))
      .map((a) => a.address);
  } catch (e) {
    if (!(e instanceof LibvirtError || e instanceof GuestAgentError)) throw e;
  }
  const pick = live.find((a) => wanted.includes(a)) ?? live[0] ?? wanted[0];
  if (!pick) {
    throw new VmOperationError(
      `VM ${domain.name} has no address: its agent reports none and its spec names none`,
    );
  }
  return pick;
}
