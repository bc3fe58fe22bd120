/**
 * Conventions of foundry's lifecycle commands, through main() on the real libvirtd: several names,
 * `-l SELECTOR` and `--ignore-not-found` on destroy/start/stop/restart (kubectl's semantics),
 * no-op operations that say so, `wait` on a VM that is shut off, and the live status line of long
 * waits on a terminal (a fake one: `io.isTerminal`) against one line per stage when piped.
 */
import assert from "node:assert/strict";
import { stringify } from "npm:yaml@^2.9.1";
import { main } from "../../cli/foundry.ts";
import type { Io } from "../../cli/_program.ts";
import { DomainState } from "../../lib/libvirt/mod.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import {
  type FoundryFixture,
  foundryFixture,
  leftovers,
  testVm,
  writeConfigFile,
} from "../foundry/_fixture.ts";

const CLEAR = "\r\x1b[2K";
/** Any SGR (colour) sequence. */
const SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`);

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs foundry on the fixture's pools with its own audit database. */
async function setup(fx: FoundryFixture) {
  const cfg = await writeConfigFile(fx);
  const run = async (
    args: string[],
    o: { isTerminal?: boolean; env?: Record<string, string> } = {},
  ): Promise<Run> => {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = {
      out: (s) => void out.push(s),
      err: (s) => void err.push(s),
      ...(o.isTerminal !== undefined ? { isTerminal: o.isTerminal } : {}),
    };
    const code = await main(
      ["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, ...args],
      io,
      { env: o.env ?? {} },
    );
    return { code, out: out.join(""), err: err.join("") };
  };
  /** Creates VMs (not started) with the label tier=`tier`; returns their names. */
  const create = async (count: number, tier: string): Promise<string[]> => {
    const vms = Array.from({ length: count }, () => testVm(fx, { labels: { tier } }));
    const file = `${fx.dir}/${tier}.yaml`;
    await Deno.writeTextFile(
      file,
      vms.map((vm) =>
        stringify({
          apiVersion: vm.apiVersion,
          kind: vm.kind,
          metadata: vm.metadata,
          spec: vm.spec,
        })
      ).join("---\n"),
    );
    const r = await run(["create", file, "--no-start"]);
    assert.equal(r.code, 0, r.err);
    return vms.map((vm) => vm.metadata.name);
  };
  const state = async (name: string) => {
    const d = await fx.lv.domainLookupByName(name);
    return (await fx.lv.domainGetState(d)).state;
  };
  const id = async (name: string) => (await fx.lv.domainLookupByName(name)).id;
  return { run, create, state, id };
}

const tier = () => `conv-${crypto.randomUUID().slice(0, 8)}`;

libvirtTest(
  "no-op start, stop and destroy --ignore-not-found say so, exit 0 and change nothing",
  async () => {
    const fx = await foundryFixture();
    try {
      const { run, create, state, id } = await setup(fx);
      const [a] = await create(1, tier());

      const stop = await run(["stop", a!]);
      assert.equal(stop.code, 0, stop.err);
      assert.equal(stop.out, `VM '${a}' is already shut off\n`);
      assert.equal(await state(a!), DomainState.SHUTOFF);

      const missing = `ftvm-missing-${crypto.randomUUID().slice(0, 8)}`;
      const gone = await run(["destroy", missing, "--ignore-not-found"]);
      assert.equal(gone.code, 0, gone.err);
      assert.equal(gone.out, `VM '${missing}' does not exist; nothing to do\n`);
      assert.equal(gone.err, "");
      const noIgnore = await run(["destroy", missing]);
      assert.equal(noIgnore.code, 4);
      assert.match(noIgnore.err, new RegExp(`VM ${missing} does not exist`));

      assert.equal((await run(["start", a!])).code, 0);
      const before = await id(a!);
      const again = await run(["start", a!]);
      assert.equal(again.code, 0, again.err);
      assert.equal(again.out, `VM '${a}' is already running\n`);
      assert.equal(await id(a!), before, "the running domain was not restarted");
      assert.equal((await run(["stop", a!, "--force"])).code, 0);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "wait on a VM that is shut off fails at once with exit 4 and says how to start it",
  async () => {
    const fx = await foundryFixture();
    try {
      const { run, create } = await setup(fx);
      const [a] = await create(1, tier());
      // Old behaviour: waited until the timeout and then said only that the stage was not reached.
      const r = await run(["wait", a!, "--timeout", "60"]);
      assert.equal(r.code, 4);
      assert.match(r.err, new RegExp(`VM ${a} is shut off.*start it with: foundry start ${a}`));
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "start, stop, restart and destroy take several names and -l; one failure does not stop the others",
  async () => {
    const fx = await foundryFixture();
    try {
      const { run, create, state } = await setup(fx);
      const t = tier();
      const [a, b] = await create(2, t);
      const missing = `ftvm-missing-${crypto.randomUUID().slice(0, 8)}`;

      const start = await run(["start", a!, missing, b!]);
      assert.equal(start.code, 4, "the worst exit code: the missing VM's");
      assert.match(start.out, new RegExp(`VM '${a}' started\\n`));
      assert.match(start.out, new RegExp(`VM '${b}' started\\n`));
      assert.match(start.err, new RegExp(`VM ${missing} does not exist`));
      assert.equal(await state(b!), DomainState.RUNNING, "the VM after the failure was started");

      const ignored = await run(["restart", a!, missing, "--force", "--ignore-not-found"]);
      assert.equal(ignored.code, 0, ignored.err);
      assert.match(ignored.out, new RegExp(`VM '${a}' forced off and started again`));
      assert.match(ignored.out, new RegExp(`VM '${missing}' does not exist; nothing to do`));

      const stop = await run(["stop", "-l", `tier=${t}`, "--force"]);
      assert.equal(stop.code, 0, stop.err);
      assert.match(stop.out, new RegExp(`VM '${a}' forced off`));
      assert.match(stop.out, new RegExp(`VM '${b}' forced off`));
      assert.equal(await state(a!), DomainState.SHUTOFF);

      const none = await run(["start", "-l", `tier in (${t}-none)`]);
      assert.equal(none.code, 0, none.err);
      assert.match(none.err, /No VMs match -l/);

      for (
        const args of [
          ["destroy"],
          ["destroy", a!, "-l", `tier=${t}`],
          ["stop", "-l", "tier in (a"],
        ]
      ) {
        const r = await run(args);
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      }
      assert.equal(await state(a!), DomainState.SHUTOFF, "a usage error changed nothing");

      const destroy = await run(["destroy", "-l", `tier=${t}`]);
      assert.equal(destroy.code, 0, destroy.err);
      assert.match(destroy.out, new RegExp(`Successfully destroyed VM '${a}'`));
      assert.match(destroy.out, new RegExp(`Successfully destroyed VM '${b}'`));
      assert.deepEqual(await leftovers(fx, a!), []);
      assert.deepEqual(await leftovers(fx, b!), []);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "destroy's grace period: one line per stage when piped, a live line on a terminal",
  async () => {
    const fx = await foundryFixture();
    try {
      const { run, create } = await setup(fx);
      const [a, b, c] = await create(3, tier());
      // Nothing boots from the blank test image, so no guest answers the shutdown request and
      // each VM is forced off after the grace period.
      for (const n of [a!, b!, c!]) assert.equal((await run(["start", n])).code, 0);

      const stop = await run(["stop", a!, "--timeout", "1"]);
      assert.equal(stop.code, 0, stop.err);
      assert.equal(
        stop.out,
        `ok waiting up to 1 s for a graceful shutdown\nVM '${a}' forced off\n`,
        "stop's grace period is one line when piped",
      );
      assert.equal((await run(["start", a!])).code, 0);

      const piped = await run(["destroy", a!, "--timeout", "1"]);
      assert.equal(piped.code, 0, piped.err);
      assert.match(
        piped.out,
        /ok waiting up to 1 s for a graceful shutdown\nok VM forced off after 1 s\n/,
      );
      assert.ok(!piped.out.includes("\x1b"), "no escape sequences when piped");

      const tty = await run(["destroy", b!, "--timeout", "1"], { isTerminal: true });
      assert.equal(tty.code, 0, tty.err);
      assert.ok(
        tty.out.includes(
          `${CLEAR}\x1b[1mVM '${b}': graceful shutdown, then forced off\x1b[0m, \x1b[2melapsed `,
        ),
        tty.out,
      );
      assert.match(tty.out, /elapsed \d+s \/ timeout 1s/);
      assert.match(tty.out, /✓.* VM forced off after 1 s/);
      const live = tty.out.lastIndexOf("graceful shutdown, then forced off");
      assert.ok(tty.out.indexOf(CLEAR, live) > live, "the live line is cleared");

      const noColor = await run(["destroy", c!, "--timeout", "1"], {
        isTerminal: true,
        env: { NO_COLOR: "1" },
      });
      assert.equal(noColor.code, 0, noColor.err);
      assert.ok(
        noColor.out.includes(`${CLEAR}VM '${c}': graceful shutdown, then forced off, elapsed`),
        noColor.out,
      );
      assert.ok(!SGR.test(noColor.out), "no colour with NO_COLOR");
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "wait shows the stage awaited with elapsed and timeout on a terminal, and clears it",
  async () => {
    const fx = await foundryFixture();
    try {
      const { run, create } = await setup(fx);
      const [a] = await create(1, tier());
      assert.equal((await run(["start", a!])).code, 0);
      // No guest agent ever answers on the blank image: the wait runs out of time at "agent".
      const tty = await run(["wait", a!, "--for", "agent", "--timeout", "1"], { isTerminal: true });
      assert.equal(tty.code, 4);
      assert.match(tty.err, /did not reach stage 'agent'/);
      assert.match(tty.out, /✓.* running after [0-9.]+ s: domain running\n/);
      assert.ok(
        tty.out.includes(`${CLEAR}\x1b[1mVM '${a}': waiting for agent\x1b[0m, \x1b[2melapsed `),
        tty.out,
      );
      assert.match(tty.out, /elapsed \d+s \/ timeout 1s/);
      assert.ok(tty.out.endsWith(CLEAR), "the live line is cleared at the end");

      const piped = await run(["wait", a!, "--for", "agent", "--timeout", "1"]);
      assert.equal(piped.code, 4);
      assert.match(piped.out, /^ok running after [0-9.]+ s: domain running$/m);
      assert.ok(!piped.out.includes("\x1b"), "no live line when piped");
      assert.equal((await run(["stop", a!, "--force"])).code, 0);
    } finally {
      await fx.cleanup();
    }
  },
);

Deno.test("foundry: a bad value of a global flag is a usage error (exit 2), not a configuration error", async () => {
  for (
    const args of [
      ["--domain-type", "xen", "list"],
      ["--destroy-timeout", "soon", "stop", "x"],
      ["stop"],
      ["destroy", "a", "-l", "role=web"],
    ]
  ) {
    const err: string[] = [];
    const code = await main(["--no-audit", ...args], {
      out: () => {},
      err: (s) => void err.push(s),
    }, { env: {} });
    assert.equal(code, 2, `${args.join(" ")}: ${err.join("")}`);
    if (args[0] === "--destroy-timeout") {
      assert.match(err.join(""), /Invalid --destroy-timeout "soon": expected a number of seconds/);
    }
  }
});
