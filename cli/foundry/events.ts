/**
 * `foundry events [NAME]`: the daemon's live events (lifecycle, agent, reboot, block job, disk
 * change, device removed) one line each, or JSON lines, until Ctrl-C. With `--host`/
 * `--host-selector` the events of every chosen host are merged, each with its host (the fleet
 * code is loaded only then).
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import { type VmEvent, watchEvents } from "../../lib/foundry/events.ts";
import type { HostOutcome } from "../../lib/foundry/fleet_types.ts";
import { sanitizeText } from "../../lib/output/mod.ts";
import { ExitCode, type Io } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, globals, withLibvirt } from "./_context.ts";
import type { FleetGlobals } from "./_fleet.ts";

const FORMATS = ["text", "json"] as const;

/** Widths of the text columns (a stream cannot measure its rows before printing them). */
const WIDTH = { host: 12, time: 24, vm: 20, event: 20 } as const;

/** The header of the text format. */
export const EVENTS_HEADER = `${"TIME".padEnd(WIDTH.time)}  ${"VM".padEnd(WIDTH.vm)}  ${
  "EVENT".padEnd(WIDTH.event)
}  DETAIL\n`;

/** The header of the text format across hosts: a HOST column first. */
export const FLEET_EVENTS_HEADER = `${"HOST".padEnd(WIDTH.host)}  ${EVENTS_HEADER}`;

const one = (s: string) => sanitizeText(s, { singleLine: true });

/**
 * One event as a line of text: `TIME VM EVENT DETAIL` (names without control characters); with
 * `host`, `HOST` first.
 */
export function eventLine(e: VmEvent, host?: string): string {
  return `${host === undefined ? "" : `${one(host).padEnd(WIDTH.host)}  `}${
    e.time.padEnd(WIDTH.time)
  }  ${one(e.vm || "-").padEnd(WIDTH.vm)}  ${e.event.padEnd(WIDTH.event)}  ${one(e.detail)}`
    .trimEnd() + "\n";
}

/** Text or JSON output of events. */
interface EventsFlags {
  output: string;
  headers: boolean;
}

/**
 * `events [NAME] --host ...`: the chosen hosts' events merged until Ctrl-C. A host that fails (at
 * the start or during the watch) gets its own error line on stderr and the others go on; the run
 * then ends with the fleet summary (exit 7 when others were watched; an interrupt still ends with
 * 130). The stream ends by itself when no host is left.
 */
async function eventsOnFleet(
  cmd: Command,
  io: Io,
  name: string | undefined,
  flags: EventsFlags,
): Promise<void> {
  const { finishOutcomes, fleetGlobals, hostErrorLine, openFleet } = await import("./_fleet.ts");
  const { watchFleetEvents } = await import("../../lib/foundry/fleet_events.ts");
  const fleet = openFleet(await configFor(cmd), fleetGlobals(cmd));
  const signal = interruptSignal();
  const failed = new Map<string, Error>();
  let watched: string[] = [];
  try {
    const stream = watchFleetEvents(fleet.pool, fleet.hosts, {
      ...(name !== undefined ? { domain: name.toLowerCase() } : {}),
      ...(signal ? { signal } : {}),
    });
    for await (const x of stream) {
      if (x.type === "hostFailed") {
        failed.set(x.host, x.error);
        io.err(hostErrorLine(x.host, x.error));
      } else if (x.type === "watching") {
        watched = x.hosts;
        if (watched.length === 0) continue;
        io.err(
          `Watching events of ${name ? `VM ${one(name)}` : "every VM"} on host${
            watched.length > 1 ? "s" : ""
          } ${watched.join(", ")}; Ctrl-C to stop\n`,
        );
        if (flags.output === "text" && flags.headers !== false) io.out(FLEET_EVENTS_HEADER);
      } else {
        io.out(
          flags.output === "json"
            ? `${JSON.stringify({ host: x.host, ...x.event })}\n`
            : eventLine(x.event, x.host),
        );
      }
    }
  } finally {
    await fleet.pool.closeAll();
  }
  const answered = fleet.hosts.filter((h) => !failed.has(h.name)).map((h) => h.name);
  if (name !== undefined && watched.length === 0 && answered.length && !signal?.aborted) {
    const missing = `VM '${one(name.slice(0, 100))}' not found on host${
      answered.length > 1 ? "s" : ""
    } ${answered.join(", ")}`;
    if (failed.size === 0) {
      throw Object.assign(new Error(missing), { exitCode: ExitCode.VM_OPERATION });
    }
    io.err(`Error: ${missing}\n`);
  }
  finishOutcomes(
    io,
    fleet.hosts.map((h): HostOutcome<unknown> =>
      failed.has(h.name)
        ? { host: h.name, ok: false, error: failed.get(h.name)! }
        : { host: h.name, ok: true, value: undefined }
    ),
    true,
  );
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
        "\n\nWith --host/--host-selector the events of every chosen host are merged as they come," +
        "\nwith a HOST column (-o json: a host field); NAME is watched on the hosts that have it." +
        "\nA host that cannot be reached, or whose connection ends during the watch, gets its own" +
        "\nerror line on stderr and the others go on (every chosen host is watched at once)." +
        "\n\nExit codes: 130 after Ctrl-C (the normal end), 3 no connection or the connection" +
        "\nwas lost, 4 no such VM; with --host, when every host is lost the stream ends with their" +
        "\ncode." +
        "\n\nExamples:\n  foundry events\n  foundry events web-01 -o json\n  foundry events --host all\n",
    )
    .action(
      async (
        name: string | undefined,
        opts: { output: string; headers: boolean },
        cmd: Command,
      ) => {
        checkChoice(opts.output, FORMATS, "output format");
        const g = globals(cmd) as FleetGlobals;
        if (g.host !== undefined || g.hostSelector !== undefined) {
          return eventsOnFleet(cmd, io, name, opts);
        }
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
