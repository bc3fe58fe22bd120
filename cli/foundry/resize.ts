import { Command } from "npm:commander@^15.1.0";
import { formatJson, sanitizeText } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { signalOption } from "../_signals.ts";
import { checkChoice, configFor, withLibvirt } from "./_context.ts";

const GIB = 1024 ** 3;

function usage(message: string): Error {
  return Object.assign(new Error(message), { exitCode: 2 });
}

/** Parses `--vcpus` (usage error, exit 2, when not a positive integer). */
export function vcpusArg(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text.trim()) || Number(text) < 1) {
    throw usage(`Invalid --vcpus '${text}': expected a whole number of vCPUs >= 1`);
  }
  return Number(text);
}

/** Parses `--memory` in GiB (`1.5`, `2G`, `2GiB`, `512M`/`512MiB` for MiB). */
export function memoryArg(text: string): number {
  const m = /^([0-9]{1,7}(?:\.[0-9]{1,6})?)\s*(G|GB|GiB|M|MB|MiB)?$/i.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!m || !(n > 0)) {
    throw usage(`Invalid --memory '${text}': expected GiB (1.5, 2G) or MiB (1536M)`);
  }
  const gib = /^m/i.test(m[2] ?? "") ? n / 1024 : n;
  if (!Number.isInteger(gib * 1024)) {
    throw usage(`Invalid --memory '${text}': expected a whole number of MiB`);
  }
  return gib;
}

/** `foundry resize NAME [--vcpus N] [--memory GiB] [--disk DEV=SIZE]...`. */
export function resizeCommand(io: Io): Command {
  return new Command("resize")
    .description(
      "Change a VM's vCPUs, memory and disk sizes, live while it runs (within the headroom it was " +
        "created with), else at the next boot",
    )
    .argument("<name>", "VM name")
    .option("--vcpus <n>", "vCPUs")
    .option("--memory <GiB>", "memory in GiB (1.5, 2G) or MiB (1536M)")
    .option(
      "--disk <dev=size>",
      "grow disk DEV to SIZE GB (vdb=20); repeat for more disks",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("-o, --output <format>", "text or json", "text")
    .addHelpText(
      "after",
      `
While the VM runs, vCPUs are hot-plugged (and onlined in the guest through the agent) up to
spec.resources.maxVcpus, memory is moved by the balloon up to spec.resources.maxMemoryGiB (both
reserved at create: by default twice vcpus and memoryGiB), and a disk grows at once, followed by
its partition (growpart, if the guest has it) and filesystem (ext2/3/4, xfs, btrfs; mounted ones)
through the guest agent. More than the maximum is written to the VM's definition and applied at
the next boot (foundry restart NAME); on a stopped VM every change applies at the next start.
Disks never shrink. The stored spec (foundry get) follows every change.

Exit codes: 0 done (also when a change waits for the next boot: see the output), 2 usage (bad
or no size given), 3 connection, 4 refused (a smaller disk, a disk the VM lacks, a VM foundry did
not create) or a libvirt step failed, 130 interrupted.

Examples:
  foundry resize web-01 --vcpus 4
  foundry resize web-01 --memory 6 --vcpus 3
  foundry resize web-01 --disk vdb=50 --disk vda=20
  foundry resize web-01 --memory 1536M -o json
`,
    )
    .action(
      async (
        name: string,
        opts: { vcpus?: string; memory?: string; disk?: string[]; output: string },
        cmd: Command,
      ) => {
        checkChoice(opts.output, ["text", "json"], "output format");
        const { parseDiskArg, resizeVm } = await import("../../lib/foundry/resize.ts");
        const req: {
          vcpus?: number;
          memoryGiB?: number;
          disks?: { device: string; sizeGB: number }[];
        } = {};
        if (opts.vcpus !== undefined) req.vcpus = vcpusArg(opts.vcpus);
        if (opts.memory !== undefined) req.memoryGiB = memoryArg(opts.memory);
        if (opts.disk !== undefined) {
          req.disks = opts.disk.map((d) => {
            try {
              return parseDiskArg(d);
            } catch (e) {
              throw usage(`Invalid --disk: ${(e as Error).message}`);
            }
          });
        }
        if (Object.keys(req).length === 0) {
          throw usage("Nothing to resize: give --vcpus, --memory or --disk");
        }
        const text = opts.output === "text";
        const config = await configFor(cmd);
        const vmName = name.toLowerCase();
        const r = await withLibvirt(config, (lv) =>
          withFoundryAudit(
            cmd,
            {
              resourceType: "vm",
              name: vmName,
              uri: lv.uri.display,
              operation: "resize",
              details: { ...req },
            },
            () =>
              resizeVm(lv, vmName, req, {
                onStep: (line) => {
                  if (text) io.out(`${sanitizeText(line, { singleLine: true })}\n`);
                },
              }),
            signalOption(),
          ));
        if (!text) {
          io.out(formatJson(r));
          return;
        }
        for (const c of r.changes) {
          const what = c.what === "vcpus"
            ? `vCPUs ${c.from} -> ${c.to}`
            : c.what === "memory"
            ? `memory ${c.from / 1024} -> ${c.to / 1024} GiB`
            : `disk ${c.device} ${c.from / GIB} -> ${c.to / GIB} GB`;
          const when = c.applied === "live"
            ? "done live"
            : c.applied === "nextBoot"
            ? "at the next boot"
            : "unchanged";
          io.out(`VM '${r.name}': ${what}: ${when}\n`);
          for (const fs of c.filesystems ?? []) {
            io.out(
              sanitizeText(
                `  ${fs.device} ${fs.type} on ${fs.mountpoint || "(not mounted)"}: ${
                  fs.grown ? "grown" : "not grown"
                }${fs.note ? ` (${fs.note})` : ""}`,
                { singleLine: true },
              ) + "\n",
            );
          }
          if (c.message) io.out(`  ${sanitizeText(c.message, { singleLine: true })}\n`);
        }
      },
    );
}
