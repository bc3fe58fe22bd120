/**
 * A test-owned foundry environment on the real libvirtd: its own images and VM pools (never the
 * host's foundry-images/foundry-vms), a small qcow2 base image made with qemu-img, and isolated
 * bridges with no host address and no uplink.
 */
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { DEFAULT_CONFIG, type FoundryConfig } from "../../lib/foundry/config.ts";
import { parseVirtualMachine } from "../../lib/foundry/loader.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import { uniqueName } from "../libvirt/_env.ts";

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** The environment one test file uses. */
export interface FoundryFixture {
  lv: Libvirt;
  config: FoundryConfig;
  image: string;
  bridges: [string, string];
  dir: string;
  cleanup(): Promise<void>;
}

/** Makes pools, a 64 MiB-virtual qcow2 image and two bridges, all named uniquely. */
export async function foundryFixture(): Promise<FoundryFixture> {
  const lv = await Libvirt.connect();
  const tag = uniqueName("ft").slice(3);
  const dir = await Deno.makeTempDir({ prefix: "foundry-fixture-" });
  // QEMU runs as libvirt-qemu and must traverse to the pool directories.
  await Deno.chmod(dir, 0o755);
  const config: FoundryConfig = {
    ...DEFAULT_CONFIG,
    domainType: "qemu",
    destroyTimeoutSeconds: 1,
    storagePath: dir,
    imagesPool: `ft-img-${tag}`,
    imagesPath: `${dir}/images`,
    vmsPool: `ft-vms-${tag}`,
    vmsPath: `${dir}/vms`,
  };
  const { ensureDirPool } = await import("../../lib/foundry/pools.ts");
  const images = await ensureDirPool(lv, config.imagesPool, config.imagesPath);
  const image = "base.qcow2";
  await sh("qemu-img", ["create", "-q", "-f", "qcow2", `${config.imagesPath}/${image}`, "64M"]);
  await lv.storagePoolRefresh(images);
  const bridges: [string, string] = [`ftb${tag.slice(0, 6)}a`, `ftb${tag.slice(0, 6)}b`];
  for (const b of bridges) {
    await sh("ip", ["link", "add", b, "type", "bridge"]);
    await sh("ip", ["link", "set", b, "up"]);
  }
  return {
    lv,
    config,
    image,
    bridges,
    dir,
    async cleanup() {
      for (const d of await lv.listAllDomains()) {
        if (!d.name.startsWith("ftvm-")) continue;
        // Another test file's domain may go between the list and this read: not ours either way.
        const xml = await lv.domainGetXmlDesc(d).catch(() => "");
        if (!xml.includes(config.vmsPool)) continue;
        await lv.domainDestroy(d).catch(() => {});
        // NVRAM (4), snapshot metadata (2): a VM a snapshot test left would refuse otherwise.
        await lv.domainUndefine(d, 4 | 2).catch(() => {});
      }
      for (const name of [config.vmsPool, config.imagesPool]) {
        try {
          const p = await lv.storagePoolLookupByName(name);
          for (const v of await lv.storagePoolListAllVolumes(p)) await lv.storageVolDelete(v);
          await lv.storagePoolDestroy(p).catch(() => {});
          await lv.storagePoolUndefine(p);
        } catch { /* already gone */ }
      }
      for (const b of bridges) await sh("ip", ["link", "del", b]).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await lv.close();
    },
  };
}

/**
 * The last address number handed out, in a file shared by every test worker and process: create
 * refuses an address another VM has (and the tap name derives from it), so two tests running at
 * once must never get the same one. A per-module counter did not hold under `--parallel`.
 */
const ADDRESS_COUNTER = `${Deno.env.get("TMPDIR") ?? "/tmp"}/foundry-test-address-counter`;
/** Host numbers the end-to-end boot test uses itself. */
const RESERVED_HOSTS = new Set([77]);

/** The next host number (20-250) no other test VM holds; shared across workers through a locked file. */
export function nextHostNumber(): number {
  const f = Deno.openSync(ADDRESS_COUNTER, { read: true, write: true, create: true, mode: 0o600 });
  try {
    f.lockSync(true);
    const buf = new Uint8Array(16);
    const len = f.readSync(buf) ?? 0;
    let n = Number(new TextDecoder().decode(buf.subarray(0, len)).trim()) || 0;
    do n = n >= 250 || n < 20 ? 20 : n + 1; while (RESERVED_HOSTS.has(n));
    f.seekSync(0, Deno.SeekMode.Start);
    f.truncateSync(0);
    f.writeSync(new TextEncoder().encode(String(n)));
    return n;
  } finally {
    f.close();
  }
}

/** A VM spec with two NICs on the fixture's bridges and two data disks; addresses unique per call. */
export function testVm(
  fx: FoundryFixture,
  extra: { name?: string; labels?: Record<string, string> } = {},
): VirtualMachine {
  const n = nextHostNumber();
  const name = extra.name ?? uniqueName("ftvm");
  const labels = Object.entries(extra.labels ?? { suite: "foundry" })
    .map(([k, v]) => `    ${k}: ${v}`).join("\n");
  return parseVirtualMachine(
    `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels:
${labels}
spec:
  vcpus: 1
  memoryGiB: 0.25
  bootDisk:
    sizeGB: 1
    image: ${fx.image}
  dataDisks:
    - device: vdb
      sizeGB: 1
    - device: vdc
      sizeGB: 2
  networkInterfaces:
    - ip: 192.0.2.${n}/24
      gateway: 192.0.2.1
      dnsServers: [192.0.2.53]
      bridge: ${fx.bridges[0]}
    - ip: 198.51.100.${n}/24
      gateway: 198.51.100.1
      bridge: ${fx.bridges[1]}
      defaultRoute: false
  cloudInit:
    fqdn: ${name}.example.org
    sshAuthorizedKeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD test@example.org
    passwordHash: "$6$testsalt$J6Jz0lMVmB0p6yPq2y3hcyZ9V2q0M0j3cXbTq7d2oR8Yh6cQ3a0XvZ1sL5kN9wE4uT7iB2fG8hD1mK6pA3sQe0"
`,
    "test.yaml",
  );
}

/** Whether anything of VM `name` is left: domain, NVRAM file, or volumes named after it. */
export async function leftovers(fx: FoundryFixture, name: string): Promise<string[]> {
  const found: string[] = [];
  if ((await fx.lv.listAllDomains()).some((d) => d.name === name)) found.push(`domain ${name}`);
  for (const f of [`/var/lib/libvirt/qemu/nvram/${name}_VARS.fd`]) {
    try {
      await Deno.stat(f);
      found.push(f);
    } catch { /* gone, as it should be */ }
  }
  try {
    const p = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
    await fx.lv.storagePoolRefresh(p);
    for (const v of await fx.lv.storagePoolListAllVolumes(p)) {
      if (v.name.startsWith(`${name}_`)) found.push(`volume ${v.name}`);
    }
  } catch { /* no pool, no volumes */ }
  try {
    for (const e of Deno.readDirSync(fx.config.vmsPath)) {
      if (e.name.startsWith(`${name}_`)) found.push(`file ${e.name}`);
    }
  } catch { /* no directory */ }
  return found;
}

/**
 * Writes a foundry configuration file for the fixture (TCG domains, its pools, a 1 s graceful
 * shutdown) to `config.yaml` in its directory, for tests that run the CLI; returns its path.
 */
export async function writeConfigFile(fx: FoundryFixture): Promise<string> {
  const path = `${fx.dir}/config.yaml`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      domainType: "qemu",
      destroyTimeoutSeconds: 1,
      storage: {
        imagesPool: fx.config.imagesPool,
        imagesPath: fx.config.imagesPath,
        vmsPool: fx.config.vmsPool,
        vmsPath: fx.config.vmsPath,
      },
    }),
  );
  return path;
}
