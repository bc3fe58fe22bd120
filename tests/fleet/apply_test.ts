/**
 * `foundry apply -f` and `foundry diff -f` with `--host` (issue 16) on three real libvirt daemons
 * (tests/fleet/_daemons.ts; the last one over qemu+ssh when sshd is installed): new VMs are placed
 * by the fleet create path, an unchanged file only reads (each daemon's own RPC trace, one
 * connection per host), a change is applied to the VM on its own host, an address held on another
 * host is refused before anything is made, a VM on two hosts and a placement.host naming another
 * host are refused for that VM, a paused host is reported with exit 7 while the other VM is
 * applied, --prune -l removes matching foundry VMs across the hosts, and --copy-image brings a new
 * VM's boot image to its host (and takes it away again when the create fails). VMs are defined, not
 * started (`--no-start`): these daemons cannot boot a guest image.
 */
import assert from "node:assert/strict";
import { fleetPlanText } from "../../cli/foundry/apply.ts";
import { placementChange } from "../../lib/foundry/fleet_apply.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import { Procedure } from "../../lib/libvirt/constants.ts";
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

Deno.test("placementChange() refuses a placement.host other than the VM's host, as a move", () => {
  const vm = (placement?: VirtualMachine["spec"]["placement"]) =>
    ({ metadata: { name: "s6h2-u" }, spec: placement ? { placement } : {} }) as VirtualMachine;
  assert.equal(placementChange(vm(), "a"), undefined);
  assert.equal(placementChange(vm({ host: "a" }), "a"), undefined);
  assert.equal(placementChange(vm({ selector: { zone: "x" } }), "a"), undefined);
  assert.deepEqual(placementChange(vm({ host: "b" }), "a"), {
    path: "spec.placement.host",
    from: "a",
    to: "b",
    class: "forbidden",
    reason: "the VM is on host a: a move to another host is needed",
  });
});

Deno.test("fleetPlanText() puts each VM's host in a HOST column, change lines under its plan", () => {
  const text = fleetPlanText([
    { host: "east-1", name: "web", action: "create", changes: [] },
    {
      host: "w",
      name: "db",
      action: "update",
      changes: [{ path: "spec.memoryGiB", from: 1, to: 2, class: "live" }],
    },
  ]);
  assert.equal(
    text,
    "HOST    PLAN\neast-1  + create web\nw       ~ update db\n" +
      "            spec.memoryGiB: 1 -> 2 (live)\n",
  );
});

Deno.test("fleetPlanText() says under a create when its boot image is copied first", () => {
  const text = fleetPlanText([{
    host: "b",
    name: "web",
    action: "create",
    changes: [],
    copyImage: { from: "a", pool: "images", volume: "debian.qcow2" },
  }]);
  assert.equal(
    text,
    "HOST  PLAN\nb     + create web\n          image images/debian.qcow2: copied from host a first\n",
  );
});

/** The write procedures of the remote program (define, create, set, delete, attach, ...). */
const WRITES = new Set(
  Object.entries(Procedure)
    .filter(([name]) =>
      /DEFINE|CREATE|SET_|DESTROY|SHUTDOWN|REBOOT|DELETE|RESIZE|WIPE|ATTACH|DETACH|BUILD|UPLOAD|UPDATE|SUSPEND|RESUME|MIGRATE|UNDEFINE/
        .test(name)
    )
    .map(([, n]) => n as number),
);

/** Turns on `h`'s RPC dispatch trace (virt-admin) into a fresh file; returns a reader of it. */
async function traceRpc(h: TestHost, tag: string): Promise<() => Promise<number[]>> {
  const file = `${h.dir}/s6h2-trace-${tag}.log`;
  const admin = `libvirtd:///system?socket=${h.dir}/sock/libvirt-admin-sock`;
  for (
    const args of [["daemon-log-filters", "1:rpc.netserverprogram"], [
      "daemon-log-outputs",
      `3:file:${h.dir}/libvirtd.log 1:file:${file}`,
    ]]
  ) {
    const out = await new Deno.Command("virt-admin", {
      args: ["-c", admin, ...args],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
  }
  return async () => {
    const text = await Deno.readTextFile(file).catch(() => "");
    // Calls of the remote program (0x20008086) only: keepalive has its own program.
    return [...text.matchAll(/prog=536903814 ver=\d+ type=0 status=0 serial=\d+ proc=(\d+)/g)]
      .map((m) => Number(m[1]));
  };
}

/** Each domain's full definition (with foundry's metadata), by name. */
async function definitions(h: TestHost): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const d of await domainsOf(h)) {
    out[d] = await virsh(h.unixUri, "dumpxml", "--inactive", d);
  }
  return out;
}

testNeeding(fleetSkipReason(), {
  name:
    "fleet apply/diff: placement, unchanged reads only, update on its host, refusals, exit 7, prune",
  async fn(t) {
    const fleet = await startTestFleet({ prefix: "s6h2" });
    const dir = await Deno.makeTempDir({ prefix: "s6h2-apply-" });
    try {
      const [a, b, c] = fleet.hosts as [TestHost, TestHost, TestHost];
      await Promise.all(fleet.hosts.map((h) => prepareHost(h, ["h7-base.qcow2"])));
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
      const one = (memory = "0.25", extra = "") =>
        vmYaml("s6h2-one", "192.0.2.10", `  placement:\n    host: ${b.name}\n${extra}`)
          .replace("memoryGiB: 0.25", `memoryGiB: ${memory}`);
      const two = (placement = "    selector: {zone: west}\n") =>
        vmYaml("s6h2-two", "192.0.2.11", `  placement:\n${placement}`);
      const fleetRun = (...args: string[]) => foundry("--config", config, "--host", "all", ...args);
      const all = () => Promise.all(fleet.hosts.map(domainsOf));
      /** Every host's domains and VM volumes. */
      const inventory = () =>
        Promise.all(
          fleet.hosts.map(async (h) => [await domainsOf(h), await volumesOf(h, "h7-vms")]),
        );
      const both = await file("both", one() + "---\n" + two());
      if (fleet.sshSkipped) console.log(`ssh host: skipped (${fleet.sshSkipped})`);

      await t.step("apply creates both VMs where placement puts them", async () => {
        const r = await fleetRun("apply", "-f", both, "--no-start");
        assert.equal(r.code, 0, r.err + r.out);
        assert.match(r.out, /^HOST\s+PLAN$/m);
        assert.match(
          r.out,
          new RegExp(`^${b.name}\\s+\\+ create s6h2-one \\(.*both\\.yaml:1\\)$`, "m"),
        );
        // b and c share this machine's memory; b keeps back 2 GiB, c 1 GiB.
        assert.match(r.out, new RegExp(`^${c.name}\\s+\\+ create s6h2-two `, "m"));
        assert.match(r.out, new RegExp(`^${b.name}: 1 create$`, "m"));
        assert.deepEqual(await all(), [[], ["s6h2-one"], ["s6h2-two"]]);
      });

      await t.step(
        "apply again: unchanged on both hosts, only reads, one connection each",
        async () => {
          const before = await Promise.all(fleet.hosts.map(definitions));
          const traces = await Promise.all(fleet.hosts.map((h) => traceRpc(h, "again")));
          const r = await fleetRun("apply", "-f", both, "--no-start");
          assert.equal(r.code, 0, r.err + r.out);
          assert.match(r.out, new RegExp(`^${b.name}\\s+= unchanged s6h2-one `, "m"));
          assert.match(r.out, new RegExp(`^${c.name}\\s+= unchanged s6h2-two `, "m"));
          assert.match(r.out, /^nothing to apply$/m);
          for (const [i, read] of traces.entries()) {
            const procs = await read();
            const name = fleet.hosts[i]!.name;
            assert.deepEqual(procs.filter((p) => WRITES.has(p)), [], `${name}: ${procs}`);
            assert.equal(procs.filter((p) => p === Procedure.CONNECT_OPEN).length, 1, `${name}`);
            assert.ok(procs.includes(Procedure.DOMAIN_LOOKUP_BY_NAME), `${name}: ${procs}`);
          }
          assert.deepEqual(await Promise.all(fleet.hosts.map(definitions)), before);
          const dry = await fleetRun("apply", "-f", both, "--dry-run");
          assert.equal(dry.code, 0, dry.err + dry.out);
          const diff = await fleetRun("diff", "-f", both, "-o", "json");
          assert.equal(diff.code, 0, diff.err + diff.out);
          assert.deepEqual(
            JSON.parse(diff.out).map((p: { host: string; name: string; action: string }) => [
              p.host,
              p.name,
              p.action,
            ]),
            [[b.name, "s6h2-one", "unchanged"], [c.name, "s6h2-two", "unchanged"]],
          );
        },
      );

      await t.step(
        "a memory change: diff exits 1, apply changes it on the VM's own host",
        async () => {
          const f = await file("mem", one("0.5") + "---\n" + two());
          const cBefore = await definitions(c);
          const diff = await fleetRun("diff", "-f", f);
          assert.equal(diff.code, 1, diff.err + diff.out);
          assert.match(diff.out, new RegExp(`^${b.name}\\s+~ update s6h2-one `, "m"));
          assert.match(diff.out, /^\s+spec\.memoryGiB: 0\.25 -> 0\.5 \(/m);
          const dry = await fleetRun("apply", "-f", f, "--dry-run");
          assert.equal(dry.code, 1, dry.err + dry.out);
          const r = await fleetRun("apply", "-f", f);
          assert.equal(r.code, 0, r.err + r.out);
          assert.match(r.out, new RegExp(`^${b.name}: 1 update$`, "m"));
          assert.match(
            await virsh(b.unixUri, "dumpxml", "--inactive", "s6h2-one"),
            /<currentMemory unit='KiB'>524288<\/currentMemory>/,
          );
          assert.deepEqual(await definitions(c), cBefore);
          const again = await fleetRun("diff", "-f", f);
          assert.equal(again.code, 0, again.err + again.out);
        },
      );

      await t.step(
        "an address held on another host is refused before anything is made",
        async () => {
          const before = await inventory();
          // 192.0.2.10 is s6h2-one's, on host b; s6h2-new alone would be fine.
          const text = vmYaml("s6h2-new", "192.0.2.20") + "---\n" +
            vmYaml("s6h2-dup", "192.0.2.10");
          const f = await file("dup", text);
          const line = text.split("\n").findIndex((l, i) => i > 20 && l.includes("192.0.2.10")) + 1;
          for (const cmd of [["apply", "-f", f, "--no-start"], ["diff", "-f", f]]) {
            const r = await fleetRun(...cmd);
            assert.equal(r.code, 2, r.err + r.out);
            assert.match(
              r.err,
              new RegExp(
                `dup\\.yaml:${line}:\\d+ spec\\.networkInterfaces\\[0\\]\\.ip: VM s6h2-dup: address 192\\.0\\.2\\.10 is used by VM s6h2-one on host ${b.name}$`,
                "m",
              ),
            );
            assert.match(r.err, /; nothing was created$/m);
            assert.doesNotMatch(r.out, /create/);
          }
          assert.deepEqual(await inventory(), before);
        },
      );

      await t.step(
        "placement.host naming another host: the plan says a move is needed",
        async () => {
          const f = await file("moved", one("0.5") + "---\n" + two(`    host: ${a.name}\n`));
          const before = await Promise.all(fleet.hosts.map(definitions));
          const diff = await fleetRun("diff", "-f", f);
          assert.equal(diff.code, 1, diff.err + diff.out);
          assert.match(diff.out, new RegExp(`^${c.name}\\s+~ update s6h2-two `, "m"));
          assert.ok(
            diff.out.includes(
              `spec.placement.host: ${c.name} -> ${a.name} (forbidden: the VM is on host ${c.name}: a move to another host is needed (foundry move s6h2-two --to ${a.name}))`,
            ),
            diff.out,
          );
          const r = await fleetRun("apply", "-f", f, "--recreate");
          assert.equal(r.code, 4, r.err + r.out);
          assert.match(
            r.err,
            /^Error: VM s6h2-two: spec\.placement\.host is forbidden: .*nothing was changed$/m,
          );
          assert.deepEqual(await Promise.all(fleet.hosts.map(definitions)), before);
        },
      );

      await t.step("a VM on two hosts is an error for that VM only", async () => {
        const twin = await file("twin", vmYaml("s6h2-twin", "192.0.2.30"));
        for (const h of [a, b]) {
          const r = await foundry(
            "--config",
            config,
            "--connect",
            h.unixUri,
            "create",
            twin,
            "--no-start",
          );
          assert.equal(r.code, 0, r.err + r.out);
        }
        const f = await file("twin-one", one("0.75") + "---\n" + vmYaml("s6h2-twin", "192.0.2.30"));
        const r = await fleetRun("apply", "-f", f);
        assert.equal(r.code, 2, r.err + r.out);
        assert.match(
          r.err,
          new RegExp(`^Error: VM s6h2-twin exists on hosts ${a.name}, ${b.name}$`, "m"),
        );
        assert.match(r.out, new RegExp(`^${b.name}: 1 update$`, "m"));
        assert.match(
          await virsh(b.unixUri, "dumpxml", "--inactive", "s6h2-one"),
          /<currentMemory unit='KiB'>786432<\/currentMemory>/,
        );
      });

      await t.step("a paused host: its own line and exit 7, the other VM is applied", async () => {
        const f = await file("paused", one("0.5") + "---\n" + two());
        c.pause();
        try {
          const quick = { FOUNDRY_HOST_TIMEOUT: "2" };
          const diff = await foundryWith(quick, [
            "--config",
            config,
            "--host",
            "all",
            "diff",
            "-f",
            f,
          ]);
          assert.equal(diff.code, 7, diff.err + diff.out);
          assert.match(diff.err, new RegExp(`^Error: host ${c.name}: `, "m"));
          const r = await foundryWith(quick, [
            "--config",
            config,
            "--host",
            "all",
            "apply",
            "-f",
            f,
          ]);
          assert.equal(r.code, 7, r.err + r.out);
          assert.match(r.err, new RegExp(`^Error: host ${c.name}: .*no answer`, "m"));
          assert.match(
            r.err,
            new RegExp(
              `^Error: VM s6h2-two was not found on the hosts that answered; host ${c.name} did not answer`,
              "m",
            ),
          );
          assert.match(r.out, new RegExp(`^${b.name}: 1 update$`, "m"));
          assert.match(
            await virsh(b.unixUri, "dumpxml", "--inactive", "s6h2-one"),
            /<currentMemory unit='KiB'>524288<\/currentMemory>/,
          );
        } finally {
          c.resume();
        }
      });

      await t.step(
        "--prune -l removes matching foundry VMs the file does not name, on every host",
        async () => {
          const keep = await file(
            "keep",
            vmYaml("s6h2-keep", "192.0.2.40").replace("suite: h7", "suite: s6h2-keep"),
          );
          const k = await foundry(
            "--config",
            config,
            "--connect",
            a.unixUri,
            "create",
            keep,
            "--no-start",
          );
          assert.equal(k.code, 0, k.err + k.out);
          const f = await file("only-one", one("0.5"));
          const diff = await fleetRun("diff", "-f", f, "--prune", "-l", "suite=h7");
          assert.equal(diff.code, 1, diff.err + diff.out);
          for (const [h, vm] of [[a, "s6h2-twin"], [b, "s6h2-twin"], [c, "s6h2-two"]] as const) {
            assert.match(diff.out, new RegExp(`^${h.name}\\s+- prune ${vm}$`, "m"));
          }
          assert.deepEqual(await all(), [["s6h2-keep", "s6h2-twin"], ["s6h2-one", "s6h2-twin"], [
            "s6h2-two",
          ]]);
          const r = await fleetRun("apply", "-f", f, "--prune", "-l", "suite=h7");
          assert.equal(r.code, 0, r.err + r.out);
          assert.deepEqual(await all(), [["s6h2-keep"], ["s6h2-one"], []]);
          assert.deepEqual(await volumesOf(c, "h7-vms"), []);
          const bad = await fleetRun("apply", "-f", f, "--prune", "-l", "suite!=h7");
          assert.equal(bad.code, 2, bad.err + bad.out);
          assert.match(bad.err, /--prune needs a selector that requires a label/);
        },
      );

      await t.step(
        "--copy-image: a new VM's boot image is copied to its host first, and removed again when the create fails",
        async () => {
          const image = `${a.dir}/lib/h7-images/s6h2.qcow2`;
          await run("qemu-img", "create", "-q", "-f", "qcow2", image, "64M");
          await virsh(a.unixUri, "pool-refresh", "h7-images");
          const f = await file(
            "copy",
            vmYaml("s6h2-copy", "192.0.2.50", `  placement:\n    host: ${c.name}\n`, "s6h2.qcow2"),
          );
          const before = await inventory();
          for (const cmd of [["apply", "-f", f, "--no-start"], ["diff", "-f", f]]) {
            const r = await fleetRun(...cmd);
            assert.equal(r.code, 2, r.err + r.out);
            assert.match(
              r.err,
              /copy\.yaml:\d+:\d+ spec\.placement\.host: .*image h7-images\/s6h2\.qcow2 is not there \(another host has it: --copy-image copies it\)/,
            );
          }
          const diff = await fleetRun("diff", "-f", f, "--copy-image");
          assert.equal(diff.code, 1, diff.err + diff.out);
          assert.match(diff.out, new RegExp(`^${c.name}\\s+\\+ create s6h2-copy `, "m"));
          assert.match(
            diff.out,
            new RegExp(`^\\s+image h7-images/s6h2\\.qcow2: copied from host ${a.name} first$`, "m"),
          );
          const json = await fleetRun("diff", "-f", f, "--copy-image", "-o", "json");
          assert.deepEqual(
            JSON.parse(json.out).find((p: { name: string }) => p.name === "s6h2-copy").copyImage,
            { from: a.name, pool: "h7-images", volume: "s6h2.qcow2" },
          );
          assert.deepEqual(await inventory(), before);

          // A volume of the VM's name that foundry did not make: the create fails after the copy.
          await virsh(c.unixUri, "vol-create-as", "h7-vms", "s6h2-copy_boot", "1M");
          const failed = await fleetRun("apply", "-f", f, "--no-start", "--copy-image");
          assert.equal(failed.code, 7, failed.err + failed.out);
          assert.match(failed.err, /Volume s6h2-copy_boot already exists in pool h7-vms/);
          assert.match(
            failed.out,
            new RegExp(`Copied image h7-images/s6h2\\.qcow2 from ${a.name} to ${c.name} `),
          );
          assert.match(
            failed.err,
            new RegExp(`Removed the copy of image h7-images/s6h2\\.qcow2 from ${c.name}$`, "m"),
          );
          assert.deepEqual(await volumesOf(c, "h7-images"), ["h7-base.qcow2"]);
          assert.deepEqual(await volumesOf(c, "h7-vms"), ["s6h2-copy_boot"]);
          assert.deepEqual(await domainsOf(c), []);
          await virsh(c.unixUri, "vol-delete", "--pool", "h7-vms", "s6h2-copy_boot");

          const r = await fleetRun("apply", "-f", f, "--no-start", "--copy-image");
          assert.equal(r.code, 0, r.err + r.out);
          assert.match(
            r.out,
            new RegExp(
              `Copied image h7-images/s6h2\\.qcow2 from ${a.name} to ${c.name} \\(SHA-256 [0-9a-f]{64}\\)`,
            ),
          );
          assert.match(r.out, new RegExp(`^${c.name}: 1 create$`, "m"));
          const sum = async (h: TestHost) =>
            (await run("sha256sum", `${h.dir}/lib/h7-images/s6h2.qcow2`)).split(" ")[0];
          assert.equal(await sum(c), await sum(a));
          assert.deepEqual(await domainsOf(c), ["s6h2-copy"]);
          const again = await fleetRun("apply", "-f", f, "--no-start", "--copy-image");
          assert.equal(again.code, 0, again.err + again.out);
          assert.match(again.out, new RegExp(`^${c.name}\\s+= unchanged s6h2-copy `, "m"));
          assert.doesNotMatch(again.out, /Copied image/);
        },
      );

      await t.step(
        "a killed host: its own line and exit 7, the VM on another host is applied",
        async () => {
          await a.kill();
          const f = await file("killed", one("0.25"));
          const r = await fleetRun("apply", "-f", f);
          assert.equal(r.code, 7, r.err + r.out);
          assert.match(r.err, new RegExp(`^Error: host ${a.name}: `, "m"));
          assert.match(r.err, new RegExp(`^Error: 1 of 3 hosts failed: ${a.name}$`, "m"));
          assert.match(r.out, new RegExp(`^${b.name}: 1 update$`, "m"));
          assert.match(
            await virsh(b.unixUri, "dumpxml", "--inactive", "s6h2-one"),
            /<currentMemory unit='KiB'>262144<\/currentMemory>/,
          );
        },
      );
    } finally {
      await fleet.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
