#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=ssh
/**
 * Lists foundry's VMs with the library API, as a script would: `./examples/list_vms.ts [URI]`.
 *
 * The address column is the live one (guest agent, else DHCP lease); a VM that reports none shows
 * its spec's address marked `(spec)`, as `foundry list` does, so a configured address is never
 * passed off as one the guest has.
 * @module
 */
import { Libvirt, listVms, type VmListEntry } from "../mod.ts";

/** The live address, else the spec's marked `(spec)`, else `-`. */
function address(vm: VmListEntry): string {
  if (vm.ip) return vm.ip;
  const spec = vm.addresses.find((a) => a.source === "spec");
  return spec ? `${spec.ip} (spec)` : "-";
}

if (import.meta.main) {
  const lv = await Libvirt.connect(Deno.args[0]); // FOUNDRY_URI, LIBVIRT_DEFAULT_URI, qemu:///system
  try {
    const { vms } = await listVms(lv, { all: Deno.args.includes("--all") });
    for (const vm of vms) {
      console.log(
        `${vm.name}\t${vm.state}\t${vm.vcpus} vCPU\t${vm.memoryMiB} MiB\t${address(vm)}`,
      );
    }
    if (vms.length === 0) console.log("no foundry VMs");
  } finally {
    await lv.close();
  }
}
