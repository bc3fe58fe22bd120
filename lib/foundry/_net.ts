/** Strict parsing of IPv4 addresses and CIDR notation; private to lib/foundry. */

/** Parses a dotted-quad IPv4 address; rejects leading zeros, which some tools read as octal. */
export function parseIPv4(text: string): [number, number, number, number] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const octets: number[] = [];
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    octets.push(n);
  }
  return octets as [number, number, number, number];
}

/** An IPv4 address with its prefix length. */
export interface Cidr {
  /** The four octets of the address. */
  octets: [number, number, number, number];
  /** The address without the prefix length. */
  address: string;
  /** Prefix length, 1 to 32. */
  prefix: number;
}

/** Parses `a.b.c.d/n` with n from 1 to 32. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^([^/]+)\/(0|[1-9][0-9]?)$/.exec(text);
  if (m === null) return undefined;
  const octets = parseIPv4(m[1] ?? "");
  const prefix = Number(m[2]);
  if (octets === undefined || prefix < 1 || prefix > 32) return undefined;
  return { octets, address: m[1] ?? "", prefix };
}

/** Whether `text` is an IPv6 address (checked by the WHATWG URL parser). */
export function isIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** The address as a 32-bit unsigned integer. */
export function ipv4ToNumber(octets: readonly number[]): number {
  return ((octets[0] ?? 0) * 2 ** 24) + ((octets[1] ?? 0) << 16) + ((octets[2] ?? 0) << 8) +
    (octets[3] ?? 0);
}
