/**
 * One booted Debian guest shared by every day-2 end-to-end step (console, exec, cp, logs,
 * describe, events, snapshots, resize, clone): booting a TCG guest costs minutes, so the steps
 * take turns on one VM instead of each booting its own. `tests/e2e/day2_test.ts` runs the steps in
 * order; each step module leaves the guest running and healthy for the next.
 *
 * For development, `FOUNDRY_DAY2_KEEP=1` keeps the guest, its pools and bridge after the run and
 * reuses them on the next (names from `FOUNDRY_DAY2_TAG`, default `day2dev`: VM `d2-<tag>`,
 * directory `/var/tmp/foundry-<tag>`), and `FOUNDRY_DAY2_ONLY=agent,describe` runs only the named
 * steps.
 */
import assert from "node:assert/strict";
import { buildTestImage } from "../../../tasks/build_test_image.ts";
import { type DomainRef, Libvirt } from "../../../lib/libvirt/mod.ts";
import { DEFAULT_CONFIG, type FoundryConfig } from "../../../lib/foundry/config.ts";
import { ensureDirPool } from "../../../lib/foundry/pools.ts";
import { importImage } from "../../../lib/foundry/images.ts";
import { parseVirtualMachine } from "../../../lib/foundry/loader.ts";
import { createVm } from "../../../lib/foundry/vm.ts";
import { waitForVm } from "../../../lib/foundry/wait.ts";
import { guestExec } from "../../../lib/foundry/agent.ts";
import { main } from "../../../cli/foundry.ts";
import { uniqueName } from "../../libvirt/_env.ts";
import { nextHostNumber } from "../../foundry/_fixture.ts";

/** Whether the developer asked to keep and reuse the guest between runs. */
export const KEEP: boolean = Deno.env.get("FOUNDRY_DAY2_KEEP") === "1";
/** The steps the developer asked for (all when unset). */
export const ONLY: Set<string> | undefined = Deno.env.get("FOUNDRY_DAY2_ONLY")
  ? new Set(Deno.env.get("FOUNDRY_DAY2_ONLY")!.split(",").map((s) => s.trim()))
  : undefined;

/** The root password of the guest (its SHA-512 hash is in the spec), for console logins. */
export const ROOT_PASSWORD = "foundry-e2e";
const PASSWORD_HASH =
  "$6$e2esalt$ERrD.824OD/bdsm/e0TlKXL7WxYNwHvaQGiKTAF7wz383pldFtPGsMpzYeP./65VyfrCkdrzUUrbqQOYmNvmD/";
const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD day2@example.org";

/** What a CLI run printed and returned. */
export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** The shared guest and what the steps need around it. */
export interface Day2Guest {
  /** A connection to the daemon, open for the whole run. */
  lv: Libvirt;
  /** foundry's configuration for the run's own pools (TCG domains). */
  config: FoundryConfig;
  /** The same configuration as a file, for CLI runs (`--config`); `foundry()` passes it. */
  configFile: string;
  /** The VM's name and domain. */
  name: string;
  domain: DomainRef;
  /** The VM's address on the isolated bridge (never contacted by the tests), without prefix. */
  ip: string;
  /** The isolated bridge (no host address, no uplink) and a spare host number on it. */
  bridge: string;
  /** Host numbers on 192.0.2.0/24 the steps may give to new VMs (clone), unique to this run. */
  spareHosts: number[];
  /** The run's scratch directory (the pools live under it). */
  dir: string;
  /** The foundry spec file the VM was created from. */
  specFile: string;
  /** Runs foundry's CLI in this process with the run's `--config`; captures its output. */
  foundry(args: string[]): Promise<CliResult>;
  /** Runs a shell command in the guest through the agent; asserts exit 0; returns trimmed stdout. */
  sh(cmd: string): Promise<string>;
  /** Removes everything the run made (nothing when KEEP). */
  cleanup(): Promise<void>;
}

/** Polls `probe` until `ok` holds (returns the last value), at most `ms`, once a second. */
export async function until<T>(
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
): Promise<T> {
  const deadline = performance.now() + ms;
  let v = await probe();
  while (!ok(v) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    v = await probe();
  }
  return v;
}

async function host(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Boots (or, with KEEP, finds) the shared guest and waits until cloud-init has finished. */
export async function bootDay2Guest(): Promise<Day2Guest> {
  const image = await buildTestImage({ log: (l) => console.log(`  image: ${l}`) });
  const lv = await Libvirt.connect();
  const tag = KEEP
    ? (Deno.env.get("FOUNDRY_DAY2_TAG") ?? "day2dev")
    : uniqueName("d2").slice(3, 11);
  const dir = KEEP
    ? `/var/tmp/foundry-${tag}`
    : await Deno.makeTempDir({ prefix: "foundry-day2-" });
  await Deno.mkdir(dir, { recursive: true });
  await Deno.chmod(dir, 0o755);
  const config: FoundryConfig = {
    ...DEFAULT_CONFIG,
    domainType: "qemu",
    destroyTimeoutSeconds: 30,
    storagePath: dir,
    imagesPool: `d2-img-${tag}`,
    imagesPath: `${dir}/images`,
    vmsPool: `d2-vms-${tag}`,
    vmsPath: `${dir}/vms`,
  };
  const configFile = `${dir}/config.json`;
  await Deno.writeTextFile(
    configFile,
    JSON.stringify({
      domainType: "qemu",
      destroyTimeoutSeconds: 30,
      storage: {
        imagesPool: config.imagesPool,
        imagesPath: config.imagesPath,
        vmsPool: config.vmsPool,
        vmsPath: config.vmsPath,
      },
    }),
  );
  const bridge = `fd2${tag.slice(0, 8)}`.slice(0, 15);
  const name = `d2-${tag}`;
  // Kept guests keep their addresses across runs (they are in the VM's spec).
  const hostsFile = `${dir}/hosts.json`;
  const numbers: number[] = KEEP
    ? await Deno.readTextFile(hostsFile).then(JSON.parse, () => undefined) ??
      [nextHostNumber(), nextHostNumber(), nextHostNumber()]
    : [nextHostNumber(), nextHostNumber(), nextHostNumber()];
  if (KEEP) await Deno.writeTextFile(hostsFile, JSON.stringify(numbers));
  const ip = `192.0.2.${numbers[0]}`;
  const specFile = `${dir}/${name}.yaml`;
  const spec = `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels: { suite: day2 }
spec:
  vcpus: 1
  memoryGiB: 1
  bootDisk: { sizeGB: 4, image: debian-12-test.qcow2 }
  dataDisks:
    - { device: vdb, sizeGB: 1 }
  networkInterfaces:
    - ip: ${ip}/24
      gateway: 192.0.2.1
      bridge: ${bridge}
  cloudInit:
    fqdn: ${name}.day2.example.org
    sshAuthorizedKeys: [${KEY}]
    passwordHash: "${PASSWORD_HASH}"
`;
  await Deno.writeTextFile(specFile, spec);

  const exists = async () => (await lv.listAllDomains()).find((d) => d.name === name);
  let domain = KEEP ? await exists() : undefined;
  if (!domain) {
    await host("ip", ["link", "add", bridge, "type", "bridge"]).catch((e) => {
      if (!KEEP) throw e;
    });
    await host("ip", ["link", "set", bridge, "up"]); // no address, no uplink: isolated
    await ensureDirPool(lv, config.imagesPool, config.imagesPath);
    await importImage(lv, config.imagesPool, image.path, "debian-12-test.qcow2").catch((e) => {
      if (!KEEP) throw e;
    });
    const vm = parseVirtualMachine(spec, specFile);
    domain = (await createVm(lv, vm, { config })).domain;
  } else if ((await lv.domainGetState(domain)).state !== 1) {
    await lv.domainCreate(domain);
  }
  const started = performance.now();
  await waitForVm(lv, name, {
    timeoutMs: 1_200_000,
    onStage: (s, ms, detail) =>
      console.log(`  day2 guest ${s} after ${(ms / 1000).toFixed(1)} s: ${detail}`),
  });
  console.log(
    `  day2 guest ${name} ready in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  const dom = domain;

  const foundry = async (args: string[]): Promise<CliResult> => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(["--config", configFile, ...args], {
      out: (s: string) => void out.push(s),
      err: (s: string) => void err.push(s),
    });
    return { code, out: out.join(""), err: err.join("") };
  };
  const sh = async (cmd: string): Promise<string> => {
    const r = await guestExec(lv, dom, "/bin/sh", ["-c", cmd]);
    assert.equal(r.exitCode, 0, `${cmd}: ${r.stderr}`);
    return r.stdout.trim();
  };
  return {
    lv,
    config,
    configFile,
    name,
    domain: dom,
    ip,
    bridge,
    spareHosts: numbers.slice(1),
    dir,
    specFile,
    foundry,
    sh,
    async cleanup() {
      if (KEEP) return void await lv.close();
      for (const d of await lv.listAllDomains()) {
        const xml = await lv.domainGetXmlDesc(d).catch(() => "");
        if (!xml.includes(config.vmsPool)) continue;
        await lv.domainDestroy(d).catch(() => {});
        // Snapshot metadata too (flag 4 = NVRAM, 1 = managed save, 2 = snapshot metadata).
        await lv.domainUndefine(d, 1 | 2 | 4).catch(() => {});
      }
      for (const p of [config.vmsPool, config.imagesPool]) {
        try {
          const pool = await lv.storagePoolLookupByName(p);
          await lv.storagePoolRefresh(pool).catch(() => {});
          for (const v of await lv.storagePoolListAllVolumes(pool)) {
            await lv.storageVolDelete(v).catch(() => {});
          }
          await lv.storagePoolDestroy(pool).catch(() => {});
          await lv.storagePoolUndefine(pool);
        } catch { /* gone */ }
      }
      await host("ip", ["link", "del", bridge]).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await lv.close();
    },
  };
}
