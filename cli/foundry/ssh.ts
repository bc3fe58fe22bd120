import { Command } from "npm:commander@^15.1.0";
import { type Io, setExitCode } from "../_program.ts";
import { envOf } from "./_context.ts";
import { withVmDomain } from "./exec.ts";

/** The environment variables that give ssh's user and key when no flag does. */
export const SSH_ENV = { user: "FOUNDRY_SSH_USER", key: "FOUNDRY_SSH_KEY" } as const;

/** Quotes `s` for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** ssh's argument list for `address` (ssh's own options first, the remote command last). */
export function sshArgv(
  address: string,
  opts: { user: string; key?: string; extra?: readonly string[]; command?: readonly string[] },
): string[] {
  return [
    ...(opts.key ? ["-i", opts.key] : []),
    "-l",
    opts.user,
    ...(opts.extra ?? []),
    "--",
    address,
    ...(opts.command ?? []),
  ];
}

/** `foundry ssh NAME [-- COMMAND...]`. */
export function sshCommand(io: Io): Command {
  return new Command("ssh")
    .description("Run the system ssh to a VM's live address (from the guest agent)")
    .argument("<name>", "VM name")
    .argument("[command...]", "a command to run instead of a login shell (after --)")
    .option("-l, --user <user>", `remote user (env ${SSH_ENV.user}; default root)`)
    .option("-i, --identity <file>", `private key (env ${SSH_ENV.key}; default ssh's own)`)
    .option(
      "--ssh-option <option>",
      "pass -o OPTION to ssh (repeatable)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--print", "print the ssh command instead of running it")
    .addHelpText(
      "after",
      `
The address is the VM's live IPv4 address as its guest agent reports it (the first one that is
in the VM's spec, else the first non-loopback one); without an agent answer, the spec's first
address. foundry authorises spec.cloudInit.sshAuthorizedKeys for root, hence the default user.

Exit codes: ssh's own (255 for ssh's failures); from foundry itself, with an "Error:" line:
2 usage, 3 connection, 4 the VM is missing or has no address.

Examples:
  foundry ssh web-01
  foundry ssh web-01 -l debian -i ~/.ssh/id_ed25519
  foundry ssh web-01 -- systemctl status nginx
  foundry ssh web-01 --print
`,
    )
    .action(
      async (
        name: string,
        command: string[],
        opts: { user?: string; identity?: string; sshOption: string[]; print?: boolean },
        cmd: Command,
      ) => {
        const env = envOf(cmd);
        const user = opts.user ?? env(SSH_ENV.user) ?? "root";
        const key = opts.identity ?? env(SSH_ENV.key);
        const { vmAddress } = await import("../../lib/foundry/guest_address.ts");
        const address = await withVmDomain(cmd, name.toLowerCase(), async (lv, domain) => {
          const { lookupVm } = await import("../../lib/foundry/lookup.ts");
          const { vm } = await lookupVm(lv, name.toLowerCase());
          return vmAddress(lv, domain, vm);
        });
        const argv = sshArgv(address, {
          user,
          ...(key ? { key } : {}),
          extra: opts.sshOption.flatMap((o) => ["-o", o]),
          command,
        });
        if (opts.print) {
          io.out(`${["ssh", ...argv].map(shellQuote).join(" ")}\n`);
          return;
        }
        const child = new Deno.Command("ssh", {
          args: argv,
          stdin: "inherit",
          stdout: "inherit",
          stderr: "inherit",
        }).spawn();
        const status = await child.status;
        setExitCode(cmd, status.code);
      },
    );
}
