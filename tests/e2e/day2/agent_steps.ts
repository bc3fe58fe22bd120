/**
 * exec, cp, logs and ssh end to end on the shared guest, all through the guest agent: exec's
 * output, stderr and exit codes (zero, non-zero, timeout, stdin); cp of a random binary file of
 * 1 MiB both ways, byte for byte; logs shows cloud-init's output; ssh runs a fake `ssh` first on
 * PATH (no traffic to the guest's address).
 */
import assert from "node:assert/strict";
import { guestExecStream } from "../../../lib/foundry/guest_exec.ts";
import type { Day2Guest } from "./_guest.ts";

const FOUNDRY = new URL("../../../cli/foundry.ts", import.meta.url).pathname;

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
  return b;
}

async function sha256(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** The agent step of the day-2 run. */
export async function run(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  const tag = crypto.randomUUID().slice(0, 8);

  await t.step("exec returns stdout, stderr and the command's exit code", async () => {
    const ok = await guest.foundry(["exec", guest.name, "--", "uname", "-n"]);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out.trim(), await guest.sh("uname -n"));

    const bad = await guest.foundry([
      "exec",
      guest.name,
      "--",
      "sh",
      "-c",
      "echo to-out; echo to-err >&2; exit 7",
    ]);
    assert.equal(bad.code, 7);
    assert.equal(bad.out, "to-out\n");
    assert.match(bad.err, /to-err/);

    const missing = await guest.foundry(["exec", guest.name, "--", "/no/such/program"]);
    assert.equal(missing.code, 127, missing.err);
    assert.match(missing.err, /not found|No such file/);

    const json = await guest.foundry([
      "exec",
      guest.name,
      "-o",
      "json",
      "--",
      "sh",
      "-c",
      "printf a; exit 3",
    ]);
    assert.equal(json.code, 3);
    const parsed = JSON.parse(json.out);
    assert.equal(parsed.exitCode, 3);
    assert.equal(parsed.stdout, "a");
  });

  await t.step("exec streams output while the command runs, and --timeout ends it", async () => {
    // Seen before the command ends: the first line arrives while it still sleeps.
    const arrivals: number[] = [];
    const started = performance.now();
    const r = await guestExecStream(
      guest.lv,
      guest.domain,
      ["sh", "-c", "echo first; sleep 6; echo second"],
      { onStdout: () => void arrivals.push(performance.now() - started) },
    );
    assert.equal(r.exitCode, 0);
    const total = performance.now() - started;
    assert.ok(arrivals.length >= 2, `${arrivals.length} chunks`);
    assert.ok(arrivals[0]! < total - 4_000, `first line at ${arrivals[0]} ms of ${total} ms`);

    const pidFile = `/tmp/h4-timeout-${tag}.pid`;
    const slow = await guest.foundry([
      "exec",
      guest.name,
      "--timeout",
      "3",
      "--",
      "sh",
      "-c",
      `echo $$ > ${pidFile}; exec sleep 300`,
    ]);
    assert.equal(slow.code, 124, slow.err);
    assert.match(slow.err, /did not finish within 3 s/);
    // The guest process was ended (sleep had the shell's pid).
    const pid = await guest.sh(`cat ${pidFile}; rm -f ${pidFile}`);
    assert.match(pid, /^\d+$/);
    assert.equal(await guest.sh(`kill -0 ${pid} 2>/dev/null && echo alive || echo gone`), "gone");
  });

  await t.step(
    "exec -i sends stdin (library path: the CLI reads the process's stdin)",
    async () => {
      const chunks: Uint8Array[] = [];
      const input = randomBytes(100_000);
      const r = await guestExecStream(guest.lv, guest.domain, ["sha256sum"], {
        stdin: input,
        onStdout: (b) => void chunks.push(b),
      });
      assert.equal(r.exitCode, 0);
      const out = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
      assert.equal(out.split(" ")[0], await sha256(input));
    },
  );

  await t.step("exec -i in a real process sends its stdin to the command", async () => {
    const input = randomBytes(50_000);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        FOUNDRY,
        "--config",
        guest.configFile,
        "exec",
        "-i",
        guest.name,
        "--",
        "sha256sum",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(input);
    await w.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).split(" ")[0], await sha256(input));
  });

  await t.step(
    "logs -f follows until SIGINT (exit 130), and ends the reader in the guest",
    async () => {
      const marker = `h4-follow-${tag}`;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          FOUNDRY,
          "--config",
          guest.configFile,
          "logs",
          "-f",
          "--tail",
          "1",
          guest.name,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      const deadline = Date.now() + 120_000;
      let logged = false;
      while (!seen.includes(marker)) {
        if (Date.now() > deadline) throw new Error(`no ${marker} in: ${seen.slice(-2000)}`);
        if (!logged && seen.length > 0) {
          // Written after the follow began: only a follow shows it.
          await guest.sh(`systemd-cat -t h4 echo ${marker}`);
          logged = true;
        }
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      assert.ok(seen.includes(marker), seen.slice(-2000));
      child.kill("SIGINT");
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      const status = await child.status;
      await child.stderr.cancel().catch(() => {});
      assert.equal(status.code, 130);
      assert.equal(await guest.sh("pgrep -c -f 'journalctl --no-pager -b -n [1] -f' || true"), "0");
    },
  );

  await t.step("cp round-trips a random 1 MiB binary file byte for byte", async () => {
    const local = `${guest.dir}/h4-cp-${tag}.bin`;
    const back = `${guest.dir}/h4-cp-${tag}.back`;
    const remote = `/root/h4-cp-${tag}.bin`;
    const data = randomBytes(1024 * 1024);
    await Deno.writeFile(local, data);
    try {
      const up = await guest.foundry(["cp", local, `${guest.name}:${remote}`]);
      assert.equal(up.code, 0, up.err);
      assert.match(up.out, new RegExp(`Copied 1048576 bytes to ${guest.name}:${remote}`));
      assert.equal(
        (await guest.sh(`sha256sum ${remote}`)).split(" ")[0],
        await sha256(data),
      );
      // No temporary file left beside it.
      assert.equal(await guest.sh(`ls -a /root | grep -c foundry- || true`), "0");

      const down = await guest.foundry(["cp", "-o", "json", `${guest.name}:${remote}`, back]);
      assert.equal(down.code, 0, down.err);
      assert.equal(JSON.parse(down.out).bytes, 1024 * 1024);
      assert.deepEqual(await Deno.readFile(back), data);

      // Over the limit: refused (exit 4), and nothing left on either side.
      const big = await guest.foundry([
        "cp",
        "--max-size",
        "512K",
        `${guest.name}:${remote}`,
        `${back}.2`,
      ]);
      assert.equal(big.code, 4, big.err);
      assert.match(big.err, /larger than 524288 bytes/);
      assert.ok(
        ![...Deno.readDirSync(guest.dir)].some((e) => e.name.includes(".foundry-")),
        "a temporary file was left locally",
      );
      const nodir = await guest.foundry(["cp", local, `${guest.name}:/no/such/dir/x`]);
      assert.equal(nodir.code, 4, nodir.err);
    } finally {
      await Deno.remove(local).catch(() => {});
      await Deno.remove(back).catch(() => {});
      await guest.sh(`rm -f ${remote}`).catch(() => {});
    }
  });

  await t.step("logs shows cloud-init's output and the journal", async () => {
    const ci = await guest.foundry(["logs", guest.name, "--cloud-init"]);
    assert.equal(ci.code, 0, ci.err);
    assert.match(ci.out, /Cloud-init v\. .* finished/);
    const tail = await guest.foundry(["logs", guest.name, "--cloud-init", "--tail", "1"]);
    assert.equal(tail.code, 0, tail.err);
    assert.equal(tail.out.trim().split("\n").length, 1);
    const journal = await guest.foundry(["logs", guest.name, "--tail", "20"]);
    assert.equal(journal.code, 0, journal.err);
    assert.ok(journal.out.trim().split("\n").length >= 5, journal.out);
  });

  await t.step("ssh runs the system ssh with the live address, user and key", async () => {
    const printed = await guest.foundry(["ssh", guest.name, "--print", "-l", "admin", "-i", "/k"]);
    assert.equal(printed.code, 0, printed.err);
    assert.equal(printed.out.trim(), `ssh -i /k -l admin -- ${guest.ip}`);

    // A fake ssh first on PATH records its argv and exits 9: nothing reaches the guest.
    const bin = `${guest.dir}/h4-fake-bin`;
    await Deno.mkdir(bin, { recursive: true });
    await Deno.writeTextFile(
      `${bin}/ssh`,
      `#!/bin/sh\nprintf '%s\\n' "$@" > ${bin}/argv\nexit 9\n`,
      { mode: 0o755 },
    );
    await Deno.chmod(`${bin}/ssh`, 0o755);
    // foundry runs as its own process with that PATH: test files share this process's
    // environment under --parallel, so it is never changed here.
    try {
      const cli = new URL("../../../cli/foundry.ts", import.meta.url).pathname;
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", cli, "--config", guest.configFile, "ssh", guest.name, "--", "uptime"],
        env: { PATH: `${bin}:${Deno.env.get("PATH") ?? ""}`, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(r.code, 9, new TextDecoder().decode(r.stderr));
      const argv = (await Deno.readTextFile(`${bin}/argv`)).trim().split("\n");
      assert.deepEqual(argv, ["-l", "root", "--", guest.ip, "uptime"]);
    } finally {
      await Deno.remove(bin, { recursive: true });
    }
  });
}
