/**
 * foundry across a fleet (issue 16) against three real libvirt daemons started for this file
 * (tests/fleet/_daemons.ts), one reached over qemu+ssh: list/get/destroy across hosts, host
 * list/info/check, a host made unreachable mid-run, and configuration errors with file:line.
 * The VMs are defined, not started (define-only foundry domains with their stored spec).
 */
import assert from "node:assert/strict";
import { buildDomainXml } from "../../lib/foundry/domain_xml.ts";
import { parseVirtualMachines } from "../../lib/foundry/loader.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { testNeeding } from "../_require.ts";
import { tinyDomainXml } from "../libvirt/_env.ts";
import { fleetSkipReason, startTestFleet, type TestFleet, virsh } from "./_daemons.ts";
import { foundry, foundryWith } from "./_h7_fleet.ts";

function vmYaml(name: string, role: string): string {
  return `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels:
    role: ${role}
    suite: h6
spec:
  vcpus: 1
  memoryGiB: 0.25
  bootDisk:
    sizeGB: 1
    image: h6-none.qcow2
  networkInterfaces:
    - ip: 192.0.2.10/24
      gateway: 192.0.2.1
      bridge: h6-nobr
  cloudInit:
    fqdn: ${name}.example.org
    sshAuthorizedKeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD test@example.org
`;
}

/** Defines a foundry VM (not started) on `uri`. */
async function defineVm(uri: string, name: string, role: string): Promise<void> {
  const [vm] = parseVirtualMachines(vmYaml(name, role), `${name}.yaml`);
  const lv = await Libvirt.connect(uri);
  try {
    await lv.domainDefineXml(buildDomainXml(vm!, { domainType: "qemu", pool: "h6-pool" }));
  } finally {
    await lv.close();
  }
}

async function domainNames(uri: string): Promise<string[]> {
  return (await virsh(uri, "list", "--all", "--name")).split("\n").map((s) => s.trim())
    .filter(Boolean).sort();
}

testNeeding(fleetSkipReason(), {
  name:
    "fleet: three daemons, list/get/destroy across hosts, host list/info/check, unreachable host",
  async fn(t) {
    const fleet: TestFleet = await startTestFleet({ prefix: "h6" });
    const dir = await Deno.makeTempDir({ prefix: "h6-fleet-config-" });
    try {
      const [a, b, c] = fleet.hosts as [
        typeof fleet.hosts[0],
        typeof fleet.hosts[0],
        typeof fleet.hosts[0],
      ];
      const config = `${dir}/config.yaml`;
      await Deno.writeTextFile(
        config,
        [
          "hosts:",
          `  - {name: ${a.name}, uri: "${a.uri}", labels: {zone: east}}`,
          `  - {name: ${b.name}, uri: "${b.uri}", labels: {zone: east}, limits: {maxVms: 20}}`,
          `  - name: ${c.name}`,
          `    uri: "${c.uri}"`,
          "    labels: {zone: west}",
          "",
        ].join("\n"),
      );
      const vms: Record<string, string[]> = {};
      for (const h of fleet.hosts) {
        vms[h.name] = [`${h.name}-web`, `${h.name}-db`];
        await defineVm(h.unixUri, `${h.name}-web`, "web");
        await defineVm(h.unixUri, `${h.name}-db`, "db");
      }
      // A domain of another tool: shown only with --all.
      const lv = await Libvirt.connect(a.unixUri);
      await lv.domainDefineXml(tinyDomainXml("h6-other"));
      await lv.close();

      await t.step("the ssh host is reached over qemu+ssh", () => {
        if (fleet.sshSkipped) console.log(`ssh host skipped: ${fleet.sshSkipped}`);
        else assert.match(c.uri, /^qemu\+ssh:\/\//);
      });

      await t.step("list --host all shows every VM with its host", async () => {
        const r = await foundry("--config", config, "list", "--host", "all");
        assert.equal(r.code, 0, r.err);
        const lines = r.out.trim().split("\n");
        assert.match(lines[0]!, /^HOST\s+NAME\s+STATE/);
        for (const [host, names] of Object.entries(vms)) {
          for (const n of names) {
            assert.ok(
              lines.some((l) => new RegExp(`^${host}\\s+${n}\\s+shut off`).test(l)),
              `${host} ${n}\n${r.out}`,
            );
          }
        }
        assert.equal(lines.length, 1 + 6);
        assert.ok(!r.out.includes("h6-other"));
        const all = await foundry(
          "--config",
          config,
          "--host",
          "all",
          "list",
          "--all",
          "-o",
          "json",
        );
        assert.equal(all.code, 0, all.err);
        const rows = JSON.parse(all.out) as { host: string; name: string; managed: boolean }[];
        assert.deepEqual(
          rows.map((x) => `${x.host}/${x.name}`).sort(),
          [
            ...Object.entries(vms).flatMap(([h, ns]) => ns.map((n) => `${h}/${n}`)),
            `${a.name}/h6-other`,
          ].sort(),
        );
      });

      await t.step("--host-selector and --host NAME,NAME pick hosts", async () => {
        const west = await foundry(
          "--config",
          config,
          "--host-selector",
          "zone=west",
          "list",
          "-o",
          "name",
        );
        assert.equal(west.code, 0, west.err);
        assert.deepEqual(
          west.out.trim().split("\n").sort(),
          vms[c.name]!.map((n) => `vm/${n}`).sort(),
        );
        const two = await foundry(
          "--config",
          config,
          "--host",
          `${a.name},${c.name}`,
          "list",
          "-o",
          "json",
        );
        assert.deepEqual(
          [...new Set((JSON.parse(two.out) as { host: string }[]).map((x) => x.host))].sort(),
          [a.name, c.name],
        );
        const bad = await foundry("--config", config, "--host", "nope", "list");
        assert.equal(bad.code, 2);
        assert.match(bad.err, /Unknown host 'nope'/);
      });

      await t.step("get NAME --host all finds the VM on its host", async () => {
        const r = await foundry(
          "--config",
          config,
          "get",
          `${b.name}-db`,
          "--host",
          "all",
          "-o",
          "json",
        );
        assert.equal(r.code, 0, r.err);
        const doc = JSON.parse(r.out) as { host: string; metadata: { name: string } };
        assert.equal(doc.host, b.name);
        assert.equal(doc.metadata.name, `${b.name}-db`);
        const missing = await foundry("--config", config, "get", "h6-nowhere", "--host", "all");
        assert.equal(missing.code, 4);
        assert.match(missing.err, /not found on hosts/);
      });

      await t.step("host list/info show each host's figures; versions match virsh", async () => {
        const r = await foundry("--config", config, "host", "list", "-o", "json");
        assert.equal(r.code, 0, r.err);
        const rows = JSON.parse(r.out) as {
          name: string;
          reachable: boolean;
          survey: {
            libvirtVersion: string;
            hypervisorVersion: string;
            cpus: number;
            freeMemoryBytes: number;
            foundryVms: unknown[];
            domains: number;
          };
        }[];
        assert.deepEqual(rows.map((x) => x.name), [a.name, b.name, c.name]);
        for (const row of rows) {
          const v = await virsh(a.unixUri, "version");
          assert.ok(row.reachable);
          assert.ok(v.includes(`libvirt ${row.survey.libvirtVersion}`), v);
          assert.ok(v.includes(`QEMU ${row.survey.hypervisorVersion}`), v);
          assert.equal(row.survey.cpus, navigator.hardwareConcurrency);
          assert.ok(row.survey.freeMemoryBytes > 0);
          assert.equal(row.survey.foundryVms.length, 2);
          assert.equal(row.survey.domains, row.name === a.name ? 3 : 2);
        }
        const table = await foundry("--config", config, "host", "list");
        assert.match(table.out, new RegExp(`^${b.name}\\s+ready\\s+\\d+\\.\\d+\\.\\d+`, "m"));
        const info = await foundry("--config", config, "host", "info", c.name);
        assert.equal(info.code, 0, info.err);
        assert.match(info.out, /VMs:\s+2 foundry VMs \(2 domains\)/);
        assert.ok(!info.out.includes(`Host ${a.name}`));
      });

      await t.step("host check reports the missing bridge and pools with fixes", async () => {
        const r = await foundry("--config", config, "host", "check", a.name);
        assert.equal(r.code, 2, r.out + r.err);
        assert.match(r.out, /FAIL bridge h6-nobr: missing; used by h6a-db, h6a-web/);
        assert.match(r.out, /FAIL pool h6-pool: does not exist/);
        assert.match(r.out, /fix: /);
        assert.match(r.out, /(ok {2}|warn) kvm/);
        const j = await foundry("--config", config, "host", "check", "-o", "json");
        const checks = JSON.parse(j.out) as {
          host: string;
          checks: { check: string; status: string }[];
        }[];
        assert.equal(checks.length, 3);
        assert.ok(checks.every((h) => h.checks.some((x) => x.check === "uefi")));
      });

      await t.step(
        "destroy -l role=web across hosts removes the web VMs of every host",
        async () => {
          const r = await foundry("--config", config, "--host", "all", "destroy", "-l", "role=web");
          assert.equal(r.code, 0, r.out + r.err);
          for (const h of fleet.hosts) {
            assert.match(
              r.out,
              new RegExp(`^${h.name}: Successfully destroyed VM '${h.name}-web'`, "m"),
            );
            assert.deepEqual(
              await domainNames(h.unixUri),
              h === a ? ["h6-other", `${h.name}-db`] : [`${h.name}-db`],
            );
          }
        },
      );

      await t.step("destroy NAME finds the VM's host; a name on two hosts is refused", async () => {
        await defineVm(a.unixUri, "h6-dup", "dup");
        await defineVm(c.unixUri, "h6-dup", "dup");
        const both = await foundry("--config", config, "--host", "all", "destroy", "h6-dup");
        assert.equal(both.code, 2, both.out + both.err);
        assert.match(both.err, new RegExp(`VM 'h6-dup' exists on hosts ${a.name}, ${c.name}`));
        assert.ok((await domainNames(a.unixUri)).includes("h6-dup"));
        const one = await foundry("--config", config, "--host", a.name, "destroy", "h6-dup");
        assert.equal(one.code, 0, one.out + one.err);
        assert.ok(!(await domainNames(a.unixUri)).includes("h6-dup"));
        const found = await foundry("--config", config, "--host", "all", "destroy", "h6-dup");
        assert.equal(found.code, 0, found.out + found.err);
        assert.match(found.out, new RegExp(`^${c.name}: Successfully destroyed VM 'h6-dup'`, "m"));
        const none = await foundry("--config", config, "--host", "all", "destroy", "h6-dup");
        assert.equal(none.code, 4);
        assert.match(none.err, /VM 'h6-dup' not found on hosts/);
        const ignored = await foundry(
          "--config",
          config,
          "--host",
          "all",
          "destroy",
          "h6-dup",
          "--ignore-not-found",
        );
        assert.equal(ignored.code, 0, ignored.err);
      });

      await t.step(
        "stop/start fan out per host; when every host fails, their own exit code",
        async () => {
          const stop = await foundry("--config", config, "--host", "all", "stop", "-l", "role=db");
          assert.equal(stop.code, 0, stop.out + stop.err);
          for (const h of fleet.hosts) {
            assert.match(
              stop.out,
              new RegExp(`^${h.name}: VM '${h.name}-db' is already shut off$`, "m"),
            );
          }
          // Their disks' pool and bridge exist nowhere: each host fails on its own line.
          const start = await foundry(
            "--config",
            config,
            "--host",
            "all",
            "--parallel",
            "1",
            "start",
            "-l",
            "role=db",
          );
          assert.equal(start.code, 4, start.out + start.err);
          for (const h of fleet.hosts) {
            assert.match(start.err, new RegExp(`^Error: host ${h.name}: `, "m"));
          }
          assert.match(start.err, /every host failed/);
          const bad = await foundry("--config", config, "--host", "all", "--parallel", "0", "list");
          assert.equal(bad.code, 2);
          assert.match(bad.err, /Invalid --parallel '0'/);
        },
      );

      await t.step("a host that stops answering is reported on its own line; exit 7", async () => {
        b.pause();
        try {
          const r = await foundryWith({ FOUNDRY_HOST_TIMEOUT: "3" }, [
            "--config",
            config,
            "list",
            "--host",
            "all",
          ]);
          assert.equal(r.code, 7, r.out + r.err);
          assert.match(r.err, new RegExp(`^Error: host ${b.name}: .*no answer .* within 3 s`, "m"));
          assert.match(r.out, new RegExp(`^${a.name}\\s+${a.name}-db`, "m"));
          assert.match(r.out, new RegExp(`^${c.name}\\s+${c.name}-db`, "m"));
          assert.ok(!r.out.includes(`${b.name}-db`));
        } finally {
          b.resume();
        }
        await b.kill();
        const hosts = await foundry("--config", config, "host", "list");
        assert.equal(hosts.code, 7);
        assert.match(hosts.out, new RegExp(`^${b.name}\\s+unreachable`, "m"));
        assert.match(hosts.out, new RegExp(`^${c.name}\\s+ready`, "m"));
        assert.match(hosts.err, new RegExp(`^Error: host ${b.name}: `, "m"));
        const only = await foundry("--config", config, "list", "--host", b.name);
        assert.equal(only.code, 3, only.err);
      });

      await t.step("configuration errors name file and line", async () => {
        const bad = `${dir}/bad.yaml`;
        await Deno.writeTextFile(
          bad,
          `hosts:\n  - {name: x, uri: qemu:///system}\n  - {name: x, uri: "qemu+tls://h/system", zone: a}\n`,
        );
        const r = await foundry("--config", bad, "list", "--host", "all");
        assert.equal(r.code, 1);
        assert.match(r.err, /bad\.yaml:3:\d+ hosts\[1\]\.name: duplicate host name "x"/);
        assert.match(r.err, /bad\.yaml:3:\d+ hosts\[1\]\.uri: Unsupported transport 'tls'/);
        assert.match(r.err, /bad\.yaml:3:\d+ hosts\[1\]\.zone: unknown field "zone"/);
        const plain = `${dir}/plain.yaml`;
        await Deno.writeTextFile(plain, `uri: "${a.unixUri}"\n`);
        const none = await foundry("--config", plain, "--host", "all", "list");
        assert.equal(none.code, 2);
        assert.match(none.err, /need a hosts: list/);
        const local = await foundry("--config", plain, "host", "list", "-o", "name");
        assert.equal(local.code, 0, local.err);
        assert.equal(local.out, "host/default\n");
        // Without --host, the single connection works as always.
        const single = await foundry("--config", plain, "list", "-o", "name");
        assert.equal(single.code, 0, single.err);
        assert.deepEqual(single.out.trim().split("\n"), [`vm/${a.name}-db`]);
      });
    } finally {
      await fleet.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
