/**
 * Every workload's guest content on every distribution, checked by the real tools: cloud-init
 * schema on each user data, systemd-analyze verify on each unit (in a scratch guest root), fio
 * --parse-only on each profile, bash -n on each script, python3's compiler on the parser.
 */
import assert from "node:assert/strict";
import { buildCloudConfig, type CloudConfigOptions } from "../../lib/cloudinit/cloud_config.ts";
import {
  defaultRegistry,
  FIO_PROFILES,
  GUEST_OSES,
  type GuestOs,
  withSshCredentials,
} from "../../lib/workloads/mod.ts";
import {
  assertBashSyntax,
  assertCloudInitSchema,
  assertFioParses,
  assertSystemdUnitsVerify,
  runTool,
} from "../virtwork/guest_checks.ts";
import { requireTool, testNeeding } from "../_require.ts";

const config = { enabled: true, vmCount: 1, cpuCores: 2, memory: "2Gi" };
const SSH = { user: "virtwork", password: "pw", authorizedKeys: ["ssh-ed25519 AAAA k"] };

interface Case {
  label: string;
  os: GuestOs;
  data: CloudConfigOptions;
  userData: string;
}

/** Every workload x role x distribution, with SSH credentials on every other case. */
function everyCase(): Case[] {
  const r = defaultRegistry();
  const out: Case[] = [];
  let i = 0;
  for (const name of r.list()) {
    for (const os of GUEST_OSES) {
      const ssh = i++ % 2 === 0 ? {} : SSH;
      const w = r.get(name, config, withSshCredentials(ssh));
      for (const role of w.roles()) {
        const data = w.userData(role, { os, peers: { server: "10.77.0.2" }, vmName: "vm-1" });
        out.push({ label: `${name}/${role}/${os}`, os, data, userData: buildCloudConfig(data) });
      }
    }
  }
  return out;
}

const noCloudInit = requireTool("cloud-init");
const noSystemd = requireTool("systemd-analyze");
const noFio = requireTool("fio");
const noPython = requireTool("python3");
const noShellcheck = requireTool("shellcheck");

Deno.test("no workload uses cloud-init's packages: (it refreshes the lists first, offline fails)", () => {
  const all = everyCase();
  assert.equal(all.length, 6 * GUEST_OSES.length);
  for (const c of all) {
    assert.equal(c.data.packages, undefined, c.label);
    assert.doesNotMatch(c.userData, /^packages:/m, c.label);
  }
});

testNeeding(noCloudInit, {
  name: "every workload's user data on every distribution passes cloud-init schema",
  async fn() {
    for (const { label, userData } of everyCase()) {
      await assertCloudInitSchema(userData).catch((e) => {
        throw new Error(`${label}: ${e.message}`);
      });
    }
  },
});

testNeeding(noSystemd, {
  name: "every workload's systemd unit on every distribution passes systemd-analyze verify",
  async fn() {
    let units = 0;
    for (const { label, userData } of everyCase()) {
      const verified = await assertSystemdUnitsVerify(userData, {}).catch((e) => {
        throw new Error(`${label}: ${e.message}`);
      });
      assert.equal(verified.length, 1, `${label} has one unit`);
      units += verified.length;
    }
    assert.equal(units, 6 * GUEST_OSES.length);
  },
});

testNeeding(noSystemd, {
  name: "systemd verify fails for a unit whose script is not written (the check can fail)",
  async fn() {
    const data = defaultRegistry().get("cpu", config).userData("worker", {
      os: "debian",
      peers: {},
      vmName: "vm-1",
    });
    const without = {
      ...data,
      writeFiles: data.writeFiles!.filter((f) => !f.path.endsWith("/virtwork-cpu-run")),
    };
    await assert.rejects(
      () => assertSystemdUnitsVerify(buildCloudConfig(without), {}),
      /virtwork-cpu-run/,
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
  const seen = new Set<string>();
  for (const { data } of everyCase()) {
    for (const f of data.writeFiles ?? []) {
      if (!f.content.startsWith("#!/bin/bash") && !f.path.endsWith(".sh")) continue;
      if (seen.has(f.content)) continue;
      seen.add(f.content);
      await assertBashSyntax(f.content);
      scripts++;
    }
  }
  assert.ok(scripts >= 12, `found ${scripts} distinct scripts`);
  await assert.rejects(() => assertBashSyntax("if then fi\n"), /bash -n/);
});

testNeeding(noPython, {
  name: "the result parser compiles with python3",
  async fn() {
    const data = everyCase()[0]!.data;
    const py = data.writeFiles!.find((f) => f.path.endsWith("/result.py"));
    assert.ok(py);
    const dir = await Deno.makeTempDir({ prefix: "virtwork-py-" });
    try {
      await Deno.writeTextFile(`${dir}/result.py`, py.content);
      const r = await runTool("python3", [
        "-c",
        "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
        `${dir}/result.py`,
      ]);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testNeeding(noShellcheck, {
  name: "every shell script written by a workload passes shellcheck at warning level",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "virtwork-sc-" });
    try {
      const seen = new Set<string>();
      const paths: string[] = [];
      for (const { data } of everyCase()) {
        for (const f of data.writeFiles ?? []) {
          if (!f.content.startsWith("#!/bin/bash") && !f.path.endsWith(".sh")) continue;
          if (seen.has(f.content)) continue;
          seen.add(f.content);
          const p = `${dir}/${paths.length}-${f.path.split("/").at(-1)}`;
          await Deno.writeTextFile(p, f.content);
          paths.push(p);
        }
      }
      assert.ok(paths.length >= 12);
      const r = await runTool("shellcheck", ["-s", "bash", "-S", "warning", ...paths]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await Deno.writeTextFile(`${dir}/bad.sh`, "#!/bin/bash\nx=1\n[ $y = 2 ] && cd $x\n");
      const bad = await runTool("shellcheck", ["-s", "bash", "-S", "warning", `${dir}/bad.sh`]);
      assert.notEqual(bad.code, 0, "shellcheck finds a warning in a bad script");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
