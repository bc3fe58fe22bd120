import { Command } from "npm:commander@^15.1.0";
import type { ListFormat } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import type { Io } from "../_program.ts";
import { configFor, withLibvirt } from "./_context.ts";

const EXIT_CODES = "\nExit codes: 0 done, 1 configuration, 2 bad arguments, 3 cannot connect," +
  "\n4 VM operation refused or failed (no such VM or snapshot, quiesce failed, revert refused)," +
  "\n5 storage (an overlay or memory file in the way, or left behind), 130 interrupted.";

const LIST_FORMATS: readonly ListFormat[] = ["table", "wide", "name", "json", "yaml"];

/** Adds the `--no-quiesce` hint to a refused freeze (lib errors name no flags). */
function withHint<T>(p: Promise<T>): Promise<T> {
  return p.catch((e) => {
    const reason = (e as { reason?: unknown }).reason;
    if (e instanceof Error && reason === "quiesce") {
      e.message += " (is the guest agent running? --no-quiesce takes the snapshot without it)";
    } else if (e instanceof Error && reason === "memory") {
      e.message += " (--disks-only reverts the disks alone)";
    }
    throw e;
  });
}

/** `foundry snapshot create|list|revert|delete`. */
export function snapshotCommand(io: Io): Command {
  const cmd = new Command("snapshot")
    .description("External disk snapshots of a VM: create, list, revert, delete")
    .addHelpText(
      "after",
      "\nA snapshot puts a qcow2 overlay on each of the VM's disks, in the disk's pool, named" +
        "\n{volume}.{snapshot}; the guest's filesystems are frozen through its agent meanwhile." +
        "\nfoundry destroy removes a VM's snapshots with it.\n" +
        "\nExamples:\n  foundry snapshot create web-01 before-upgrade\n" +
        "  foundry snapshot list web-01 -o json\n  foundry snapshot revert web-01 before-upgrade\n" +
        "  foundry snapshot delete web-01 before-upgrade\n" + EXIT_CODES + "\n",
    );

  cmd.addCommand(
    new Command("create")
      .description("Take a snapshot (filesystems frozen through the guest agent)")
      .argument("<name>", "VM name")
      .argument("<snapshot>", "snapshot name: letters, digits, '_' and '-'")
      .option("--no-quiesce", "do not freeze the guest's filesystems (no agent needed)")
      .option(
        "--memory",
        "also save the memory state (running VMs; cannot be reverted on libvirt 9.0, see revert)",
      )
      .option("--description <text>", "free text kept with the snapshot")
      .addHelpText(
        "after",
        "\nExamples:\n  foundry snapshot create web-01 before-upgrade\n" +
          "  foundry snapshot create web-01 raw --no-quiesce\n" + EXIT_CODES + "\n",
      )
      .action(async (
        name: string,
        snap: string,
        opts: { quiesce: boolean; memory?: boolean; description?: string },
        c: Command,
      ) => {
        const config = await configFor(c);
        const { createSnapshot, SNAPSHOT_NAME } = await import("../../lib/foundry/snapshot.ts");
        if (!SNAPSHOT_NAME.test(snap)) {
          throw Object.assign(
            new Error(
              `Snapshot name must be 1-63 letters, digits, '_' or '-' starting with a letter or digit, got '${snap}'`,
            ),
            { exitCode: 2 },
          );
        }
        await withLibvirt(config, async (lv) => {
          const r = await withHint(createSnapshot(lv, name, snap, {
            quiesce: opts.quiesce,
            memory: opts.memory === true,
            ...(opts.description !== undefined ? { description: opts.description } : {}),
          }));
          const how = r.snapshot.memoryFile
            ? "with memory state"
            : r.quiesced
            ? "filesystems frozen"
            : "not quiesced";
          io.out(
            `Snapshot '${snap}' of VM '${name}' taken (${how}; ${r.snapshot.disks.length} disks)\n`,
          );
        });
      }),
  );

  cmd.addCommand(
    addListingOptions(
      new Command("list")
        .description("List a VM's snapshots, oldest first")
        .argument("<name>", "VM name"),
      "table",
      LIST_FORMATS,
    )
      .addHelpText(
        "after",
        "\nExamples:\n  foundry snapshot list web-01\n  foundry snapshot list web-01 -o json\n" +
          EXIT_CODES + "\n",
      )
      .action(async (name: string, flags: ListingFlags, c: Command) => {
        const config = await configFor(c);
        const { listSnapshots } = await import("../../lib/foundry/snapshot.ts");
        await withLibvirt(config, async (lv) => {
          const items = await listSnapshots(lv, name);
          printListing(io, flags, items, {
            kind: "snapshot",
            name: (s) => s.name,
            empty: `VM ${name} has no snapshots`,
            columns: [
              { header: "NAME", value: (s) => s.name },
              { header: "CREATED", value: (s) => s.createdAt },
              { header: "STATE", value: (s) => s.state },
              { header: "CURRENT", value: (s) => (s.current ? "*" : "") },
              { header: "MEMORY", value: (s) => (s.memoryFile ? "yes" : "no") },
              { header: "PARENT", value: (s) => s.parent ?? "", wide: true },
              {
                header: "DISKS",
                value: (s) => s.disks.map((d) => `${d.target}=${d.overlay}`).join(","),
                wide: true,
              },
            ],
          });
        });
      }),
  );

  cmd.addCommand(
    new Command("revert")
      .description(
        "Go back to a snapshot: power off, fresh overlays on the snapshot's state, start again",
      )
      .argument("<name>", "VM name")
      .argument("<snapshot>", "snapshot name")
      .option("--disks-only", "revert a snapshot taken with --memory by its disks alone")
      .option("--no-start", "leave the VM stopped afterwards")
      .addHelpText(
        "after",
        "\nWhat changed since the snapshot is thrown away (the VM is powered off, not shut down)." +
          "\nOnly the newest snapshot of a chain can be reverted to: delete newer ones first." +
          "\nlibvirt 9.0 cannot revert external snapshots itself; foundry does it with its own" +
          "\noverlays, and cannot restore memory state.\n" +
          "\nExamples:\n  foundry snapshot revert web-01 before-upgrade\n" + EXIT_CODES + "\n",
      )
      .action(async (
        name: string,
        snap: string,
        opts: { disksOnly?: boolean; start: boolean },
        c: Command,
      ) => {
        const config = await configFor(c);
        const { revertSnapshot } = await import("../../lib/foundry/snapshot.ts");
        await withLibvirt(config, async (lv) => {
          const r = await withHint(revertSnapshot(lv, name, snap, {
            disksOnly: opts.disksOnly === true,
            noStart: !opts.start,
          }));
          io.out(
            `VM '${name}' reverted to snapshot '${snap}'${r.restarted ? " and started" : ""}\n`,
          );
        });
      }),
  );

  cmd.addCommand(
    new Command("delete")
      .description("Delete a snapshot: its overlays are merged into the disks below and removed")
      .argument("<name>", "VM name")
      .argument("<snapshot>", "snapshot name")
      .addHelpText(
        "after",
        "\nA stopped VM is started paused for the merge and powered off again (libvirt 9.0" +
          "\nmerges these snapshots only live).\n" +
          "\nExamples:\n  foundry snapshot delete web-01 before-upgrade\n" + EXIT_CODES + "\n",
      )
      .action(async (name: string, snap: string, _opts: unknown, c: Command) => {
        const config = await configFor(c);
        const { deleteSnapshot } = await import("../../lib/foundry/snapshot.ts");
        await withLibvirt(config, async (lv) => {
          const r = await deleteSnapshot(lv, name, snap);
          io.out(
            `Snapshot '${snap}' of VM '${name}' deleted (${r.removed.length} files removed)\n`,
          );
        });
      }),
  );
  return cmd;
}
