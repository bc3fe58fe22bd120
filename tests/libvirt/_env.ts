/** Shared set-up of tests that need the real libvirtd. */
import type { Libvirt, StoragePoolRef } from "../../lib/libvirt/mod.ts";
import { type Missing, requireLibvirt, testNeeding } from "../_require.ts";

/** The daemon's read-write socket. */
export const SYSTEM_SOCKET = "/var/run/libvirt/libvirt-sock";

/** Why libvirt tests cannot run here, or null when they can (see tests/_require.ts). */
export const libvirtSkipReason: Missing = await requireLibvirt();

/**
 * Registers a test that needs libvirtd. When the daemon is absent the test is reported as
 * ignored with the reason in its name, never as passed; in CI it fails instead.
 */
export function libvirtTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  testNeeding(libvirtSkipReason, { name, fn });
}

/** A name unlikely to collide with other tests or runs. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A minimal domain XML (type qemu, no disks) that starts on any host. */
export function tinyDomainXml(name: string, extra = ""): string {
  return `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>` +
    `<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>` +
    `<memballoon model='none'/></devices>${extra}</domain>`;
}

/** Creates a started dir pool under a fresh temporary directory; `cleanup` removes it all. */
export async function tempPool(lv: Libvirt, name: string): Promise<{
  pool: StoragePoolRef;
  dir: string;
  cleanup(): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "foundry-pool-" });
  const pool = await lv.storagePoolDefineXml(
    `<pool type='dir'><name>${name}</name><target><path>${dir}</path></target></pool>`,
  );
  await lv.storagePoolBuild(pool);
  await lv.storagePoolCreate(pool);
  return {
    pool,
    dir,
    async cleanup() {
      try {
        for (const v of await lv.storagePoolListAllVolumes(pool)) await lv.storageVolDelete(v);
        await lv.storagePoolDestroy(pool);
      } catch { /* already gone */ }
      try {
        await lv.storagePoolUndefine(pool);
      } catch { /* already gone */ }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
