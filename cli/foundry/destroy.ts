import { Command, Option } from "npm:commander@^15.1.0";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import { type Io, isTerminalIo } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { signalOption } from "../_signals.ts";
import { openStatusLine, stageLine, type StatusLine } from "../_status.ts";
import { configFor, envOf } from "./_context.ts";
import { withTargets } from "./_fleet.ts";
import { checkTargets, forEachTarget, type TargetOptions, targetOptions } from "./_targets.ts";

const TARGETS = ["libvirt", "kubevirt"];

/**
 * `foundry destroy NAME...`: graceful shutdown, forced after the timeout, undefine, delete
 * volumes. While the guest is given its grace period a terminal shows a live line.
 */
export function destroyCommand(io: Io): Command {
  return targetOptions(
    new Command("destroy").aliases(["rm", "delete"])
      .description("Stop VMs, remove their definitions, NVRAM and volumes"),
  )
    .option("--timeout <seconds>", "wait this long for a graceful shutdown before forcing off")
    .option("--force", "also remove a domain foundry did not create (its disks are kept)")
    .addOption(new Option("--target <target>", "libvirt (default) or kubevirt").choices(TARGETS))
    .option("--kubeconfig <path>", "kubevirt: kubeconfig file (default: in-cluster, KUBECONFIG)")
    .option("--context <name>", "kubevirt: kubeconfig context")
    .option("-n, --namespace <name>", "kubevirt: namespace (default: default)")
    .addHelpText(
      "after",
      "\nOnly the volumes foundry created for the VM are deleted (recorded at create time), and only\n" +
        "while no other domain uses them; every other disk is left alone and listed as kept.\n",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  foundry destroy web-01\n  foundry destroy web-01 web-02 --timeout 30\n" +
        "  foundry destroy -l role=web\n  foundry destroy web-01 --ignore-not-found\n",
    )
    .action(
      async (
        names: string[],
        opts: TargetOptions & { timeout?: string; force?: boolean; target?: string },
        cmd,
      ) => {
        // issue 16: the KubeVirt target, loaded only when asked for (it refuses its options alone)
        const given = (o: Option) => cmd.getOptionValueSource(o.attributeName()) !== undefined;
        const kubevirtOnly = (o: Option) => o.description.startsWith("kubevirt:") && given(o);
        if (opts.target === "kubevirt" || cmd.options.some(kubevirtOnly)) {
          return (await import("./_kubevirt_target.ts")).kubevirtDestroy(io, names, opts, cmd);
        }
        checkTargets(names, opts);
        const flagSeconds = opts.timeout === undefined ? undefined : positiveSeconds(opts.timeout);
        const config = await configFor(cmd);
        const { destroyVm } = await import("../../lib/foundry/vm.ts");
        const timeoutSeconds = flagSeconds ?? config.destroyTimeoutSeconds;
        const tty = { isTerminal: isTerminalIo(io), env: envOf(cmd) };
        await withTargets(cmd, io, config, names, opts, async (lv, io, targets) => {
          await forEachTarget(cmd, io, lv, targets, opts, async (name) => {
            io.out(`Destroying VM '${name}'...\n`);
            // The live line times the grace period, from the shutdown request on.
            let status: StatusLine | undefined;
            const say = (text: string) =>
              status ? status.line(stageLine(tty, text)) : io.out(`${stageLine(tty, text)}\n`);
            let kept;
            try {
              ({ disksKept: kept } = await withFoundryAudit(cmd, {
                resourceType: "vm",
                name,
                uri: lv.uri.display,
                operation: "destroy",
                details: { timeoutSeconds, force: opts.force === true },
              }, async (op) => {
                const r = await destroyVm(lv, name, {
                  timeoutSeconds,
                  force: opts.force === true,
                  onStep: (step, detail) => {
                    say(detail);
                    if (step === "shutdown") {
                      status = openStatusLine({ ...tty, write: io.out, timeoutSeconds });
                      status.status(`VM '${name}': graceful shutdown, then forced off`);
                    } else status?.done();
                  },
                });
                op.event({
                  level: "info",
                  reason: r.graceful ? "GracefulShutdown" : "ForcedOff",
                  object: `VirtualMachine/${name}`,
                  message:
                    `${r.volumesDeleted.length} volumes deleted: ${r.volumesDeleted.join(", ")}` +
                    r.disksKept.map((k) => `; kept ${k.disk} (${k.reason})`).join(""),
                });
                return r;
              }, signalOption()));
            } finally {
              status?.done();
            }
            for (const k of kept) io.out(`kept ${printable(k.disk)} (${printable(k.reason)})\n`);
            io.out(`Successfully destroyed VM '${name}'\n`);
          });
        });
      },
    );
}

/** A disk path or reason (the domain's, not ours) on one line, without control characters. */
function printable(text: string): string {
  return sanitizeText(text, { singleLine: true });
}

/** Parses a timeout flag; a bad value is a usage error (exit 2). */
export function positiveSeconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw Object.assign(new Error(`Invalid --timeout '${text}': expected seconds >= 0`), {
      exitCode: 2,
    });
  }
  return n;
}
