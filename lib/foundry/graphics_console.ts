/**
 * Where a VM's graphical console listens, from its live domain XML (`foundry console NAME
 * --graphics`): `vnc://HOST:PORT` or `spice://HOST:PORT`. A wildcard listen address (`0.0.0.0`,
 * `::`) is shown as the libvirt host's name, which is where a viewer connects.
 * @module
 */
import { DomainState, type Libvirt } from "../libvirt/mod.ts";
import { lookupVm } from "./lookup.ts";
import { VmOperationError } from "./vm_errors.ts";
import { childElements, readXml, type XmlElement } from "./xml_reader.ts";

/** A graphical console's address. */
export interface GraphicsAddress {
  /** `vnc` or `spice`. */
  type: string;
  /** Host to connect to. */
  host: string;
  /** TCP port. */
  port: number;
  /** `vnc://HOST:PORT` or `spice://HOST:PORT` (an IPv6 host in brackets). */
  url: string;
}

/** The graphics elements of a domain XML: type, port and listen address of each. */
export function graphicsOfDomainXml(
  xml: string,
): { type: string; port: number | undefined; listen: string | undefined }[] {
  const devices = childElements(readXml(xml)).find((e) => e.name === "devices");
  if (devices === undefined) return [];
  return childElements(devices).filter((e) => e.name === "graphics").map((g: XmlElement) => {
    const port = Number(g.attributes.port ?? g.attributes.tlsPort);
    const listenEl = childElements(g).find((l) =>
      l.name === "listen" && l.attributes.type === "address" && l.attributes.address
    );
    return {
      type: g.attributes.type ?? "",
      port: Number.isInteger(port) && port > 0 ? port : undefined,
      listen: listenEl?.attributes.address ?? g.attributes.listen,
    };
  });
}

/** The console address of a graphics element; `hostName` stands in for a wildcard address. */
export function graphicsAddress(
  g: { type: string; port: number; listen: string | undefined },
  hostName: string,
): GraphicsAddress {
  const wildcard = g.listen === undefined || g.listen === "0.0.0.0" || g.listen === "::";
  const host = wildcard ? hostName : g.listen!;
  const shown = host.includes(":") ? `[${host}]` : host;
  return { type: g.type, host, port: g.port, url: `${g.type}://${shown}:${g.port}` };
}

/**
 * The graphical console address of VM `name`, read from its live XML.
 *
 * @throws {VmOperationError} the VM has no graphical console, or it is not running (no port yet)
 * @throws {VmNotFoundError} no such VM
 */
export async function vmGraphicsAddress(lv: Libvirt, name: string): Promise<GraphicsAddress> {
  const { domain, xml } = await lookupVm(lv, name);
  const all = graphicsOfDomainXml(xml).filter((g) => g.type === "vnc" || g.type === "spice");
  const g = all[0];
  if (g === undefined) {
    throw new VmOperationError(
      `VM ${name} has no graphical console (spec.graphics is not set); use foundry console ${name} for its serial console`,
    );
  }
  if (g.port === undefined) {
    const running = (await lv.domainGetState(domain)).state === DomainState.RUNNING;
    throw new VmOperationError(
      running
        ? `VM ${name}'s ${g.type} console has no port`
        : `VM ${name} is not running: its ${g.type} console has no port until it starts`,
    );
  }
  const wildcard = g.listen === undefined || g.listen === "0.0.0.0" || g.listen === "::";
  const hostName = wildcard ? await lv.getHostname() : "";
  return graphicsAddress({ type: g.type, port: g.port, listen: g.listen }, hostName);
}
