/**
 * The fleet-wide address book of `foundry create` (issue 16): before anything is created on any
 * host, the names, IP addresses and MAC addresses of the VMs to create are held against each other
 * and against every foundry VM of every host (their stored specs), so two hosts never get the
 * same address. A VM of the file that exists already under its name on a host is that VM, not a
 * conflict with it (create then finds it unchanged, or refuses a different spec).
 *
 * @example
 * ```ts
 * import { addressConflicts } from "./address_book.ts";
 * import { loadVirtualMachines } from "./loader.ts";
 * const vms = await loadVirtualMachines("examples/simple-vm.yaml");
 * for (const c of addressConflicts(vms, [{ host: "a", vms: [] }])) console.log(c.message);
 * ```
 * @module
 */
import { macOf } from "./naming.ts";
import type { VirtualMachine } from "./types.ts";

/** One name or address a VM claims, with the field that gives it. */
export interface AddressClaim {
  /** `name`, `ip` or `mac`. */
  kind: "name" | "ip" | "mac";
  /** The value, an IP address without its prefix, a lowercase MAC. */
  value: string;
  /** Field path, `metadata.name`, `spec.networkInterfaces[0].ip`. */
  path: string;
}

/** A claim of a VM to create that another VM holds. */
export interface AddressConflict {
  /** The VM to create. */
  vm: string;
  /** Its claim. */
  claim: AddressClaim;
  /** The host of the VM that holds it; undefined when it is another VM of the same file. */
  host?: string;
  /** The VM that holds it. */
  holder: string;
  /** One line: `spec.networkInterfaces[0].ip: address 10.0.0.5 is used by VM db on host b`. */
  message: string;
}

/** The foundry VMs of one host, as their stored specs say. */
export interface HostBook {
  /** Host name. */
  host: string;
  /** Its foundry VMs. */
  vms: readonly VirtualMachine[];
}

/** The name and every IP and MAC address `vm` claims. */
export function claimsOf(vm: VirtualMachine): AddressClaim[] {
  const out: AddressClaim[] = [{ kind: "name", value: vm.metadata.name, path: "metadata.name" }];
  vm.spec.networkInterfaces.forEach((nic, i) => {
    const at = `spec.networkInterfaces[${i}]`;
    if (nic.ip !== undefined) {
      const slash = nic.ip.indexOf("/");
      out.push({
        kind: "ip",
        value: slash < 0 ? nic.ip : nic.ip.slice(0, slash),
        path: `${at}.ip`,
      });
    }
    try {
      out.push({ kind: "mac", value: macOf(nic), path: nic.mac ? `${at}.mac` : `${at}.ip` });
    } catch { /* an interface with neither: nothing to claim */ }
  });
  return out;
}

const WHAT = { name: "name", ip: "address", mac: "MAC address" } as const;

/**
 * Every claim of `vms` that another VM holds: an earlier VM of the same list, or a foundry VM of
 * any host in `books` (except the VM of the same name, which is the VM itself).
 */
export function addressConflicts(
  vms: readonly VirtualMachine[],
  books: readonly HostBook[],
): AddressConflict[] {
  const held = new Map<string, { host?: string; holder: string }[]>();
  const hold = (c: AddressClaim, holder: string, host?: string) => {
    const key = `${c.kind}:${c.value}`;
    const list = held.get(key) ?? [];
    list.push(host === undefined ? { holder } : { holder, host });
    held.set(key, list);
  };
  for (const b of books) {
    for (const vm of b.vms) for (const c of claimsOf(vm)) hold(c, vm.metadata.name, b.host);
  }
  const out: AddressConflict[] = [];
  for (const vm of vms) {
    const name = vm.metadata.name;
    const mine = claimsOf(vm);
    for (const claim of mine) {
      const others = (held.get(`${claim.kind}:${claim.value}`) ?? []).filter((h) =>
        claim.kind === "name" ? h.host === undefined : h.holder !== name
      );
      for (const o of others) {
        out.push({
          vm: name,
          claim,
          holder: o.holder,
          ...(o.host === undefined ? {} : { host: o.host }),
          message: `${claim.path}: ${WHAT[claim.kind]} ${claim.value} is ${
            claim.kind === "name" ? "given" : "used"
          } by VM ${o.holder}${
            o.host === undefined ? " earlier in the file" : ` on host ${o.host}`
          }`,
        });
      }
    }
    // The names of a VM that exists on several hosts already: which one would it be?
    const homes = books.filter((b) => b.vms.some((v) => v.metadata.name === name));
    if (homes.length > 1) {
      out.push({
        vm: name,
        claim: mine[0]!,
        holder: name,
        host: homes[1]!.host,
        message: `metadata.name: VM ${name} exists on hosts ${
          homes.map((h) => h.host).join(", ")
        } already`,
      });
    }
    for (const c of mine) hold(c, name);
  }
  return out;
}

/** Where each VM of `vms` exists already, by name (the first host that has it). */
export function homesOf(
  vms: readonly VirtualMachine[],
  books: readonly HostBook[],
): Map<string, string> {
  const out = new Map<string, string>();
  for (const vm of vms) {
    const home = books.find((b) => b.vms.some((v) => v.metadata.name === vm.metadata.name));
    if (home) out.set(vm.metadata.name, home.host);
  }
  return out;
}

/** Conflicts were found: nothing was created. */
export class AddressConflictError extends Error {
  /** Every conflict. */
  readonly conflicts: readonly AddressConflict[];
  /** Creates the error, one line per conflict. */
  constructor(conflicts: readonly AddressConflict[]) {
    super(
      `${conflicts.map((c) => `VM ${c.vm} ${c.message}`).join("\n")}\nNothing was created`,
    );
    this.name = "AddressConflictError";
    this.conflicts = conflicts;
  }
}

/** Some hosts could not be read, so the address book is incomplete: nothing was created. */
export class AddressBookIncompleteError extends Error {
  /** The hosts that could not be read, with why. */
  readonly hosts: readonly { host: string; error: Error }[];
  /** Creates the error. */
  constructor(hosts: readonly { host: string; error: Error }[]) {
    super(
      `the fleet-wide address check is incomplete: ${
        hosts.map((h) => `host ${h.host}: ${h.error.message.slice(0, 200)}`).join("; ")
      }; nothing was created`,
    );
    this.name = "AddressBookIncompleteError";
    this.hosts = hosts;
  }
}
