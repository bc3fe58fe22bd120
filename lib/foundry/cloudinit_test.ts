import assert from "node:assert/strict";
import { parse } from "npm:yaml@^2.9.1";
import {
  cidataIsoFromVm,
  hostnameOf,
  instanceIdOf,
  noCloudConfigFromVm,
  noCloudFilesFromVm,
} from "./cloudinit.ts";
import { sampleVm, workloadVm } from "./_testdata.ts";
import { runTool } from "../../tests/_tools.ts";
import { requireTool, testNeeding } from "../../tests/_require.ts";

Deno.test("hostnameOf() takes the FQDN's first label, else the name without underscores", () => {
  const vm = sampleVm();
  assert.equal(hostnameOf(vm), "web-01");
  delete vm.spec.cloudInit;
  vm.metadata.name = "db_primary";
  assert.equal(hostnameOf(vm), "db-primary");
});

Deno.test("instanceIdOf() is stable for a spec and changes with it", () => {
  const vm = sampleVm();
  const id = instanceIdOf(vm);
  assert.match(id, /^web-01-[0-9a-f]{12}$/);
  assert.equal(instanceIdOf(sampleVm()), id);
  vm.spec.vcpus = 3;
  assert.notEqual(instanceIdOf(vm), id);
});

Deno.test("noCloudConfigFromVm() derives MACs and puts the gateway on the default-route interface", () => {
  const vm = sampleVm();
  const c = noCloudConfigFromVm(vm);
  assert.equal(c.hostname, "web-01");
  assert.equal(c.fqdn, "web-01.example.org");
  assert.deepEqual(c.rootSshAuthorizedKeys, vm.spec.cloudInit?.sshAuthorizedKeys);
  assert.equal(c.rootPasswordHash, vm.spec.cloudInit?.passwordHash);
  assert.equal(c.sshPwauth, false);
  assert.deepEqual(c.interfaces, [
    {
      macAddress: "be:ef:c0:00:02:0a",
      addresses: ["192.0.2.10/24"],
      gateway: "192.0.2.1",
      nameservers: ["192.0.2.53", "2001:db8::53"],
    },
    { macAddress: "be:ef:c6:33:64:0a", addresses: ["198.51.100.10/24"] },
  ]);
  const flipped = sampleVm();
  flipped.spec.networkInterfaces[0]!.defaultRoute = false;
  flipped.spec.networkInterfaces[1]!.defaultRoute = true;
  const f = noCloudConfigFromVm(flipped, { instanceId: "given" });
  assert.equal(f.instanceId, "given");
  assert.deepEqual(f.interfaces.map((i) => i.gateway), [undefined, "198.51.100.1"]);
});

Deno.test("noCloudFilesFromVm() writes the VM's seed; without cloudInit root gets no keys", () => {
  const vm = sampleVm();
  delete vm.spec.cloudInit;
  const files = noCloudFilesFromVm(vm);
  assert.deepEqual(parse(files["user-data"]), {
    hostname: "web-01",
    disable_root: false,
    users: [{ name: "root" }],
    ssh_pwauth: false,
  });
  assert.deepEqual(parse(files["meta-data"]), {
    "instance-id": instanceIdOf(vm),
    "local-hostname": "web-01",
  });
});

Deno.test("cidataIsoFromVm() is deterministic and labelled cidata", () => {
  const vm = sampleVm();
  const iso = cidataIsoFromVm(vm);
  assert.deepEqual(cidataIsoFromVm(sampleVm()), iso);
  assert.equal(new TextDecoder().decode(iso.subarray(16 * 2048 + 40, 16 * 2048 + 46)), "cidata");
  const changed = sampleVm();
  changed.spec.vcpus = 8;
  assert.notDeepEqual(cidataIsoFromVm(changed), iso);
});

testNeeding(requireTool("isoinfo"), {
  name: "isoinfo reads the three seed files back from cidataIsoFromVm()'s ISO",
  fn: async () => {
    const vm = sampleVm();
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/seed.iso`, cidataIsoFromVm(vm));
      const files = noCloudFilesFromVm(vm);
      for (const name of ["user-data", "meta-data", "network-config"] as const) {
        const out = await runTool("isoinfo", ["-R", "-i", `${dir}/seed.iso`, "-x", `/${name}`]);
        assert.equal(out.code, 0, out.stderr);
        assert.equal(out.stdout, files[name]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testNeeding(requireTool("cloud-init"), {
  name: "the user-data of every kind of VM passes cloud-init schema",
  fn: async (t) => {
    const bare = sampleVm();
    delete bare.spec.cloudInit;
    const keysOnly = sampleVm();
    delete keysOnly.spec.cloudInit!.passwordHash;
    delete keysOnly.spec.cloudInit!.fqdn;
    const passwordOnly = sampleVm();
    passwordOnly.spec.cloudInit = {
      passwordHash: sampleVm().spec.cloudInit!.passwordHash!,
      sshPwauth: true,
    };
    const dir = await Deno.makeTempDir();
    try {
      for (
        const [label, vm] of Object.entries({
          full: sampleVm(),
          bare,
          keysOnly,
          passwordOnly,
          workload: workloadVm(),
        })
      ) {
        await t.step(label, async () => {
          const file = `${dir}/${label}`;
          await Deno.writeTextFile(file, noCloudFilesFromVm(vm)["user-data"]);
          const r = await runTool("cloud-init", ["schema", "--config-file", file]);
          const out = r.stdout + r.stderr;
          assert.equal(r.code, 0, out);
          assert.doesNotMatch(out, /DEPRECATED/);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("user-data extras are merged after foundry's own keys, which they cannot replace", () => {
  const vm = workloadVm();
  const doc = parse(noCloudFilesFromVm(vm)["user-data"]);
  const ud = vm.spec.cloudInit!.userData!;
  assert.deepEqual(doc.packages, ud.packages);
  assert.deepEqual(doc.write_files, [
    { path: "/usr/local/bin/loop", content: ud.writeFiles![0]!.content, permissions: "0755" },
    { path: "/etc/virtwork/run.conf", content: "on: yes\n" },
  ]);
  assert.deepEqual(doc.bootcmd, ud.bootcmd);
  assert.deepEqual(doc.runcmd, ud.runcmd);
  // Foundry's own: root and its keys, the hostname.
  assert.equal(doc.users[0].name, "root");
  assert.deepEqual(doc.users[0].ssh_authorized_keys, vm.spec.cloudInit!.sshAuthorizedKeys);
  assert.equal(doc.hostname, "web-01");
  assert.equal(doc.ssh_pwauth, false);
  // Without extras, none of these keys appear.
  const plain = parse(noCloudFilesFromVm(sampleVm())["user-data"]);
  for (const k of ["packages", "write_files", "bootcmd", "runcmd"]) {
    assert.equal(plain[k], undefined);
  }
});
