/**
 * virtwork's input checks through the CLI in-process: every bad flag, environment value or file
 * value exits 2 with one line naming where it came from, and no request reaches the API server.
 */
import assert from "node:assert/strict";
import { main, type VirtworkDeps } from "../../cli/virtwork.ts";
import { noopAuditor } from "../../lib/audit/mod.ts";
import { startCluster } from "./_helpers.ts";

/** A real key made with ssh-keygen (public half only). */
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZKz9W6QyVjphGNCQ9HPN4+I7FDP5bCzwJolwuYBUlN t@h";

async function virtwork(args: string[], deps: VirtworkDeps = {}) {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) }, {
    env: { HOME: "/nonexistent" },
    auditor: noopAuditor,
    ...deps,
  });
  return { code, out, err };
}

/** Runs `args` against a live test server and checks exit 2, the message, and no request. */
async function refused(
  args: string[],
  message: RegExp,
  extraEnv: Record<string, string> = {},
): Promise<string> {
  const { server, close } = await startCluster();
  const kubeconfig = await server.writeKubeconfig();
  try {
    const r = await virtwork(args, {
      env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent", ...extraEnv },
    });
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.err}`);
    assert.match(r.err, message, args.join(" "));
    assert.equal(r.err.trim().split("\n").length, 1, `one line, got:\n${r.err}`);
    assert.doesNotMatch(r.err, /\bat [\w.]+ \(|file:\/\//, "no stack trace");
    assert.equal(server.requests.length, 0, "no request reached the API server");
    assert.equal(r.out, "");
    return r.err;
  } finally {
    await close();
    await Deno.remove(kubeconfig);
  }
}

Deno.test("run: a namespace that is not a DNS-1123 label exits 2 before any request", async () => {
  await refused(
    ["run", "--namespace", "Bad/../NS"],
    /^Error: --namespace: must be a lowercase RFC 1123 label.*"Bad\/\.\.\/NS"/m,
  );
  await refused(["run", "-n", "UPPER"], /--namespace: must be a lowercase RFC 1123 label/);
  await refused(["run", "-n", "-lead"], /--namespace: must be a lowercase RFC 1123 label/);
  await refused(
    ["run", "-n", "a".repeat(64)],
    /--namespace: must be no more than 63 characters, got 64/,
  );
  await refused(["run"], /env VIRTWORK_NAMESPACE: must be a lowercase/, {
    VIRTWORK_NAMESPACE: "a_b",
  });
  await refused(["cleanup", "-n", "x.y"], /--namespace: must be a lowercase RFC 1123 label/);
});

Deno.test("run: SSH keys are parsed strictly; a bad one exits 2 and is never quoted", async () => {
  const err = await refused(
    ["run", "--ssh-key", "notakey"],
    /--ssh-key: key 1: must be an OpenSSH public key/,
  );
  assert.doesNotMatch(err, /notakey/);
  await refused(["run", "--ssh-key", "ssh-ed25519 AAAA k"], /--ssh-key: key 1: .*ssh-ed25519 key/);
  const truncated = KEY.replace(/UlN t@h$/, " t@h");
  await refused(
    ["run", "--ssh-key", KEY, "--ssh-key", truncated],
    /key 2: .*(truncated|not base64)/,
  );
  await refused(["run", "--ssh-key", `${KEY}\nssh-rsa AAAA injected`], /control character/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/keys`, `# team\n${KEY}\n\nssh-rsa AAAAB3Nza bad\n`);
    await refused(
      ["run", "--ssh-key-file", `${dir}/keys`],
      new RegExp(`${dir}/keys:4 --ssh-key-file: must be an OpenSSH public key`),
    );
    await Deno.writeTextFile(`${dir}/crlf`, `${KEY}\r\n`);
    const { server, close } = await startCluster();
    try {
      const r = await virtwork([
        "run",
        "--dry-run",
        "--ssh-key-file",
        `${dir}/crlf`,
        "--workloads",
        "cpu",
      ]);
      assert.equal(r.code, 0, r.err);
      assert.equal(server.requests.length, 0);
    } finally {
      await close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await refused(["run"], /env VIRTWORK_SSH_AUTHORIZED_KEYS: key 2:/, {
    VIRTWORK_SSH_AUTHORIZED_KEYS: `${KEY},ssh-ed25519 nope`,
  });
});

Deno.test("run: counts, sizes and durations are bounded; each bad value exits 2 naming its flag", async () => {
  const cases: [string[], RegExp][] = [
    [["--vm-count", "0"], /--vm-count: must be from 1 to 500, got 0/],
    [["--vm-count", "501"], /--vm-count: must be from 1 to 500, got 501/],
    [["--vm-count", "-3"], /--vm-count: must be from 1 to 500, got -3/],
    [["--cpu-cores", "0"], /--cpu-cores: must be from 1 to 256, got 0/],
    [["--cpu-cores", "9007199254740991"], /--cpu-cores: must be from 1 to 256/],
    [["--memory", "1e30"], /--memory: must be a Kubernetes quantity/],
    [["--memory", "1Ki"], /--memory: must be from 64Mi to 4Ti, got 1Ki/],
    [["--memory", "9Pi"], /--memory: must be from 64Mi to 4Ti, got 9Pi/],
    [["--disk-size", "9Pi"], /--disk-size: must be from 1Mi to 64Ti, got 9Pi/],
    [["--disk-size", "0"], /--disk-size: must be from 1Mi to 64Ti, got 0/],
    [["--timeout", "0"], /--timeout: must be from 1 to 86400, got 0/],
    [["--timeout", "100000000"], /--timeout: must be from 1 to 86400/],
    [["--poll-interval", "0"], /--poll-interval: must be from 0.01 to 3600, got 0/],
    [["--qps", "0"], /--qps: must be from 0.1 to 10000, got 0/],
    [["--burst", "0"], /--burst: must be from 1 to 10000, got 0/],
    [
      ["--container-disk-image", "quay.io/x y"],
      /--container-disk-image: must be an image reference/,
    ],
    [["--ssh-user", "root;rm"], /--ssh-user: must be a Linux user name/],
    [["--ssh-password", "a\nb"], /--ssh-password: must not contain control characters/],
  ];
  for (const [flags, message] of cases) await refused(["run", ...flags], message);
});

Deno.test("run: a bad value in the config file names the file, line, column and field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/virtwork.yaml`;
    await Deno.writeTextFile(path, "namespace: ok\nvm_count: 0\n");
    await refused(
      ["run", "--config", path],
      new RegExp(`${path}:2:11 vm_count: must be from 1 to 500, got 0`),
    );
    await Deno.writeTextFile(path, "workloads:\n  cpu:\n    cpu_cores: 999\n");
    await refused(
      ["run", "--config", path],
      new RegExp(`${path}:3:16 workloads\\.cpu\\.cpu_cores: must be from 1 to 256, got 999`),
    );
    await Deno.writeTextFile(path, "workloads:\n  cpu:\n    vm_cont: 3\n");
    const typo = await virtwork(["run", "--dry-run", "--config", path]);
    assert.equal(typo.code, 1, "a misspelt per-workload key is a configuration error");
    assert.match(
      typo.err,
      new RegExp(
        `${path}:3:14 workloads\\.cpu\\.vm_cont: unknown key, expected one of: enabled, vm_count, cpu_cores, memory`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cleanup: --run-id must be a label value (a comma would widen the selector); bounds on its flags", async () => {
  await refused(
    ["cleanup", "--run-id", "a,app.kubernetes.io/managed-by"],
    /--run-id: must be a label value/,
  );
  await refused(
    ["cleanup", "--run-id", "x".repeat(64)],
    /--run-id: must be no more than 63 characters/,
  );
  await refused(["cleanup", "--run-id", ""], /--run-id: must not be empty/);
  await refused(["cleanup", "--poll-interval", "0"], /--poll-interval: must be from 0.01 to 3600/);
  await refused(["cleanup", "--timeout", "0"], /--timeout: must be from 1 to 86400/);
  await refused(["cleanup", "--burst", "0"], /--burst: must be from 1 to 10000/);
});
