/**
 * The vocabulary of a fleet of libvirt hosts (issue 16): a host as foundry's configuration names it,
 * and the per-host outcome of an operation fanned out over several hosts.
 *
 * @module
 */

/** One libvirt host in foundry's configuration (`hosts:`). */
export interface HostEntry {
  /** Short name used by `--host` and shown in the HOST column; `^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`. */
  name: string;
  /** Its libvirt URI, `qemu+ssh://root@a/system`, `qemu:///system`. */
  uri: string;
  /** Labels `--host-selector` and `spec.placement.selector` match. */
  labels?: Record<string, string>;
  /** Optional limits placement respects. */
  limits?: {
    /** Most foundry VMs on the host. */
    maxVms?: number;
    /** Memory in GiB placement leaves free on the host. */
    reserveMemoryGiB?: number;
  };
}

/** What one host gave back from a fanned-out operation. */
export type HostOutcome<T> =
  | { host: string; ok: true; value: T }
  | { host: string; ok: false; error: Error };

/**
 * Exit code of a fanned-out command that worked on some hosts and failed on others (each failed
 * host said on its own line); when every host failed, the code is that of the failures.
 */
export const EXIT_PARTIAL = 7;
