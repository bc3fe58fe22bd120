import { Command } from "npm:commander@^15.1.0";
import type { DomainRef, Libvirt } from "../../lib/libvirt/mod.ts";
import { formatJson } from "../../lib/output/mod.ts";
import { type Io, processIo, setExitCode } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, withLibvirt } from "./_context.ts";

/** foundry's exit code when `exec --timeout` ended the command (as coreutils' timeout(1)). */
export const EXIT_EXEC_TIMEOUT = 124;
/** Most bytes of each stream kept for `exec -o json` (the rest is counted, not kept). */
const JSON_KEEP_BYTES = 1024 * 1024;

/**
 * A sink for a guest command's output bytes: raw to the process's stdout or stderr (binary-safe),
 * or decoded as UTF-8 text into `io` (tests, embedding scripts).
 */
export function byteSink(io: Io, stream: "out" | "err"): (bytes: Uint8Array) => void {
  if (io === processIo) {
    const f = stream === "out" ? Deno.stdout : Deno.stderr;
    return (bytes) => {
      for (let off = 0; off < bytes.length;) {
        try {
          off += f.writeSync(bytes.subarray(off));
        } catch (e) {
          if (e instanceof Deno.errors.BrokenPipe) return; // the reader went away
          throw e;
        }
      }
    };
  }
  const dec = new TextDecoder();
  const put = stream === "out" ? io.out : io.err;
  return (bytes) => put(dec.decode(bytes, { stream: true }));
}

/** Looks `name` up (VmNotFoundError when missing) and runs `fn` with a connection and its domain. */
export async function withVmDomain<T>(
  cmd: Command,
  name: string,
  fn: (lv: Libvirt, domain: DomainRef) => Promise<T>,
): Promise<T> {
  const config = await configFor(cmd);
  const { lookupVm } = await import("../../lib/foundry/lookup.ts");
  try {
    return await withLibvirt(config, async (lv) => fn(lv, (await lookupVm(lv, name)).domain));
  } catch (e) {
    // The guest's refusals are VM operations (exit 4); the shared table does not name them.
    if (e instanceof Error && /^GuestAgentError$|^GuestFileTooLargeError$/.test(e.name)) {
      throw Object.assign(e, { exitCode: 4 });
    }
    throw e;
  }
}

/** Parses `--timeout` seconds (usage error, exit 2, unless > 0). */
export function secondsFlag(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw Object.assign(new Error(`Invalid ${flag} '${text}': expected seconds > 0`), {
      exitCode: 2,
    });
  }
  return n;
}

async function readStdin(max: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of Deno.stdin.readable) {
    total += chunk.length;
    if (total > max) {
      throw Object.assign(
        new Error(`stdin is larger than ${max} bytes, the most -i sends to the guest`),
        { exitCode: 2 },
      );
    }
    parts.push(chunk);
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return all;
}

/** Keeps the first `max` bytes of a stream, counting the rest. */
function keeper(max: number) {
  const parts: Uint8Array[] = [];
  let kept = 0;
  let total = 0;
  return {
    add(bytes: Uint8Array) {
      total += bytes.length;
      const room = max - kept;
      if (room > 0) {
        parts.push(bytes.slice(0, room));
        kept += Math.min(room, bytes.length);
      }
    },
    text(): string {
      const dec = new TextDecoder();
      return parts.map((p) => dec.decode(p, { stream: true })).join("") + dec.decode();
    },
    get truncated() {
      return total > kept;
    },
  };
}

const EXIT_HELP = `
Exit codes: once the command ran, foundry ends with the command's own exit code (128+N when
signal N ended it), so scripts read it as they would over ssh. Codes from foundry itself come
with an "Error:" line on stderr: 2 usage, 3 connection, 4 the VM is missing, not running or its
agent does not answer, ${EXIT_EXEC_TIMEOUT} --timeout passed (the command was sent SIGTERM, then
SIGKILL 3 s later), 130 interrupted (the command was ended the same way). A command that is
not found exits 127 (the guest's shell says so on stderr).

Output streams as the command writes it (read from the guest every 50-500 ms). The guest needs
/bin/sh and mktemp; the output passes through a private directory under /tmp in the guest.
`;

/** `foundry exec NAME -- CMD ARGS...`. */
export function execCommand(io: Io): Command {
  return new Command("exec")
    .description("Run a command in a VM through the guest agent (no network, no SSH)")
    .argument("<name>", "VM name")
    .argument("<command...>", "the command and its arguments (after --)")
    .option("-i, --stdin", "send this process's stdin to the command (at most 8 MiB)")
    .option("--timeout <seconds>", "end the command after this long (exit 124)")
    .option("-o, --output <format>", "stream (default) or json (collected, 1 MiB per stream)")
    .addHelpText("after", EXIT_HELP)
    .addHelpText(
      "after",
      "\nExamples:\n  foundry exec web-01 -- uname -a\n" +
        "  foundry exec web-01 --timeout 60 -- apt-get update\n" +
        "  echo hello | foundry exec web-01 -i -- tee /tmp/hello\n" +
        "  foundry exec web-01 -o json -- systemctl is-active nginx\n",
    )
    .action(
      async (
        name: string,
        argv: string[],
        opts: { stdin?: boolean; timeout?: string; output?: string },
        cmd: Command,
      ) => {
        const output = opts.output ?? "stream";
        checkChoice(output, ["stream", "json"], "output format");
        const timeoutS = opts.timeout === undefined
          ? undefined
          : secondsFlag("--timeout", opts.timeout);
        const { guestExecStream, GUEST_EXEC_MAX_STDIN } = await import(
          "../../lib/foundry/guest_exec.ts"
        );
        const stdin = opts.stdin ? await readStdin(GUEST_EXEC_MAX_STDIN) : undefined;
        const out = keeper(JSON_KEEP_BYTES);
        const err = keeper(JSON_KEEP_BYTES);
        const signal = interruptSignal();
        const r = await withVmDomain(
          cmd,
          name.toLowerCase(),
          (lv, domain) =>
            guestExecStream(lv, domain, argv, {
              ...(stdin ? { stdin } : {}),
              ...(timeoutS !== undefined ? { timeoutMs: timeoutS * 1000 } : {}),
              ...(signal ? { signal } : {}),
              onStdout: output === "json" ? out.add : byteSink(io, "out"),
              onStderr: output === "json" ? err.add : byteSink(io, "err"),
            }),
        );
        if (output === "json") {
          io.out(formatJson({
            exitCode: r.exitCode,
            ...(r.signal !== undefined ? { signal: r.signal } : {}),
            timedOut: r.timedOut,
            stdout: out.text(),
            stderr: err.text(),
            ...(out.truncated ? { stdoutTruncated: true } : {}),
            ...(err.truncated ? { stderrTruncated: true } : {}),
          }));
        }
        if (r.timedOut) {
          io.err(`Error: the command did not finish within ${timeoutS} s; it was ended\n`);
          return setExitCode(cmd, EXIT_EXEC_TIMEOUT);
        }
        setExitCode(cmd, r.exitCode < 0 || r.exitCode > 255 ? 255 : r.exitCode);
      },
    );
}
