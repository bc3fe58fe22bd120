/**
 * `foundry move NAME --to HOST --live` (issue 16) succeeding end to end on two real libvirt
 * daemons, each in its own network and mount namespace (tests/fleet/_netns_daemons.ts): a
 * running OS-less TCG VM with a boot overlay, a data disk and its cloud-init ISO, on a bridge made
 * with the same name in both namespaces (no address, no uplink), moves by libvirt's peer-to-peer
 * migration with storage copy. Afterwards it runs on the target with the same UUID and MAC, the
 * source has neither it nor its volumes, every disk reads the same on the target as it did on the
 * source (SHA-256 of the guest-visible bytes: libvirt's copy flattens the overlay, so its file
 * differs), and the guest never stopped: the source saw it stopped only as "migrated", the target
 * started it as an incoming migration (QEMU's `-incoming`, state reason "migrated"), never booted.
 * Before that a target without the bridge and the pool is refused plainly, and a migration libvirt
 * fails (the target unreachable) leaves the VM running on the source; both change nothing.
 */
import assert from "node:assert/strict";
import { DomainEventType, Libvirt } from "../../lib/libvirt/mod.ts";
import type { DomainLifecycleEvent } from "../../lib/libvirt/client.ts";
import { testNeeding } from "../_require.ts";
import { virsh } from "./_daemons.ts";
import { domainsOf, foundry, run, volumesOf } from "./_h7_fleet.ts";
import { addBridge, type NetnsHost, netnsSkipReason, startNetnsFleet } from "./_netns_daemons.ts";

/** libvirt's `virDomainEvent{Started,Suspended,Resumed,Stopped}DetailType` "migrated". */
const STARTED_MIGRATED = 1, SUSPENDED_MIGRATED = 1, RESUMED_MIGRATED = 1, STOPPED_MIGRATED = 3;

const VM = "s6h4-live";
const POOLS = ["s6h4-images", "s6h4-vms"] as const;

/** The VM, pinned to `host`, with a data disk, on bridge s6h4br0. */
function vmYaml(host: string): string {
  return `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${VM}
spec:
  vcpus: 1
  memoryGiB: 0.25
  bootDisk:
    sizeGB: 1
    image: s6h4-base.qcow2
  networkInterfaces:
    - ip: 192.0.2.64/24
      gateway: 192.0.2.1
      bridge: s6h4br0
  dataDisks:
    - device: vdb
      sizeGB: 1
  placement:
    host: ${host}
`;
}

/** Makes pool `pool` (a directory in the daemon's private /var/lib/libvirt) on `h`. */
async function addPool(h: NetnsHost, pool: string): Promise<void> {
  await Deno.mkdir(`${h.dir}/lib/${pool}`, { recursive: true });
  await virsh(h.unixUri, "pool-create-as", pool, "dir", "--target", `/var/lib/libvirt/${pool}`);
}

/** Bridges of the network namespace of `h`. */
async function bridgesOf(h: NetnsHost): Promise<string[]> {
  return (await run("ip", "-n", h.netns, "-o", "link", "show", "type", "bridge"))
    .split("\n").flatMap((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? []).sort();
}

/** Volumes of the pools of `h` that exist there, by pool. */
async function volumes(h: NetnsHost): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  const pools = (await virsh(h.unixUri, "pool-list", "--name")).split("\n").map((s) => s.trim());
  for (const p of POOLS) if (pools.includes(p)) out[p] = await volumesOf(h, p);
  return out;
}

/** What a refused move must leave as it was on `h`. */
async function snapshot(h: NetnsHost): Promise<unknown> {
  return {
    domains: await domainsOf(h),
    states: await virsh(h.unixUri, "list", "--all"),
    volumes: await volumes(h),
    bridges: await bridgesOf(h),
  };
}

/**
 * SHA-256 of the bytes the guest sees on volume `volume` of pool s6h4-vms on `h` (backing chain
 * included), read in the daemon's mount namespace, where /var/lib/libvirt is its own.
 */
async function guestSha(h: NetnsHost, dir: string, volume: string): Promise<string> {
  const raw = `${dir}/${h.name}-${volume}.raw`;
  try {
    await run(
      "nsenter",
      "-m",
      "-t",
      String(h.pid),
      "qemu-img",
      "convert",
      "-U",
      "-O",
      "raw",
      `/var/lib/libvirt/s6h4-vms/${volume}`,
      raw,
    );
    return (await run("sha256sum", raw)).split(" ")[0]!;
  } finally {
    await Deno.remove(raw).catch(() => {});
  }
}

/** Writes byte `pattern` over the first MiB of volume `volume` of s6h4-vms on `h`. */
async function writePattern(h: NetnsHost, volume: string, at: string, pattern: number) {
  await run(
    "nsenter",
    "-m",
    "-t",
    String(h.pid),
    "qemu-io",
    "-f",
    "qcow2",
    "-c",
    `write -P ${pattern} ${at} 1M`,
    `/var/lib/libvirt/s6h4-vms/${volume}`,
  );
}

testNeeding(netnsSkipReason(), {
  name: "fleet move --live: libvirt's migration between two network namespaces, guest running",
  async fn(t) {
    const fleet = await startNetnsFleet({ prefix: "s6h4" });
    const dir = await Deno.makeTempDir({ prefix: "s6h4-live-" });
    const conns: Libvirt[] = [];
    try {
      const [a, b] = fleet.hosts as [NetnsHost, NetnsHost];
      // a has everything; b the image pool and base image only, until the refusal is seen.
      for (const h of [a, b]) {
        await addPool(h, "s6h4-images");
        await run(
          "qemu-img",
          "create",
          "-q",
          "-f",
          "qcow2",
          `${h.dir}/lib/s6h4-images/s6h4-base.qcow2`,
          "64M",
        );
        await virsh(h.unixUri, "pool-refresh", "s6h4-images");
      }
      await addPool(a, "s6h4-vms");
      await addBridge(a, "s6h4br0");
      const config = `${dir}/config.yaml`;
      await Deno.writeTextFile(
        config,
        [
          "domainType: qemu",
          "storage: {imagesPool: s6h4-images, vmsPool: s6h4-vms}",
          "hosts:",
          ...[a, b].map((h) => `  - {name: ${h.name}, uri: "${h.unixUri}"}`),
          "",
        ].join("\n"),
      );
      await Deno.writeTextFile(`${dir}/vm.yaml`, vmYaml(a.name));
      const made = await foundry("--config", config, "create", `${dir}/vm.yaml`, "--no-start");
      assert.equal(made.code, 0, made.err + made.out);
      // Known bytes in both disks: an OS-less guest writes nothing of its own.
      await writePattern(a, `${VM}_boot`, "4M", 0xa5);
      await writePattern(a, `${VM}_data-vdb`, "0", 0x5a);
      const disks = [`${VM}_boot`, `${VM}_data-vdb`];
      const before = await Promise.all(disks.map((v) => guestSha(a, dir, v)));
      const iso = `${VM}_cloudinit`;
      const isoSha = async (h: NetnsHost) =>
        (await run("sha256sum", `${h.dir}/lib/s6h4-vms/${iso}`)).split(" ")[0];
      const isoBefore = await isoSha(a);
      const uuid = (await virsh(a.unixUri, "domuuid", VM)).trim();
      const mac = /<mac address='([^']+)'/.exec(await virsh(a.unixUri, "dumpxml", VM))?.[1];
      assert.ok(mac);
      await virsh(a.unixUri, "start", VM);
      assert.match(await virsh(a.unixUri, "domstate", VM), /running/);
      assert.match(await virsh(a.unixUri, "dominfo", VM), /^Autostart:\s+enable$/m);
      const move = (...extra: string[]) =>
        foundry("--config", config, "move", VM, "--to", b.name, "--live", ...extra);

      await t.step(
        "a target without the bridge and the pool is refused, nothing changed",
        async () => {
          const was = [await snapshot(a), await snapshot(b)];
          const r = await move("--target-uri", b.tcpUri);
          assert.equal(r.code, 4, r.err + r.out);
          assert.match(
            r.err,
            new RegExp(
              `cannot be moved live from ${a.name} to ${b.name}: .*${b.name} has no bridge ` +
                `s6h4br0; .*${b.name} has no pool s6h4-vms; nothing was changed`,
            ),
          );
          assert.deepEqual([await snapshot(a), await snapshot(b)], was);
          assert.match(await virsh(a.unixUri, "domstate", VM), /running/);
        },
      );

      await t.step(
        "libvirt failing: still running on the source, nothing on the target",
        async () => {
          await addPool(b, "s6h4-vms");
          await addBridge(b, "s6h4br0");
          const was = [await snapshot(a), await snapshot(b)];
          // Nothing listens on that port: the source daemon cannot reach the target.
          const r = await move("--target-uri", `qemu+tcp://${b.address}:16510/system`);
          assert.equal(r.code, 4, r.err + r.out);
          assert.match(
            r.err,
            new RegExp(`VM ${VM} not moved live: .*; nothing is left on the target`),
          );
          // The cloud-init ISO copied ahead was removed again.
          assert.deepEqual([await snapshot(a), await snapshot(b)], was);
          assert.match(await virsh(a.unixUri, "domstate", VM), /running/);
        },
      );

      await t.step("the move: running on the target, disks the same, never stopped", async () => {
        const events: Record<string, DomainLifecycleEvent[]> = { a: [], b: [] };
        for (const [k, h] of [["a", a], ["b", b]] as const) {
          const lv = await Libvirt.connect(h.unixUri);
          conns.push(lv);
          await lv.onDomainLifecycle(null, (e) => events[k]!.push(e));
        }
        const r = await move("--target-uri", b.tcpUri);
        assert.equal(r.code, 0, r.err + r.out);
        assert.match(r.out, new RegExp(`Moved VM '${VM}' live from ${a.name} to ${b.name}`));

        // On the target, running, same identity; nothing of it on the source.
        assert.equal(
          (await virsh(b.unixUri, "domstate", "--reason", VM)).trim(),
          "running (migrated)",
        );
        assert.equal((await virsh(b.unixUri, "domuuid", VM)).trim(), uuid);
        assert.match(await virsh(b.unixUri, "dumpxml", VM), new RegExp(`<mac address='${mac}'`));
        assert.match(await virsh(b.unixUri, "dumpxml", "--inactive", VM), new RegExp(uuid));
        assert.deepEqual(await domainsOf(a), []);
        assert.deepEqual(await volumesOf(a, "s6h4-vms"), []);
        assert.deepEqual(await volumesOf(a, "s6h4-images"), ["s6h4-base.qcow2"]);
        assert.deepEqual(await volumesOf(b, "s6h4-vms"), [...disks, iso].sort());
        // libvirt's copy is the whole chain: the boot disk has no backing file there.
        assert.doesNotMatch(
          await virsh(b.unixUri, "vol-dumpxml", "--pool", "s6h4-vms", `${VM}_boot`),
          /<backingStore>/,
        );

        // The target's QEMU was started to receive the guest, not to boot one.
        const pid = (await Deno.readTextFile(`${b.dir}/run/qemu/${VM}.pid`)).trim();
        const cmdline = (await run("cat", `/proc/${pid}/cmdline`)).split("\0");
        assert.ok(cmdline.includes("-incoming"), cmdline.join(" "));

        // Lifecycle events: the source stopped it only as migrated, the target never booted it.
        const until = async (what: string, ok: () => boolean) => {
          for (const end = Date.now() + 60_000; !ok();) {
            if (Date.now() > end) throw new Error(`no ${what}: ${JSON.stringify(events)}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        };
        const has = (k: string, type: number, detail: number) =>
          events[k]!.some((e) => e.event === type && e.detail === detail);
        await until(
          "stopped event on the source",
          () => has("a", DomainEventType.STOPPED, STOPPED_MIGRATED),
        );
        await until(
          "resumed event on the target",
          () => has("b", DomainEventType.RESUMED, RESUMED_MIGRATED),
        );
        const kinds = (k: string, type: number) =>
          events[k]!.filter((e) => e.event === type).map((e) => e.detail);
        assert.deepEqual(kinds("a", DomainEventType.STOPPED), [STOPPED_MIGRATED]);
        assert.deepEqual(kinds("a", DomainEventType.STARTED), []);
        // Paused only for the switch-over, never by anyone.
        for (const d of kinds("a", DomainEventType.SUSPENDED)) assert.equal(d, SUSPENDED_MIGRATED);
        assert.deepEqual(kinds("b", DomainEventType.STARTED), [STARTED_MIGRATED]);
        assert.deepEqual(kinds("b", DomainEventType.STOPPED), []);
        for (const k of ["a", "b"]) {
          assert.deepEqual(kinds(k, DomainEventType.SHUTDOWN), []);
          assert.deepEqual(kinds(k, DomainEventType.CRASHED), []);
        }

        // Every disk reads on the target as it did on the source; the ISO is the same file.
        await virsh(b.unixUri, "suspend", VM);
        try {
          assert.deepEqual(await Promise.all(disks.map((v) => guestSha(b, dir, v))), before);
        } finally {
          await virsh(b.unixUri, "resume", VM);
        }
        assert.equal(await isoSha(b), isoBefore);

        // foundry finds it on the target.
        const got = await foundry("--config", config, "get", VM, "--host", "all");
        assert.equal(got.code, 0, got.err);
        assert.match(got.out, new RegExp(`^host: ${b.name}$`, "m"));
        // Pinned to the source, its stored spec now pins it where it is; autostart came along,
        // so foundry sees no drift.
        assert.match(got.out, new RegExp(`placement:\\n\\s+host: ${b.name}\\n`));
        assert.match(await virsh(b.unixUri, "dominfo", VM), /^Autostart:\s+enable$/m);
        assert.match(got.out, /type: Drifted\n\s+status: "False"/);
      });
    } finally {
      for (const lv of conns) await lv.close().catch(() => {});
      await fleet.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
