import assert from "node:assert/strict";
import { parse } from "npm:yaml@^2.9.1";
import { buildCloudConfig } from "../cloudinit/cloud_config.ts";
import {
  CPU_UNIT,
  CpuWorkload,
  DATABASE_MOUNT,
  DatabaseWorkload,
  DISK_MOUNT,
  DiskWorkload,
  FIO_DIR,
  type GuestContext,
  IPERF3_PORT,
  LABEL_ROLE,
  MemoryWorkload,
  NetworkWorkload,
  ROLE_WORKER,
  type Workload,
  type WorkloadConfig,
} from "./mod.ts";

const config: WorkloadConfig = { enabled: true, vmCount: 1, cpuCores: 3, memory: "3Gi" };

interface Doc {
  packages?: string[];
  write_files?: { path: string; content: string; permissions?: string }[];
  runcmd?: (string | string[])[];
  users?: Record<string, unknown>[];
}

const ctx: GuestContext = { os: "fedora", peers: { server: "10.0.0.2" }, vmName: "vm-1" };

function doc(w: Workload, role: string, c: GuestContext = ctx): Doc {
  const userData = buildCloudConfig(w.userData(role, c));
  assert.match(userData, /^#cloud-config\n/);
  return parse(userData) as Doc;
}

function file(d: Doc, path: string): string {
  const f = d.write_files?.find((w) => w.path === path);
  assert.ok(f, `write_files has no ${path}`);
  return f.content;
}

function execStart(unit: string): string {
  const line = unit.split("\n").find((l) => l.startsWith("ExecStart="));
  assert.ok(line, "unit has no ExecStart");
  return line.slice("ExecStart=".length);
}

Deno.test("BaseWorkload defaults: one worker role, no disks, no service, vmCount from config", () => {
  const w = new CpuWorkload({ config: { ...config, vmCount: 4 } });
  assert.deepEqual(w.roles(), [ROLE_WORKER]);
  assert.deepEqual(w.dataDisks(), []);
  assert.equal(w.service(), undefined);
  assert.equal(w.vmCount(), 4);
  assert.equal(w.carriesCredentials(), false);
});

Deno.test("BaseWorkload rejects a bad vmCount or cpuCores and an unknown role", () => {
  assert.throws(() => new CpuWorkload({ config: { ...config, vmCount: -1 } }), RangeError);
  assert.throws(() => new CpuWorkload({ config: { ...config, cpuCores: 0 } }), RangeError);
  assert.throws(() => new CpuWorkload({ config }).userData("server", ctx), /has roles worker/);
});

Deno.test("CpuWorkload: name cpu, stress-ng --cpu 0 unit enabled by runcmd, resources from config", () => {
  const w = new CpuWorkload({ config });
  assert.equal(w.name, "cpu");
  const d = doc(w, ROLE_WORKER);
  assert.deepEqual(d.packages, ["stress-ng"]);
  const cmd = execStart(file(d, `/etc/systemd/system/${CPU_UNIT}`)).split(" ");
  assert.equal(cmd[0], "/usr/bin/stress-ng");
  assert.equal(cmd[cmd.indexOf("--cpu") + 1], "0");
  assert.deepEqual(d.runcmd?.at(-1), ["systemctl", "enable", "--now", CPU_UNIT]);
  assert.deepEqual(w.resources(), { cpuCores: 3, memoryBytes: 3 * 2 ** 30 });
});

Deno.test("MemoryWorkload: one vm stressor at 80% with all methods, no disks or service", () => {
  const w = new MemoryWorkload({ config });
  assert.equal(w.name, "memory");
  const d = doc(w, ROLE_WORKER);
  assert.deepEqual(d.packages, ["stress-ng"]);
  const unit = d.write_files!.find((f) => f.path.endsWith(".service"))!;
  const args = execStart(unit.content).split(" ");
  const arg = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(arg("--vm"), "1");
  assert.equal(arg("--vm-bytes"), "80%");
  assert.equal(arg("--vm-method"), "all");
  assert.deepEqual(w.dataDisks(), []);
  assert.equal(w.service(), undefined);
  assert.deepEqual(w.resources(), { cpuCores: 3, memoryBytes: 3 * 2 ** 30 });
});

Deno.test("DiskWorkload: fio profiles as separate files, loop alternates them with pauses", () => {
  const w = new DiskWorkload({ config, dataDiskSize: "7Gi" });
  assert.equal(w.name, "disk");
  const d = doc(w, ROLE_WORKER);
  assert.deepEqual(d.packages, ["fio"]);
  const mixed = file(d, `${FIO_DIR}/mixed-rw.fio`);
  assert.match(mixed, /^rw=randrw$/m);
  assert.match(mixed, /^rwmixread=70$/m);
  assert.match(mixed, /^bs=4k$/m);
  const seq = file(d, `${FIO_DIR}/seq-write.fio`);
  assert.match(seq, /^rw=write$/m);
  assert.match(seq, /^bs=128k$/m);
  const loop = file(d, "/usr/local/bin/virtwork-disk-loop");
  const lines = loop.split("\n").map((l) => l.trim());
  const iMixed = lines.indexOf(`fio ${FIO_DIR}/mixed-rw.fio`);
  const iSeq = lines.indexOf(`fio ${FIO_DIR}/seq-write.fio`);
  assert.ok(iMixed >= 0 && iSeq > iMixed, "loop runs mixed-rw then seq-write");
  assert.equal(lines[iMixed + 1], "sleep 10");
  assert.equal(lines[iSeq + 1], "sleep 10");
  for (const p of [mixed, seq]) assert.match(p, new RegExp(`^directory=${DISK_MOUNT}$`, "m"));
});

Deno.test("DiskWorkload: one data disk with a serial, mounted at /mnt/data before fio starts", () => {
  const w = new DiskWorkload({ config, dataDiskSize: "7Gi" });
  const disks = w.dataDisks();
  assert.equal(disks.length, 1);
  assert.equal(disks[0]!.sizeBytes, 7 * 2 ** 30);
  assert.equal(disks[0]!.mountPath, DISK_MOUNT);
  assert.ok(disks[0]!.serial.length > 0 && disks[0]!.serial.length <= 20);
  const unit = file(doc(w, ROLE_WORKER), "/etc/systemd/system/virtwork-disk.service");
  assert.match(unit, new RegExp(`^ExecStartPre=.* ${disks[0]!.serial} ${DISK_MOUNT}$`, "m"));
  assert.equal(w.service(), undefined);
});

Deno.test("DatabaseWorkload: PostgreSQL init in ExecStartPre, pgbench loop in ExecStart", () => {
  const w = new DatabaseWorkload({ config });
  assert.equal(w.name, "database");
  const d = doc(w, ROLE_WORKER);
  assert.ok(d.packages?.includes("postgresql-server"));
  const unit = file(d, "/etc/systemd/system/virtwork-database.service");
  const pre = unit.split("\n").find((l) => l.startsWith("ExecStartPre="))!.split("=")[1]!;
  const init = file(d, pre);
  assert.match(init, /postgresql-setup --initdb/);
  assert.match(init, /pgbench -i -s 50 pgbench/);
  assert.match(
    init,
    new RegExp(`virtwork-mount-data ${w.dataDisks()[0]!.serial} ${DATABASE_MOUNT}`),
  );
  const loop = file(d, execStart(unit));
  assert.match(loop, /pgbench -c 10 -j 2 -T 300 pgbench/);
  assert.match(loop, /sleep 10/);
  assert.equal(w.dataDisks().length, 1);
  assert.equal(w.service(), undefined);
});

Deno.test("NetworkWorkload: two roles, server runs iperf3 -s, client targets the Service DNS name", () => {
  const w = new NetworkWorkload({ config: { ...config, vmCount: 2 }, namespace: "loadns" });
  assert.equal(w.name, "network");
  assert.deepEqual(w.roles(), ["server", "client"]);
  assert.equal(w.vmCount(), 4);
  const server = execStart(doc(w, "server").write_files![0]!.content);
  assert.match(server, /^\/usr\/bin\/iperf3 -s\b/);
  const client = execStart(doc(w, "client").write_files![0]!.content);
  assert.match(client, / -c 10\.0\.0\.2 /);
  assert.match(client, / -t 60 -P 4 --bidir$/);
});

Deno.test("NetworkWorkload: ClusterIP service on 5201 selecting the server role", () => {
  const svc = new NetworkWorkload({ config, namespace: "x" }).service();
  assert.equal(svc.ports.length, 1);
  assert.equal(svc.ports[0]!.port, IPERF3_PORT);
  assert.equal(svc.ports[0]!.port, 5201);
  assert.deepEqual(svc.selector, { [LABEL_ROLE]: "server" });
});

Deno.test("SSH credentials reach every workload's users block", () => {
  const ssh = { user: "virtwork", password: "pw", authorizedKeys: ["ssh-ed25519 K"] };
  for (
    const w of [
      new CpuWorkload({ config, ssh }),
      new MemoryWorkload({ config, ssh }),
      new DiskWorkload({ config, ssh }),
      new DatabaseWorkload({ config, ssh }),
      new NetworkWorkload({ config, ssh }),
    ]
  ) {
    assert.equal(w.carriesCredentials(), true);
    for (const role of w.roles()) {
      const d = doc(w, role);
      assert.equal(d.users?.[0]?.name, "virtwork", `${w.name}/${role}`);
      assert.ok((d.packages ?? []).length > 0, "workload packages survive the SSH injection");
    }
  }
});
