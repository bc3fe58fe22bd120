/**
 * `foundry move` (issue 16) on three real libvirt daemons (tests/fleet/_daemons.ts): a stopped
 * (define-only) VM with a boot overlay, a data disk and its cloud-init ISO moves with every volume
 * byte for byte (SHA-256 of the files on both hosts), the same UUID and MAC, and leaves nothing on
 * the source; a target without the base image is refused before anything changes (and gets it
 * with --copy-image); a failure half-way leaves the source as it was and nothing on the target;
 * --live of a stopped VM is refused plainly (exit 4, nothing changed). A running VM (no OS, on a
 * bridge made for the test with no address and no uplink) is forced off after the timeout and runs
 * on the target afterwards; a failure before its start there leaves it running on the source; and
 * --live back runs libvirt's peer-to-peer migration: it runs on exactly one host afterwards, with
 * nothing left on the other. These daemons share one network stack, so libvirt may refuse that
 * live move (the source's tap name is taken); either way the VM runs on exactly one host after it.
 * tests/fleet/live_move_test.ts puts two daemons in network namespaces of their own, where the
 * live move succeeds.
 */
import assert from "node:assert/strict";
import { moveVm } from "../../lib/foundry/move.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { testNeeding } from "../_require.ts";
import { fleetSkipReason, startTestFleet, type TestHost, virsh } from "./_daemons.ts";
import {
  domainsOf,
  foundry,
  prepareHost,
  run,
  vmYaml,
  volumesOf,
  writeFleetConfig,
} from "./_h7_fleet.ts";

/** SHA-256 of every volume file of pool h7-vms on `h`, by volume name. */
async function sums(h: TestHost): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of await volumesOf(h, "h7-vms")) {
    out[v] = (await run("sha256sum", `${h.dir}/lib/h7-vms/${v}`)).split(" ")[0]!;
  }
  return out;
}

/** The state of a host that a refused or rolled-back move must not change. */
async function snapshot(h: TestHost): Promise<unknown> {
  return {
    domains: await domainsOf(h),
    images: await volumesOf(h, "h7-images"),
    vms: await sums(h),
  };
}

testNeeding(fleetSkipReason(), {
  name: "fleet move: a VM's disks byte for byte, nothing left on the source, rollback, --live",
  async fn(t) {
    const fleet = await startTestFleet({ prefix: "h7m", ssh: false });
    const dir = await Deno.makeTempDir({ prefix: "h7-move-" });
    let bridge = false;
    try {
      const [a, b, c] = fleet.hosts as [TestHost, TestHost, TestHost];
      await Promise.all([
        prepareHost(a, ["h7-base.qcow2"]),
        prepareHost(b, ["h7-base.qcow2"]),
        prepareHost(c, []),
      ]);
      const config = await writeFleetConfig(
        dir,
        fleet.hosts.map((h) => `{name: ${h.name}, uri: "${h.uri}"}`),
      );
      const f = `${dir}/mv.yaml`;
      await Deno.writeTextFile(
        f,
        vmYaml(
          "h7-mv",
          "192.0.2.30",
          `  placement:\n    host: ${a.name}\n  dataDisks:\n    - device: vdb\n      sizeGB: 1\n`,
        ),
      );
      const made = await foundry("--config", config, "create", f, "--no-start");
      assert.equal(made.code, 0, made.err + made.out);
      // Something of our own in the data disk beyond its qcow2 header.
      await run(
        "qemu-io",
        "-f",
        "qcow2",
        "-c",
        "write -P 0x5a 0 1M",
        `${a.dir}/lib/h7-vms/h7-mv_data-vdb`,
      );
      const uuid = (await virsh(a.unixUri, "domuuid", "h7-mv")).trim();
      const mac = /be:ef:c0:00:02:1e/.exec(await virsh(a.unixUri, "dumpxml", "h7-mv"))?.[0];
      assert.ok(mac);
      const before = await sums(a);
      assert.deepEqual(Object.keys(before).sort(), [
        "h7-mv_boot",
        "h7-mv_cloudinit",
        "h7-mv_data-vdb",
      ]);

      await t.step("--live is refused plainly, nothing changed", async () => {
        const was = [await snapshot(a), await snapshot(b)];
        const r = await foundry("--config", config, "move", "h7-mv", "--to", b.name, "--live");
        assert.equal(r.code, 4, r.err + r.out);
        assert.match(
          r.err,
          /cannot be moved live .*: it is shut off, and a live move needs it running; nothing was changed/,
        );
        assert.deepEqual([await snapshot(a), await snapshot(b)], was);
      });

      await t.step("a target without the base image is refused before anything", async () => {
        const was = [await snapshot(a), await snapshot(c)];
        const r = await foundry("--config", config, "move", "h7-mv", "--to", c.name);
        assert.equal(r.code, 4, r.err + r.out);
        assert.match(
          r.err,
          /lacks the base image \/var\/lib\/libvirt\/h7-images\/h7-base\.qcow2 of the boot disk \(another host has it: --copy-image copies it\); nothing was changed/,
        );
        assert.deepEqual([await snapshot(a), await snapshot(c)], was);
      });

      await t.step("a failure half-way: the source as it was, nothing on the target", async () => {
        const was = [await snapshot(a), await snapshot(b)];
        const src = await Libvirt.connect(a.unixUri);
        const dst = await Libvirt.connect(b.unixUri);
        try {
          await assert.rejects(
            moveVm(src, dst, "h7-mv", {
              timeoutSeconds: 5,
              beforeStep: (s) => {
                if (s === "define") throw new Error("injected failure before define");
              },
            }),
            /VM h7-mv not moved: injected failure before define; the source is as it was, nothing is left on the target/,
          );
        } finally {
          await src.close();
          await dst.close();
        }
        assert.deepEqual([await snapshot(a), await snapshot(b)], was);
      });

      await t.step(
        "move: every volume byte for byte, same UUID and MAC, source empty",
        async () => {
          const r = await foundry("--config", config, "move", "h7-mv", "--to", b.name);
          assert.equal(r.code, 0, r.err + r.out);
          assert.match(r.out, new RegExp(`Moved VM 'h7-mv' from ${a.name} to ${b.name}`));
          assert.deepEqual(await sums(b), before);
          assert.deepEqual(await domainsOf(b), ["h7-mv"]);
          assert.equal((await virsh(b.unixUri, "domuuid", "h7-mv")).trim(), uuid);
          assert.match(await virsh(b.unixUri, "dumpxml", "h7-mv"), new RegExp(mac!));
          assert.deepEqual(await domainsOf(a), []);
          assert.deepEqual(await volumesOf(a, "h7-vms"), []);
          // The base image stays: other VMs may use it.
          assert.deepEqual(await volumesOf(a, "h7-images"), ["h7-base.qcow2"]);
          // foundry sees it there.
          const got = await foundry("--config", config, "get", "h7-mv", "--host", "all");
          assert.equal(got.code, 0, got.err);
          assert.match(got.out, new RegExp(`^host: ${b.name}$`, "m"));
          // It was pinned to the source: its stored spec now pins it where it is.
          assert.match(got.out, new RegExp(`placement:\\n\\s+host: ${b.name}\\n`));
        },
      );

      await t.step("--copy-image brings the base image along", async () => {
        const r = await foundry(
          "--config",
          config,
          "move",
          "h7-mv",
          "--to",
          c.name,
          "--copy-image",
        );
        assert.equal(r.code, 0, r.err + r.out);
        assert.deepEqual(await sums(c), before);
        assert.deepEqual(await volumesOf(c, "h7-images"), ["h7-base.qcow2"]);
        const sha = async (h: TestHost) =>
          (await run("sha256sum", `${h.dir}/lib/h7-images/h7-base.qcow2`)).split(" ")[0];
        assert.equal(await sha(c), await sha(b));
        assert.deepEqual(await domainsOf(b), []);
        assert.deepEqual(await volumesOf(b, "h7-vms"), []);
      });

      await t.step(
        "a running VM: rolled back running on failure, else running on the target",
        async () => {
          // A bridge for the taps (no address, no uplink); the guest has no OS and runs seconds.
          await run("ip", "link", "add", "h7br0", "type", "bridge");
          bridge = true;
          const rf = `${dir}/run.yaml`;
          await Deno.writeTextFile(
            rf,
            vmYaml("h7-run", "192.0.2.40", `  placement:\n    host: ${a.name}\n`),
          );
          const made = await foundry("--config", config, "create", rf);
          assert.equal(made.code, 0, made.err + made.out);
          assert.match(await virsh(a.unixUri, "domstate", "h7-run"), /running/);
          const src = await Libvirt.connect(a.unixUri);
          const dst = await Libvirt.connect(b.unixUri);
          try {
            await assert.rejects(
              moveVm(src, dst, "h7-run", {
                timeoutSeconds: 1,
                beforeStep: (s) => {
                  if (s === "start") throw new Error("injected failure before start");
                },
              }),
              /not moved: injected failure before start; the source is as it was and running again/,
            );
          } finally {
            await src.close();
            await dst.close();
          }
          assert.match(await virsh(a.unixUri, "domstate", "h7-run"), /running/);
          assert.deepEqual(await domainsOf(b), []);
          assert.deepEqual(await volumesOf(b, "h7-vms"), []);
          const r = await foundry(
            "--config",
            config,
            "move",
            "h7-run",
            "--to",
            b.name,
            "--timeout",
            "1",
          );
          assert.equal(r.code, 0, r.err + r.out);
          assert.match(r.out, /forced off after the timeout/);
          assert.match(await virsh(b.unixUri, "domstate", "h7-run"), /running/);
          assert.deepEqual(await domainsOf(a), []);
          assert.deepEqual(await volumesOf(a, "h7-vms"), []);
          // Live back to a: libvirt's own migration, which two daemons on one machine may refuse
          // (the tap name is taken by the source's); either way the VM runs on exactly one host.
          const live = await foundry(
            "--config",
            config,
            "move",
            "h7-run",
            "--to",
            a.name,
            "--live",
          );
          if (live.code === 0) {
            assert.match(await virsh(a.unixUri, "domstate", "h7-run"), /running/);
            assert.deepEqual(await domainsOf(b), []);
            assert.deepEqual(await volumesOf(b, "h7-vms"), []);
            await virsh(a.unixUri, "destroy", "h7-run");
          } else {
            assert.equal(live.code, 4, live.err + live.out);
            console.log(`  live move refused by libvirt here: ${live.err.trim()}`);
            assert.match(live.err, /VM h7-run not moved live: .*; nothing is left on the target/);
            assert.match(await virsh(b.unixUri, "domstate", "h7-run"), /running/);
            assert.deepEqual(await domainsOf(a), []);
            assert.deepEqual(await volumesOf(a, "h7-vms"), []);
            await virsh(b.unixUri, "destroy", "h7-run");
          }
        },
      );
    } finally {
      if (bridge) await run("ip", "link", "del", "h7br0");
      await fleet.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
