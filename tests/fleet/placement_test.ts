/**
 * `foundry create` with placement (issue 16) on three real libvirt daemons (tests/fleet/_daemons.ts):
 * `spec.placement.host` and a selector pick the right host, free memory (less each host's reserve)
 * decides among the rest as the hosts report it, `--copy-image` brings a boot image over the RPC
 * streams (same SHA-256), a fleet-wide address conflict and an unreachable host are refused before
 * anything is created anywhere. VMs are defined, not started (`--no-start`); each host's pools
 * live in its own private /var/lib/libvirt, and its bridge is that of a defined, never started
 * network (no bridge is made).
 */
import assert from "node:assert/strict";
import { testNeeding } from "../_require.ts";
import { fleetSkipReason, startTestFleet, type TestHost, virsh } from "./_daemons.ts";
import {
  domainsOf,
  foundry,
  foundryWith,
  prepareHost,
  run,
  vmYaml,
  volumesOf,
  writeFleetConfig,
} from "./_h7_fleet.ts";

/** Free memory of `h` in bytes, as it reports it (`virsh freecell`). */
async function freeBytes(h: TestHost): Promise<number> {
  const out = await virsh(h.unixUri, "freecell");
  const m = /Total:\s*(\d+)\s*KiB/.exec(out) ?? /:\s*(\d+)\s*KiB/.exec(out);
  assert.ok(m, out);
  return Number(m[1]) * 1024;
}

testNeeding(fleetSkipReason(), {
  name: "fleet placement: placement.host, selector, free memory, --copy-image, address book",
  async fn(t) {
    const fleet = await startTestFleet({ prefix: "h7", ssh: false });
    const dir = await Deno.makeTempDir({ prefix: "h7-placement-" });
    try {
      const [a, b, c] = fleet.hosts as [TestHost, TestHost, TestHost];
      await Promise.all([
        prepareHost(a, ["h7-base.qcow2", "h7-other.qcow2"]),
        prepareHost(b, ["h7-base.qcow2"]),
        prepareHost(c, ["h7-base.qcow2"]),
      ]);
      const reserve: Record<string, number> = { [a.name]: 0, [b.name]: 2, [c.name]: 1 };
      const config = await writeFleetConfig(dir, [
        `{name: ${a.name}, uri: "${a.uri}", labels: {zone: east}}`,
        `{name: ${b.name}, uri: "${b.uri}", labels: {zone: west}, limits: {reserveMemoryGiB: 2}}`,
        `{name: ${c.name}, uri: "${c.uri}", labels: {zone: west}, limits: {reserveMemoryGiB: 1}}`,
      ]);
      const file = async (name: string, text: string) => {
        const p = `${dir}/${name}.yaml`;
        await Deno.writeTextFile(p, text);
        return p;
      };

      await t.step("placement.host puts the VM on that host", async () => {
        const f = await file(
          "pin",
          vmYaml("h7-pin", "192.0.2.10", `  placement:\n    host: ${b.name}\n`),
        );
        const r = await foundry("--config", config, "create", f, "--no-start");
        assert.equal(r.code, 0, r.err + r.out);
        assert.match(r.out, new RegExp(`^h7-pin -> ${b.name}$`, "m"));
        assert.deepEqual(await domainsOf(b), ["h7-pin"]);
        assert.deepEqual(await domainsOf(a), []);
        assert.deepEqual(await domainsOf(c), []);
      });

      await t.step("a selector picks among its hosts the one with most memory left", async () => {
        const f = await file(
          "west",
          vmYaml("h7-west", "192.0.2.11", "  placement:\n    selector: {zone: west}\n"),
        );
        const r = await foundry("--config", config, "create", f, "--no-start");
        assert.equal(r.code, 0, r.err + r.out);
        // b and c share this machine's memory; c keeps back 1 GiB, b 2 GiB.
        assert.match(r.out, new RegExp(`^h7-west -> ${c.name}$`, "m"));
        assert.deepEqual(await domainsOf(c), ["h7-west"]);
      });

      await t.step(
        "without placement: the host with the most free memory less its reserve",
        async () => {
          const f = await file("free", vmYaml("h7-free", "192.0.2.12"));
          const before = await Promise.all(fleet.hosts.map(freeBytes));
          const r = await foundry("--config", config, "create", f, "--no-start");
          assert.equal(r.code, 0, r.err + r.out);
          const left = fleet.hosts.map((h, i) => ({
            h: h.name,
            left: before[i]! - reserve[h.name]! * 2 ** 30,
          }));
          const best = left.reduce((x, y) => (y.left > x.left ? y : x));
          assert.match(r.out, new RegExp(`^h7-free -> ${best.h}$`, "m"), JSON.stringify(left));
          assert.equal(best.h, a.name);
          assert.deepEqual(await domainsOf(a), ["h7-free"]);
        },
      );

      await t.step(
        "a fleet-wide address conflict is refused before anything is created",
        async () => {
          const before = await Promise.all(
            fleet.hosts.map(async (h) => [await domainsOf(h), await volumesOf(h, "h7-vms")]),
          );
          // 192.0.2.11 is h7-west's, on host c; the first VM of the file is fine on its own.
          const text = vmYaml("h7-ok", "192.0.2.20") + "---\n" + vmYaml("h7-dup", "192.0.2.11");
          const f = await file("dup", text);
          const r = await foundry("--config", config, "create", f, "--no-start");
          assert.equal(r.code, 2, r.err + r.out);
          const line = text.split("\n").findIndex((l, i) => i > 20 && l.includes("192.0.2.11")) + 1;
          assert.match(
            r.err,
            new RegExp(
              `dup\\.yaml:${line}:\\d+ spec\\.networkInterfaces\\[0\\]\\.ip: VM h7-dup: address 192\\.0\\.2\\.11 is used by VM h7-west on host ${c.name}`,
            ),
          );
          assert.doesNotMatch(r.out, /->/);
          const after = await Promise.all(
            fleet.hosts.map(async (h) => [await domainsOf(h), await volumesOf(h, "h7-vms")]),
          );
          assert.deepEqual(after, before);
        },
      );

      await t.step(
        "an image the chosen host lacks: refused, or copied with --copy-image",
        async () => {
          const f = await file(
            "copy",
            vmYaml(
              "h7-copy",
              "192.0.2.13",
              `  placement:\n    host: ${c.name}\n`,
              "h7-other.qcow2",
            ),
          );
          const no = await foundry("--config", config, "create", f, "--no-start");
          assert.equal(no.code, 2, no.err + no.out);
          assert.match(
            no.err,
            /copy\.yaml:\d+:\d+ spec\.placement\.host: .*image h7-images\/h7-other\.qcow2 is not there \(another host has it: --copy-image copies it\)/,
          );
          assert.deepEqual(await volumesOf(c, "h7-images"), ["h7-base.qcow2"]);
          const r = await foundry("--config", config, "create", f, "--no-start", "--copy-image");
          assert.equal(r.code, 0, r.err + r.out);
          assert.match(
            r.out,
            new RegExp(
              `Copied image h7-images/h7-other\\.qcow2 from ${a.name} to ${c.name} \\(SHA-256 [0-9a-f]{64}\\)`,
            ),
          );
          const sum = async (h: TestHost) =>
            (await run("sha256sum", `${h.dir}/lib/h7-images/h7-other.qcow2`)).split(" ")[0];
          assert.equal(await sum(c), await sum(a));
          assert.deepEqual(await domainsOf(c), ["h7-copy", "h7-west"]);
        },
      );

      await t.step("--connect (or no hosts:) creates on the one connection as before", async () => {
        const f = await file("one", vmYaml("h7-one", "192.0.2.15"));
        const r = await foundry(
          "--config",
          config,
          "--connect",
          b.unixUri,
          "create",
          f,
          "--no-start",
        );
        assert.equal(r.code, 0, r.err + r.out);
        assert.doesNotMatch(r.out, /->/);
        assert.match(r.out, /1 of 1 created: h7-one/);
        assert.ok((await domainsOf(b)).includes("h7-one"));
        await virsh(b.unixUri, "undefine", "h7-one");
        for (const v of ["h7-one_boot", "h7-one_cloudinit"]) {
          await virsh(b.unixUri, "vol-delete", v, "--pool", "h7-vms");
        }
      });

      await t.step("an unreachable host makes the address book incomplete", async () => {
        const quick = { FOUNDRY_HOST_TIMEOUT: "2" };
        const f = await file("gone", vmYaml("h7-gone", "192.0.2.14"));
        c.pause();
        try {
          const r = await foundryWith(quick, ["--config", config, "create", f, "--no-start"]);
          assert.equal(r.code, 3, r.err + r.out);
          assert.match(
            r.err,
            new RegExp(`address check is incomplete: host ${c.name}: .*--ignore-unreachable`),
          );
          assert.deepEqual([...await domainsOf(a), ...await domainsOf(b)].sort(), [
            "h7-free",
            "h7-pin",
          ]);
          const ok = await foundryWith(quick, [
            "--config",
            config,
            "create",
            f,
            "--no-start",
            "--ignore-unreachable",
          ]);
          assert.equal(ok.code, 0, ok.err + ok.out);
          assert.match(ok.err, new RegExp(`host ${c.name} did not answer`));
          assert.match(ok.out, new RegExp(`^h7-gone -> ${a.name}$`, "m"));
        } finally {
          c.resume();
        }
      });
    } finally {
      await fleet.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
