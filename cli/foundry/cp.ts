import { Command } from "npm:commander@^15.1.0";
import { formatJson } from "../../lib/output/mod.ts";
import { type Io, isTerminalIo } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice } from "./_context.ts";
import { withVmDomain } from "./exec.ts";

/** One side of a copy: a guest path (`NAME:/path`) or a local one. */
export type CopyEnd = { vm: string; path: string } | { local: string };

/**
 * Reads a cp operand: `NAME:/abs/path` is in the VM NAME (VM names hold no `:` or `/`), anything
 * else is local (`./a:b` stays local).
 */
export function parseCopyEnd(text: string): CopyEnd {
  const m = /^([a-z0-9][a-z0-9.-]*):(.*)$/i.exec(text);
  if (!m) return { local: text };
  const path = m[2]!;
  if (!path.startsWith("/")) {
    throw Object.assign(
      new Error(`Invalid guest path '${text}': expected NAME:/absolute/path`),
      { exitCode: 2 },
    );
  }
  return { vm: m[1]!.toLowerCase(), path };
}

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** Parses a size such as `512K`, `100M`, `1G` or a number of bytes (usage error, exit 2). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i.exec(text.trim());
  const n = m ? Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw Object.assign(
      new Error(`Invalid --max-size '${text}': expected a size such as 100M or 1G`),
      { exitCode: 2 },
    );
  }
  return n;
}

function human(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

/** `foundry cp SRC DEST`. */
export function cpCommand(io: Io): Command {
  return new Command("cp")
    .description("Copy a file into or out of a VM through the guest agent, byte for byte")
    .argument("<source>", "LOCAL_FILE or NAME:/path")
    .argument("<destination>", "NAME:/path or LOCAL_PATH (a directory keeps the file's name)")
    .option("--max-size <size>", "refuse files larger than this", "256M")
    .option("-o, --output <format>", "text (default) or json")
    .addHelpText(
      "after",
      `
One side is a VM (NAME:/absolute/path), the other a local path. The data goes to a temporary
file beside the destination (mode 0600), renamed over it once complete and removed on failure,
so no partial file is ever left under the real name on either side. Into the guest the file
keeps its local permission bits; out of it a new file gets 0644 (a replaced one keeps its mode).
A copy goes at roughly the agent's pace (64 KiB per round trip): --max-size (default 256M)
bounds it. Progress shows on a terminal.

Exit codes: 0 copied, 1 the local file cannot be read or written, 2 usage (both or neither side in a VM, bad size), 3 connection,
4 the VM is missing, not running, its agent does not answer, the guest refused the file (no such
file or directory, no space) or the file is larger than --max-size, 130 interrupted.

Examples:
  foundry cp ./app.conf web-01:/etc/app.conf
  foundry cp web-01:/var/log/syslog ./
  foundry cp --max-size 1G ./data.tar web-01:/srv/
`,
    )
    .action(
      async (
        src: string,
        dest: string,
        opts: { maxSize: string; output?: string },
        cmd: Command,
      ) => {
        const output = opts.output ?? "text";
        checkChoice(output, ["text", "json"], "output format");
        const from = parseCopyEnd(src);
        const to = parseCopyEnd(dest);
        if (("vm" in from) === ("vm" in to)) {
          throw Object.assign(
            new Error("Exactly one of source and destination must be NAME:/path in a VM"),
            { exitCode: 2 },
          );
        }
        const maxBytes = parseSize(opts.maxSize);
        const name = "vm" in from ? from.vm : (to as { vm: string }).vm;
        const tty = isTerminalIo(io) && output === "text";
        let shown = 0;
        const onProgress = tty
          ? (done: number, total: number | undefined) => {
            const now = performance.now();
            if (now - shown < 200 && done !== total) return;
            shown = now;
            const pct = total ? ` (${Math.floor((done / total) * 100)}%)` : "";
            io.err(`\r\x1b[K${human(done)}${total ? ` of ${human(total)}` : ""}${pct}`);
          }
          : undefined;
        const signal = interruptSignal();
        const { copyFromGuest, copyToGuest } = await import("../../lib/foundry/guest_files.ts");
        const copts = {
          maxBytes,
          ...(onProgress ? { onProgress } : {}),
          ...(signal ? { signal } : {}),
        };
        try {
          const r = await withVmDomain(
            cmd,
            name,
            (lv, domain) =>
              "vm" in from
                ? copyFromGuest(lv, domain, from.path, (to as { local: string }).local, copts)
                : copyToGuest(
                  lv,
                  domain,
                  (from as { local: string }).local,
                  (to as { path: string }).path,
                  copts,
                ),
          );
          if (tty) io.err("\r\x1b[K");
          const where = "vm" in to ? `${name}:${r.destination}` : r.destination;
          if (output === "json") {
            io.out(formatJson({ vm: name, destination: r.destination, bytes: r.bytes }));
          } else io.out(`Copied ${r.bytes} bytes to ${where}\n`);
        } catch (e) {
          if (tty) io.err("\r\x1b[K");
          throw e;
        }
      },
    );
}
