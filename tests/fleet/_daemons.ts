/**
 * Extra libvirt daemons on this machine that stand in for the hosts of a fleet (issue 16).
 *
 * Each is a system-mode `libvirtd` in its own mount namespace (`unshare -m`): its /etc/libvirt,
 * /var/lib/libvirt, /run/libvirt, /var/log/libvirt and /var/cache/libvirt are bind mounts of
 * directories under its own temporary directory, and its sockets are in that directory too
 * (`unix_sock_dir`), so the machine's own daemon (`qemu:///system`, which other tests use) never
 * sees it. Root-run session daemons are not possible: libvirtd runs in system mode whenever its
 * user is root. Each starts with no networks, pools or domains, so it makes no bridge, firewall
 * rule or dnsmasq. Domains can be defined, and an OS-less TCG domain (type `qemu`) starts
 * (`stdio_handler = "file"`, since the machine's virtlogd socket is hidden from it); tests keep
 * to define-only domains. Bridges are not made: a network would make a real bridge in the
 * machine's one network namespace. `startDaemon` with a {@linkcode DaemonNetns} runs one in a
 * network namespace of its own as well (tests/fleet/_netns_daemons.ts).
 *
 * One host can be reached over `qemu+ssh://` through an sshd the harness starts on 127.0.0.1
 * (its own keys and port), with `nc -U` on the daemon's socket as the remote side.
 *
 * @module
 */
import { SSHD, startTestSshd } from "../libvirt/_sshd.ts";

const decoder = new TextDecoder();

/** Mount points each daemon gets its own copy of. */
const PRIVATE_DIRS = {
  etc: "/etc/libvirt",
  lib: "/var/lib/libvirt",
  run: "/run/libvirt",
  log: "/var/log/libvirt",
  cache: "/var/cache/libvirt",
} as const;

/** One daemon standing in for a host. */
export interface TestHost {
  /** Host name for `hosts:` (`h6a`, ...). */
  name: string;
  /** Its temporary directory (removed by `stop`). */
  dir: string;
  /** Its read-write socket. */
  socket: string;
  /** `qemu+unix:///system?socket=...`: the daemon reached directly. */
  unixUri: string;
  /** The URI the fleet uses: the unix one, or for the ssh host `qemu+ssh://...`. */
  uri: string;
  /** Process id of its libvirtd. */
  pid: number;
  /** Stops it answering: SIGSTOP (connects hang) until `resume`. */
  pause(): void;
  /** Undoes `pause`. */
  resume(): void;
  /** Kills the daemon (connects are refused); `stop` still cleans up. */
  kill(): Promise<void>;
}

/** Three (or `count`) daemons and how to stop them all. */
export interface TestFleet {
  hosts: TestHost[];
  /** Why no host is reached over ssh, or null when the last host's `uri` is a `qemu+ssh://`. */
  sshSkipped: string | null;
  /** Stops every daemon and QEMU they started, sshd, and removes every directory. */
  stop(): Promise<void>;
}

/** Why the harness cannot run here, or null. */
export function fleetSkipReason(): string | null {
  if (Deno.uid() !== 0) return "extra libvirt daemons in mount namespaces need root";
  for (const tool of ["/usr/sbin/libvirtd", "/usr/bin/unshare"]) {
    try {
      Deno.statSync(tool);
    } catch {
      return `${tool} is not installed`;
    }
  }
  return null;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
}

async function waitFor(what: string, probe: () => Promise<boolean>, ms = 60_000): Promise<void> {
  for (const deadline = Date.now() + ms;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function accepts(opts: Deno.ConnectOptions | Deno.UnixConnectOptions): Promise<boolean> {
  try {
    (await Deno.connect(opts as Deno.ConnectOptions)).close();
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/** A daemon's own network namespace and config lines (tests/fleet/_netns_daemons.ts). */
export interface DaemonNetns {
  /** The network namespace (`ip netns add`) it runs in; it then listens too (`libvirtd -l`). */
  netns: string;
  /** Lines added to its libvirtd.conf (`listen_addr`, `host_uuid`, ...). */
  libvirtdConf: string[];
  /** Lines added to its qemu.conf (`migration_address`, ...). */
  qemuConf: string[];
}

/** Starts daemon `name` (see the module documentation); `net` puts it in a network namespace. */
export async function startDaemon(
  name: string,
  prefix: string,
  net?: DaemonNetns,
): Promise<TestHost & { stop(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: `${prefix}-${name}-` });
  for (const d of [...Object.keys(PRIVATE_DIRS), "sock"]) await Deno.mkdir(`${dir}/${d}`);
  // The machine's QEMU capabilities cache: without it each daemon probes QEMU for seconds.
  try {
    await run("cp", ["-a", "/var/cache/libvirt/qemu", `${dir}/cache/`]);
  } catch { /* probed afresh */ }
  await Deno.writeTextFile(
    `${dir}/libvirtd.conf`,
    [
      `unix_sock_dir = "${dir}/sock"`,
      `auth_unix_rw = "none"`,
      `auth_unix_ro = "none"`,
      `log_outputs = "3:file:${dir}/libvirtd.log"`,
      ...net?.libvirtdConf ?? [],
    ].join("\n") + "\n",
  );
  await Deno.writeTextFile(
    `${dir}/etc/qemu.conf`,
    [`stdio_handler = "file"`, ...net?.qemuConf ?? []].join("\n") + "\n",
  );
  const mounts = Object.entries(PRIVATE_DIRS)
    .map(([d, target]) => `mount --bind '${dir}/${d}' '${target}'`).join(" && ");
  const unshare = [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    `${mounts} && exec libvirtd ${
      net ? "-l " : ""
    }-f '${dir}/libvirtd.conf' -p '${dir}/libvirtd.pid'`,
  ];
  const child = new Deno.Command(net ? "ip" : "unshare", {
    args: net ? ["netns", "exec", net.netns, ...unshare] : unshare.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const socket = `${dir}/sock/libvirt-sock`;
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    // QEMU processes outlive libvirtd: end the ones this daemon started first (Deno.kill: any
    // process needs an unscoped --allow-run; the daemon itself is signalled through its handle).
    try {
      for await (const e of Deno.readDir(`${dir}/run/qemu`)) {
        if (!e.name.endsWith(".pid")) continue;
        const pid = Number((await Deno.readTextFile(`${dir}/run/qemu/${e.name}`)).trim());
        if (Number.isSafeInteger(pid) && pid > 1) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    } catch { /* none */ }
    if (!exited) {
      try {
        child.kill("SIGCONT");
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await status;
      clearTimeout(timer);
    }
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitFor(`libvirtd ${name}`, async () => {
      if (exited) {
        const log = await Deno.readTextFile(`${dir}/libvirtd.log`).catch(() => "");
        throw new Error(`libvirtd ${name} exited: ${log.slice(-1000)}`);
      }
      return await accepts({ transport: "unix", path: socket });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  const unixUri = `qemu+unix:///system?socket=${socket}`;
  return {
    name,
    dir,
    socket,
    unixUri,
    uri: unixUri,
    pid: child.pid,
    pause: () => child.kill("SIGSTOP"),
    resume: () => {
      if (!exited) child.kill("SIGCONT");
    },
    kill: async () => {
      if (exited) return;
      child.kill("SIGKILL");
      await status;
    },
    stop,
  };
}

/**
 * Starts `count` daemons (named `${prefix}a`, `${prefix}b`, ...) at once; with `ssh` (default
 * true) the last is reached over `qemu+ssh://root@127.0.0.1` when sshd is installed.
 */
export async function startTestFleet(
  opts: { count?: number; prefix?: string; ssh?: boolean } = {},
): Promise<TestFleet> {
  const count = opts.count ?? 3;
  const prefix = opts.prefix ?? "h6";
  const names = Array.from({ length: count }, (_, i) => `${prefix}${String.fromCharCode(97 + i)}`);
  const settled = await Promise.allSettled(names.map((n) => startDaemon(n, `${prefix}-fleet`)));
  const daemons = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  const stops: (() => Promise<void>)[] = daemons.map((d) => d.stop);
  const stopAll = async () => {
    const errors = (await Promise.allSettled(stops.map((s) => s())))
      .flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    if (errors.length) throw errors[0];
  };
  if (failed) {
    await stopAll();
    throw failed.reason;
  }
  let sshSkipped: string | null = null;
  if (opts.ssh === false) sshSkipped = "not asked for";
  else if (!alive(1) || !(await Deno.stat(SSHD).then(() => true, () => false))) {
    sshSkipped = `${SSHD} is not installed (Debian package openssh-server)`;
  } else {
    try {
      const sshd = await startTestSshd(prefix);
      stops.push(sshd.stop);
      const last = daemons[daemons.length - 1]!;
      // nc -U on the daemon's own socket: virt-ssh-helper would open the machine's daemon.
      last.uri = `qemu+ssh://root@127.0.0.1:${sshd.port}/system?socket=${last.socket}` +
        `&keyfile=${sshd.key}&no_verify=1&proxy=netcat`;
    } catch (e) {
      sshSkipped = `sshd did not start: ${(e as Error).message}`;
    }
  }
  return {
    hosts: daemons.map(({ stop: _, ...h }) => h),
    sshSkipped,
    stop: stopAll,
  };
}

/** `virsh -c URI ARGS...`, its stdout (throws with its stderr on failure). */
export async function virsh(uri: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("virsh", {
    args: ["-c", uri, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) throw new Error(`virsh ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}
