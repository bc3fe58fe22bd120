/**
 * `foundry console` end to end, driven through tmux as a pseudo-terminal: the login prompt
 * shows, Ctrl-] leaves with exit 0 and the terminal back in cooked mode; a second client is
 * refused without --force; the same over qemu+ssh:// (a throw-away sshd on 127.0.0.1).
 */
import assert from "node:assert/strict";
import type { Day2Guest } from "./_guest.ts";
import { startTestSshd, type TestSshd } from "../../libvirt/_sshd.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const FOUNDRY = `${ROOT}cli/foundry.ts`;

async function host(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * A console run in a detached tmux session. When foundry ends, the pane's shell writes its exit
 * code and `stty -a` (the terminal's state after it) to files, then waits to be killed.
 */
class TmuxConsole {
  readonly session: string;
  constructor(readonly dir: string, tag: string) {
    this.session = `h4con-${tag}-${crypto.randomUUID().slice(0, 6)}`;
  }
  get exitFile() {
    return `${this.dir}/${this.session}.exit`;
  }
  get sttyFile() {
    return `${this.dir}/${this.session}.stty`;
  }
  async start(foundryArgs: string[]): Promise<void> {
    const line = `${q(Deno.execPath())} run -A ${q(FOUNDRY)} ${foundryArgs.map(q).join(" ")}; ` +
      `echo $? > ${q(this.exitFile)}; stty -a > ${q(this.sttyFile)}; sleep 600`;
    await host("tmux", ["new-session", "-d", "-s", this.session, "-x", "160", "-y", "40", line]);
  }
  keys(...keys: string[]): Promise<string> {
    return host("tmux", ["send-keys", "-t", this.session, ...keys]);
  }
  pane(): Promise<string> {
    return host("tmux", ["capture-pane", "-p", "-t", this.session, "-S", "-200"]);
  }
  /** Sends Enter every few seconds until the pane shows `re`. */
  async waitFor(re: RegExp, ms: number, poke = true): Promise<string> {
    const deadline = Date.now() + ms;
    let last = 0;
    while (true) {
      const text = await this.pane();
      if (re.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`no ${re} in the pane after ${ms} ms:\n${text}`);
      if (poke && Date.now() - last > 5_000) {
        await this.keys("Enter");
        last = Date.now();
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  /** foundry's exit code once it ended (waits up to `ms`). */
  async exitCode(ms = 60_000): Promise<number> {
    const deadline = Date.now() + ms;
    while (true) {
      try {
        const text = (await Deno.readTextFile(this.exitFile)).trim();
        if (text) {
          await new Promise((r) => setTimeout(r, 300)); // stty runs next
          return Number(text);
        }
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`foundry still running after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  /** The terminal's settings after foundry ended, as `stty -a` printed them. */
  stty(): Promise<string> {
    return Deno.readTextFile(this.sttyFile);
  }
  async kill(): Promise<void> {
    await host("tmux", ["kill-session", "-t", this.session]).catch(() => {});
  }
}

/** Asserts the terminal is back in cooked mode (line editing and echo on). */
function assertCooked(stty: string): void {
  assert.match(stty, /(^|\s)icanon(\s|$)/m, `terminal left without icanon:\n${stty}`);
  assert.match(stty, /(^|\s)echo(\s|$)/m, `terminal left without echo:\n${stty}`);
  assert.match(stty, /(^|\s)isig(\s|$)/m, `terminal left without isig:\n${stty}`);
}

/** The console step of the day-2 run. */
export async function run(guest: Day2Guest, t: Deno.TestContext): Promise<void> {
  const base = ["--config", guest.configFile];
  // On a loaded TCG host systemd's wait for dev-ttyS0.device can time out during boot, and then
  // no getty ever listens on the serial console (seen here: "Dependency failed for
  // serial-getty@ttyS0.service"). Starting it now is harmless when it already runs.
  await guest.sh("systemctl start serial-getty@ttyS0.service || true");

  await t.step(
    "console shows the login prompt; Ctrl-] leaves, exit 0, terminal restored",
    async () => {
      const con = new TmuxConsole(guest.dir, "a");
      try {
        await con.start([...base, "console", guest.name]);
        await con.waitFor(/Connected to the console/, 60_000, false);
        await con.waitFor(/login:/, 180_000);

        // Held: a second client is refused with exit 4 and told about --force.
        const second = await guest.foundry(["console", guest.name]);
        assert.equal(second.code, 4, second.err);
        assert.match(second.err, /held by another client/);
        assert.match(second.err, /--force/);

        await con.keys("C-]");
        assert.equal(await con.exitCode(), 0, await con.pane());
        assertCooked(await con.stty());
        assert.match(await con.pane(), /Left the console/);
      } finally {
        await con.kill();
      }
    },
  );

  await t.step(
    "--force takes a held console over; the first client ends, terminal restored",
    async () => {
      const first = new TmuxConsole(guest.dir, "f1");
      const second = new TmuxConsole(guest.dir, "f2");
      try {
        await first.start([...base, "console", guest.name]);
        await first.waitFor(/Connected to the console/, 60_000, false);
        // The first client holds the console and is idle (no abort in flight) when the second forces.
        await second.start([...base, "console", "--force", guest.name]);
        await second.waitFor(/login:/, 120_000);
        assert.equal(await first.exitCode(), 4, await first.pane());
        assertCooked(await first.stty());
        await second.keys("C-]");
        assert.equal(await second.exitCode(), 0, await second.pane());
        assertCooked(await second.stty());
      } finally {
        await first.kill();
        await second.kill();
      }
    },
  );

  await t.step("console over qemu+ssh:// shows the login prompt too", async () => {
    let sshd: TestSshd;
    try {
      sshd = await startTestSshd("day2");
    } catch (e) {
      await t.step({ name: `qemu+ssh skipped: ${(e as Error).message}`, ignore: true, fn() {} });
      return;
    }
    const con = new TmuxConsole(guest.dir, "s");
    try {
      await con.start([...base, "-c", sshd.uri(), "console", guest.name]);
      await con.waitFor(/login:/, 180_000);
      await con.keys("C-]");
      assert.equal(await con.exitCode(), 0, await con.pane());
      assertCooked(await con.stty());
    } finally {
      await con.kill();
      await sshd.stop();
    }
  });
}
