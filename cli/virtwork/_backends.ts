/**
 * The backend a `virtwork run` or `cleanup` talks to, chosen by `--target`: the KubeVirt backend
 * on the configured cluster, or the libvirt backend (`lib/virtwork/libvirt`, loaded only for that
 * target, so a KubeVirt run never loads foundry's code).
 * @module
 */
import { FLAG_SOURCE } from "../../lib/config/layered.ts";
import type { KubevirtBackend } from "../../lib/kubevirt/backend.ts";
import type { ClusterApi } from "../../lib/kubevirt/client.ts";
import type { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import type { Backend } from "../../lib/virtwork/backend.ts";
import { SettingValidationError, type VirtworkSettings } from "../../lib/virtwork/config.ts";
import type { GuestOs } from "../../lib/workloads/workload.ts";
import type { Io } from "../_program.ts";
import { clusterClient, type VirtworkDeps, withExitCode } from "./_shared.ts";

/** The libvirt URI when `--connect` is not given. */
export const DEFAULT_LIBVIRT_URI = "qemu:///system";

/** A backend with what the CLI needs beside the contract. */
export interface RunBackend extends Backend {
  /** Namespace (KubeVirt) or libvirt URI: where the VMs go, as records and messages say. */
  readonly scope: string;
  /** The guests' distribution the backend found (libvirt: from the image name). */
  readonly os?: GuestOs;
  /** Where the run goes, for verbose output: `cluster <url> (<source>)`, `libvirt <uri>`. */
  readonly describe: string;
  /** The KubeVirt backend's own view (its objects), on that target. */
  readonly kubevirt?: KubevirtBackend;
}

/** Settings `--target libvirt` cannot run without, with what each is. */
const LIBVIRT_REQUIRED = [
  ["image", "a base image volume in foundry's image pool"],
  ["bridge", "the host bridge the VMs attach to"],
  ["subnet", "the subnet their static addresses come from, such as 10.77.0.0/24"],
] as const;

/**
 * Checks the libvirt settings given for `target`; a missing one is named by its flag.
 * @throws {SettingValidationError} for a missing `--image`, `--bridge` or `--subnet`
 */
export function checkLibvirtSettings(cfg: VirtworkSettings): void {
  if (cfg.target !== "libvirt") return;
  for (const [key, what] of LIBVIRT_REQUIRED) {
    if (cfg[key] === "") {
      throw new SettingValidationError(key, FLAG_SOURCE, `required with --target libvirt: ${what}`);
    }
  }
}

/** A cluster API for a dry run: rendering contacts no cluster, so any call is a bug. */
const NO_CLUSTER: ClusterApi = {
  create: () => Promise.reject(new TypeError("a dry run contacts no cluster")),
  get: () => Promise.reject(new TypeError("a dry run contacts no cluster")),
  list: () => Promise.reject(new TypeError("a dry run contacts no cluster")),
  delete: () => Promise.reject(new TypeError("a dry run contacts no cluster")),
};

/**
 * Opens the backend of `cfg.target`. A KubeVirt dry run contacts no cluster.
 * @throws {SettingValidationError} for missing libvirt settings (exit 2)
 */
export async function openRunBackend(
  cfg: VirtworkSettings,
  deps: VirtworkDeps,
  io: Io,
  signal: AbortSignal | undefined,
  progress: (m: string) => void,
): Promise<RunBackend> {
  if (cfg.target === "libvirt") return await openLibvirt(cfg);
  const { openKubevirtBackend } = await import("../../lib/kubevirt/backend.ts");
  let api: ClusterApi & { server?: string } = NO_CLUSTER;
  let describe = "cluster (dry run, none contacted)";
  if (!cfg.dryRun) {
    try {
      // The API server's warnings (a manifest field the cluster does not know and dropped) are
      // printed as kubectl prints them, without escape sequences or control characters.
      const onWarning = (op: string, w: string) =>
        io.err(`Warning: ${op}: ${sanitizeText(w, { singleLine: true })}\n`);
      const { client, source } = await clusterClient(
        cfg,
        { ...deps, client: { onWarning, ...deps.client } },
        signal,
        (op, attempt, delay, why) =>
          progress(`retry ${attempt} of ${op} in ${Math.round(delay)} ms: ${why}`),
      );
      describe = `cluster ${client.server} (${source})`;
      api = client;
    } catch (e) {
      throw withExitCode(e);
    }
  }
  const kubeConfig = (api as { kubeConfig?: KubeConfig }).kubeConfig;
  const kubevirt = openKubevirtBackend(api, {
    namespace: cfg.namespace,
    containerDiskImage: cfg.containerDiskImage,
    pollIntervalSeconds: cfg.pollInterval,
    concurrency: cfg.burst,
    onProgress: progress,
    // Readiness by watches (one list and one watch per kind) wherever there is a real cluster
    // and the run waits; they take their requests from the client's rate limit.
    ...(kubeConfig && !cfg.noWait
      ? {
        watch: new (await import("../../lib/kubevirt/watch.ts")).HttpWatchApi(
          kubeConfig,
          () => (api as { throttle?: () => Promise<void> }).throttle?.() ?? Promise.resolve(),
        ),
      }
      : {}),
  });
  return withScope(kubevirt, cfg.namespace, { kubevirt, describe });
}

async function openLibvirt(cfg: VirtworkSettings): Promise<RunBackend> {
  checkLibvirtSettings(cfg);
  const uri = cfg.connect || DEFAULT_LIBVIRT_URI;
  const { openLibvirtBackend } = await import("../../lib/virtwork/libvirt/mod.ts");
  let backend;
  try {
    backend = await openLibvirtBackend({
      uri,
      image: cfg.image,
      ...(cfg.imagePool ? { imagePool: cfg.imagePool } : {}),
      bridge: cfg.bridge,
      subnet: cfg.subnet,
      ...(cfg.gateway ? { gateway: cfg.gateway } : {}),
      ...(cfg.os ? { os: cfg.os as GuestOs } : {}),
    });
  } catch (e) {
    // A subnet or gateway that is not one is the user's input (exit 2), found before connecting.
    if (e instanceof RangeError) {
      throw new SettingValidationError(
        /gateway/i.test(e.message) ? "gateway" : "subnet",
        FLAG_SOURCE,
        e.message,
      );
    }
    throw withExitCode(e);
  }
  return withScope(backend, uri, {
    os: backend.os,
    describe: `libvirt ${uri} (${backend.os} guests)`,
  });
}

/** `b` with the CLI's additions; calls go to `b` itself (its private state stays its own). */
function withScope(
  b: Backend,
  scope: string,
  extra: { os?: GuestOs; kubevirt?: KubevirtBackend; describe: string },
): RunBackend {
  return {
    target: b.target,
    location: b.location,
    scope,
    ...extra,
    peerAddresses: (p) => b.peerAddresses(p),
    render: (p) => b.render(p),
    create: (p, o) => b.create(p, o),
    waitReady: (v, t, o) => b.waitReady(v, t, o),
    collectResults: (v, d, o) => b.collectResults(v, d, o),
    cleanup: (r, o) => b.cleanup(r, o),
    close: () => b.close(),
  };
}

/** Placeholders for settings a libvirt cleanup does not use (it finds VMs by label). */
const CLEANUP_ONLY = { image: "-", bridge: "-", subnet: "192.0.2.0/24" } as const;

/**
 * The libvirt backend for `cleanup --target libvirt`: only `--connect` matters (default
 * {@linkcode DEFAULT_LIBVIRT_URI}).
 */
export async function openCleanupBackend(cfg: VirtworkSettings): Promise<Backend> {
  const { openLibvirtBackend } = await import("../../lib/virtwork/libvirt/mod.ts");
  try {
    return await openLibvirtBackend({ ...CLEANUP_ONLY, uri: cfg.connect || DEFAULT_LIBVIRT_URI });
  } catch (e) {
    throw withExitCode(e);
  }
}
