import { Command, Option } from "npm:commander@^15.1.0";
import type { CreateResult, CreateStep } from "../../lib/foundry/vm.ts";
import type { CreateSummary } from "../../lib/foundry/create_many.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { formatJson, sanitizeText } from "../../lib/output/mod.ts";
import type { WaitResult } from "../../lib/foundry/wait.ts";
import { exitCodeFor, type Io, setExitCode } from "../_program.ts";
import { timeoutMs, waitWithProgress } from "./wait.ts";
import { withFoundryAudit } from "../_audit.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, progress, withLibvirt } from "./_context.ts";

const TARGETS = ["libvirt", "kubevirt"];
const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

const LABELS: Record<CreateStep, string> = {
  validate: "Configuration validated",
  storage: "Storage created",
  cloudinit: "Cloud-init ISO generated",
  define: "Domain defined",
  autostart: "Autostart set",
  start: "VM started",
};

/**
 * `foundry create FILE`: validate every VM of the file and check each against the host before any
 * is created; VMs that exist with the same spec are unchanged; a failure while creating rolls that
 * VM back, keeps the ones before it and ends with a summary of what exists.
 */
export function createCommand(io: Io): Command {
  return new Command("create")
    .description("Create and start the VirtualMachines of a YAML file")
    .argument("<file>", "foundry.cofront.xyz/v1alpha1 VirtualMachine YAML (one or more documents)")
    .option("--pool <name>", "storage pool for the VM's volumes (env FOUNDRY_VM_POOL)")
    .option("--no-start", "define the VM without starting it")
    .option("--wait [stage]", "then wait for agent, ip or cloud-init (default cloud-init)")
    .option("--timeout <seconds>", "with --wait: give up after this long", "600")
    .option("-o, --output <format>", "progress (default) or json", "progress")
    .addOption(new Option("--target <target>", "libvirt (default) or kubevirt").choices(TARGETS))
    .option("--kubeconfig <path>", "kubevirt: kubeconfig file (default: in-cluster, KUBECONFIG)")
    .option("--context <name>", "kubevirt: kubeconfig context")
    .option("-n, --namespace <name>", "kubevirt: namespace (default: default)")
    .option("--dry-run", "kubevirt: print the objects (-o yaml|json), create nothing")
    .option("--image-url <source>", "kubevirt: boot image of every VM, http(s) URL or pvc:NS/NAME")
    .option("--image <name=source>", "kubevirt: boot image for a spec's image (repeat)", collect)
    .option("--create-networks", "kubevirt: create missing NetworkAttachmentDefinitions")
    .option("--storage-class <name>", "kubevirt: storage class of the DataVolumes")
    .option("--install-media-url <source>", "kubevirt: installation ISO, URL or pvc:NS/NAME")
    .option("--allow-lossy", "kubevirt: accept fields KubeVirt carries over only in part")
    .option("--copy-image", "fleet: copy a boot image the chosen host lacks from one that has it")
    .option("--ignore-unreachable", "fleet: create although a host could not be checked")
    .addHelpText(
      "after",
      "\nExamples:\n  foundry create examples/simple-vm.yaml\n  foundry --connect qemu+ssh://root@host/system create vm.yaml -o json\n",
    )
    .action(async (
      file: string,
      opts: {
        pool?: string;
        copyImage?: boolean;
        ignoreUnreachable?: boolean;
        start: boolean;
        output: string;
        wait?: string | boolean;
        timeout: string;
        target?: string;
      },
      cmd,
    ) => {
      // issue 16: the KubeVirt target (its module loaded only then; it refuses kubevirt: options alone)
      const given = (o: Option) => cmd.getOptionValueSource(o.attributeName()) !== undefined;
      const kubevirtOnly = (o: Option) => o.description.startsWith("kubevirt:") && given(o);
      if (opts.target === "kubevirt" || cmd.options.some(kubevirtOnly)) {
        return (await import("./_kubevirt_target.ts")).kubevirtCreate(io, file, opts, cmd);
      }
      checkChoice(opts.output, ["progress", "json"], "output format");
      const until = typeof opts.wait === "string"
        ? opts.wait
        : opts.wait === true
        ? "cloud-init"
        : undefined;
      if (until !== undefined) checkChoice(until, ["agent", "ip", "cloud-init"], "--wait stage");
      const waitMs = timeoutMs(opts.timeout);
      const { loadVirtualMachines } = await import("../../lib/foundry/loader.ts");
      const { CreateIncompleteError, createVms, summaryLine } = await import(
        "../../lib/foundry/create_many.ts"
      );
      // The file is read and validated before anything else: bad input never reaches libvirt.
      const vms = await loadVirtualMachines(file);
      const config = await configFor(cmd);
      const say = opts.output === "json" ? () => {} : progress(io);
      const results: CreateResult[] = [];
      const waited = new Map<string, WaitResult>();
      // Ctrl-C, SIGTERM, SIGHUP (cli/_signals.ts): calls in flight reject, creates roll back.
      const signal = interruptSignal() ?? new AbortController().signal;
      let summary: CreateSummary | undefined;
      const createOn = async (lv: Libvirt, vms: readonly VirtualMachine[]) => {
        try {
          summary = await createVms(lv, vms, {
            config,
            ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
            noStart: !opts.start,
            signal,
            onVm: (vm, what) => {
              if (opts.output === "json") return;
              io.out(
                what === "unchanged"
                  ? `VM '${vm.metadata.name}' unchanged (exists with the same spec)\n`
                  : `Creating VM '${vm.metadata.name}'...\n`,
              );
            },
            onStep: (_vm, step, detail) => say(`${LABELS[step]} (${detail})`),
            around: (vm, create) => {
              const secrets = [
                ...(vm.spec.cloudInit?.passwordHash ? [vm.spec.cloudInit.passwordHash] : []),
                ...(vm.spec.cloudInit?.sshAuthorizedKeys ?? []),
              ];
              return withFoundryAudit(cmd, {
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
                const made = await create();
                for (const v of made.volumes) {
                  op.object({ kind: "volume", name: `${v.pool}/${v.name}`, outcome: "created" });
                }
                op.object({ kind: "domain", name: made.vm.metadata.name, outcome: "created" });
                if (opts.output !== "json") {
                  io.out(`Successfully created VM '${vm.metadata.name}'\n`);
                }
                return made;
              }, { secrets, signal });
            },
          });
        } catch (e) {
          if (!(e instanceof CreateIncompleteError)) throw e;
          summary = e.summary;
          io.err(`Error: ${sanitizeText(e.message)}\n`);
          setExitCode(cmd, exitCodeFor(e.cause));
        }
        results.push(...summary.created);
        if (until !== undefined && opts.start) {
          for (const r of summary.created) {
            const name = r.vm.metadata.name;
            const w = await waitWithProgress(
              lv,
              io,
              name,
              until as "agent" | "ip" | "cloud-init",
              waitMs,
              opts.output === "json",
            );
            waited.set(name, w);
          }
        }
        return summary;
      };
      // issue 16: with hosts: (or --host), each VM is placed and created on its host.
      const fleet = await import("./_fleet_create.ts");
      if (fleet.wantsPlacement(cmd, config)) {
        summary = await fleet.createPlaced(io, cmd, config, file, vms, opts, createOn);
      } else await withLibvirt(config, (lv) => createOn(lv, vms));
      if (opts.output !== "json" && summary !== undefined && summary.failed === undefined) {
        io.out(`${summaryLine(summary)}\n`);
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
