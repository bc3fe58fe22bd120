#!/usr/bin/env -S deno run -A
/**
 * `deno task demo`: foundry's main job in one command. On a Debian machine with Deno it installs
 * and starts libvirt when missing (as root), builds or reuses the test image, imports it, creates
 * `examples/demo-vm.yaml` on an isolated bridge, waits for cloud-init through the guest agent, and
 * prints `foundry list` and `foundry get`. A second run reuses everything that exists.
 * @module
 */
import { main } from "../cli/foundry.ts";
import { Libvirt } from "../lib/libvirt/mod.ts";
import { loadConfig } from "../lib/foundry/config.ts";
import { loadVirtualMachines } from "../lib/foundry/loader.ts";
import { ensureFoundryPools } from "../lib/foundry/pools.ts";
import { importImage, listImages } from "../lib/foundry/images.ts";
import { createVm, startVm } from "../lib/foundry/vm.ts";
import { waitForVm } from "../lib/foundry/wait.ts";
import { buildTestImage } from "./build_test_image.ts";

const SOCKET = "/var/run/libvirt/libvirt-sock";
const IMAGE_NAME = "debian-12-foundry-test.qcow2";
const VM_FILE = new URL("../examples/demo-vm.yaml", import.meta.url).pathname;
const say = (s: string) => console.log(`demo: ${s}`);

async function sh(cmd: string, args: string[], quiet = false): Promise<boolean> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: quiet ? "null" : "inherit",
    stderr: quiet ? "null" : "inherit",
  }).output().catch(() => ({ success: false }));
  return out.success;
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

async function ensureLibvirt(): Promise<void> {
  if (await exists(SOCKET)) return;
  const root = Deno.uid() === 0;
  if (!(await sh("sh", ["-c", "command -v libvirtd"], true))) {
    if (!root) throw new Error("libvirt is not installed; run the demo as root to install it");
    say("installing libvirt, QEMU and OVMF from Debian's packages");
    const pkgs = [
      "libvirt-daemon-system",
      "libvirt-clients",
      "qemu-system-x86",
      "qemu-utils",
      "ovmf",
    ];
    if (!(await sh("apt-get", ["update", "-qq"]))) throw new Error("apt-get update failed");
    if (!(await sh("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs]))) {
      throw new Error("apt-get install failed");
    }
  }
  if (!root) throw new Error(`libvirtd is not running (${SOCKET} missing); start it as root`);
  // libvirt re-probes QEMU at every call when /dev/kvm's access disagrees with its cache.
  if (await exists("/dev/kvm")) await Deno.chmod("/dev/kvm", 0o666).catch(() => {});
  if (await exists("/run/systemd/system")) {
    say("starting libvirtd with systemctl");
    await sh("systemctl", ["start", "libvirtd"]);
  } else {
    say("starting virtlogd and libvirtd (no systemd here)");
    if (!(await sh("pgrep", ["-x", "virtlogd"], true))) await sh("virtlogd", ["-d"]);
    if (!(await sh("pgrep", ["-x", "libvirtd"], true))) await sh("libvirtd", ["-d"]);
  }
  for (let i = 0; i < 60 && !(await exists(SOCKET)); i++) {
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!(await exists(SOCKET))) throw new Error("libvirtd did not start");
}

async function ensureBridge(name: string): Promise<void> {
  if (await exists(`/sys/class/net/${name}`)) return;
  if (Deno.uid() !== 0) {
    throw new Error(`bridge ${name} is missing; run the demo as root to create it`);
  }
  say(`creating the isolated bridge ${name} (no host address, no uplink)`);
  await sh("ip", ["link", "add", name, "type", "bridge"]);
  await sh("ip", ["link", "set", name, "up"]);
}

if (import.meta.main) {
  try {
    await ensureLibvirt();
    const image = await buildTestImage({ log: (l) => say(`image: ${l}`) });
    say(`test image ${image.cached ? "reused" : `built in ${image.seconds} s`}: ${image.path}`);
    const config = await loadConfig();
    const [vm] = await loadVirtualMachines(VM_FILE);
    if (!vm) throw new Error(`${VM_FILE} holds no VirtualMachine`);
    for (const nic of vm.spec.networkInterfaces) await ensureBridge(nic.bridge);
    const lv = await Libvirt.connect(config.uri);
    try {
      await ensureFoundryPools(lv, config);
      if ((await listImages(lv, config.imagesPool)).some((i) => i.name === IMAGE_NAME)) {
        say(`image ${IMAGE_NAME} already in pool ${config.imagesPool}`);
      } else {
        say(`importing ${IMAGE_NAME} into pool ${config.imagesPool}`);
        await importImage(lv, config.imagesPool, image.path, IMAGE_NAME);
      }
      const name = vm.metadata.name;
      if ((await lv.listAllDomains()).some((d) => d.name === name)) {
        say(`VM ${name} exists: reusing it`);
        await startVm(lv, name);
      } else {
        say(`creating VM ${name} from examples/demo-vm.yaml`);
        await createVm(lv, vm, { config, onStep: (_s, detail) => say(`  ✓ ${detail}`) });
      }
      say(`waiting for cloud-init in ${name} (about 90 s under TCG)`);
      const w = await waitForVm(lv, name, {
        onStage: (s, ms, detail) => say(`  ✓ ${s} after ${(ms / 1000).toFixed(1)} s: ${detail}`),
      });
      if (w.cloudInitErrors.length) say(`cloud-init errors: ${w.cloudInitErrors.join("; ")}`);
    } finally {
      await lv.close();
    }
    console.log("\n$ foundry list");
    await main(["list"]);
    console.log("\n$ foundry get demo-vm");
    await main(["get", "demo-vm"]);
    console.log("\nRemove it with: deno task destroy demo-vm");
  } catch (e) {
    console.error(`demo: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
