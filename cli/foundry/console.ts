import { Command } from "npm:commander@^15.1.0";
import { Libvirt, LibvirtError } from "../../lib/libvirt/mod.ts";
import type { Io } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, withLibvirt } from "./_context.ts";
import { byteSink } from "./exec.ts";

/** Puts the process's terminal in raw mode until the returned function is called (idempotent). */
function rawTerminal(): () => void {
  let isTty = false;
  try {
    isTty = Deno.stdin.isTerminal();
  } catch { /* no stdin */ }
  if (!isTty) return () => {};
  Deno.stdin.setRaw(true);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    try {
      Deno.stdin.setRaw(false);
    } catch { /* the terminal is gone */ }
    globalThis.removeEventListener("unload", restore);
  };
  // A second interrupt exits at once (see _signals.ts): the terminal is restored even then.
  globalThis.addEventListener("unload", restore);
  return restore;
}

/** `foundry console NAME --graphics`: the graphical console's address. */
async function printGraphics(io: Io, name: string, output: string, cmd: Command): Promise<void> {
  checkChoice(output, ["text", "json"], "output format");
  const config = await configFor(cmd);
  const { vmGraphicsAddress } = await import("../../lib/foundry/graphics_console.ts");
  await withLibvirt(config, async (lv) => {
    const a = await vmGraphicsAddress(lv, name.toLowerCase());
    const { formatJson, sanitizeText } = await import("../../lib/output/mod.ts");
    io.out(output === "json" ? formatJson(a) : `${sanitizeText(a.url)}\n`);
  });
}

/** `foundry console NAME`. */
export function consoleCommand(io: Io): Command {
  return new Command("console")
    .description("Attach to a VM's serial console (Ctrl-] leaves), or print its graphics address")
    .argument("<name>", "VM name")
    .option("--graphics", "print the VNC/SPICE address (vnc://HOST:PORT) and exit")
    .option("-o, --output <format>", "with --graphics: text (default) or json", "text")
    .option("--force", "take the console over from another client that holds it")
    .option("--device <alias>", "the console or serial device (default the first console)")
    .addHelpText(
      "after",
      `
The console travels over foundry's own libvirt connection (works over qemu+ssh:// too). On a
terminal, keys go to the guest as typed (raw mode: Ctrl-C reaches the guest); Ctrl-] leaves and
the terminal is restored, as it is on every other way out. Without --force, a console another
client holds is refused (exit 4); --force takes it over and the other client is disconnected.
What the guest prints goes to the terminal as it is, control sequences included.

With --graphics, the address of the VM's graphical console (spec.graphics) is printed from its
live definition, for a VNC or SPICE viewer; a listen address of 0.0.0.0 is shown as the host's
name. A VM without graphics, or not running, exits 4.

Exit codes: 0 left with Ctrl-] or the console ended (the VM stopped), 3 connection,
4 the VM is missing, not running, or its console is held by another client (or was taken over
during the session), 130 interrupted (SIGINT, SIGTERM or SIGHUP from outside).

Examples:
  foundry console web-01
  foundry console web-01 --force
  foundry console web-01 --graphics
  foundry -c qemu+ssh://root@host/system console web-01
`,
    )
    .action(async (
      name: string,
      opts: { force?: boolean; device?: string; graphics?: boolean; output: string },
      cmd: Command,
    ) => {
      if (opts.graphics) return await printGraphics(io, name, opts.output, cmd);
      const { runConsoleSession } = await import("../../lib/foundry/guest_console.ts");
      const signal = interruptSignal();
      const out = byteSink(io, "out");
      const config = await configFor(cmd);
      const { lookupVm } = await import("../../lib/foundry/lookup.ts");
      // A connection of its own, not tied to the interrupt signal: an interrupt would abort its
      // streams, and the session must end with a finish (see below).
      const lv = await Libvirt.connect(config.uri);
      try {
        const { domain } = await lookupVm(lv, name.toLowerCase());
        // No signal given to the console itself: an interrupt ends the session with a clean
        // finish, never an abort (libvirt 9.0 can deadlock on an abort racing a forced open).
        const con = await lv.openConsole(domain, {
          ...(opts.force ? { force: true } : {}),
          ...(opts.device ? { device: opts.device } : {}),
        }).catch((e) => {
          if (e instanceof LibvirtError && e.isConsoleBusy()) {
            throw new LibvirtError({
              code: e.code,
              domain: e.domain,
              level: e.level,
              message: `The console of VM '${domain.name}' is held by another client; ` +
                "use --force to take it over",
            }, { cause: e });
          }
          throw e;
        });
        io.err(`Connected to the console of VM '${domain.name}' (Ctrl-] leaves)\r\n`);
        const restore = rawTerminal();
        let end: string;
        try {
          end = await runConsoleSession(con, {
            input: Deno.stdin.readable,
            output: out,
            ...(signal ? { signal } : {}),
          });
        } finally {
          restore();
        }
        io.err(
          end === "ended"
            ? `\nThe console of VM '${domain.name}' ended\n`
            : `\nLeft the console of VM '${domain.name}'\n`,
        );
      } finally {
        await lv.close();
      }
    });
}
