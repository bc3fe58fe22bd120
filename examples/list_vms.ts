#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=ssh
/**
 * Lists foundry's VMs with the library API, as a script would: `./examples/list_vms.ts [URI]`.
 * @module
 */
import { Libvirt, listVms } from "../mod.ts";

if (import.meta.main) {
  const lv = await Libvirt.connect(Deno.args[0]); // FOUNDRY_URI, LIBVIRT_DEFAULT_URI, qemu:///system
  try {
    const { vms } = await listVms(lv, { all: Deno.args.includes("--all") });
    for (const vm of vms) {
      console.log(
        `${vm.name}\t${vm.state}\t${vm.vcpus} vCPU\t${vm.memoryMiB} MiB\t${vm.ip || "-"}`,
      );
    }
    if (vms.length === 0) console.log("no foundry VMs");
  } finally {
    await lv.close();
  }
}
