/**
 * The QEMU guest agent through libvirt: ping, run a command, read a file, list addresses. All of
 * it travels over the virtio channel, never over the guest's network.
 * @module
 */
import { type DomainRef, type Libvirt, LibvirtError } from "../libvirt/mod.ts";

/** A guest agent command failed or returned an error. */
export class GuestAgentError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GuestAgentError";
  }
}

/** Sends one agent command and returns its `return` member. */
export async function agentCall<T = unknown>(
  lv: Libvirt,
  domain: DomainRef,
  execute: string,
  args?: Record<string, unknown>,
  timeoutSec = 10,
): Promise<T> {
  const cmd = JSON.stringify(args ? { execute, arguments: args } : { execute });
  const reply = JSON.parse(await lv.qemuAgentCommand(domain, cmd, timeoutSec)) as {
    return?: T;
    error?: { desc?: string };
  };
  if (reply.error) throw new GuestAgentError(`${execute}: ${reply.error.desc ?? "agent error"}`);
  return reply.return as T;
}

/** Whether the agent answers `guest-ping` now (false while it is not connected). */
export async function guestPing(lv: Libvirt, domain: DomainRef, timeoutSec = 2): Promise<boolean> {
  try {
    await agentCall(lv, domain, "guest-ping", undefined, timeoutSec);
    return true;
  } catch (e) {
    if (e instanceof LibvirtError || e instanceof GuestAgentError) return false;
    throw e;
  }
}

/** Result of a command run in the guest. */
export interface GuestExecResult {
  /** Exit code (-1 when killed by a signal). */
  exitCode: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

const decodeB64 = (s?: string) =>
  s ? new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0))) : "";

/** Runs `path args...` in the guest and waits (up to `timeoutMs`) for it to finish. */
export async function guestExec(
  lv: Libvirt,
  domain: DomainRef,
  path: string,
  args: string[] = [],
  timeoutMs = 30_000,
): Promise<GuestExecResult> {
  const { pid } = await agentCall<{ pid: number }>(lv, domain, "guest-exec", {
    path,
    arg: args,
    "capture-output": true,
  });
  const deadline = performance.now() + timeoutMs;
  let delay = 20;
  while (true) {
    const st = await agentCall<{
      exited: boolean;
      exitcode?: number;
      signal?: number;
      "out-data"?: string;
      "err-data"?: string;
    }>(lv, domain, "guest-exec-status", { pid });
    if (st.exited) {
      return {
        exitCode: st.exitcode ?? -1,
        stdout: decodeB64(st["out-data"]),
        stderr: decodeB64(st["err-data"]),
      };
    }
    if (performance.now() > deadline) {
      throw new GuestAgentError(`${path} did not finish within ${timeoutMs} ms in the guest`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}

/** Reads a whole file from the guest; throws {@linkcode GuestAgentError} when it cannot. */
export async function guestReadFile(lv: Libvirt, domain: DomainRef, path: string): Promise<string> {
  const handle = await agentCall<number>(lv, domain, "guest-file-open", { path, mode: "r" });
  try {
    let out = "";
    while (true) {
      const r = await agentCall<{ count: number; "buf-b64": string; eof: boolean }>(
        lv,
        domain,
        "guest-file-read",
        { handle, count: 65536 },
      );
      out += decodeB64(r["buf-b64"]);
      if (r.eof || r.count === 0) return out;
    }
  } finally {
    await agentCall(lv, domain, "guest-file-close", { handle }).catch(() => {});
  }
}

/** One interface as the agent reports it (`guest-network-get-interfaces`). */
export interface GuestInterface {
  /** Name in the guest, e.g. `enp1s0`. */
  name: string;
  /** MAC address. */
  hardwareAddress: string;
  /** Addresses with prefix lengths. */
  addresses: { type: "ipv4" | "ipv6"; address: string; prefix: number }[];
}

/** The guest's interfaces and addresses, straight from the agent. */
export async function guestInterfaces(lv: Libvirt, domain: DomainRef): Promise<GuestInterface[]> {
  const list = await agentCall<{
    name: string;
    "hardware-address"?: string;
    "ip-addresses"?: { "ip-address-type": "ipv4" | "ipv6"; "ip-address": string; prefix: number }[];
  }[]>(lv, domain, "guest-network-get-interfaces");
  return list.map((i) => ({
    name: i.name,
    hardwareAddress: i["hardware-address"] ?? "",
    addresses: (i["ip-addresses"] ?? []).map((a) => ({
      type: a["ip-address-type"],
      address: a["ip-address"],
      prefix: a.prefix,
    })),
  }));
}
