/**
 * examples/list_vms.ts imports mod.ts as a script would and lists foundry's VMs. A VM that was never
 * started has no live address: the script shows the spec's, marked `(spec)`, never as if live.
 */
import assert from "node:assert/strict";
import { createVm, destroyVm } from "../../mod.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { foundryFixture, testVm } from "../foundry/_fixture.ts";

libvirtTest("examples/list_vms.ts lists a VM created through mod.ts", async () => {
  const fx = await foundryFixture();
  try {
    const vm = testVm(fx);
    const specIp = vm.spec.networkInterfaces[0]!.ip!.split("/")[0]!;
    await createVm(fx.lv, vm, { config: fx.config, noStart: true });
    const script = new URL("../../examples/list_vms.ts", import.meta.url).pathname;
    const out = await new Deno.Command(script, { stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(
      text,
      new RegExp(
        `^${vm.metadata.name}\\tshut off\\t1 vCPU\\t256 MiB\\t${
          specIp.replaceAll(".", "\\.")
        } \\(spec\\)$`,
        "m",
      ),
    );
    await destroyVm(fx.lv, vm.metadata.name, { timeoutSeconds: 0 });
  } finally {
    await fx.cleanup();
  }
});
