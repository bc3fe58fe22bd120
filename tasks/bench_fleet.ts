#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=unshare,cp,virsh,deno,foundry
/**
 * `deno task bench:fleet`: one `foundry list --all --host all` across three hosts against three
 * sequential `virsh -c URI list --all`, whole-process times, median of `--rounds` rounds (the side
 * that goes first alternates).
 *
 * The hosts are three extra libvirt daemons on this machine (tests/fleet/_daemons.ts: each in its
 * own mount namespace, reached on its own unix socket), each with `--domains` defined, not
 * running, foundry VMs (default 300; domain type qemu, the stored spec in their metadata, as
 * `foundry create --no-start` defines them). Everything is removed at the end, daemons and their
 * directories included, and on Ctrl-C.
 *
 * The foundry side is the installed command `foundry` found on PATH (`deno install` puts it in
 * `~/.deno/bin`), else `deno run` of cli/foundry.ts with the `foundry` task's permissions; the run
 * says which.
 *
 * Programs run (the only ones `--allow-run` grants): `unshare` and `cp` (the daemons,
 * tests/fleet/_daemons.ts, which signals them through their child handles), `virsh`, and `foundry`
 * or `deno`.
 *
 * Flags: `--domains N` (default 300), `--rounds N` (default 7).
 *
 * @module
 */
import { buildDomainXml } from "../lib/foundry/domain_xml.ts";
import { foundryCommandLine } from "./bench_cli.ts";
import { parseVirtualMachines } from "../lib/foundry/loader.ts";
import { Libvirt } from "../lib/libvirt/mod.ts";
import { startTestFleet, type TestFleet } from "../tests/fleet/_daemons.ts";

const decoder = new TextDecoder();

function flag(args: string[], name: string, def: number): number {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const n = Number(args[i + 1]);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} needs a whole number >= 1`);
  return n;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function vmXml(name: string): string {
  const [vm] = parseVirtualMachines(
    `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels: {bench: fleet}
spec:
  vcpus: 1
  memoryGiB: 0.25
  bootDisk: {sizeGB: 1, image: bench.qcow2}
  networkInterfaces:
    - {ip: 192.0.2.10/24, gateway: 192.0.2.1, bridge: bench-br}
  cloudInit:
    sshAuthorizedKeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD bench@example.org
`,
    `${name}.yaml`,
  );
  return buildDomainXml(vm!, { domainType: "qemu", pool: "bench-pool" });
}

async function defineMany(uri: string, prefix: string, count: number): Promise<void> {
  const lv = await Libvirt.connect(uri);
  try {
    for (let i = 0; i < count; i += 25) {
      await Promise.all(
        Array.from(
          { length: Math.min(25, count - i) },
          (_, k) => lv.domainDefineXml(vmXml(`${prefix}-${String(i + k).padStart(4, "0")}`)),
        ),
      );
    }
  } finally {
    await lv.close();
  }
}

async function timed(cmd: string, args: string[]): Promise<{ ms: number; out: string }> {
  const t0 = performance.now();
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const ms = performance.now() - t0;
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${decoder.decode(r.stderr).slice(0, 500)}`);
  }
  return { ms, out: decoder.decode(r.stdout) };
}

/**
 * The foundry command line: the `foundry` on PATH, else `deno run` of cli/foundry.ts (bench:cli's
 * choice, without its FOUNDRY_BENCH_CMD: `--allow-run` grants only `foundry` and `deno`).
 */
function foundryCommand(): { cmd: string; args: string[]; what: string } {
  const [cmd, ...args] = foundryCommandLine({ PATH: Deno.env.get("PATH") });
  return {
    cmd: cmd!,
    args,
    what: cmd === "deno"
      ? `deno ${args.join(" ")} (no foundry on PATH)`
      : `installed command ${cmd}`,
  };
}

/** Runs the bench with `args` (see the module doc). */
export async function main(args: string[]): Promise<void> {
  const domains = flag(args, "--domains", 300);
  const rounds = flag(args, "--rounds", 7);
  const foundry = foundryCommand();
  console.log(`foundry: ${foundry.what}`);
  console.log(`starting 3 libvirt daemons with ${domains} defined domains each...`);
  let fleet: TestFleet | undefined;
  const dir = await Deno.makeTempDir({ prefix: "bench-fleet-" });
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    fleet = await startTestFleet({ prefix: "bfl", ssh: false });
    const hosts = fleet.hosts;
    await Promise.all(hosts.map((h) => defineMany(h.unixUri, `bench-${h.name}`, domains)));
    const config = `${dir}/config.yaml`;
    await Deno.writeTextFile(
      config,
      "hosts:\n" + hosts.map((h) => `  - {name: ${h.name}, uri: "${h.uri}"}\n`).join(""),
    );
    const f: number[] = [];
    const v: number[] = [];
    const foundryArgs = [
      ...foundry.args,
      "--no-audit",
      "--config",
      config,
      "list",
      "--all",
      "--host",
      "all",
    ];
    const runFoundry = async () => {
      const r = await timed(foundry.cmd, foundryArgs);
      const rows = r.out.trim().split("\n").length - 1;
      if (rows !== domains * hosts.length) {
        throw new Error(`foundry listed ${rows} rows, expected ${domains * hosts.length}`);
      }
      f.push(r.ms);
    };
    const runVirsh = async () => {
      const t0 = performance.now();
      for (const h of hosts) await timed("virsh", ["-c", h.unixUri, "list", "--all"]);
      v.push(performance.now() - t0);
    };
    for (let i = 0; i < rounds && !abort.signal.aborted; i++) {
      if (i % 2 === 0) {
        await runFoundry();
        await runVirsh();
      } else {
        await runVirsh();
        await runFoundry();
      }
    }
    const fm = median(f);
    const vm = median(v);
    console.log(
      `${"figure".padEnd(44)} ${
        "median ms".padStart(10)
      }   rounds: ${f.length}, ${domains} domains per host`,
    );
    console.log(
      `${"foundry list --all --host all (3 hosts)".padEnd(44)} ${fm.toFixed(0).padStart(10)}`,
    );
    console.log(
      `${"virsh list --all x 3, one after another".padEnd(44)} ${vm.toFixed(0).padStart(10)}`,
    );
    console.log(`${"ratio foundry/virsh".padEnd(44)} ${(fm / vm).toFixed(2).padStart(10)}`);
    console.log(
      JSON.stringify({
        figure: "list --host all",
        hosts: hosts.length,
        domainsPerHost: domains,
        rounds: f.length,
        foundry_ms: Math.round(fm),
        virsh_ms: Math.round(vm),
        ratio: Number((fm / vm).toFixed(2)),
        foundry: foundry.what,
      }),
    );
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    console.log("cleaning up...");
    await fleet?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
