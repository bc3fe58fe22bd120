/**
 * Interrupts end foundry at once with exit code 130, as a real process: SIGINT, SIGTERM and SIGHUP
 * while a call hangs on a daemon that accepts and goes silent, a rollback after an interrupt on
 * the real libvirtd, and a second SIGINT during a rollback that hangs. Every moment to send a
 * signal is an event (the daemon or a proxy saw a frame), never a sleep.
 */
import assert from "node:assert/strict";
import { stringify } from "npm:yaml@^2.9.1";
import { Command } from "npm:commander@^15.1.0";
import { Procedure } from "../../lib/libvirt/mod.ts";
import { decodeHeader } from "../../lib/libvirt/rpc.ts";
import { InterruptedError } from "../../lib/libvirt/mod.ts";
import { runProgram } from "../../cli/_program.ts";
import { type ReceivedFrame, startFakeDaemon } from "../libvirt/fake_daemon.ts";
import { libvirtTest, SYSTEM_SOCKET } from "../libvirt/_env.ts";
import { foundryFixture, testVm, writeConfigFile } from "../foundry/_fixture.ts";

const FOUNDRY = new URL("../../cli/foundry.ts", import.meta.url).pathname;
const REPO = new URL("../..", import.meta.url).pathname;
/** Generous: the process must end long before this; a build that ignores signals fails here. */
const END_DEADLINE_MS = 30_000;
/** Deno's start-up on a loaded machine is slow; this only bounds a broken test. */
const START_DEADLINE_MS = 120_000;

/** Resolves when `pred` holds for a frame seen so far or later. */
class FrameWatch {
  readonly frames: ReceivedFrame[] = [];
  #waiters: { pred: (f: ReceivedFrame) => boolean; resolve: () => void }[] = [];
  push(f: ReceivedFrame): void {
    this.frames.push(f);
    for (const w of this.#waiters.filter((w) => w.pred(f))) w.resolve();
  }
  until(pred: (f: ReceivedFrame) => boolean, what: string): Promise<void> {
    if (this.frames.some(pred)) return Promise.resolve();
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      new Promise<void>((resolve) => this.#waiters.push({ pred, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`never saw ${what}`)), START_DEADLINE_MS);
      }),
    ]).finally(() => clearTimeout(timer));
  }
}

/** A running foundry process with its output collected. */
function spawnFoundry(args: string[], env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      FOUNDRY,
      "--no-audit",
      ...args,
    ],
    cwd: REPO,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const dec = new TextDecoder();
  let stderr = "";
  const stderrWaiters: { re: RegExp; resolve: () => void }[] = [];
  const errDone = child.stderr.pipeTo(
    new WritableStream({
      write(chunk) {
        stderr += dec.decode(chunk, { stream: true });
        for (const w of stderrWaiters.filter((w) => w.re.test(stderr))) w.resolve();
      },
    }),
  );
  const outDone = new Response(child.stdout).text();
  return {
    child,
    stderr: () => stderr,
    /** Resolves once stderr matches `re`. */
    stderrMatches: (re: RegExp) =>
      re.test(stderr)
        ? Promise.resolve()
        : new Promise<void>((resolve) => stderrWaiters.push({ re, resolve })),
    /** The exit status, or a failure (after killing it) when it has not ended by the deadline. */
    async ended(): Promise<Deno.CommandStatus & { stdout: string; stderr: string }> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((
        r,
      ) => (timer = setTimeout(() => r("late"), END_DEADLINE_MS)));
      const status = await Promise.race([child.status, late]);
      clearTimeout(timer);
      if (status === "late") {
        child.kill("SIGKILL");
        await child.status;
        await Promise.allSettled([errDone, outDone]);
        assert.fail(`foundry did not end within ${END_DEADLINE_MS} ms of the signal:\n${stderr}`);
      }
      const stdout = await outDone;
      await errDone.catch(() => {});
      return { ...status, stdout, stderr };
    },
  };
}

/** A daemon on a unix socket that accepts, reads every frame and never answers. */
async function silentDaemon() {
  const dir = await Deno.makeTempDir({ prefix: "foundry-silent-" });
  const path = `${dir}/libvirt-sock`;
  const watch = new FrameWatch();
  const fake = startFakeDaemon((f) => watch.push(f), { path });
  return {
    uri: `qemu+unix:///system?socket=${path}`,
    watch,
    dir,
    async close() {
      await fake.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

function assertInterrupted(
  r: Deno.CommandStatus & { stderr: string },
  sig: string,
): void {
  assert.equal(r.signal, null, `killed by ${r.signal} instead of exiting:\n${r.stderr}`);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, new RegExp(`Interrupted by ${sig}`));
  assert.doesNotMatch(r.stderr, /^\s+at /m, "a stack trace was printed");
}

async function interruptWhileSilent(args: (dir: string) => string[], sig: Deno.Signal) {
  const daemon = await silentDaemon();
  try {
    const run = spawnFoundry(["--connect", daemon.uri, ...args(daemon.dir)], {
      XDG_DATA_HOME: daemon.dir,
    });
    // The process is connected and waiting for the daemon's first answer.
    await daemon.watch.until((f) => f.proc === Procedure.AUTH_LIST, "the AUTH_LIST call");
    run.child.kill(sig);
    assertInterrupted(await run.ended(), sig);
  } finally {
    await daemon.close();
  }
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.test(`foundry list ends with exit 130 on ${sig} while the daemon is silent`, async () => {
    await interruptWhileSilent(() => ["list"], sig);
  });
}

Deno.test("foundry create ends with exit 130 on SIGINT while the daemon is silent", async () => {
  await interruptWhileSilent(() => ["create", `${REPO}/examples/simple-vm.yaml`], "SIGINT");
});

Deno.test("foundry image import ends with exit 130 on SIGINT while the daemon is silent", async () => {
  await interruptWhileSilent((dir) => {
    Deno.writeFileSync(`${dir}/disk.raw`, new Uint8Array(1024 * 1024));
    return ["image", "import", `${dir}/disk.raw`, "disk.raw"];
  }, "SIGINT");
});

/**
 * A proxy in front of the real libvirtd that splits the client's bytes into frames: frames for
 * which `drop` returns true are swallowed (that call hangs), the rest pass unchanged.
 */
async function frameProxy(drop: (f: ReceivedFrame) => boolean) {
  const dir = await Deno.makeTempDir({ prefix: "foundry-fproxy-" });
  const path = `${dir}/libvirt-sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const watch = new FrameWatch();
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const closeBoth = (a: Deno.Conn, b: Deno.Conn) => {
    for (const c of [a, b]) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
  };
  const writeAll = async (to: Deno.Conn, bytes: Uint8Array) => {
    let off = 0;
    while (off < bytes.length) off += await to.write(bytes.subarray(off));
  };
  const accepting = (async () => {
    try {
      for await (const client of listener) {
        const daemon = await Deno.connect({ transport: "unix", path: SYSTEM_SOCKET });
        conns.add(client);
        conns.add(daemon);
        tasks.push((async () => {
          const buf = new Uint8Array(256 * 1024);
          try {
            while (true) {
              const n = await daemon.read(buf);
              if (n === null) break;
              await writeAll(client, buf.subarray(0, n));
            }
          } catch { /* closed */ }
          closeBoth(client, daemon);
        })());
        tasks.push((async () => {
          let pending = new Uint8Array(0);
          const buf = new Uint8Array(256 * 1024);
          try {
            while (true) {
              const n = await client.read(buf);
              if (n === null) break;
              const next = new Uint8Array(pending.length + n);
              next.set(pending);
              next.set(buf.subarray(0, n), pending.length);
              pending = next;
              while (pending.length >= 4) {
                const len = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
                if (pending.length < len) break;
                const bytes = pending.slice(0, len);
                pending = pending.slice(len);
                const f = { ...decodeHeader(bytes), payload: bytes.subarray(28) };
                watch.push(f);
                if (!drop(f)) await writeAll(daemon, bytes);
              }
            }
          } catch { /* closed */ }
          closeBoth(client, daemon);
        })());
      }
    } catch { /* listener closed */ }
  })();
  return {
    uri: `qemu+unix:///system?socket=${path}`,
    watch,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await accepting;
      await Promise.allSettled(tasks);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Writes the fixture's configuration and a VM file; returns the CLI arguments for create. */
async function createArgs(fx: Awaited<ReturnType<typeof foundryFixture>>) {
  const cfg = await writeConfigFile(fx);
  const vm = testVm(fx);
  const file = `${fx.dir}/vm.yaml`;
  await Deno.writeTextFile(
    file,
    stringify({ apiVersion: vm.apiVersion, kind: vm.kind, metadata: vm.metadata, spec: vm.spec }),
  );
  return { name: vm.metadata.name, args: ["--config", cfg, "create", file] };
}

async function vmVolumes(fx: Awaited<ReturnType<typeof foundryFixture>>, name: string) {
  const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
  await fx.lv.storagePoolRefresh(pool);
  return (await fx.lv.storagePoolListAllVolumes(pool)).map((v) => v.name).filter((v) =>
    v.startsWith(name)
  );
}

for (const sig of ["SIGTERM", "SIGHUP"] as const) {
  libvirtTest(`${sig} during create removes the volumes it made and exits 130`, async () => {
    const fx = await foundryFixture();
    // The define call never reaches the daemon: create hangs there with its volumes made.
    const proxy = await frameProxy((f) => f.proc === Procedure.DOMAIN_DEFINE_XML_FLAGS);
    try {
      const { name, args } = await createArgs(fx);
      const run = spawnFoundry(["--connect", proxy.uri, ...args], { XDG_DATA_HOME: fx.dir });
      await proxy.watch.until(
        (f) => f.proc === Procedure.DOMAIN_DEFINE_XML_FLAGS,
        "the define call",
      );
      assert.notDeepEqual(await vmVolumes(fx, name), [], "create made no volumes before define");
      run.child.kill(sig);
      const r = await run.ended();
      assertInterrupted(r, sig);
      assert.deepEqual(await vmVolumes(fx, name), [], "volumes left after the rollback");
      assert.equal((await fx.lv.listAllDomains()).some((d) => d.name === name), false);
    } finally {
      await proxy.close();
      await fx.cleanup();
    }
  });
}

libvirtTest("a second SIGINT while the rollback hangs exits 130 at once", async () => {
  const fx = await foundryFixture();
  // From the define call on, nothing reaches the daemon: the rollback's deletes hang too.
  let holed = false;
  const proxy = await frameProxy((f) => {
    if (f.proc === Procedure.DOMAIN_DEFINE_XML_FLAGS) holed = true;
    return holed;
  });
  try {
    const { args } = await createArgs(fx);
    const run = spawnFoundry(["--connect", proxy.uri, ...args], { XDG_DATA_HOME: fx.dir });
    await proxy.watch.until((f) => f.proc === Procedure.DOMAIN_DEFINE_XML_FLAGS, "the define call");
    run.child.kill("SIGINT");
    // The rollback started and its first delete hangs in the black hole.
    await proxy.watch.until((f) => f.proc === Procedure.STORAGE_VOL_DELETE, "a rollback delete");
    run.child.kill("SIGINT");
    const r = await run.ended();
    assertInterrupted(r, "SIGINT");
    assert.match(r.stderr, /Interrupted again/);
  } finally {
    await proxy.close();
    await fx.cleanup();
  }
});

const VIRTWORK = new URL("../../cli/virtwork.ts", import.meta.url).pathname;

Deno.test("virtwork run ends with exit 130 on SIGTERM while the API server is silent", async () => {
  // An API server that accepts, reads the first request and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  let requested!: () => void;
  const firstRequest = new Promise<void>((r) => (requested = r));
  const accepting = (async () => {
    try {
      for await (const c of listener) {
        conns.push(c);
        c.read(new Uint8Array(65536)).then(() => requested(), () => {});
      }
    } catch { /* closed */ }
  })();
  const dir = await Deno.makeTempDir({ prefix: "virtwork-silent-" });
  try {
    await Deno.writeTextFile(
      `${dir}/kc`,
      JSON.stringify({
        clusters: [{
          name: "c",
          cluster: { server: `http://127.0.0.1:${port}`, "insecure-skip-tls-verify": true },
        }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-net",
        "--allow-env",
        "--allow-sys=hostname",
        VIRTWORK,
        "--no-audit",
        "run",
        "--workloads",
        "cpu",
        "--kubeconfig",
        `${dir}/kc`,
      ],
      cwd: REPO,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      firstRequest,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no request came")), START_DEADLINE_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    child.kill("SIGTERM");
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), END_DEADLINE_MS)));
    const status = await Promise.race([child.status, late]);
    clearTimeout(timer);
    if (status === "late") {
      child.kill("SIGKILL");
      await output;
      assert.fail(`virtwork did not end within ${END_DEADLINE_MS} ms of SIGTERM`);
    }
    const r = await output;
    const stderr = new TextDecoder().decode(r.stderr);
    assertInterrupted({ ...status, stderr }, "SIGTERM");
  } finally {
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    await accepting;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runProgram maps InterruptedError to exit 130 and prints guest or daemon text sanitized", async () => {
  const err: string[] = [];
  const io = { out: () => {}, err: (s: string) => void err.push(s) };
  const program = (e: Error) =>
    new Command("t").exitOverride().action(() => {
      throw e;
    });
  assert.equal(
    await runProgram(program(new InterruptedError("Interrupted by SIGINT")), [], io),
    130,
  );
  err.length = 0;
  const hostile = "agent says \x1b]52;c;ZXZpbA==\x07\x1b[2Jdone\r\u202Egpj.exe";
  assert.equal(await runProgram(program(new Error(hostile)), [], io), 1);
  assert.equal(err.join(""), "Error: agent says donegpj.exe\n");
});
