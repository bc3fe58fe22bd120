/**
 * A running foundry VM takes several devices attached live, one after another: its domain has
 * spare PCIe root ports (`HOTPLUG_SLOTS`). libvirt alone leaves one spare on q35, and the second
 * live attach then failed with "No more available PCI slots".
 */
import assert from "node:assert/strict";
import { createVm, destroyVm } from "../../lib/foundry/vm.ts";
import { HOTPLUG_SLOTS } from "../../lib/foundry/domain_xml.ts";
import { libvirtSkipReason } from "../libvirt/_env.ts";
import { firstMissing, requireRoot, requireTool, testNeeding } from "../_require.ts";
import { foundryFixture, testVm } from "./_fixture.ts";

const missing = firstMissing(
  libvirtSkipReason,
  requireRoot("creating bridges"),
  requireTool("virsh", "qemu-img"),
);

async function virsh(...args: string[]): Promise<{ ok: boolean; text: string }> {
  const out = await new Deno.Command("virsh", { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: out.success, text: (dec.decode(out.stdout) + dec.decode(out.stderr)).trim() };
}

testNeeding(missing, {
  name: `a running VM takes ${HOTPLUG_SLOTS} disks attached live, one after another`,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fx = await foundryFixture();
    const vm = testVm(fx);
    try {
      await createVm(fx.lv, vm, { config: fx.config });
      const name = vm.metadata.name;
      const targets = ["vdw", "vdx", "vdy", "vdz"].slice(0, HOTPLUG_SLOTS);
      for (const [i, dev] of targets.entries()) {
        const file = `${fx.dir}/hotplug-${i}.qcow2`;
        const made = await new Deno.Command("qemu-img", {
          args: ["create", "-q", "-f", "qcow2", file, "16M"],
        }).output();
        assert.ok(made.success);
        const r = await virsh(
          "attach-disk",
          name,
          file,
          dev,
          "--driver",
          "qemu",
          "--subdriver",
          "qcow2",
          "--targetbus",
          "virtio",
          "--live",
        );
        assert.ok(r.ok, `live attach ${i + 1} of ${targets.length} (${dev}): ${r.text}`);
      }
      const live = await virsh("domblklist", name);
      for (const dev of targets) assert.match(live.text, new RegExp(`\\b${dev}\\b`));
    } finally {
      await destroyVm(fx.lv, vm.metadata.name, { timeoutSeconds: 1 }).catch(() => {});
      await fx.cleanup();
    }
  },
});
