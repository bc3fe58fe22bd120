/**
 * `foundry events [NAME]`: the daemon's live events (lifecycle, agent, reboot, block job, disk
 * change, device removed) one line each, or JSON lines, until Ctrl-C.
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import { type VmEvent, watchEvents } from "../../lib/foundry/events.ts";
import { sanitizeText } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, withLibvirt } from "./_context.ts";

const FORMATS = ["text", "json"] as const;

/** Widths of the text columns (a stream cannot measure its rows before printing them). */
const WIDTH = { time: 24, vm: 20, event: 20 } as const;

/** The header of the text format. */
export const EVENTS_HEADER = `${"TIME".padEnd(WIDTH.time)}  ${"VM".padEnd(WIDTH.vm)}  ${
  "EVENT".padEnd(WIDTH.event)
}  DETAIL\n`;

/** One event as a line of text: `TIME VM EVENT DETAIL` (names without control characters). */
export function eventLine(e: VmEvent): string {
  const one = (s: string) => sanitizeText(s, { singleLine: true });
  return `${e.time.padEnd(WIDTH.time)}  ${one(e.vm || "-").padEnd(WIDTH.vm)}  ${
    e.event.padEnd(WIDTH.event)
  }  ${one(e.detail)}`.trimEnd() + "\n";
}

/** `foundry events [NAME]`. */
export function eventsCommand(io: Io): Command {
  return new Command("events")
    .description(
      "Stream the daemon's VM events (lifecycle, agent, reboot, block job, disk change, device removed)",
    )
    .argument("[name]", "only this VM's events")
    .option("-o, --output <format>", `output format: ${FORMATS.join(", ")}`, "text")
    .option("--no-headers", "leave out the header line of the text format")
    .addHelpText(
      "after",
      "\nOne line per event: TIME (UTC, when received) VM EVENT DETAIL. EVENT is one of the" +
        "\nlifecycle events (Defined, Undefined, Started, Suspended, Resumed, Stopped, Shutdown," +
        "\nPMSuspended, Crashed; DETAIL says how, e.g. Booted, Destroyed), AgentConnected," +
        "\nAgentDisconnected, Rebooted, BlockJobCompleted/Failed/Canceled/Ready (DETAIL: disk and" +
        "\njob), DiskChanged, DeviceRemoved, and EventsDropped when the output fell more than" +
        "\n1024 events behind. -o json prints one JSON object a line with the same fields and the" +
        "\ndaemon's codes (data). Events of every domain are shown, not only foundry's, unless" +
        "\nNAME is given. Runs until Ctrl-C." +
        "\n\nExit codes: 130 after Ctrl-C (the normal end), 3 no connection or the connection" +
        "\nwas lost, 4 no such VM." +
        "\n\nExamples:\n  foundry events\n  foundry events web-01 -o json\n",
    )
    .action(
      async (
        name: string | undefined,
        opts: { output: string; headers: boolean },
        cmd: Command,
      ) => {
        checkChoice(opts.output, FORMATS, "output format");
        const config = await configFor(cmd);
        const signal = interruptSignal();
        await withLibvirt(config, async (lv) => {
          const events = watchEvents(lv, {
            ...(name !== undefined ? { domain: name.toLowerCase() } : {}),
            ...(signal ? { signal } : {}),
            onReady: () => {
              // On stderr, so that JSON lines stay alone on stdout; also tells a script when
              // events from then on are seen.
              io.err(`Watching events of ${name ? `VM ${name}` : "every VM"}; Ctrl-C to stop\n`);
              if (opts.output === "text" && opts.headers !== false) io.out(EVENTS_HEADER);
            },
          });
          for await (const e of events) {
            io.out(opts.output === "json" ? `${JSON.stringify(e)}\n` : eventLine(e));
          }
        });
      },
    );
}
