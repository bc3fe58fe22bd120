/**
 * Issue 11's acceptance: each convention of its item 5, run through the installed commands.
 * `deno task install` runs once into a temporary `DENO_INSTALL_ROOT`; every check then runs the
 * installed `foundry` or `virtwork` as a subprocess from another directory, piped, with NO_COLOR:
 * foundry against the real libvirtd (`--connect qemu:///system`, the test fixture's own pools and
 * bridges), virtwork against the Kubernetes API test server. The in-process tests
 * (tests/cli/conventions_*_test.ts, tests/virtwork/conventions_test.ts) cover the details; these
 * show the shipped artifact keeps them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "npm:yaml@^2.9.1";
import { DomainState, Procedure } from "../../lib/libvirt/mod.ts";
import { type ReceivedFrame, startFakeDaemon } from "../libvirt/fake_daemon.ts";
import { foundryFixture, leftovers, testVm } from "../foundry/_fixture.ts";
import { K8sTestServer } from "../virtwork/k8s_server.ts";
import { requireLibvirt, requireTool, testNeeding } from "../_require.ts";
import { installInto } from "./_install.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
/** Only bounds a broken test: Deno starts slowly on a loaded machine. */
const DEADLINE_MS = 120_000;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Installs into `dir/root` as `deno task install` does; returns the folder of the commands. */
function install(dir: string): Promise<string> {
  return installInto(join(dir, "root"));
}

/** A process's environment: nothing of the caller's but what Deno itself needs. */
function baseEnv(home: string, bin: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: `${bin}:${Deno.env.get("PATH") ?? ""}`,
    HOME: home,
    NO_COLOR: "1",
    // The shims run `deno run`: Deno's own cache stays where it is.
    DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache/deno"),
  };
  return env;
}

/** Spawns an installed command, piped, in `cwd`; kills it at the deadline. */
function spawn(bin: string, cmd: string, args: string[], cwd: string, env: Record<string, string>) {
  const child = new Deno.Command(join(bin, cmd), {
    args,
    cwd,
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  const output = child.output().then((o) => ({
    code: o.code,
    signal: o.signal,
    out: text(o.stdout),
    err: text(o.stderr),
  })).finally(() => clearTimeout(timer));
  return { child, output };
}

const libvirt = await requireLibvirt();
const bash = requireTool("bash");

testNeeding([libvirt, bash], {
  name: "installed foundry and virtwork keep every convention of issue 11 item 5",
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "foundry-installed-conv-" });
    const cwd = join(dir, "elsewhere");
    await Deno.mkdir(cwd);
    const bin = await install(dir);
    const fx = await foundryFixture();
    const env = baseEnv(dir, bin);
    const cfg = join(dir, "foundry.yaml");
    await Deno.writeTextFile(
      cfg,
      stringify({
        domainType: "qemu",
        destroyTimeoutSeconds: 1,
        storage: {
          imagesPool: fx.config.imagesPool,
          imagesPath: fx.config.imagesPath,
          vmsPool: fx.config.vmsPool,
          vmsPath: fx.config.vmsPath,
        },
      }),
    );
    const foundry = async (args: string[], extraEnv: Record<string, string> = {}): Promise<Run> => {
      const { output } = spawn(
        bin,
        "foundry",
        ["--connect", "qemu:///system", "--config", cfg, ...args],
        cwd,
        { ...env, FOUNDRY_AUDIT_DB: join(dir, "foundry.db"), ...extraEnv },
      );
      const { signal, ...r } = await output;
      assert.equal(signal, null, `foundry ${args.join(" ")} was killed: ${r.err}`);
      return r;
    };
    const virtwork = async (args: string[]): Promise<Run> => {
      const { output } = spawn(
        bin,
        "virtwork",
        ["--audit-db", join(dir, "virtwork.db"), ...args],
        cwd,
        env,
      );
      const { signal, ...r } = await output;
      assert.equal(signal, null, `virtwork ${args.join(" ")} was killed: ${r.err}`);
      return r;
    };
    const state = async (name: string) =>
      (await fx.lv.domainGetState(await fx.lv.domainLookupByName(name))).state;

    const suite = `ic${crypto.randomUUID().slice(0, 8)}`;
    const tier = `t${crypto.randomUUID().slice(0, 8)}`;
    const web = testVm(fx, { labels: { suite, tier, role: "web", env: "prod" } });
    const db = testVm(fx, { labels: { suite, tier, role: "db" } });
    const w = web.metadata.name;
    const d = db.metadata.name;
    const missing = `ftvm-missing-${crypto.randomUUID().slice(0, 8)}`;
    try {
      // A relative file argument, from a directory that is not the repository.
      await Deno.writeTextFile(
        join(cwd, "vms.yaml"),
        [web, db].map((vm) =>
          stringify({
            apiVersion: vm.apiVersion,
            kind: vm.kind,
            metadata: vm.metadata,
            spec: vm.spec,
          })
        ).join("---\n"),
      );
      const created = await foundry(["create", "vms.yaml", "--no-start"]);
      assert.equal(created.code, 0, created.err);
      const sel = ["-l", `suite=${suite}`];

      await t.step("list: -o wide|name|json|yaml and --no-headers", async () => {
        const table = await foundry(["list", ...sel]);
        assert.equal(table.code, 0, table.err);
        assert.match(table.out, /^NAME\s+STATE\s+VCPUS\s+MEMORY\s+IP ADDRESS\n/);
        assert.equal(table.out.trim().split("\n").length, 3, table.out);
        const wide = await foundry(["list", ...sel, "-o", "wide"]);
        assert.match(
          wide.out,
          /^NAME\s+STATE\s+VCPUS\s+MEMORY\s+IP ADDRESS\s+UUID\s+AUTOSTART\s+LABELS\s+ADDRESS SOURCE\n/,
        );
        assert.match(wide.out, new RegExp(`\\senv=prod,role=web,suite=${suite},tier=${tier}\\s`));
        const names = await foundry(["list", ...sel, "-o", "name"]);
        assert.deepEqual(names, {
          code: 0,
          out: [d, w].sort().map((n) => `vm/${n}\n`).join(""),
          err: "",
        });
        const json = JSON.parse((await foundry(["list", ...sel, "-o", "json"])).out);
        assert.deepEqual(json.map((v: { name: string }) => v.name).sort(), [d, w].sort());
        const yaml = await foundry(["list", ...sel, "-o", "yaml"]);
        assert.equal(yaml.code, 0, yaml.err);
        assert.match(yaml.out, new RegExp(`^- name: ${w}$`, "m"));
        assert.match(yaml.out, /^ {2}state: shut off$/m);
        const bare = await foundry(["list", ...sel, "--no-headers"]);
        assert.doesNotMatch(bare.out, /NAME/);
        assert.equal(bare.out.trim().split("\n").length, 2, bare.out);
      });

      await t.step(
        "list -l: in, notin, !key; a malformed selector is one line, exit 2",
        async () => {
          const names = async (s: string) => {
            const r = await foundry(["list", ...sel, "-l", s, "-o", "name"]);
            assert.equal(r.code, 0, `${s}: ${r.err}`);
            return r.out;
          };
          assert.equal(await names("role in (web,cache)"), `vm/${w}\n`);
          assert.equal(await names("role notin (web)"), `vm/${d}\n`);
          assert.equal(await names("!env"), `vm/${d}\n`);
          const bad = await foundry(["list", "-l", "role in (web"]);
          assert.equal(bad.code, 2, bad.err);
          assert.match(bad.err, /^Error: Invalid label selector 'role in \(web': .+\n$/);
          assert.equal(bad.out, "");
        },
      );

      await t.step("the IP column marks the spec's address as such", async () => {
        const ip = web.spec.networkInterfaces[0]!.ip!.split("/")[0]!;
        const r = await foundry(["list", "-l", `suite=${suite},role=web`, "--no-headers"]);
        assert.match(
          r.out,
          new RegExp(
            `^${w}\\s+shut off\\s+1\\s+256 MiB\\s+${ip.replaceAll(".", "\\.")} \\(spec\\)\\n$`,
          ),
        );
      });

      await t.step("aliases ls, rm and delete; a typo is one line with a correction", async () => {
        const ls = await foundry(["ls", ...sel, "-o", "name"]);
        assert.equal(ls.out, (await foundry(["list", ...sel, "-o", "name"])).out);
        for (const alias of ["rm", "delete"]) {
          const r = await foundry([alias, "--help"]);
          assert.equal(r.code, 0, r.err);
          assert.match(r.out, /^Usage: foundry destroy\|rm/);
        }
        const typo = await foundry(["lsit"]);
        assert.deepEqual(typo, {
          code: 2,
          out: "",
          err: "Error: unknown command 'lsit'. Did you mean 'list'?\n",
        });
      });

      await t.step("no-ops say so and exit 0; wait on a stopped VM fails at once", async () => {
        const stop = await foundry(["stop", w]);
        assert.deepEqual(stop, { code: 0, out: `VM '${w}' is already shut off\n`, err: "" });
        const wait = await foundry(["wait", w, "--timeout", "600"]);
        assert.equal(wait.code, 4, wait.err);
        assert.match(
          wait.err,
          new RegExp(`VM ${w} is shut off.*start it with: foundry start ${w}`),
        );
        assert.equal((await foundry(["start", w])).code, 0);
        const again = await foundry(["start", w]);
        assert.deepEqual(again, { code: 0, out: `VM '${w}' is already running\n`, err: "" });
      });

      await t.step("start/stop with several names, -l and --ignore-not-found", async () => {
        const start = await foundry(["start", "-l", `tier=${tier}`]);
        assert.equal(start.code, 0, start.err);
        assert.match(start.out, new RegExp(`VM '${d}' started\\n`));
        assert.match(start.out, new RegExp(`VM '${w}' is already running\\n`));
        const stop = await foundry(["stop", w, missing, d, "--force", "--ignore-not-found"]);
        assert.equal(stop.code, 0, stop.err);
        assert.match(stop.out, new RegExp(`VM '${w}' forced off`));
        assert.match(stop.out, new RegExp(`VM '${d}' forced off`));
        assert.match(stop.out, new RegExp(`VM '${missing}' does not exist; nothing to do`));
        assert.equal(await state(w), DomainState.SHUTOFF);
        assert.equal(await state(d), DomainState.SHUTOFF);
        const strict = await foundry(["stop", missing]);
        assert.equal(strict.code, 4, strict.err);
      });

      await t.step("destroy: the grace period is one line per stage when piped", async () => {
        // The blank test image boots nothing, so no guest answers and the VM is forced off.
        assert.equal((await foundry(["start", w])).code, 0);
        const r = await foundry(["rm", w, "--timeout", "1"]);
        assert.equal(r.code, 0, r.err);
        assert.match(
          r.out,
          /ok waiting up to 1 s for a graceful shutdown\nok VM forced off after 1 s\n/,
        );
        assert.ok(!r.out.includes("\x1b"), "no escape sequences when piped");
        assert.deepEqual(await leftovers(fx, w), []);
      });

      await t.step("destroy takes -l and --ignore-not-found (as delete)", async () => {
        const r = await foundry(["delete", "-l", `tier=${tier}`]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, new RegExp(`Successfully destroyed VM '${d}'`));
        assert.deepEqual(await leftovers(fx, d), []);
        const gone = await foundry(["destroy", d, missing, "--ignore-not-found"]);
        assert.equal(gone.code, 0, gone.err);
        assert.match(gone.out, new RegExp(`VM '${d}' does not exist; nothing to do`));
        assert.match(gone.out, new RegExp(`VM '${missing}' does not exist; nothing to do`));
      });

      await t.step("a .sha256 sidecar never shows as an image", async () => {
        const pool = await fx.lv.storagePoolLookupByName(fx.config.imagesPool);
        await fx.lv.storageVolCreateXml(
          pool,
          `<volume><name>${fx.image}.sha256</name><capacity>80</capacity>` +
            `<target><format type='raw'/></target></volume>`,
        );
        const names = await foundry(["image", "list", "-o", "name"]);
        assert.deepEqual(names, { code: 0, out: `image/${fx.image}\n`, err: "" });
        const table = await foundry(["image", "ls", "-o", "wide"]);
        assert.equal(table.code, 0, table.err);
        assert.ok(table.out.includes(fx.image), table.out);
        assert.doesNotMatch(table.out, /\.sha256/);
      });

      await t.step("foundry completion bash, sourced in bash, completes a subcommand", async () => {
        const script = join(dir, "foundry.bash");
        const gen = await foundry(["completion", "bash"]);
        assert.equal(gen.code, 0, gen.err);
        await Deno.writeTextFile(script, gen.out);
        const out = await new Deno.Command("bash", {
          args: [
            "-c",
            `source ${script}; complete -p foundry; COMP_WORDS=(foundry li); COMP_CWORD=1; ` +
            `_foundry_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
          ],
          cwd,
          clearEnv: true,
          env,
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 0, text(out.stderr));
        assert.equal(text(out.stdout), "complete -F _foundry_complete foundry\nlist\n");
      });

      await t.step("usage errors exit 2; SIGINT while the daemon is silent exits 130", async () => {
        for (const args of [["list", "-o", "xml"], ["destroy"], ["list", "--bogus"]]) {
          const r = await foundry(args);
          assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
          assert.equal(r.err.trim().split("\n").length, 1, r.err);
        }
        const sock = join(dir, "silent-sock");
        let seen!: () => void;
        const called = new Promise<void>((r) => (seen = r));
        const fake = startFakeDaemon((f: ReceivedFrame) => {
          if (f.proc === Procedure.AUTH_LIST) seen();
        }, { path: sock });
        try {
          const run = spawn(
            bin,
            "foundry",
            ["--connect", `qemu+unix:///system?socket=${sock}`, "--no-audit", "list"],
            cwd,
            env,
          );
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            called,
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error("never saw AUTH_LIST")), DEADLINE_MS);
            }),
          ]).finally(() => clearTimeout(timer));
          run.child.kill("SIGINT");
          const r = await run.output;
          assert.equal(r.signal, null, `killed by ${r.signal} instead of exiting`);
          assert.equal(r.code, 130, r.err);
          assert.match(r.err, /Interrupted by SIGINT/);
          assert.doesNotMatch(r.err, /^\s+at /m, "no stack trace");
        } finally {
          await fake.close();
        }
      });

      await t.step("virtwork: --namespace at the root, a run-id prefix in cleanup", async () => {
        const server = K8sTestServer.start({});
        const kubeconfig = await server.writeKubeconfig();
        try {
          const run = await virtwork([
            "--namespace",
            "root-ns",
            "--kubeconfig",
            kubeconfig,
            "run",
            "--workloads",
            "cpu",
            "--vm-count",
            "2",
            "--no-wait",
            "-o",
            "json",
          ]);
          assert.equal(run.code, 0, run.err);
          const runId: string = JSON.parse(run.out).runId;
          const vms = server.objects("virtualmachines", "root-ns").map((o) => o.metadata.name);
          assert.deepEqual(vms.sort(), ["virtwork-cpu-1", "virtwork-cpu-2"]);
          assert.deepEqual(server.objects("virtualmachines", "virtwork"), []);
          const clean = await virtwork([
            "--namespace",
            "root-ns",
            "--kubeconfig",
            kubeconfig,
            "cleanup",
            "--run-id",
            runId.slice(0, 8),
          ]);
          assert.equal(clean.code, 0, clean.err);
          assert.match(clean.out, /deleted 2 VirtualMachines/);
          assert.match(clean.out, new RegExp(`runs: ${runId}`));
          assert.deepEqual(server.objects("virtualmachines", "root-ns"), []);
        } finally {
          await server.close();
          await Deno.remove(kubeconfig);
        }
      });

      await t.step("virtwork without cluster configuration suggests --dry-run", async () => {
        const r = await virtwork(["run", "--workloads", "cpu"]);
        assert.equal(r.code, 3, r.err);
        assert.match(r.err, /no cluster configuration found.*virtwork run --dry-run/);
        assert.equal(r.err.trim().split("\n").length, 1, r.err);
      });
    } finally {
      for (const n of [w, d]) {
        try {
          const dom = await fx.lv.domainLookupByName(n);
          await fx.lv.domainDestroy(dom).catch(() => {});
          await fx.lv.domainUndefine(dom, 4).catch(() => {});
        } catch { /* destroyed by the test */ }
      }
      await fx.cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
