/**
 * Building blocks of the apply planners (lib/foundry/apply.ts for libvirt, kubevirt_apply.ts for
 * KubeVirt): one {@linkcode SpecChange}, equality of spec values, and the changes of a string map
 * and of a VM's NICs. Each planner gives the classes and reasons of its own target. Pure.
 * @module
 */
import { macOf } from "./naming.ts";
import type { ChangeClass, SpecChange } from "./plan_types.ts";
import { canonicalJson } from "./stored_metadata.ts";
import type { NetworkInterface } from "./types.ts";

/** One change at `path`; `from`/`to` left out when undefined (added or removed). */
export function specChange(
  path: string,
  from: unknown,
  to: unknown,
  cls: ChangeClass,
  reason?: string,
): SpecChange {
  const c: SpecChange = { path, class: cls };
  if (from !== undefined) c.from = from;
  if (to !== undefined) c.to = to;
  if (reason !== undefined) c.reason = reason;
  return c;
}

/** Whether two spec values are equal, whatever the order of their keys. */
export const sameValue = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);

/** A `live` change per key of `prefix` (labels, annotations) whose value differs, keys sorted. */
export function mapChanges(
  prefix: string,
  from: Record<string, string> | undefined,
  to: Record<string, string> | undefined,
  out: SpecChange[],
): void {
  const keys = new Set([...Object.keys(from ?? {}), ...Object.keys(to ?? {})]);
  for (const k of [...keys].sort()) {
    if (from?.[k] !== to?.[k]) out.push(specChange(`${prefix}.${k}`, from?.[k], to?.[k], "live"));
  }
}

/** How a target carries out a NIC's changes: a class and a reason for each kind. */
export interface NicChangeClasses {
  /** A NIC moved to another bridge. */
  bridge: readonly [ChangeClass, string];
  /** A NIC of the file that the VM does not have. */
  added: readonly [ChangeClass, string];
  /** A NIC of the VM that the file no longer has. */
  removed: readonly [ChangeClass, string];
  /** Why an address change (or a NIC replaced by one of another identity) recreates the VM. */
  cloudInit: string;
  /** Why a NIC replaced by one of another identity recreates the VM. */
  identity: string;
}

/**
 * The changes that take NICs `had` to `want`, matched by MAC (`macOf`): a bridge change, address
 * fields (recreate: cloud-init set them up), NICs replaced by ones of another identity (paired by
 * position; recreate), and NICs added or removed.
 */
export function nicChanges(
  had: readonly NetworkInterface[],
  want: readonly NetworkInterface[],
  out: SpecChange[],
  classes: NicChangeClasses,
): void {
  const hadBy = new Map(had.map((n) => [macOf(n), n]));
  const wantBy = new Map(want.map((n) => [macOf(n), n]));
  const gone = had.filter((n) => !wantBy.has(macOf(n)));
  const added = want.filter((n) => !hadBy.has(macOf(n)));
  const at = (n: NetworkInterface) => `spec.networkInterfaces[${macOf(n)}]`;
  for (const n of want) {
    const old = hadBy.get(macOf(n));
    if (old === undefined) continue;
    if (old.bridge !== n.bridge) {
      out.push(specChange(`${at(n)}.bridge`, old.bridge, n.bridge, ...classes.bridge));
    }
    for (const f of ["ip", "gateway", "dnsServers", "defaultRoute"] as const) {
      if (!sameValue(old[f], n[f])) {
        out.push(specChange(`${at(n)}.${f}`, old[f], n[f], "recreate", classes.cloudInit));
      }
    }
  }
  const pairs = Math.min(gone.length, added.length);
  for (let i = 0; i < pairs; i++) {
    out.push(
      specChange(
        at(gone[i]!),
        nicIdentity(gone[i]!),
        nicIdentity(added[i]!),
        "recreate",
        classes.identity,
      ),
    );
  }
  for (const n of added.slice(pairs)) out.push(specChange(at(n), undefined, n, ...classes.added));
  for (const n of gone.slice(pairs)) out.push(specChange(at(n), n, undefined, ...classes.removed));
}

/** What identifies a NIC in a plan: its MAC, address and bridge. */
export function nicIdentity(n: NetworkInterface): Record<string, string> {
  return { mac: macOf(n), ...(n.ip === undefined ? {} : { ip: n.ip }), bridge: n.bridge };
}
