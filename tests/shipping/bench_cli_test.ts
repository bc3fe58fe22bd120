/**
 * `deno task bench:cli` at the smallest size: it prints one well-formed JSON line per figure with
 * positive times, and leaves nothing of its run on the daemon. No assertion on speed.
 */
import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import { foundryCommandLine, taskFlags } from "../../tasks/bench_cli.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { requireLibvirt, requireRoot, requireTool, testNeeding } from "../_require.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("bench:cli runs FOUNDRY_BENCH_CMD, else foundry on PATH, else deno run with the task's permissions", () => {
  assert.deepEqual(
    foundryCommandLine({
      FOUNDRY_BENCH_CMD: " /opt/foundry  --connect qemu:///system ",
      PATH: "/bin",
    }),
    ["/opt/foundry", "--connect", "qemu:///system"],
  );
  assert.deepEqual(
    foundryCommandLine(
      { PATH: "/nowhere:/usr/local/bin:/bin" },
      (f) => f === "/usr/local/bin/foundry",
    ),
    ["/usr/local/bin/foundry"],
  );
  const fallback = foundryCommandLine({ PATH: "/nowhere" }, () => false);
  const flags = taskFlags(denoConfig.tasks.foundry);
  assert.ok(flags.includes("--allow-net") && flags.some((f) => f.startsWith("--allow-run")));
  assert.deepEqual(fallback, ["deno", "run", ...flags, `${ROOT}cli/foundry.ts`]);
  assert.deepEqual(
    taskFlags(
      `R="$PWD" && cd "$INIT_CWD" && deno run --allow-read --allow-sys=hostname "$R/cli/foundry.ts"`,
    ),
    ["--allow-read", "--allow-sys=hostname"],
  );
});

testNeeding(
  [await requireLibvirt(), requireRoot("bench:cli"), requireTool("virsh", "cloud-localds")],
  {
    name: "bench:cli with 5 and 10 domains, 1 round: one JSON line per figure, nothing left behind",
    async fn() {
      // Run as the task runs it: its permissions, nothing more.
      const flags = taskFlags(denoConfig.tasks["bench:cli"]);
      const foundry = foundryCommandLine({ PATH: "" }, () => false).join(" ");
      const out = await new Deno.Command("deno", {
        args: ["run", ...flags, "tasks/bench_cli.ts", "--rounds", "1", "--sizes", "5,10"],
        cwd: ROOT,
        env: { FOUNDRY_BENCH_CMD: foundry },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      const figures = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(
        figures.map((f) => f.figure),
        [
          "--version",
          "deno floor",
          "create --no-start",
          "list",
          "get",
          "destroy",
          "list --all",
          "list --all",
        ],
      );
      for (const f of figures) {
        for (const k of ["foundry_ms", "virsh_ms", "ratio"]) {
          assert.ok(typeof f[k] === "number" && f[k] > 0, `${f.figure} ${k}: ${f[k]}`);
        }
        assert.equal(f.rounds, 1);
        assert.ok(Number.isSafeInteger(f.domains), `${f.figure} domains: ${f.domains}`);
      }
      const [five, ten] = figures.slice(-2) as { domains: number }[];
      assert.ok(five!.domains >= 5 && ten!.domains >= 10, `${five!.domains}, ${ten!.domains}`);
      assert.match(
        stderr,
        new RegExp(`# foundry: ${foundry.replaceAll(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
      );

      const prefix = /# prefix (bcli-[0-9a-f]{6}-)/.exec(stderr)?.[1];
      assert.ok(prefix, stderr);
      const lv = await Libvirt.connect();
      try {
        const left = (await lv.listAllDomains()).filter((d) => d.name.startsWith(prefix));
        assert.deepEqual(left.map((d) => d.name), []);
        const pools = (await lv.listAllStoragePools()).filter((p) => p.name.startsWith(prefix));
        assert.deepEqual(pools.map((p) => p.name), []);
      } finally {
        await lv.close();
      }
    },
  },
);
