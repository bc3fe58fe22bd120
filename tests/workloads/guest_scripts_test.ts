/**
 * The workloads' guest scripts run for real on this Debian host: each sampling script runs one
 * short slice of its tool (stress-ng, fio, pgbench, iperf3) with the console pointed at a file, and
 * must emit a line lib/virtwork's parser accepts with a figure above zero. The package check runs
 * with a PATH that lacks the tool and a package manager that fails, and must emit the error line.
 *
 * Debian packages: stress-ng, fio, iperf3, postgresql, python3 (.ci/run installs them).
 */
import assert from "node:assert/strict";
import type { CloudConfigOptions } from "../../lib/cloudinit/cloud_config.ts";
import {
  defaultRegistry,
  type GuestContext,
  type GuestOs,
  IPERF3_PORT,
} from "../../lib/workloads/mod.ts";
import { RESULT_MARKER, RESULTS_FILE } from "../../lib/virtwork/results.ts";
import { GUEST_RESULTS_FILE } from "../../lib/workloads/_guest.ts";
import { firstMissing, requireRoot, requireTool, testNeeding } from "../_require.ts";
import { guestRoot, run, samplesIn } from "./_guest_root.ts";

const config = { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" };
const ctx: GuestContext = { os: "debian", peers: { server: "127.0.0.1" }, vmName: "t-1" };

function userData(name: string, role = "worker", os: GuestOs = "debian"): CloudConfigOptions {
  return defaultRegistry().get(name, config).userData(role, { ...ctx, os });
}

/** One sample in the console file and the same line in the results file; returns the sample. */
async function oneSample(console: string, results: string, workload: string) {
  const onConsole = await samplesIn(console);
  assert.equal(onConsole.length, 1, `one result line on the console, got ${onConsole.length}`);
  const s = onConsole[0]!;
  assert.equal(s.workload, workload);
  assert.equal(s.error, undefined, `no error, got ${s.error}`);
  assert.deepEqual(await samplesIn(results), onConsole, "the results file has the same line");
  assert.ok(Math.abs(s.t - Date.now() / 1000) < 600, "t is the guest clock in seconds");
  return s;
}

Deno.test("the guest appends to the results file lib/virtwork reads", () => {
  assert.equal(GUEST_RESULTS_FILE, RESULTS_FILE);
});

const noStress = firstMissing(requireTool("stress-ng"), requireTool("python3"));

testNeeding(noStress, {
  name: "cpu sample: one stress-ng slice emits bogo_ops_per_s > 0 to the console and the file",
  async fn() {
    const r = await guestRoot(userData("cpu"));
    try {
      const res = await run(r.path("/usr/local/bin/virtwork-cpu-sample"), [], {
        ...r.env,
        VIRTWORK_STRESS_WORKERS: "1",
      });
      assert.equal(res.code, 0, res.stderr);
      const s = await oneSample(r.console, r.results, "cpu");
      assert.ok(s.metrics.bogo_ops_per_s! > 0, JSON.stringify(s));
      const line = (await Deno.readTextFile(r.console)).trimEnd();
      assert.ok(line.startsWith(RESULT_MARKER), line);
    } finally {
      await r.remove();
    }
  },
});

testNeeding(noStress, {
  name: "cpu sample in the run loop's mode reports in the background and still emits its line",
  async fn() {
    const r = await guestRoot(userData("cpu"));
    try {
      // The report runs after the script returns; the pipes this test reads close only when it
      // is done, so output() returns after it.
      const res = await run(r.path("/usr/local/bin/virtwork-cpu-sample"), [], {
        ...r.env,
        VIRTWORK_STRESS_WORKERS: "1",
        VIRTWORK_REPORT_ASYNC: "1",
      });
      assert.equal(res.code, 0, res.stderr);
      const s = await oneSample(r.console, r.results, "cpu");
      assert.ok(s.metrics.bogo_ops_per_s! > 0, JSON.stringify(s));
    } finally {
      await r.remove();
    }
  },
});

testNeeding(noStress, {
  name: "memory sample: one stress-ng vm slice emits bogo_ops_per_s > 0",
  async fn() {
    const r = await guestRoot(userData("memory"));
    try {
      const res = await run(r.path("/usr/local/bin/virtwork-memory-sample"), [], {
        ...r.env,
        VIRTWORK_SAMPLE_VM_BYTES: "32M",
      });
      assert.equal(res.code, 0, res.stderr);
      const s = await oneSample(r.console, r.results, "memory");
      assert.ok(s.metrics.bogo_ops_per_s! > 0, JSON.stringify(s));
    } finally {
      await r.remove();
    }
  },
});

testNeeding(noStress, {
  name: "memory run: when the holder cannot run, the run emits an error line and stops",
  async fn() {
    const r = await guestRoot(userData("memory"), 1);
    try {
      // A size stress-ng refuses: the holder exits at once; the loop notices after a slice.
      const res = await run("timeout", ["120", r.path("/usr/local/bin/virtwork-memory-run")], {
        ...r.env,
        VIRTWORK_VM_BYTES: "lots",
        VIRTWORK_SAMPLE_VM_BYTES: "16M",
      });
      assert.equal(res.code, 1, res.stderr);
      const samples = await samplesIn(r.console);
      // A slice's report may land after the error line: it runs in the background.
      const errors = samples.filter((s) => s.error !== undefined).map((s) => s.error);
      assert.deepEqual(errors, ["the stress-ng holder exited"]);
      assert.ok(samples.length <= 2, "at most one slice ran before the holder was missed");
    } finally {
      await r.remove();
    }
  },
});

testNeeding(firstMissing(requireTool("fio"), requireTool("python3")), {
  name: "disk sample: each fio profile emits IOPS, bandwidth and p99 latency > 0",
  async fn() {
    // /var/tmp, not /tmp: the profiles use O_DIRECT, which tmpfs refuses.
    const r = await guestRoot(userData("disk"), 2, "/var/tmp");
    try {
      const data = r.path("/mnt/data");
      await Deno.mkdir(data, { recursive: true });
      const env = { ...r.env, VIRTWORK_DISK_DIR: data };
      const sample = r.path("/usr/local/bin/virtwork-disk-sample");
      const mixed = await run(sample, [r.path("/etc/virtwork/fio/mixed-rw.fio")], env);
      assert.equal(mixed.code, 0, mixed.stderr);
      const s = await oneSample(r.console, r.results, "disk");
      for (
        const m of [
          "read_iops",
          "write_iops",
          "read_bw_kib_per_s",
          "write_bw_kib_per_s",
          "read_p99_ms",
          "write_p99_ms",
        ]
      ) {
        assert.ok(s.metrics[m]! > 0, `${m} in ${JSON.stringify(s.metrics)}`);
      }
      const seq = await run(sample, [r.path("/etc/virtwork/fio/seq-write.fio")], env);
      assert.equal(seq.code, 0, seq.stderr);
      const both = await samplesIn(r.console);
      assert.equal(both.length, 2);
      assert.ok(both[1]!.metrics.write_bw_kib_per_s! > 0, JSON.stringify(both[1]));
      assert.equal(both[1]!.metrics.read_iops, undefined, "a write-only profile reports no reads");
      const files = [...Deno.readDirSync(data)].map((e) => e.name);
      assert.ok(files.some((n) => n.startsWith("mixed-rw")), `fio's files in ${files}`);
    } finally {
      await r.remove();
    }
  },
});

testNeeding(firstMissing(requireTool("iperf3"), requireTool("unshare"), requireTool("python3")), {
  name: "network client sample: iperf3 --bidir against a server in a new network namespace",
  async fn() {
    const r = await guestRoot(userData("network", "client"));
    try {
      // The server and the client share a network namespace made for this test; only its
      // loopback exists, so no traffic leaves it.
      const script = `set -eu
ip link set lo up
iperf3 -s -1 -p ${IPERF3_PORT} >/dev/null 2>&1 &
server=$!
for _ in $(seq 1 100); do
  ss -Hltn "sport = :${IPERF3_PORT}" | grep -q . && break
  sleep 0.1
done
rc=0
"$1" || rc=$?
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
exit "$rc"
`;
      const res = await run("unshare", [
        "--net",
        "bash",
        "-c",
        script,
        "_",
        r.path("/usr/local/bin/virtwork-network-sample"),
      ], { ...r.env, VIRTWORK_IPERF3_SERVER: "127.0.0.1" });
      assert.equal(res.code, 0, res.stderr);
      const s = await oneSample(r.console, r.results, "network");
      assert.ok(s.metrics.sent_mbit_per_s! > 0, JSON.stringify(s));
      assert.ok(s.metrics.received_mbit_per_s! > 0, JSON.stringify(s));
    } finally {
      await r.remove();
    }
  },
});

testNeeding(firstMissing(requireTool("iperf3"), requireTool("unshare"), requireTool("python3")), {
  name: "network client sample with no server emits iperf3's reason as an error line",
  async fn() {
    const r = await guestRoot(userData("network", "client"));
    try {
      const res = await run("unshare", [
        "--net",
        "bash",
        "-c",
        'ip link set lo up && "$1"',
        "_",
        r.path("/usr/local/bin/virtwork-network-sample"),
      ], { ...r.env, VIRTWORK_IPERF3_SERVER: "127.0.0.1" });
      assert.equal(res.code, 1);
      const [s, ...rest] = await samplesIn(r.console);
      assert.equal(rest.length, 0);
      assert.equal(s?.workload, "network");
      assert.match(s?.error ?? "", /iperf3.*(refused|unable to connect)/i);
      assert.deepEqual(s?.metrics, {});
    } finally {
      await r.remove();
    }
  },
});

const PG_BIN = (() => {
  try {
    const majors = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name)
      .filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b));
    return majors.length ? `/usr/lib/postgresql/${majors.at(-1)}/bin` : undefined;
  } catch {
    return undefined;
  }
})();

testNeeding(
  [
    PG_BIN ? null : "PostgreSQL is not installed (Debian package postgresql)",
    requireRoot("running PostgreSQL as the postgres user"),
    requireTool("python3"),
  ],
  {
    name: "database sample: pgbench against a cluster in a temp dir emits tps and latency > 0",
    async fn() {
      const r = await guestRoot(userData("database"), 2, "/var/tmp");
      const pgdir = r.path("/pg");
      const data = `${pgdir}/data`;
      const asPg = (args: string[]) => run("runuser", ["-u", "postgres", "--", ...args]);
      let started = false;
      try {
        await Deno.mkdir(pgdir);
        const chown = await run("chown", ["postgres:postgres", pgdir]);
        assert.equal(chown.code, 0, chown.stderr);
        const init = await asPg([`${PG_BIN}/initdb`, "-D", data, "-U", "postgres", "--auth=trust"]);
        assert.equal(init.code, 0, init.stderr);
        // Unix socket in the temp dir only: no TCP listener.
        const start = await asPg([
          `${PG_BIN}/pg_ctl`,
          "-D",
          data,
          "-w",
          "-l",
          `${pgdir}/log`,
          "-o",
          `-k ${pgdir} -c listen_addresses=''`,
          "start",
        ]);
        started = start.code === 0;
        assert.equal(start.code, 0, start.stderr + start.stdout);
        const libpq = { PGHOST: pgdir, PGUSER: "postgres" };
        const create = await run(`${PG_BIN}/createdb`, ["pgbench"], libpq);
        assert.equal(create.code, 0, create.stderr);
        const fill = await run(`${PG_BIN}/pgbench`, ["-i", "-q", "-s", "1", "pgbench"], libpq);
        assert.equal(fill.code, 0, fill.stderr);
        const res = await run(r.path("/usr/local/bin/virtwork-database-sample"), [], {
          ...r.env,
          ...libpq,
        });
        assert.equal(res.code, 0, res.stderr);
        const s = await oneSample(r.console, r.results, "database");
        assert.ok(s.metrics.tps! > 0, JSON.stringify(s));
        assert.ok(s.metrics.latency_avg_ms! > 0, JSON.stringify(s));
      } finally {
        if (started) await asPg([`${PG_BIN}/pg_ctl`, "-D", data, "-m", "immediate", "stop"]);
        await r.remove();
      }
    },
  },
);

/** A PATH directory with only the basic tools the package check needs, plus a failing apt-get. */
async function barePath(dir: string, aptLog: string): Promise<string> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  for (
    const tool of [
      "bash",
      "mktemp",
      "rm",
      "grep",
      "tail",
      "cut",
      "tr",
      "date",
      "stat",
      "mv",
      "mkdir",
      "dirname",
      "timeout",
      "cat",
    ]
  ) {
    const found = await run("bash", ["-c", `command -v ${tool}`]);
    assert.equal(found.code, 0, `${tool} on the host`);
    await Deno.symlink(found.stdout.trim(), `${bin}/${tool}`);
  }
  await Deno.writeTextFile(
    `${bin}/apt-get`,
    `#!/bin/bash
echo "apt-get $*" >>"${aptLog}"
case "$1" in
  update) echo "W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease"; exit 100 ;;
  *) echo "E: Unable to locate package \${@: -1}"; exit 100 ;;
esac
`,
    { mode: 0o755 },
  );
  return bin;
}

Deno.test("ensure-packages: a tool that is missing and cannot be installed gives an error line", async () => {
  const r = await guestRoot(userData("cpu"));
  try {
    const aptLog = r.path("/apt.log");
    const bin = await barePath(r.path("/host"), aptLog);
    const res = await run(
      `${bin}/bash`,
      [r.path("/usr/local/bin/virtwork-ensure-packages"), "cpu", "stress-ng=stress-ng"],
      { ...r.env, PATH: bin },
      true,
    );
    assert.equal(res.code, 1, res.stderr);
    const [s, ...rest] = await samplesIn(r.console);
    assert.equal(rest.length, 0);
    assert.equal(s?.workload, "cpu");
    assert.deepEqual(s?.metrics, {});
    assert.match(
      s?.error ?? "",
      /^stress-ng not installed and cannot be installed \(stress-ng\): E: Unable to locate package stress-ng$/,
    );
    assert.deepEqual(await samplesIn(r.results), [s]);
    // Tried the lists it has first, refreshed them only after that failed, then tried again.
    const calls = (await Deno.readTextFile(aptLog)).trim().split("\n");
    assert.equal(calls.length, 3, calls.join("; "));
    assert.match(calls[0]!, /^apt-get install -y .*stress-ng$/);
    assert.match(calls[1]!, /^apt-get update/);
    assert.match(calls[2]!, /^apt-get install -y .*stress-ng$/);
  } finally {
    await r.remove();
  }
});

Deno.test("ensure-packages: what is present is not installed again (glob and command checks)", async () => {
  const r = await guestRoot(userData("cpu"));
  try {
    const aptLog = r.path("/apt.log");
    const bin = await barePath(r.path("/host"), aptLog);
    const res = await run(
      `${bin}/bash`,
      [
        r.path("/usr/local/bin/virtwork-ensure-packages"),
        "cpu",
        "bash=bash",
        `${r.path("/usr/local/lib/virtwork")}/*.py=python3`,
      ],
      { ...r.env, PATH: bin },
      true,
    );
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(await samplesIn(r.console), []);
    await assert.rejects(() => Deno.stat(aptLog), Deno.errors.NotFound, "apt-get never ran");
  } finally {
    await r.remove();
  }
});

Deno.test("ensure-packages on an rpm distribution names the package dnf could not install", async () => {
  const r = await guestRoot(userData("database", "worker", "fedora"));
  try {
    const bin = await barePath(r.path("/host"), r.path("/apt.log"));
    await Deno.remove(`${bin}/apt-get`);
    await Deno.writeTextFile(
      `${bin}/dnf`,
      "#!/bin/bash\necho 'Error: Failed to download metadata for repo fedora'\nexit 1\n",
      { mode: 0o755 },
    );
    const init = await Deno.readTextFile(r.path("/usr/local/bin/virtwork-db-init"));
    const args = /virtwork-ensure-packages" database (.*) \|\| exit 1/.exec(init)![1]!
      .split(" ").map((a) => a.replace(/^'|'$/g, ""));
    assert.deepEqual(args, [
      "postgresql-setup=postgresql-server",
      "pgbench=postgresql-contrib",
      "python3=python3",
      "mkfs.ext4=e2fsprogs",
    ]);
    const res = await run(
      `${bin}/bash`,
      [r.path("/usr/local/bin/virtwork-ensure-packages"), "database", ...args],
      { ...r.env, PATH: bin },
      true,
    );
    assert.equal(res.code, 1);
    const [s] = await samplesIn(r.console);
    assert.match(
      s?.error ?? "",
      /^postgresql-setup pgbench python3 mkfs\.ext4 not installed and cannot be installed \(postgresql-server postgresql-contrib python3 e2fsprogs\): Error: Failed to download metadata/,
    );
  } finally {
    await r.remove();
  }
});

Deno.test("an error reason with quotes, backslashes and control characters stays one valid line", async () => {
  const r = await guestRoot(userData("cpu"));
  try {
    const reason = 'bad "thing" \\ here\u0007\tand\nmore ' + "x".repeat(1000);
    const res = await run("bash", [
      "-c",
      '. "$VIRTWORK_LIB_DIR/common.sh" && virtwork_error cpu "$1"',
      "_",
      reason,
    ], r.env);
    assert.equal(res.code, 0, res.stderr);
    const text = await Deno.readTextFile(r.console);
    assert.equal(text.split("\n").length, 2, "one line");
    const [s] = await samplesIn(r.console);
    assert.ok(s?.error?.startsWith('bad "thing" \\ here  and more xxx'), s?.error ?? "no error");
    assert.ok(s!.error!.length <= 400);
  } finally {
    await r.remove();
  }
});

Deno.test("the results file is rotated past its bound, keeping one old generation", async () => {
  const r = await guestRoot(userData("cpu"));
  try {
    await Deno.mkdir(r.path("/var/lib/virtwork"), { recursive: true });
    await Deno.writeTextFile(r.results, "old\n".repeat(100));
    const emit = () =>
      run("bash", ["-c", '. "$VIRTWORK_LIB_DIR/common.sh" && virtwork_error cpu stop'], {
        ...r.env,
        VIRTWORK_RESULTS_MAX_BYTES: "300",
      });
    assert.equal((await emit()).code, 0);
    assert.equal((await samplesIn(r.results)).length, 1, "a fresh file with the new line");
    assert.equal(await Deno.readTextFile(`${r.results}.1`), "old\n".repeat(100));
    assert.equal((await emit()).code, 0);
    assert.equal((await samplesIn(r.results)).length, 2, "small files are appended to");
  } finally {
    await r.remove();
  }
});

testNeeding(requireTool("python3"), {
  name: "result.py: fallbacks and failures of each tool's output give figures or a reason",
  async fn() {
    const r = await guestRoot(userData("cpu"));
    try {
      const parse = async (kind: string, text: string) => {
        await Deno.writeTextFile(r.path("/out"), text);
        const res = await run("python3", [
          r.path("/usr/local/lib/virtwork/result.py"),
          kind,
          r.path("/out"),
        ]);
        return res.code === 0 ? JSON.parse(res.stdout) : { why: res.stderr.trim() };
      };
      // stress-ng without --yaml output: the --metrics-brief log line, column "bogo ops/s (real time)".
      assert.deepEqual(
        await parse(
          "stress-ng",
          "stress-ng: metrc: [3717] cpu                3619      2.00      2.00      0.00      1807.93        1808.90\n",
        ),
        { bogo_ops_per_s: 1807.93 },
      );
      assert.match((await parse("stress-ng", "nothing\n")).why, /no bogo-ops-per-second/);
      assert.deepEqual(
        await parse(
          "pgbench",
          "latency average = 2.500 ms\ntps = 400.123456 (without initial connection time)\n",
        ),
        { tps: 400.123, latency_avg_ms: 2.5 },
      );
      assert.match(
        (await parse("pgbench", "pgbench: error: connection refused\n")).why,
        /no tps line/,
      );
      assert.deepEqual(
        await parse("iperf3", '{"start":{},"error":"the server is busy running a test"}'),
        {
          why: "iperf3: the server is busy running a test",
        },
      );
      assert.deepEqual(
        await parse(
          "iperf3",
          JSON.stringify({
            end: { sum_sent: { bits_per_second: 2e6 }, sum_received: { bits_per_second: 1e6 } },
          }),
        ),
        { sent_mbit_per_s: 2, received_mbit_per_s: 1 },
        "without --bidir sums the received figure is the forward direction's",
      );
      assert.match(
        (await parse("fio", "fio: pid=0, err=28/file:io_u.c, error=No space left on device\n")).why,
        /not JSON/,
      );
      assert.match(
        (await parse("fio", '{"jobs":[{"read":{"iops":0},"write":{"iops":0},"error":28}]}')).why,
        /did no I\/O \(error 28\)/,
      );
      assert.match((await parse("nosuch", "")).why, /^usage: result\.py/);
    } finally {
      await r.remove();
    }
  },
});
