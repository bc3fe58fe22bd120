import { Command } from "npm:commander@^15.1.0";
import { loadVirtualMachines } from "../../lib/foundry/loader.ts";
import { type CreateResult, type CreateStep, createVm } from "../../lib/foundry/vm.ts";
import { formatJson } from "../../lib/output/mod.ts";
import type { WaitResult } from "../../lib/foundry/wait.ts";
import type { Io } from "../_program.ts";
import { timeoutMs, waitWithProgress } from "./wait.ts";
import { withFoundryAudit } from "../_audit.ts";
import { checkChoice, configFor, progress, withLibvirt } from "./_context.ts";

const LABELS: Record<CreateStep, string> = {
  validate: "Configuration validated",
  storage: "Storage created",
  cloudinit: "Cloud-init ISO generated",
  define: "Domain defined",
  autostart: "Autostart set",
  start: "VM started",
};

/** `foundry create FILE`: validate, then make every VM of the file; any failure removes what it made. */
export function createCommand(io: Io): Command {
  return new Command("create")
    .description("Create and start the VirtualMachines of a YAML file")
    .argument("<file>", "foundry.cofront.xyz/v1alpha1 VirtualMachine YAML (one or more documents)")
    .option("--pool <name>", "storage pool for the VM's volumes (env FOUNDRY_VM_POOL)")
    .option("--no-start", "define the VM without starting it")
    .option("--wait [stage]", "then wait for agent, ip or cloud-init (default cloud-init)")
    .option("--timeout <seconds>", "with --wait: give up after this long", "600")
    .option("-o, --output <format>", "progress (default) or json", "progress")
    .addHelpText(
      "after",
      "\nExamples:\n  foundry create examples/simple-vm.yaml\n  foundry --connect qemu+ssh://root@host/system create vm.yaml -o json\n",
    )
    .action(async (
      file: string,
      opts: {
        pool?: string;
        start: boolean;
        output: string;
        wait?: string | boolean;
        timeout: string;
      },
      cmd,
    ) => {
      checkChoice(opts.output, ["progress", "json"], "output format");
      const until = typeof opts.wait === "string"
        ? opts.wait
        : opts.wait === true
        ? "cloud-init"
        : undefined;
      if (until !== undefined) checkChoice(until, ["agent", "ip", "cloud-init"], "--wait stage");
      const waitMs = timeoutMs(opts.timeout);
      // The file is read and validated before anything else: bad input never reaches libvirt.
      const vms = await loadVirtualMachines(file);
      const config = await configFor(cmd);
      const say = opts.output === "json" ? () => {} : progress(io);
      const results: CreateResult[] = [];
      const waited = new Map<string, WaitResult>();
      const ac = new AbortController();
      const onSignal = () => ac.abort(new Error("Interrupted; removing what was created"));
      try {
        Deno.addSignalListener("SIGINT", onSignal);
      } catch { /* no signal support (e.g. Windows, tests without permission) */ }
      try {
        await withLibvirt(config, async (lv) => {
          for (const vm of vms) {
            if (opts.output !== "json") io.out(`Creating VM '${vm.metadata.name}'...\n`);
            const secrets = [
              ...(vm.spec.cloudInit?.passwordHash ? [vm.spec.cloudInit.passwordHash] : []),
              ...(vm.spec.cloudInit?.sshAuthorizedKeys ?? []),
            ];
            const r = await withFoundryAudit(cmd, {
              resourceType: "vm",
              name: vm.metadata.name,
              uri: lv.uri.display,
              operation: "create",
              details: {
                vcpus: vm.spec.vcpus,
                memoryGiB: vm.spec.memoryGiB,
                image: vm.spec.bootDisk.image ?? "(empty)",
                interfaces: vm.spec.networkInterfaces.length,
                dataDisks: vm.spec.dataDisks?.length ?? 0,
                sshAuthConfigured: secrets.length > 0,
              },
            }, async (op) => {
              const made = await createVm(lv, vm, {
                config,
                ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
                noStart: !opts.start,
                signal: ac.signal,
                onStep: (step, detail) => say(`${LABELS[step]} (${detail})`),
              });
              for (const v of made.volumes) {
                op.object({ kind: "volume", name: `${v.pool}/${v.name}`, outcome: "created" });
              }
              op.object({ kind: "domain", name: made.vm.metadata.name, outcome: "created" });
              return made;
            }, { secrets, signal: ac.signal });
            results.push(r);
            if (opts.output !== "json") io.out(`Successfully created VM '${vm.metadata.name}'\n`);
            if (until !== undefined && opts.start) {
              const w = await waitWithProgress(
                lv,
                io,
                vm.metadata.name,
                until as "agent" | "ip" | "cloud-init",
                waitMs,
                opts.output === "json",
              );
              waited.set(vm.metadata.name, w);
            }
          }
        });
      } finally {
        try {
          Deno.removeSignalListener("SIGINT", onSignal);
        } catch { /* not added */ }
      }
      if (opts.output === "json") {
        io.out(formatJson(results.map((r) => ({
          name: r.vm.metadata.name,
          uuid: [...r.domain.uuid].map((b) => b.toString(16).padStart(2, "0")).join(""),
          domainType: r.domainType,
          volumes: r.volumes.map((v) => `${v.pool}/${v.name}`),
          timingsMs: Object.fromEntries(
            Object.entries(r.timings).map(([k, v]) => [k, Math.round(v ?? 0)]),
          ),
          ...(waited.has(r.vm.metadata.name) ? { wait: waited.get(r.vm.metadata.name) } : {}),
        }))));
      }
    });
}
