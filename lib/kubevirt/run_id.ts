/**
 * Run ids given short: `cleanup --run-id 3f2a` works as `audit show 3f2a` does. A prefix is
 * resolved against the run ids the caller knows (the audit trail's and those on the cluster's
 * objects), because cleanup selects objects by label and a label selector needs the whole value.
 * @module
 */
import type { ClusterApi } from "./client.ts";
import { LABELS, MANAGED_BY_VALUE } from "./constants.ts";
import { isStatus } from "./errors.ts";
import { CLEANUP_ORDER } from "./cleanup.ts";

/** A run id prefix that fits more than one run; the candidates are listed in the message. */
export class AmbiguousRunIdError extends Error {
  /** The prefix as given. */
  readonly prefix: string;
  /** Every run id it fits, sorted. */
  readonly candidates: readonly string[];
  /** Creates the error. */
  constructor(prefix: string, candidates: readonly string[]) {
    super(`run id prefix ${prefix} is ambiguous: it fits ${candidates.join(", ")}`);
    this.name = "AmbiguousRunIdError";
    this.prefix = prefix;
    this.candidates = candidates;
  }
}

/**
 * The run id `idOrPrefix` stands for among `known`: itself when it is one of them, else the one
 * it begins, else `idOrPrefix` unchanged (a run nothing is known about, which then matches no
 * object).
 *
 * @throws {AmbiguousRunIdError} when it begins several known run ids
 * @example
 * ```ts
 * import { resolveRunIdPrefix } from "./run_id.ts";
 * resolveRunIdPrefix("3f2a", ["3f2a9c1e-0000-4000-8000-000000000000", "77aa..."]);
 * // "3f2a9c1e-0000-4000-8000-000000000000"
 * ```
 */
export function resolveRunIdPrefix(idOrPrefix: string, known: Iterable<string>): string {
  const all = new Set(known);
  if (all.has(idOrPrefix)) return idOrPrefix;
  const fits = [...all].filter((id) => id.startsWith(idOrPrefix)).sort();
  if (fits.length > 1) throw new AmbiguousRunIdError(idOrPrefix, fits);
  return fits[0] ?? idOrPrefix;
}

/**
 * The run ids on virtwork's objects in `namespace` (VirtualMachines, Services, Secrets); a
 * namespace or resource type that does not exist has none.
 */
export async function clusterRunIds(api: ClusterApi, namespace: string): Promise<string[]> {
  const ids = new Set<string>();
  for (const resource of CLEANUP_ORDER) {
    let items;
    try {
      items = await api.list(resource, namespace, `${LABELS.MANAGED_BY}=${MANAGED_BY_VALUE}`);
    } catch (e) {
      if (isStatus(e, 404)) continue;
      throw e;
    }
    for (const item of items) {
      const id = item.metadata.labels?.[LABELS.RUN_ID];
      if (id) ids.add(id);
    }
  }
  return [...ids].sort();
}
