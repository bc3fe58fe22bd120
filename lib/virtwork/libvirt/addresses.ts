/**
 * Static IPv4 addresses for a run's VMs on a libvirt host: taken from `--subnet`, never the
 * network, broadcast or gateway address, never one another VM on the daemon has or was given.
 * @module
 */
import { quoteForTerminal } from "../../cloudinit/safe_text.ts";

/** An IPv4 subnet in CIDR notation, parsed. */
export interface Subnet {
  /** The network address as a 32-bit unsigned number. */
  network: number;
  /** Prefix length, 8 to 30. */
  prefix: number;
  /** The gateway the VMs route through (never given to a VM). */
  gateway: number;
  /** As given, normalised: `10.77.0.0/24`. */
  text: string;
}

/** Smallest and largest prefix length `--subnet` takes: room for a gateway and VMs, and bounded. */
export const SUBNET_PREFIX = { min: 8, max: 30 } as const;

/** Parses a dotted-quad IPv4 address into a number; undefined when it is not one. */
export function ipv4Number(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

/** The dotted-quad text of a 32-bit unsigned number. */
export function ipv4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * Parses `--subnet` (and `--gateway`, default the subnet's first host).
 * @throws {RangeError} one line naming the option and what is wrong
 */
export function parseSubnet(subnet: string, gateway?: string): Subnet {
  const m = /^([0-9.]{7,15})\/([0-9]{1,2})$/.exec(subnet);
  const addr = m ? ipv4Number(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (addr === undefined || !Number.isInteger(prefix)) {
    throw new RangeError(`subnet: must be an IPv4 network like 10.77.0.0/24, got ${q(subnet)}`);
  }
  if (prefix < SUBNET_PREFIX.min || prefix > SUBNET_PREFIX.max) {
    throw new RangeError(
      `subnet: the prefix length must be from ${SUBNET_PREFIX.min} to ${SUBNET_PREFIX.max}, got /${prefix}`,
    );
  }
  const size = 2 ** (32 - prefix);
  const network = addr - (addr % size);
  if (network !== addr) {
    throw new RangeError(
      `subnet: ${q(subnet)} is not a network address; did you mean ${ipv4Text(network)}/${prefix}?`,
    );
  }
  let gw = network + 1;
  if (gateway !== undefined) {
    const g = ipv4Number(gateway);
    if (g === undefined) {
      throw new RangeError(`gateway: must be an IPv4 address, got ${q(gateway)}`);
    }
    if (g <= network || g >= network + size - 1) {
      throw new RangeError(`gateway: ${gateway} is not a host address of ${subnet}`);
    }
    gw = g;
  }
  return { network, prefix, gateway: gw, text: `${ipv4Text(network)}/${prefix}` };
}

/** Whether `ip` (dotted quad) is a host address of `subnet`. */
export function inSubnet(subnet: Subnet, ip: string): boolean {
  const n = ipv4Number(ip);
  const size = 2 ** (32 - subnet.prefix);
  return n !== undefined && n > subnet.network && n < subnet.network + size - 1;
}

/**
 * `count` host addresses of `subnet`, lowest first, skipping the gateway and every address in
 * `taken` (dotted quads, any subnet).
 * @throws {RangeError} when the subnet has fewer free addresses
 */
export function allocateAddresses(
  subnet: Subnet,
  count: number,
  taken: ReadonlySet<string>,
): string[] {
  const size = 2 ** (32 - subnet.prefix);
  const out: string[] = [];
  // Bounded by the subnet's size, which SUBNET_PREFIX caps at 2^24.
  for (let n = subnet.network + 1; n < subnet.network + size - 1 && out.length < count; n++) {
    if (n === subnet.gateway) continue;
    const ip = ipv4Text(n);
    if (!taken.has(ip)) out.push(ip);
  }
  if (out.length < count) {
    throw new RangeError(
      `subnet: ${subnet.text} has ${out.length} free addresses, the run needs ${count}`,
    );
  }
  return out;
}

function q(s: string): string {
  return quoteForTerminal(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}
