/**
 * Test libvirt daemons that each have their own network namespace as well as their own mount
 * namespace (tests/fleet/_daemons.ts), so that libvirt can migrate a running guest between them
 * on this one machine (issue 16, `foundry move --live`).
 *
 * The daemons of the machine's one network namespace share its network devices: libvirt refuses
 * a migration there (the guest's tap name is taken by the source's), and QEMU's migration stream
 * and NBD storage copy need addresses both daemons reach. Here each host gets a namespace
 * (`ip netns add PREFIX-a`, ...) with `lo` up and one end of a veth pair whose other end is on a
 * bridge in a hub namespace (`PREFIX-hub`), and an address 10.254.64.N/24 used only on that test
 * network: nothing in the machine's own namespace is touched. Each daemon listens on its address
 * over TCP without authentication (reachable from the other namespaces only), tells QEMU to use it
 * for incoming migrations (`migration_address`, `migration_host`) and has a host UUID of its own
 * (libvirt refuses to migrate to a daemon with its own UUID). The test process reaches each
 * daemon by its unix socket (a file, which network namespaces do not hide); the daemons reach
 * each other by `tcpUri`.
 *
 * @module
 */
import { firstMissing, requireTool } from "../_require.ts";
import { fleetSkipReason, startDaemon, type TestHost } from "./_daemons.ts";

/** A daemon in its own network namespace. */
export interface NetnsHost extends TestHost {
  /** Its network namespace. */
  netns: string;
  /** Its address on the test network. */
  address: string;
  /** `qemu+tcp://ADDRESS/system`: the daemon as the other daemons reach it. */
  tcpUri: string;
}

/** The daemons and how to stop them. */
export interface NetnsFleet {
  hosts: NetnsHost[];
  /** Stops every daemon and the QEMU processes they started, deletes the namespaces and dirs. */
  stop(): Promise<void>;
}

/** Why the harness cannot run here, or null. */
export function netnsSkipReason(): string | null {
  return firstMissing(fleetSkipReason(), requireTool("ip", "nsenter", "qemu-img", "qemu-io"));
}

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/**
 * Starts `count` (default 2) daemons named `${prefix}a`, `${prefix}b`, ... in network namespaces
 * `${prefix}-a`, ... joined by the hub bridge. `prefix` (at most 8 characters) also names the
 * veth ends and the hub; namespaces left by an earlier run of the same prefix make this fail.
 */
export async function startNetnsFleet(
  opts: { prefix: string; count?: number },
): Promise<NetnsFleet> {
  const { prefix } = opts;
  const count = opts.count ?? 2;
  if (!/^[a-z0-9]{1,8}$/.test(prefix) || count < 2 || count > 26) {
    throw new RangeError(`bad netns fleet: prefix ${prefix}, count ${count}`);
  }
  const hub = `${prefix}-hub`;
  const made: string[] = [];
  const daemons: Awaited<ReturnType<typeof startDaemon>>[] = [];
  const stop = async () => {
    const errors = (await Promise.allSettled(daemons.map((d) => d.stop())))
      .flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    // Deleting a namespace deletes its devices: the veth ends, the hub bridge, the test bridges.
    for (const ns of made.reverse()) await ip("netns", "del", ns).catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
  };
  try {
    await ip("netns", "add", hub);
    made.push(hub);
    await ip("-n", hub, "link", "add", `${prefix}-hub`, "type", "bridge");
    await ip("-n", hub, "link", "set", `${prefix}-hub`, "up");
    const hosts = Array.from({ length: count }, (_, i) => {
      const letter = String.fromCharCode(97 + i);
      return { name: `${prefix}${letter}`, netns: `${prefix}-${letter}`, letter, i };
    });
    for (const h of hosts) {
      await ip("netns", "add", h.netns);
      made.push(h.netns);
      const [outer, inner] = [`${prefix}-h${h.letter}`, `${prefix}-v${h.letter}`];
      // Both ends are made in their namespaces: none ever appears in the machine's.
      await ip(
        "link",
        "add",
        outer,
        "netns",
        hub,
        "type",
        "veth",
        "peer",
        "name",
        inner,
        "netns",
        h.netns,
      );
      await ip("-n", hub, "link", "set", outer, "master", `${prefix}-hub`, "up");
      await ip("-n", h.netns, "link", "set", "lo", "up");
      await ip("-n", h.netns, "addr", "add", `10.254.64.${h.i + 1}/24`, "dev", inner);
      await ip("-n", h.netns, "link", "set", inner, "up");
    }
    const started = await Promise.allSettled(hosts.map((h) => {
      const address = `10.254.64.${h.i + 1}`;
      return startDaemon(h.name, `${prefix}-netns`, {
        netns: h.netns,
        libvirtdConf: [
          "listen_tcp = 1",
          "listen_tls = 0",
          `listen_addr = "${address}"`,
          `auth_tcp = "none"`,
          `host_uuid = "${crypto.randomUUID()}"`,
        ],
        qemuConf: [`migration_address = "${address}"`, `migration_host = "${address}"`],
      });
    }));
    for (const s of started) if (s.status === "fulfilled") daemons.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
    return {
      hosts: daemons.map(({ stop: _, ...d }, i) => ({
        ...d,
        netns: hosts[i]!.netns,
        address: `10.254.64.${i + 1}`,
        tcpUri: `qemu+tcp://10.254.64.${i + 1}/system`,
      })),
      stop,
    };
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}

/** Makes bridge `name` (no address, no uplink) in the network namespace of `h`. */
export async function addBridge(h: NetnsHost, name: string): Promise<void> {
  await ip("-n", h.netns, "link", "add", name, "type", "bridge");
  await ip("-n", h.netns, "link", "set", name, "up");
}
