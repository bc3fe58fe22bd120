/**
 * Every workload's guest content checked by the real tools: cloud-init schema on each user data,
 * systemd-analyze verify on each unit (in a scratch guest root), fio --parse-only on each profile,
 * bash -n on each script.
 */
import assert from "node:assert/strict";
import {
  defaultRegistry,
  FIO_PROFILES,
  withNamespace,
  withSshCredentials,
} from "../../lib/workloads/mod.ts";
import {
  assertBashSyntax,
  assertCloudInitSchema,
  assertFioParses,
  assertSystemdUnitsVerify,
  writeFilesOf,
} from "./guest_checks.ts";
import { requireTool, testNeeding } from "../_require.ts";

/** The executables the guest packages provide that units start directly (Fedora paths). */
const PACKAGE_BINARIES: Record<string, string[]> = {
  "stress-ng": ["/usr/bin/stress-ng"],
  fio: ["/usr/bin/fio"],
  iperf3: ["/usr/bin/iperf3"],
  "postgresql-server": ["/usr/bin/postgresql-setup", "/usr/bin/pg_ctl"],
  "postgresql-contrib": ["/usr/bin/pgbench"],
};

const config = { enabled: true, vmCount: 1, cpuCores: 2, memory: "2Gi" };

function everyUserData(): { label: string; userData: string }[] {
  const r = defaultRegistry();
  const out: { label: string; userData: string }[] = [];
  for (const name of r.list()) {
    for (
      const ssh of [{}, {
        user: "virtwork",
        password: "pw",
        authorizedKeys: ["ssh-ed25519 AAAA k"],
      }]
    ) {
      const w = r.get(name, config, withNamespace("virtwork"), withSshCredentials(ssh));
      for (const role of w.roles()) {
        out.push({ label: `${name}/${role}`, userData: w.userData(role) });
      }
    }
  }
  return out;
}

const noCloudInit = requireTool("cloud-init");
const noSystemd = requireTool("systemd-analyze");
const noFio = requireTool("fio");

testNeeding(noCloudInit, {
  name: "every workload's user data passes cloud-init schema",
  async fn() {
    const all = everyUserData();
    assert.equal(all.length, 12);
    for (const { label, userData } of all) {
      await assertCloudInitSchema(userData).catch((e) => {
        throw new Error(`${label}: ${e.message}`);
      });
    }
  },
});

testNeeding(noSystemd, {
  name: "every workload's systemd units pass systemd-analyze verify in a guest root",
  async fn() {
    let units = 0;
    for (const { label, userData } of everyUserData()) {
      const verified = await assertSystemdUnitsVerify(userData, PACKAGE_BINARIES).catch((e) => {
        throw new Error(`${label}: ${e.message}`);
      });
      assert.ok(verified.length >= 1, `${label} has a unit`);
      units += verified.length;
    }
    assert.equal(units, 12);
  },
});

testNeeding(noSystemd, {
  name: "systemd verify fails for a unit whose command no package provides (the check can fail)",
  async fn() {
    const w = defaultRegistry().get("cpu", config);
    await assert.rejects(
      () => assertSystemdUnitsVerify(w.userData("worker"), {}),
      /stress-ng is not executable/,
    );
  },
});

testNeeding(noFio, {
  name: "every fio profile passes fio --parse-only",
  async fn() {
    const profiles = Object.entries(FIO_PROFILES);
    assert.equal(profiles.length, 2);
    for (const [name, profile] of profiles) {
      await assertFioParses(profile).catch((e) => {
        throw new Error(`${name}: ${e.message}`);
      });
    }
    await assert.rejects(() => assertFioParses("[job]\nrw=sideways\n"), /fio --parse-only/);
  },
});

Deno.test("every shell script written by a workload passes bash -n", async () => {
  let scripts = 0;
  for (const { userData } of everyUserData()) {
    for (const f of writeFilesOf(userData)) {
      if (!f.content.startsWith("#!/bin/bash")) continue;
      await assertBashSyntax(f.content);
      scripts++;
    }
  }
  assert.ok(scripts >= 4, `found ${scripts} scripts`);
});
