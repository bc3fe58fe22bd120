/**
 * `foundry wait`: follow a VM from running to its guest agent, its addresses and the end of
 * cloud-init, driven by domain and agent events, and report how long each stage took.
 * @module
 */
import { type DomainRef, DomainState, type Libvirt } from "../libvirt/mod.ts";
import {
  clip,
  GuestFileTooLargeError,
  guestInterfaces,
  guestPing,
  guestReadFile,
} from "./agent.ts";
import { lookupVm, VmOperationError, waitForState } from "./lookup.ts";

/** The stages of a wait, in order. */
export const WAIT_STAGES = ["running", "agent", "ip", "cloud-init"] as const;
/** One stage. */
export type WaitStage = typeof WAIT_STAGES[number];

/** Options of {@linkcode waitForVm}. */
export interface WaitOptions {
  /** The last stage to wait for (default `cloud-init`). */
  until?: Exclude<WaitStage, "running">;
  /** Give up after this many milliseconds in all (default 600000). */
  timeoutMs?: number;
  /** Called when a stage is reached, with its own duration. */
  onStage?: (stage: WaitStage, ms: number, detail: string) => void;
  /** Stops waiting (Ctrl-C). */
  signal?: AbortSignal;
}

/** At most this many of cloud-init's errors are kept, each cut to {@linkcode MAX_ERROR_CHARS}. */
const MAX_ERRORS = 20;
const MAX_ERROR_CHARS = 1000;
/** cloud-init's result.json is small; a larger one is not read. */
const RESULT_MAX_BYTES = 1024 * 1024;

/** What a wait found. */
export interface WaitResult {
  /** Milliseconds each stage took. */
  stages: Partial<Record<WaitStage, number>>;
  /** IPv4 addresses the agent reported (without loopback), `addr/prefix`. */
  addresses: string[];
  /**
   * cloud-init's errors from result.json (empty when it finished cleanly): the guest's text, at
   * most 20 of at most 1000 characters each; strip control characters before printing them.
   */
  cloudInitErrors: string[];
}

/** The wait ran out of time: a VM operation error (exit 4) that says which stage was missed. */
export class WaitTimeoutError extends VmOperationError {
  /** The stage not reached. */
  readonly stage: WaitStage;
  /** Creates the error. */
  constructor(name: string, stage: WaitStage, ms: number) {
    super(`VM ${name} did not reach stage '${stage}' within ${Math.round(ms / 1000)} s`);
    this.name = "WaitTimeoutError";
    this.stage = stage;
  }
}

/**
 * The VM is shut off (or crashed), so waiting could only run out of time: a VM operation error
 * raised at once, carrying the VM's name and state.
 */
export class VmNotRunningError extends VmOperationError {
  /** The VM's name. */
  readonly vmName: string;
  /** Its state in virsh's words (`shut off`, `crashed`). */
  readonly state: string;
  /** Creates the error. */
  constructor(vmName: string, state: string) {
    super(`VM ${vmName} is ${state}, so it will not reach any stage`);
    this.name = "VmNotRunningError";
    this.vmName = vmName;
    this.state = state;
  }
}

/**
 * Waits for `name` to run, its agent to answer, the spec's addresses to appear and cloud-init to
 * finish (`/var/lib/cloud/instance/boot-finished`), stopping at `until`. State changes and agent
 * connection wake it through daemon events; between them it retries the agent every two seconds,
 * since a connected agent may not answer yet. A VM that is shut off or crashed when the wait begins
 * fails at once with {@linkcode VmNotRunningError}: nothing would start it.
 */
export async function waitForVm(
  lv: Libvirt,
  name: string,
  opts: WaitOptions = {},
): Promise<WaitResult> {
  const until = opts.until ?? "cloud-init";
  const total = opts.timeoutMs ?? 600_000;
  const deadline = performance.now() + total;
  const left = () => Math.max(0, deadline - performance.now());
  const { domain, vm } = await lookupVm(lv, name);
  const result: WaitResult = { stages: {}, addresses: [], cloudInitErrors: [] };
  let t = performance.now();
  const reached = (stage: WaitStage, detail: string) => {
    const ms = performance.now() - t;
    result.stages[stage] = ms;
    opts.onStage?.(stage, ms, detail);
    t = performance.now();
  };

  const signal = opts.signal;
  const calls = signal ? { signal } : {};
  const state0 = (await lv.domainGetState(domain)).state;
  if (state0 === DomainState.SHUTOFF) throw new VmNotRunningError(name, "shut off");
  if (state0 === DomainState.CRASHED) throw new VmNotRunningError(name, "crashed");
  if (!(await waitForState(lv, domain, [DomainState.RUNNING], left(), signal ?? lv.signal))) {
    throw new WaitTimeoutError(name, "running", total);
  }
  reached("running", "domain running");

  let wake: (() => void) | null = null;
  const sub = await lv.onAgentLifecycle(domain, () => wake?.());
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(ms, left()));
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
      opts.signal?.addEventListener("abort", () => resolve(), { once: true });
    });
  const retry = async <T>(stage: WaitStage, attempt: () => Promise<T | undefined>): Promise<T> => {
    while (true) {
      opts.signal?.throwIfAborted();
      const v = await attempt();
      if (v !== undefined) return v;
      if (left() <= 0) throw new WaitTimeoutError(name, stage, total);
      await pause(2_000);
    }
  };
  try {
    await retry("agent", async () => (await guestPing(lv, domain, 2, calls)) ? true : undefined);
    reached("agent", "guest agent answers");
    if (until === "agent") return result;

    const want = (vm?.spec.networkInterfaces ?? []).flatMap((n) =>
      n.ip === undefined ? [] : [n.ip]
    );
    result.addresses = await retry("ip", () => addressesOnce(lv, domain, want, signal));
    reached("ip", result.addresses.join(", "));
    if (until === "ip") return result;

    // Only whether boot-finished exists matters: a few bytes are read, and a guest that points it
    // at /dev/zero gets "present", not an endless read.
    await retry("cloud-init", async () => {
      try {
        await guestReadFile(lv, domain, "/var/lib/cloud/instance/boot-finished", {
          maxBytes: 4096,
          timeoutMs: Math.min(10_000, Math.max(1, left())),
          ...calls,
        });
        return true;
      } catch (e) {
        if (e instanceof GuestFileTooLargeError) return true;
        if (signal?.aborted) throw e;
        return undefined;
      }
    });
    try {
      const res = JSON.parse(
        await guestReadFile(lv, domain, "/var/lib/cloud/data/result.json", {
          maxBytes: RESULT_MAX_BYTES,
          timeoutMs: Math.min(30_000, Math.max(1, left())),
          ...calls,
        }),
      );
      const errors: unknown = res?.v1?.errors;
      result.cloudInitErrors = Array.isArray(errors)
        ? errors.slice(0, MAX_ERRORS).map((e) =>
          clip(typeof e === "string" ? e : JSON.stringify(e), MAX_ERROR_CHARS)
        )
        : [];
    } catch (e) {
      if (signal?.aborted) throw e;
      /* no result file, or an unreadable one: nothing more to say */
    }
    reached(
      "cloud-init",
      result.cloudInitErrors.length
        ? `finished with errors: ${result.cloudInitErrors.join("; ")}`
        : "cloud-init finished",
    );
    return result;
  } finally {
    await sub.close().catch(() => {});
  }
}

/** The guest's IPv4 addresses once every wanted `addr/prefix` is present (any, when none wanted). */
async function addressesOnce(
  lv: Libvirt,
  domain: DomainRef,
  want: readonly string[],
  signal: AbortSignal | undefined,
): Promise<string[] | undefined> {
  let ifaces;
  try {
    ifaces = await guestInterfaces(lv, domain, signal ? { signal } : {});
  } catch (e) {
    if (signal?.aborted) throw e;
    return undefined;
  }
  const have = ifaces.flatMap((i) =>
    i.addresses.filter((a) => a.type === "ipv4" && !a.address.startsWith("127."))
      .map((a) => `${a.address}/${a.prefix}`)
  );
  if (want.length ? want.every((w) => have.includes(w)) : have.length > 0) return have;
  return undefined;
}
