/** A parsed libvirt connection URI. */
export interface LibvirtUri {
  /** How to reach the daemon. */
  transport: "unix" | "tcp" | "ssh";
  /** The URI sent in CONNECT_OPEN: the driver URI without transport and client-only parameters. */
  name: string;
  /** Unix socket path (local, or on the remote host for ssh with netcat). */
  socketPath: string;
  /** Host for tcp and ssh. */
  host: string;
  /** Port for tcp (default 16509) and ssh (0 means ssh's default). */
  port: number;
  /** User for ssh. */
  user: string;
  /** ssh identity file (`?keyfile=`). */
  keyfile: string;
  /** Skip ssh host key checks (`?no_verify=1`). */
  noVerify: boolean;
  /** ssh remote side: `auto` (virt-ssh-helper, else nc), `native` or `netcat` (`?proxy=`). */
  proxy: "auto" | "native" | "netcat";
  /** The URI as given, for messages (never holds a password: libvirt URIs carry none). */
  display: string;
}

/** The URI used when none is given, as virsh does for root. */
export const DEFAULT_URI = "qemu:///system";

const CLIENT_PARAMS = new Set([
  "socket",
  "keyfile",
  "no_verify",
  "proxy",
  "command",
  "netcat",
  "no_tty",
  "mode",
]);

/**
 * Parses a libvirt URI: `qemu:///system`, `qemu:///session`, `qemu+unix:///system?socket=PATH`,
 * `qemu+tcp://host[:port]/system`, `qemu+ssh://[user@]host[:port]/system[?keyfile=..&no_verify=1]`.
 *
 * @example
 * ```ts
 * import { parseUri } from "./uri.ts";
 * const u = parseUri("qemu+tcp://10.0.0.5/system");
 * console.log(u.transport, u.host, u.port, u.name); // tcp 10.0.0.5 16509 qemu:///system
 * ```
 */
export function parseUri(
  text: string,
  env: { runtimeDir?: string; home?: string } = {},
): LibvirtUri {
  const m = /^([a-z][a-z0-9]*)(?:\+([a-z]+))?:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(text);
  if (!m) {
    throw new TypeError(
      `Invalid libvirt URI '${text}': expected driver[+transport]://[host]/path, e.g. qemu:///system`,
    );
  }
  const driver = m[1]!.toLowerCase();
  const explicit = (m[2] ?? "").toLowerCase();
  const authority = m[3] ?? "";
  const path = m[4] ?? "/";
  // URLSearchParams costs about 0.4 ms on its first use in a process: only made for a query.
  const params: QueryParams = m[5] ? new URLSearchParams(m[5]) : NO_QUERY;
  let user = "";
  let hostPort = authority;
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    user = decodeURIComponent(authority.slice(0, at));
    hostPort = authority.slice(at + 1);
  }
  let host = hostPort;
  let port = 0;
  const pm = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(hostPort);
  if (pm) {
    host = pm[1]!.replace(/^\[|\]$/g, "");
    port = pm[2] ? Number(pm[2]) : 0;
  }
  const transport = explicit === "" ? (host ? "tls" : "unix") : explicit;
  if (transport === "tls" || transport === "libssh" || transport === "libssh2") {
    throw new TypeError(
      `Unsupported transport '${transport}' in '${text}': use unix (qemu:///system), tcp or ssh`,
    );
  }
  if (transport !== "unix" && transport !== "tcp" && transport !== "ssh") {
    throw new TypeError(`Unknown transport '${transport}' in '${text}'`);
  }
  if ((transport === "tcp" || transport === "ssh") && !host) {
    throw new TypeError(`The ${transport} transport needs a host in '${text}'`);
  }
  const rest = [...params].filter(([k]) => !CLIENT_PARAMS.has(k));
  const query = rest.length ? `?${new URLSearchParams(rest).toString()}` : "";
  const name = `${driver}://${path}${query}`;
  const session = path === "/session";
  const runtimeDir = env.runtimeDir ?? safeEnv("XDG_RUNTIME_DIR");
  const home = env.home ?? safeEnv("HOME") ?? "/root";
  const defaultSocket = session
    ? (runtimeDir ? `${runtimeDir}/libvirt/libvirt-sock` : `${home}/.cache/libvirt/libvirt-sock`)
    : "/var/run/libvirt/libvirt-sock";
  const proxy = params.get("proxy") ?? "auto";
  if (proxy !== "auto" && proxy !== "native" && proxy !== "netcat") {
    throw new TypeError(`Invalid proxy '${proxy}' in '${text}': expected auto, native or netcat`);
  }
  return {
    transport,
    name,
    socketPath: params.get("socket") ?? defaultSocket,
    host,
    port: transport === "tcp" ? (port || 16509) : port,
    user,
    keyfile: params.get("keyfile") ?? "",
    noVerify: params.get("no_verify") === "1",
    proxy,
    display: text,
  };
}

/** What parseUri reads of a query. */
type QueryParams = Pick<URLSearchParams, "get"> & Iterable<[string, string]>;

/** The parameters of a URI without a query. */
const NO_QUERY: QueryParams = { get: () => null, [Symbol.iterator]: () => [][Symbol.iterator]() };

function safeEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Chooses the URI as virsh does: an explicit `--connect` value, then `FOUNDRY_URI`, then
 * `LIBVIRT_DEFAULT_URI`, then `qemu:///system`.
 */
export function resolveUri(
  explicit?: string,
  env: (name: string) => string | undefined = safeEnv,
): string {
  return explicit || env("FOUNDRY_URI") || env("LIBVIRT_DEFAULT_URI") || DEFAULT_URI;
}
