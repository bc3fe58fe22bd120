/**
 * `foundry move NAME --to HOST [--from HOST] [--copy-image] [--live]` (issue 16): moves a VM
 * between configured hosts (lib/foundry/move.ts): offline, or with `--live` by libvirt's
 * peer-to-peer migration with storage copy when both daemons allow it (else it says why not, exit
 * 4, nothing changed).
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import type { HostEntry } from "../../lib/foundry/fleet_types.ts";
import type { MoveStep } from "../../lib/foundry/move.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import { ExitCode, type Io, processIo } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { interruptSignal } from "../_signals.ts";
import { configFor, progress } from "./_context.ts";
import { fleetGlobals, openFleet, withCopyImageFlag } from "./_fleet.ts";

const STEP_LABELS: Record<MoveStep, string> = {
  check: "Checked",
  shutdown: "VM stopped",
  image: "Base image copied",
  volumes: "Volume copied",
  define: "Domain defined",
  start: "VM started",
  source: "Source removed",
};

const LIVE_LABELS = {
  check: "Checked",
  image: "Cloud-init ISO copied",
  migrate: "Migrated",
  source: "Source removed",
} as const;

function fail(message: string, code: number): Error {
  return Object.assign(new Error(message), { exitCode: code });
}

/** `foundry move`. */
export function moveCommand(io: Io): Command {
  return new Command("move")
    .description("Move a VM to another configured host (offline: shut down, copy, define there)")
    .argument("<name>", "the VM")
    .requiredOption("--to <host>", "the host to move it to (hosts: of the configuration)")
    .option("--from <host>", "the host it is on (default: the configured host that has it)")
    .option("--copy-image", "copy the base image of its boot disk when the target lacks it")
    .option("--live", "migrate it running (libvirt peer-to-peer with storage copy)")
    .option("--target-uri <uri>", "--live: the target as the source host reaches it")
    .option("--timeout <seconds>", "graceful shutdown before forcing it off (default: destroy's)")
    .addHelpText(
      "after",
      "\nExamples:\n  foundry --config fleet.yaml move web-01 --to b\n  foundry move db --from a --to c --copy-image\n",
    )
    .action(async (
      rawName: string,
      opts: {
        to: string;
        from?: string;
        copyImage?: boolean;
        live?: boolean;
        targetUri?: string;
        timeout?: string;
      },
      cmd: Command,
    ) => {
      const name = rawName.toLowerCase();
      const config = await configFor(cmd);
      const hosts = config.hosts ?? [];
      const byName = (h: string, flag: string): HostEntry => {
        const e = hosts.find((x) => x.name === h);
        if (e) return e;
        throw fail(
          hosts.length
            ? `Unknown host '${sanitizeText(h.slice(0, 64))}' in ${flag}: configured hosts are ${
              hosts.map((x) => x.name).join(", ")
            }`
            : `move needs a hosts: list in the configuration file (see 'Fleets of hosts' in the README)`,
          ExitCode.VALIDATION,
        );
      };
      const to = byName(opts.to, "--to");
      let timeoutSeconds = config.destroyTimeoutSeconds;
      if (opts.timeout !== undefined) {
        timeoutSeconds = Number(opts.timeout);
        if (!/^\d+$/.test(opts.timeout) || timeoutSeconds > 86400) {
          throw fail(`Invalid --timeout '${opts.timeout.slice(0, 20)}': expected seconds`, 2);
        }
      }
      const g = fleetGlobals(cmd);
      const fleet = openFleet(config, {
        host: "all",
        hostTimeout: g.hostTimeout,
        ...(g.parallel !== undefined ? { parallel: g.parallel } : {}),
      });
      try {
        let from: HostEntry;
        if (opts.from !== undefined) from = byName(opts.from, "--from");
        else {
          const { fanOut } = await import("../../lib/foundry/fleet.ts");
          const { vmExists } = await import("./_targets.ts");
          const others = hosts.filter((h) => h.name !== to.name);
          const found = await fanOut(
            others,
            fleet.parallel,
            fleet.pool,
            (_h, lv) => vmExists(lv, name),
          );
          const on = found.filter((o) => o.ok && o.value).map((o) => o.host);
          const silent = found.filter((o) => !o.ok).map((o) => o.host);
          if (on.length !== 1) {
            throw fail(
              on.length > 1
                ? `VM '${name}' exists on hosts ${on.join(", ")}: choose one with --from`
                : `VM '${name}' not found on hosts ${others.map((h) => h.name).join(", ")}${
                  silent.length ? ` (${silent.join(", ")} did not answer: try --from)` : ""
                }`,
              on.length > 1 ? ExitCode.VALIDATION : ExitCode.VM_OPERATION,
            );
          }
          from = hosts.find((h) => h.name === on[0])!;
        }
        if (from.name === to.name) {
          throw fail(`VM '${name}' is on ${to.name} already`, ExitCode.VALIDATION);
        }
        const [src, dst] = await Promise.all([fleet.pool.get(from), fleet.pool.get(to)]);
        const signal = interruptSignal();
        const audit = (details: Record<string, boolean>) => ({
          resourceType: "vm" as const,
          name,
          uri: `${src.uri.display} -> ${dst.uri.display}`,
          operation: "move",
          details: { from: from.name, to: to.name, ...details },
        });
        if (opts.live) {
          const { liveMoveVm, MoveCheckError } = await import("../../lib/foundry/move.ts");
          const say = progress(io);
          io.out(`Moving VM '${name}' live from ${from.name} to ${to.name}...\n`);
          try {
            await withFoundryAudit(cmd, audit({ live: true }), () =>
              liveMoveVm(src, dst, name, {
                targetUri: opts.targetUri ?? to.uri,
                to: to.name,
                onStep: (step, detail) => say(`${LIVE_LABELS[step]} (${detail})`),
                ...(signal ? { signal } : {}),
              }));
          } catch (e) {
            if (e instanceof MoveCheckError) {
              throw fail(
                `VM '${name}' cannot be moved live from ${from.name} to ${to.name}: ${
                  e.reasons.join("; ")
                }; nothing was changed (without --live it is moved offline)`,
                ExitCode.VM_OPERATION,
              );
            }
            throw e;
          }
          io.out(`Moved VM '${name}' live from ${from.name} to ${to.name}\n`);
          return;
        }
        const { moveVm, MoveCheckError } = await import("../../lib/foundry/move.ts");
        const { createProgress } = await import("../../lib/output/progress.ts");
        const say = progress(io);
        let bar: ReturnType<typeof createProgress> | undefined;
        let barFor = "";
        io.out(`Moving VM '${name}' from ${from.name} to ${to.name}...\n`);
        try {
          await withFoundryAudit(cmd, audit({ copyImage: opts.copyImage === true }), async (op) => {
            const r = await moveVm(src, dst, name, {
              timeoutSeconds,
              copyImage: opts.copyImage === true,
              from: from.name,
              to: to.name,
              ...(signal ? { signal } : {}),
              onStep: (step, detail) => {
                if (bar) bar.done();
                bar = undefined;
                say(`${STEP_LABELS[step]} (${detail})`);
              },
              onProgress: (volume, bytes) => {
                if (barFor !== volume || !bar) {
                  barFor = volume;
                  bar = createProgress({
                    label: volume,
                    isTerminal: io === processIo && Deno.stderr.isTerminal(),
                    write: io.err,
                  });
                }
                bar.update(bytes);
              },
            });
            for (const v of r.volumes) {
              op.object({
                kind: "volume",
                name: `${to.name}:${v.pool}/${v.name}`,
                outcome: "created",
              });
            }
            return r;
          });
        } catch (e) {
          if (e instanceof MoveCheckError) {
            e.message = withCopyImageFlag(e.message);
            throw Object.assign(e, { exitCode: ExitCode.VM_OPERATION });
          }
          throw e;
        }
        io.out(`Moved VM '${name}' from ${from.name} to ${to.name}\n`);
      } finally {
        await fleet.pool.closeAll();
      }
    });
}
