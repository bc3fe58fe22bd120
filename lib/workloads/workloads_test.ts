import assert from "node:assert/strict";
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import {
  CPU_UNIT,
  CpuWorkload,
  DATABASE_MOUNT,
  DatabaseWorkload,
  DISK_MOUNT,
  DiskWorkload,
  FIO_DIR,
  formatQuantity,
  GUEST_OSES,
  type GuestContext,
  type GuestOs,
  IPERF3_PORT,
  isGuestOs,
  isQuantity,
  LABEL_ROLE,
  MemoryWorkload,
  NetworkWorkload,
  quantityBytes,
  ROLE_WORKER,
  type Workload,
  type WorkloadConfig,
} from "./mod.ts";
import { GUEST_PACKAGES } from "./_guest.ts";

const config: WorkloadConfig = { enabled: true, vmCount: 1, cpuCores: 3, memory: "3Gi" };
const ctx: GuestContext = { os: "fedora", peers: { server: "10.0.0.2" }, vmName: "vm-1" };

function data(w: Workload, role: string, os: GuestOs = "fedora"): CloudConfigOptions {
  return w.userData(role, { ...ctx, os });
}

function file(d: CloudConfigOptions, path: string): string {
  const f = d.writeFiles?.find((w) => w.path === path);
  assert.ok(f, `write_files has no ${path}`);
  return f.content;
}

function unitOf(d: CloudConfigOptions): string {
  const f = d.writeFiles?.filter((w) => w.path.startsWith("/etc/systemd/system/"));
  assert.equal(f?.length, 1, "one unit");
  return f[0]!.content;
}

function unitLine(unit: string, key: string): string {
  const line = unit.split("\n").find((l) => l.startsWith(`${key}=`));
  assert.ok(line, `unit has no ${key}`);
  return line.slice(key.length + 1);
}

/** The `CHECK=PACKAGE` pairs a script passes to virtwork-ensure-packages. */
function ensured(script: string): string[] {
  const m = /virtwork-ensure-packages" \w+ (.*) \|\| exit 1/.exec(script);
  assert.ok(m, "the script checks its packages");
  return m[1]!.split(" ").map((a) => a.replace(/^'|'$/g, ""));
}

Deno.test("quantityBytes() and formatQuantity() round-trip binary and decimal quantities", () => {
  assert.equal(quantityBytes("2Gi"), 2 * 2 ** 30);
  assert.equal(quantityBytes("1.5G"), 1.5e9);
  assert.equal(quantityBytes("512Mi"), 512 * 2 ** 20);
  assert.equal(quantityBytes("100"), 100);
  for (const bad of ["", "2 Gi", "2GB", "-1Gi", "Gi", "1e3"]) {
    assert.equal(quantityBytes(bad), undefined, bad);
  }
  assert.equal(formatQuantity(2 * 2 ** 30), "2Gi");
  assert.equal(formatQuantity(1536 * 2 ** 20), "1536Mi");
  assert.equal(formatQuantity(1000), "1000");
  for (const n of [1, 4096, 3 * 2 ** 30, 1e9]) assert.equal(quantityBytes(formatQuantity(n)), n);
  assert.throws(() => formatQuantity(-1), RangeError);
});

Deno.test("isQuantity() is the grammar alone: a quantity past a safe integer has no bytes", () => {
  assert.ok(isQuantity("99999Ei"));
  assert.equal(quantityBytes("99999Ei"), undefined);
  for (const bad of ["", "2 Gi", "2GB", "-1Gi"]) assert.ok(!isQuantity(bad), bad);
});

Deno.test("BaseWorkload defaults: one worker role, no disks, peers or service, bytes from config", () => {
  const w = new CpuWorkload({ config: { ...config, vmCount: 4 } });
  assert.deepEqual(w.roles(), [ROLE_WORKER]);
  assert.deepEqual(w.dataDisks(), []);
  assert.deepEqual(w.peerNeeds(), []);
  assert.equal(w.service(), undefined);
  assert.equal(w.vmCount(), 4);
  assert.equal(w.carriesCredentials(), false);
  assert.deepEqual(w.resources(), { cpuCores: 3, memoryBytes: 3 * 2 ** 30 });
  assert.equal(w.config.memory, "3Gi", "the config keeps the user's quantity");
});

Deno.test("BaseWorkload rejects bad numbers, quantities, interval, role and os, naming the field", () => {
  assert.throws(() => new CpuWorkload({ config: { ...config, vmCount: -1 } }), /vmCount/);
  assert.throws(() => new CpuWorkload({ config: { ...config, cpuCores: 0 } }), /cpuCores/);
  assert.throws(
    () => new CpuWorkload({ config: { ...config, memory: "2 GB" } }),
    /^RangeError: memory must be a positive Kubernetes quantity such as 2Gi, got "2 GB"$/,
  );
  assert.throws(() => new CpuWorkload({ config: { ...config, memory: "0" } }), /memory/);
  assert.throws(() => new DiskWorkload({ config, dataDiskSize: "big" }), /data disk size/);
  assert.throws(() => new CpuWorkload({ config, resultIntervalSeconds: 0 }), /result interval/);
  assert.throws(() => new CpuWorkload({ config, resultIntervalSeconds: 1.5 }), /result interval/);
  const w = new CpuWorkload({ config });
  assert.throws(() => w.userData("server", ctx), /has roles worker/);
  assert.throws(
    () => w.userData(ROLE_WORKER, { ...ctx, os: "arch" as GuestOs }),
    /guest os must be one of fedora, centos, debian, ubuntu, got "arch"/,
  );
  assert.ok(GUEST_OSES.every(isGuestOs));
  assert.equal(isGuestOs("windows"), false);
});

Deno.test("per-distribution packages: Debian family and Fedora family names and checks", () => {
  for (const os of ["debian", "ubuntu"] as const) {
    const p = GUEST_PACKAGES[os];
    assert.deepEqual(p["postgresql-server"], {
      check: "/usr/lib/postgresql/*/bin/initdb",
      pkg: "postgresql",
    });
    assert.deepEqual(p.pgbench, { check: "/usr/lib/postgresql/*/bin/pgbench", pkg: "postgresql" });
  }
  for (const os of ["fedora", "centos"] as const) {
    const p = GUEST_PACKAGES[os];
    assert.deepEqual(p["postgresql-server"], {
      check: "postgresql-setup",
      pkg: "postgresql-server",
    });
    assert.deepEqual(p.pgbench, { check: "pgbench", pkg: "postgresql-contrib" });
  }
  for (const os of GUEST_OSES) {
    for (const tool of ["stress-ng", "fio", "iperf3", "python3"] as const) {
      assert.deepEqual(GUEST_PACKAGES[os][tool], { check: tool, pkg: tool }, `${os} ${tool}`);
    }
  }
});

Deno.test("every workload: results library, parser and package check; a unit with the interval", () => {
  for (
    const w of [
      new CpuWorkload({ config, resultIntervalSeconds: 7 }),
      new MemoryWorkload({ config, resultIntervalSeconds: 7 }),
      new DiskWorkload({ config, resultIntervalSeconds: 7 }),
      new DatabaseWorkload({ config, resultIntervalSeconds: 7 }),
      new NetworkWorkload({ config, resultIntervalSeconds: 7 }),
    ]
  ) {
    for (const role of w.roles()) {
      const d = data(w, role);
      const paths = d.writeFiles!.map((f) => f.path);
      for (
        const p of [
          "/usr/local/lib/virtwork/common.sh",
          "/usr/local/lib/virtwork/result.py",
          "/usr/local/bin/virtwork-ensure-packages",
        ]
      ) {
        assert.ok(paths.includes(p), `${w.name}/${role} writes ${p}`);
      }
      const unit = unitOf(d);
      assert.match(unit, /^Environment=VIRTWORK_INTERVAL=7$/m);
      assert.match(unit, /^Restart=always$/m);
      const exec = unitLine(unit, "ExecStart");
      assert.ok(exec.startsWith("/usr/local/bin/"), `${w.name}/${role} starts ${exec}`);
      assert.ok(paths.includes(exec), `${exec} is written`);
      const name = d.writeFiles!.find((f) => f.content === unit)!.path;
      assert.deepEqual(d.runcmd?.at(-1), [
        "systemctl",
        "enable",
        "--now",
        "--no-reload",
        name.split("/").at(-1),
      ]);
      // No daemon reload: a reload costs seconds of an emulated guest's boot.
      assert.ok(!JSON.stringify(d.runcmd).includes("daemon-reload"), `${w.name}/${role} reloads`);
      assert.equal(d.packages, undefined);
    }
  }
});

Deno.test("CpuWorkload: stress-ng --cpu 0 slices of the interval, stress-ng and python3 checked", () => {
  const w = new CpuWorkload({ config });
  assert.equal(w.name, "cpu");
  const d = data(w, ROLE_WORKER, "debian");
  const sample = file(d, "/usr/local/bin/virtwork-cpu-sample");
  assert.match(sample, /stress-ng --cpu "\$\{VIRTWORK_STRESS_WORKERS:-0\}" --cpu-method all/);
  assert.match(sample, /--timeout "\$\{VIRTWORK_INTERVAL\}s" --metrics-brief/);
  assert.match(sample, /virtwork_report cpu stress-ng /);
  assert.deepEqual(ensured(file(d, "/usr/local/bin/virtwork-cpu-run")), [
    "stress-ng=stress-ng",
    "python3=python3",
  ]);
  assert.equal(unitLine(unitOf(d), "ExecStart"), "/usr/local/bin/virtwork-cpu-run");
  assert.ok(d.writeFiles!.some((f) => f.path === `/etc/systemd/system/${CPU_UNIT}`));
});

Deno.test("MemoryWorkload: a 70% holder beside 64 MiB sampling slices, no disks or service", () => {
  const w = new MemoryWorkload({ config });
  assert.equal(w.name, "memory");
  const d = data(w, ROLE_WORKER);
  const sample = file(d, "/usr/local/bin/virtwork-memory-sample");
  assert.match(
    sample,
    /stress-ng --vm 1 --vm-bytes "\$\{VIRTWORK_SAMPLE_VM_BYTES:-64M\}" --vm-method all --timeout/,
  );
  const run = file(d, "/usr/local/bin/virtwork-memory-run");
  assert.match(
    run,
    /^stress-ng --vm 1 --vm-bytes "\$\{VIRTWORK_VM_BYTES:-70%\}" --vm-keep --vm-method all --timeout 0 .*&$/m,
  );
  assert.match(run, /virtwork_error memory "the stress-ng holder exited"/);
  assert.match(run, /^export VIRTWORK_REPORT_ASYNC=1$/m, "slices follow each other without a gap");
  assert.doesNotMatch(
    file(data(new CpuWorkload({ config }), ROLE_WORKER), "/usr/local/bin/virtwork-cpu-run"),
    /holder/,
  );
  assert.deepEqual(w.dataDisks(), []);
  assert.equal(w.service(), undefined);
});

Deno.test("DiskWorkload: fio profiles as separate files, run in turn with JSON output", () => {
  const w = new DiskWorkload({ config, dataDiskSize: "7Gi" });
  assert.equal(w.name, "disk");
  const d = data(w, ROLE_WORKER, "ubuntu");
  const mixed = file(d, `${FIO_DIR}/mixed-rw.fio`);
  assert.match(mixed, /^rw=randrw$/m);
  assert.match(mixed, /^rwmixread=70$/m);
  assert.match(mixed, /^bs=4k$/m);
  const seq = file(d, `${FIO_DIR}/seq-write.fio`);
  assert.match(seq, /^rw=write$/m);
  assert.match(seq, /^bs=128k$/m);
  for (const p of [mixed, seq]) assert.match(p, new RegExp(`^directory=${DISK_MOUNT}$`, "m"));
  const run = file(d, "/usr/local/bin/virtwork-disk-run");
  assert.ok(run.includes(`for profile in ${FIO_DIR}/mixed-rw.fio ${FIO_DIR}/seq-write.fio; do`));
  assert.deepEqual(ensured(run), ["fio=fio", "python3=python3", "mkfs.ext4=e2fsprogs"]);
  const sample = file(d, "/usr/local/bin/virtwork-disk-sample");
  assert.match(sample, /fio --output-format=json /);
  assert.match(sample, /s\|\^runtime=\.\*\|runtime=\$VIRTWORK_INTERVAL\|/);
});

Deno.test("DiskWorkload: one data disk in bytes with a serial, mounted at /mnt/data by the run", () => {
  const w = new DiskWorkload({ config, dataDiskSize: "7Gi" });
  const disks = w.dataDisks();
  assert.equal(disks.length, 1);
  assert.equal(disks[0]!.sizeBytes, 7 * 2 ** 30);
  assert.equal(disks[0]!.mountPath, DISK_MOUNT);
  assert.ok(disks[0]!.serial.length > 0 && disks[0]!.serial.length <= 20);
  const run = file(data(w, ROLE_WORKER), "/usr/local/bin/virtwork-disk-run");
  assert.ok(run.includes(`virtwork-mount-data ${disks[0]!.serial} ${DISK_MOUNT}`));
  assert.match(run, /virtwork_error disk "cannot mount the data disk/);
  assert.equal(new DiskWorkload({ config }).dataDisks()[0]!.sizeBytes, 10 * 2 ** 30);
});

Deno.test("DatabaseWorkload on Fedora/CentOS: postgresql-setup --initdb and postgresql.service", () => {
  for (const os of ["fedora", "centos"] as const) {
    const w = new DatabaseWorkload({ config });
    const d = data(w, ROLE_WORKER, os);
    const init = file(d, "/usr/local/bin/virtwork-db-init");
    assert.match(init, /postgresql-setup --initdb/);
    assert.match(init, /systemctl start postgresql\.service/);
    assert.match(init, /restorecon -R \/var\/lib\/pgsql/);
    assert.doesNotMatch(init, /pg_createcluster|pg_dropcluster/);
    assert.deepEqual(ensured(init), [
      "postgresql-setup=postgresql-server",
      "pgbench=postgresql-contrib",
      "python3=python3",
      "mkfs.ext4=e2fsprogs",
    ]);
    assert.match(init, /pgbench -i -q -s 5 pgbench/);
    assert.ok(init.includes(`virtwork-mount-data ${w.dataDisks()[0]!.serial} ${DATABASE_MOUNT}`));
  }
});

Deno.test("DatabaseWorkload on Debian/Ubuntu: pg_createcluster on the disk, postgresql@<v>-main", () => {
  for (const os of ["debian", "ubuntu"] as const) {
    const d = data(new DatabaseWorkload({ config }), ROLE_WORKER, os);
    const init = file(d, "/usr/local/bin/virtwork-db-init");
    assert.match(init, /ver=\$\(ls \/usr\/lib\/postgresql \| sort -V \| tail -n 1\)/);
    assert.match(init, /data="\/var\/lib\/pgsql\/\$ver\/main"/);
    assert.match(init, /pg_dropcluster --stop "\$ver" main/);
    assert.match(init, /pg_createcluster -d "\$data" "\$ver" main/);
    assert.match(init, /systemctl start "postgresql@\$ver-main\.service"/);
    assert.doesNotMatch(init, /postgresql-setup/);
    assert.deepEqual(ensured(init), [
      "/usr/lib/postgresql/*/bin/initdb=postgresql",
      "/usr/lib/postgresql/*/bin/pgbench=postgresql",
      "python3=python3",
      "mkfs.ext4=e2fsprogs",
    ]);
    const sample = file(d, "/usr/local/bin/virtwork-database-sample");
    assert.match(sample, /pgbench -n -c 5 -j 2 -T "\$VIRTWORK_INTERVAL" "\$db"/);
  }
});

Deno.test("NetworkWorkload: server runs iperf3 -s, client targets peers.server with --bidir -J", () => {
  const w = new NetworkWorkload({ config: { ...config, vmCount: 2 }, namespace: "loadns" });
  assert.equal(w.name, "network");
  assert.deepEqual(w.roles(), ["server", "client"]);
  assert.equal(w.vmCount(), 4);
  assert.deepEqual(w.peerNeeds(), [{ from: "client", to: "server", ports: [5201] }]);
  const server = data(w, "server", "debian");
  assert.match(file(server, "/usr/local/bin/virtwork-iperf3-server-run"), /exec iperf3 -s -p 5201/);
  assert.deepEqual(ensured(file(server, "/usr/local/bin/virtwork-iperf3-server-run")), [
    "iperf3=iperf3",
  ]);
  const client = data(w, "client", "debian");
  const unit = unitOf(client);
  assert.match(unit, /^Environment=VIRTWORK_IPERF3_SERVER=10\.0\.0\.2$/m);
  assert.match(unit, /^Environment=VIRTWORK_IPERF3_PORT=5201$/m);
  const sample = file(client, "/usr/local/bin/virtwork-network-sample");
  assert.match(sample, /iperf3 -c "\$server" -p "\$port" -t "\$VIRTWORK_INTERVAL" -P 4 --bidir -J/);
  const dns = w.userData("client", { ...ctx, peers: { server: w.serverHost() } });
  assert.match(unitOf(dns), /SERVER=virtwork-iperf3-server\.loadns\.svc\.cluster\.local$/m);
});

Deno.test("NetworkWorkload: a client without a usable peers.server is refused, naming the VM", () => {
  const w = new NetworkWorkload({ config });
  assert.throws(
    () => w.userData("client", { ...ctx, peers: {} }),
    /^RangeError: network client vm-1 needs peers\.server, got none$/,
  );
  assert.throws(
    () => w.userData("client", { ...ctx, peers: { server: "10.0.0.2\nExecStartPre=/bin/evil" } }),
    /peers\.server must be a host name or IP address/,
  );
  assert.ok(w.userData("server", { ...ctx, peers: {} }), "the server needs no peer");
});

Deno.test("NetworkWorkload: ClusterIP service on 5201 selecting the server role", () => {
  const svc = new NetworkWorkload({ config, namespace: "x" }).service();
  assert.equal(svc.ports.length, 1);
  assert.equal(svc.ports[0]!.port, IPERF3_PORT);
  assert.equal(svc.ports[0]!.port, 5201);
  assert.deepEqual(svc.selector, { [LABEL_ROLE]: "server" });
});

Deno.test("SSH credentials reach every workload's user data", () => {
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
      const d = data(w, role);
      assert.equal(d.sshUser, "virtwork", `${w.name}/${role}`);
      assert.equal(d.sshPassword, "pw");
      assert.deepEqual(d.sshAuthorizedKeys, ["ssh-ed25519 K"]);
      assert.ok((d.writeFiles ?? []).length > 0, "workload files survive the SSH injection");
    }
  }
});
