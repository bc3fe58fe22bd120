/**
 * exec, cp and tail through the guest agent against a fake daemon whose agent keeps an in-memory
 * guest: files, a running process whose output grows between polls, and the shell snippets
 * foundry sends (mktemp, chmod+mv, rm, kill), so the wire contract is held without a VM.
 */
import assert from "node:assert/strict";
import { XdrReader, XdrWriter } from "../../lib/xdr/mod.ts";
import {
  type DomainRef,
  Libvirt,
  MessageType,
  Procedure,
  Program,
  QemuProcedure,
} from "../../lib/libvirt/mod.ts";
import { readDomain, readStr, writeOptStr } from "../../lib/libvirt/wire.ts";
import { GuestFileTooLargeError, guestReadFileTail } from "../../lib/foundry/agent.ts";
import { guestExecStream } from "../../lib/foundry/guest_exec.ts";
import { copyFromGuest, copyToGuest } from "../../lib/foundry/guest_files.ts";
import { rawFrame, startFakeDaemon, writeAll } from "../libvirt/fake_daemon.ts";

interface Cmd {
  execute: string;
  arguments?: Record<string, unknown>;
}

const enc = (b: Uint8Array) => {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
};
const dec = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const text = (s: string) => new TextEncoder().encode(s);
/** `n` random bytes (getRandomValues gives at most 64 KiB per call). */
function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
  return b;
}

/** A process the fake guest runs: it writes `script[i]` at its i-th status poll, then exits. */
interface FakeProcess {
  argv: string[];
  stdin?: Uint8Array;
  steps: { out?: string; err?: string }[];
  exitcode?: number;
  signal?: number;
  /** Never exits by itself (only a kill ends it). */
  endless?: boolean;
  polls: number;
  killed?: string;
}

class FakeGuest {
  files = new Map<string, Uint8Array>();
  modes = new Map<string, string>();
  handles = new Map<number, { path: string; pos: number; eof: boolean; mode: string }>();
  procs = new Map<number, FakeProcess>();
  commands: Cmd[] = [];
  nextHandle = 1000;
  nextPid = 500;
  /** What the next wrapped command does. */
  plan: Omit<FakeProcess, "argv" | "polls"> = { steps: [], exitcode: 0 };
  /** Fail guest-file-write after this many writes. */
  failWriteAfter = Infinity;
  writes = 0;
  /** Fail guest-file-read after this many reads. */
  failReadAfter = Infinity;
  reads = 0;

  answer(cmd: Cmd): unknown {
    this.commands.push(cmd);
    const a = cmd.arguments ?? {};
    switch (cmd.execute) {
      case "guest-exec":
        return this.exec(a.arg as string[], a["input-data"] as string | undefined);
      case "guest-exec-status":
        return this.status(a.pid as number);
      case "guest-file-open": {
        const path = a.path as string;
        if (a.mode === "r" && !this.files.has(path)) {
          return { error: { desc: `failed to open file '${path}': No such file` } };
        }
        if (a.mode === "w") this.files.set(path, new Uint8Array());
        const h = this.nextHandle++;
        this.handles.set(h, { path, pos: 0, eof: false, mode: a.mode as string });
        return h;
      }
      case "guest-file-read": {
        if (++this.reads > this.failReadAfter) return { error: { desc: "read failed" } };
        const h = this.handles.get(a.handle as number)!;
        if (h.eof) return { count: 0, "buf-b64": "", eof: true }; // glibc's sticky EOF
        const data = this.files.get(h.path)!;
        const part = data.subarray(h.pos, h.pos + (a.count as number));
        h.pos += part.length;
        h.eof = h.pos >= data.length && part.length < (a.count as number);
        return { count: part.length, "buf-b64": enc(part), eof: h.eof };
      }
      case "guest-file-seek": {
        const h = this.handles.get(a.handle as number)!;
        const size = this.files.get(h.path)!.length;
        h.pos = a.whence === "end" ? size : a.whence === "set" ? (a.offset as number) : h.pos;
        h.eof = false;
        return { position: h.pos, eof: false };
      }
      case "guest-file-write": {
        if (++this.writes > this.failWriteAfter) return { error: { desc: "No space left" } };
        const h = this.handles.get(a.handle as number)!;
        const b = dec(a["buf-b64"] as string);
        const old = this.files.get(h.path)!;
        const n = new Uint8Array(old.length + b.length);
        n.set(old);
        n.set(b, old.length);
        this.files.set(h.path, n);
        return { count: b.length, eof: false };
      }
      case "guest-file-flush":
      case "guest-file-close":
        return {};
      default:
        return { error: { desc: `unexpected ${cmd.execute}` } };
    }
  }

  exec(arg: string[], input?: string) {
    const pid = this.nextPid++;
    const script = arg[1] ?? "";
    const done = (out = "", exitcode = 0, err = "") => {
      this.procs.set(pid, { argv: arg, steps: [{ out, err }], exitcode, polls: 0 });
      return { pid };
    };
    if (script.includes("mktemp -d")) {
      const d = `/tmp/foundry-exec.T${pid}`;
      this.files.set(`${d}/out`, new Uint8Array());
      this.files.set(`${d}/err`, new Uint8Array());
      return done(enc(text(d)));
    }
    if (script.startsWith("exec >")) {
      const dir = arg[2]!;
      this.procs.set(pid, {
        ...this.plan,
        argv: arg.slice(3),
        ...(input ? { stdin: dec(input) } : {}),
        polls: 0,
        dir,
      } as FakeProcess);
      return { pid };
    }
    if (script.includes('mktemp "$dir')) {
      const dest = arg[3]!.endsWith("/") ? `${arg[3]}${arg[4]}` : arg[3]!;
      const tmp = `${dest.replace(/[^/]*$/, "")}.x.foundry-ABC123`;
      this.files.set(tmp, new Uint8Array());
      return done(enc(text(`${dest}\n${tmp}`)));
    }
    if (script.startsWith("chmod")) {
      const [mode, tmp, dest] = arg.slice(3) as [string, string, string];
      this.files.set(dest, this.files.get(tmp)!);
      this.files.delete(tmp);
      this.modes.set(dest, mode);
      return done();
    }
    if (script.startsWith("kill")) {
      const target = this.procs.get(Number(arg[3]));
      if (target) target.killed = script.includes("-TERM") ? "TERM" : "KILL";
      return done();
    }
    if (arg[0] === "-rf" || arg[0] === "-f") {
      for (const p of [...this.files.keys()]) {
        if (p === arg[2] || p.startsWith(`${arg[2]}/`)) this.files.delete(p);
      }
      return done();
    }
    return { error: { desc: `unexpected exec ${JSON.stringify(arg)}` } };
  }

  status(pid: number) {
    const p = this.procs.get(pid) as FakeProcess & { dir?: string };
    if (!p) return { error: { desc: `Invalid parameter 'pid'` } };
    if (!p.dir) {
      // A captured command: output in the status, at once.
      const s = p.steps[0]!;
      return {
        exited: true,
        exitcode: p.exitcode,
        ...(s.out ? { "out-data": s.out } : {}),
        ...(s.err ? { "err-data": enc(text(s.err)) } : {}),
      };
    }
    const step = p.steps[p.polls++];
    const add = (name: string, s?: string) => {
      if (!s) return;
      const path = `${p.dir}/${name}`;
      const old = this.files.get(path)!;
      const b = text(s);
      const n = new Uint8Array(old.length + b.length);
      n.set(old);
      n.set(b, old.length);
      this.files.set(path, n);
    };
    add("out", step?.out);
    add("err", step?.err);
    if (p.killed) return { exited: true, signal: p.killed === "TERM" ? 15 : 9 };
    if (step || p.endless) return { exited: false };
    return { exited: true, exitcode: p.exitcode, ...(p.signal ? { signal: p.signal } : {}) };
  }
}

function fakeDaemon(guest: FakeGuest) {
  const fake = startFakeDaemon(async (f, conn) => {
    if (f.type !== MessageType.CALL) return;
    let payload = new Uint8Array();
    if (f.prog === Program.QEMU && f.proc === QemuProcedure.DOMAIN_AGENT_COMMAND) {
      const r = new XdrReader(f.payload);
      readDomain(r);
      const answer = guest.answer(JSON.parse(readStr(r)) as Cmd);
      const json = typeof answer === "object" && answer !== null && "error" in answer
        ? JSON.stringify(answer)
        : JSON.stringify({ return: answer });
      const w = new XdrWriter();
      writeOptStr(w, json);
      payload = w.bytes().slice();
    } else if (f.proc === Procedure.AUTH_LIST) {
      payload = new XdrWriter().writeUint(0).bytes().slice();
    } else if (f.proc === Procedure.CONNECT_SUPPORTS_FEATURE) {
      payload = new XdrWriter().writeInt(0).bytes().slice();
    }
    await writeAll(
      conn,
      rawFrame(
        { prog: f.prog, proc: f.proc, type: MessageType.REPLY, serial: f.serial, status: 0 },
        payload,
      ),
    );
  });
  return fake;
}

const domain: DomainRef = { name: "fake", uuid: new Uint8Array(16), id: 1 };

async function withFake(fn: (lv: Libvirt, g: FakeGuest) => Promise<void>): Promise<void> {
  const g = new FakeGuest();
  const fake = fakeDaemon(g);
  const lv = await Libvirt.connect(`qemu+tcp://127.0.0.1:${fake.port}/system`);
  try {
    await fn(lv, g);
  } finally {
    await lv.close();
    await fake.close();
  }
}

Deno.test("guestExecStream hands over output as it grows, in order, and the exit code", async () => {
  await withFake(async (lv, g) => {
    g.plan = {
      steps: [{ out: "one\n" }, {}, { out: "two\n", err: "warn\n" }, { out: "three\n" }],
      exitcode: 3,
    };
    const seen: string[] = [];
    const pollsAt: number[] = [];
    const r = await guestExecStream(lv, domain, ["sh", "-c", "x"], {
      stdin: text("input!"),
      maxPollMs: 20,
      onStdout: (b) => {
        seen.push(`out:${new TextDecoder().decode(b)}`);
        pollsAt.push(g.commands.filter((c) => c.execute === "guest-exec-status").length);
      },
      onStderr: (b) => void seen.push(`err:${new TextDecoder().decode(b)}`),
    });
    assert.equal(r.exitCode, 3);
    assert.equal(r.timedOut, false);
    assert.deepEqual(
      seen.filter((s) => s.startsWith("out:")).join(""),
      "out:one\nout:two\nout:three\n",
    );
    assert.ok(seen.includes("err:warn\n"));
    // "one" was handed over before the process ended (streamed, not collected at the end).
    const statusCalls = g.commands.filter((c) => c.execute === "guest-exec-status").length;
    assert.ok(statusCalls >= 5, `${statusCalls} status polls`);
    assert.equal(pollsAt.length, 3);
    assert.ok(pollsAt[0]! < pollsAt[2]!, `"one" came with "three": ${pollsAt}`);
    const proc = [...g.procs.values()].find((p) => p.stdin);
    assert.equal(new TextDecoder().decode(proc?.stdin), "input!");
    assert.deepEqual(proc?.argv, ["sh", "-c", "x"]);
    // The output directory is removed and the handles closed.
    assert.ok(![...g.files.keys()].some((p) => p.startsWith("/tmp/foundry-exec.")));
    assert.equal(g.commands.filter((c) => c.execute === "guest-file-close").length, 2);
  });
});

Deno.test("guestExecStream reports a signal as 128+N", async () => {
  await withFake(async (lv, g) => {
    g.plan = { steps: [], signal: 9 };
    const r = await guestExecStream(lv, domain, ["sleep", "1"], { maxPollMs: 20 });
    assert.equal(r.exitCode, 137);
    assert.equal(r.signal, 9);
  });
});

Deno.test("guestExecStream ends an endless command at its timeout with SIGTERM", async () => {
  await withFake(async (lv, g) => {
    g.plan = { steps: [{ out: "tick\n" }], endless: true };
    const started = performance.now();
    const r = await guestExecStream(lv, domain, ["yes"], { timeoutMs: 300, maxPollMs: 50 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, 128 + 15);
    assert.ok(performance.now() - started < 5_000);
    assert.ok(
      g.commands.some((c) => (c.arguments?.arg as string[])?.[1]?.startsWith("kill -TERM")),
    );
  });
});

Deno.test("guestExecStream refuses stdin beyond its bound before sending anything", async () => {
  await withFake(async (lv, g) => {
    await assert.rejects(
      guestExecStream(lv, domain, ["cat"], { stdin: new Uint8Array(8 * 1024 * 1024 + 1) }),
      RangeError,
    );
    assert.equal(g.commands.length, 0);
  });
});

Deno.test("copyFromGuest copies binary data byte for byte and leaves no temporary file", async () => {
  await withFake(async (lv, g) => {
    const data = randomBytes(200_000);
    g.files.set("/srv/blob.bin", data);
    const dir = await Deno.makeTempDir({ prefix: "h4-cp-" });
    try {
      const progress: number[] = [];
      const r = await copyFromGuest(lv, domain, "/srv/blob.bin", dir, {
        onProgress: (d) => void progress.push(d),
      });
      assert.equal(r.destination, `${dir}/blob.bin`);
      assert.equal(r.bytes, data.length);
      assert.deepEqual(await Deno.readFile(`${dir}/blob.bin`), data);
      assert.equal(progress.at(-1), data.length);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["blob.bin"]);
      // Too large: refused, and nothing is left behind.
      await assert.rejects(
        copyFromGuest(lv, domain, "/srv/blob.bin", `${dir}/small`, { maxBytes: 1000 }),
        GuestFileTooLargeError,
      );
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["blob.bin"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("copyToGuest writes through a temporary file renamed at the end, removed on failure", async () => {
  await withFake(async (lv, g) => {
    const dir = await Deno.makeTempDir({ prefix: "h4-cp-" });
    try {
      const data = randomBytes(150_000);
      await Deno.writeFile(`${dir}/x`, data, { mode: 0o640 });
      await Deno.chmod(`${dir}/x`, 0o640);
      const r = await copyToGuest(lv, domain, `${dir}/x`, "/etc/x");
      assert.equal(r.destination, "/etc/x");
      assert.deepEqual(g.files.get("/etc/x"), data);
      assert.equal(g.modes.get("/etc/x"), "640");
      assert.ok(![...g.files.keys()].some((p) => p.includes(".foundry-")));

      g.failWriteAfter = g.writes + 1; // the second chunk fails
      await assert.rejects(copyToGuest(lv, domain, `${dir}/x`, "/etc/y"), /No space left/);
      assert.equal(g.files.has("/etc/y"), false);
      assert.ok(![...g.files.keys()].some((p) => p.includes(".foundry-")), "temporary file left");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("guestReadFileTail returns the last bytes of a file, whatever its size", async () => {
  await withFake(async (lv, g) => {
    g.files.set("/var/log/x", text("a".repeat(100_000) + "THE END\n"));
    const tail = await guestReadFileTail(lv, domain, "/var/log/x", { maxBytes: 8 });
    assert.equal(tail, "THE END\n");
    const all = await guestReadFileTail(lv, domain, "/var/log/x", { maxBytes: 1_000_000 });
    assert.equal(all.length, 100_008);
  });
});

Deno.test("guestExecStream ends the guest process when it fails while the command runs", async () => {
  await withFake(async (lv, g) => {
    g.plan = { steps: [{ out: "tick\n" }], endless: true };
    g.failReadAfter = 3;
    await assert.rejects(
      guestExecStream(lv, domain, ["journalctl", "-f"], { maxPollMs: 20 }),
      /read failed/,
    );
    const proc = [...g.procs.values()].find((p) => p.argv[0] === "journalctl");
    assert.equal(proc?.killed, "TERM", "the command was left running in the guest");
  });
});
